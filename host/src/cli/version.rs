//! `uplift version`: versions compared and ranges checked, as hooks use
//! them. Input that does not parse is a usage error (exit 2).

use std::cmp::Ordering;

use uplift::version::{Version, VersionRange};

use super::failure::{Failure, Outcome, reported_unless};
use super::output::{json_outcome, outln, print_json};

#[derive(Debug, clap::Subcommand)]
pub(super) enum VersionCommand {
    /// Print one line per VERSION saying whether it matches RANGE; exit 0 if
    /// all match, 1 if any does not, 2 on invalid input
    Match {
        /// A range such as "<0.6.4", ">=0.14, <0.16" or "^1.2 || 2.*"
        range: String,
        /// Versions such as 1.0.0, 0.15, 0.15.0rc10, 1.1.1.dev0
        #[arg(required = true)]
        versions: Vec<String>,
    },
    /// Print <, = or >: how version FIRST compares with version SECOND
    Compare {
        /// The version on the left of the sign, such as 0.15.0rc10
        first: String,
        /// The version on the right of the sign, such as 0.15.0rc9
        second: String,
    },
}

/// `uplift version ...`; with `json`, one object.
pub(super) fn version(cmd: VersionCommand, json: bool) -> Outcome {
    match cmd {
        VersionCommand::Match { range, versions } => {
            let range = VersionRange::parse(&range).map_err(Failure::usage_error)?;
            let versions = versions
                .iter()
                .map(|v| Version::parse(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::usage_error)?;
            let unmatched = versions.iter().filter(|v| !range.matches(v)).count();
            let found = || {
                Failure::found(
                    "range-not-matched",
                    format!(
                        "{unmatched} of {} version(s) do not match {range}",
                        versions.len()
                    ),
                )
            };
            if json {
                let document = serde_json::json!({
                    "range": range.to_string(),
                    "versions": versions
                        .iter()
                        .map(|v| serde_json::json!({
                            "version": v.to_string(),
                            "matches": range.matches(v),
                        }))
                        .collect::<Vec<_>>(),
                });
                return json_outcome(&document, (unmatched > 0).then(found));
            }
            for version in &versions {
                if range.matches(version) {
                    outln!("{version} matches {range}");
                } else {
                    outln!("{version} does not match {range}");
                }
            }
            reported_unless(unmatched == 0, found)
        }
        VersionCommand::Compare { first, second } => {
            let first = Version::parse(&first).map_err(Failure::usage_error)?;
            let second = Version::parse(&second).map_err(Failure::usage_error)?;
            let sign = match first.cmp(&second) {
                Ordering::Less => "<",
                Ordering::Equal => "=",
                Ordering::Greater => ">",
            };
            if json {
                print_json(&serde_json::json!({
                    "first": first.to_string(),
                    "second": second.to_string(),
                    "order": sign,
                }));
                return Ok(());
            }
            outln!("{sign}");
            Ok(())
        }
    }
}

//! `uplift adopt`: taking a database uplift did not create under its
//! management, once its schema is found to be a release's.

use uplift::upgrade::{self, AdoptOptions, Adopted};
use uplift::version::Version;

use super::Globals;
use super::failure::Outcome as CommandOutcome;
use super::output::{Bars, Output, print_json, warn_all};

#[derive(Debug, clap::Args)]
pub(super) struct AdoptArgs {
    /// The release whose schema the database has (`uplift status` tells
    /// which one it matches)
    #[arg(long = "as", value_name = "VERSION", value_parser = parse_version)]
    version: Version,
    /// Adopt even though the schema differs from the release's, recording
    /// each difference in the database's history
    #[arg(long)]
    force: bool,
    /// Wait for another uplift working on this home instead of failing
    #[arg(long)]
    wait: bool,
}

fn parse_version(text: &str) -> Result<Version, String> {
    Version::parse(text).map_err(|e| format!("{e}: give a release version such as 0.6.4"))
}

/// `uplift adopt`.
pub(super) fn adopt(globals: &Globals, args: AdoptArgs) -> CommandOutcome {
    let home = globals.home()?;
    let release = globals.release()?;
    let options = AdoptOptions {
        version: args.version,
        force: args.force,
        wait: args.wait,
    };
    let mut bars = Bars::new(globals.quiet || globals.json);
    let reporter = upgrade::Reporter {
        progress: &mut bars,
        log: std::sync::Arc::new(|_: &uplift::hooks::LogLine| {}),
    };
    // With --json, a failure is printed as JSON by `Failure::report`.
    let adopted = upgrade::adopt(&home, &release, &options, reporter)?;
    if globals.json {
        let mut value = serde_json::to_value(&adopted)?;
        value["outcome"] = "adopted".into();
        print_json(&value);
    } else {
        print_adopted(&globals.output(), &home.db_path(), &adopted);
    }
    Ok(())
}

fn print_adopted(out: &Output, db: &std::path::Path, adopted: &Adopted) {
    out.line(format_args!(
        "adopted {} at {}: {} migration{} recorded as applied without running them; no row was changed",
        db.display(),
        adopted.version,
        adopted.migrations.len(),
        if adopted.migrations.len() == 1 { "" } else { "s" }
    ));
    out.line(format_args!("backup: {}", adopted.backup.display()));
    if !adopted.ignored.is_empty() {
        out.line(format_args!(
            "left alone (release.toml ignores them): {}",
            adopted.ignored.join(", ")
        ));
    }
    if !adopted.plugin_tables.is_empty() {
        out.line(format_args!(
            "left to the plugins that own them: {}",
            adopted.plugin_tables.join(", ")
        ));
    }
    if !adopted.differences.is_empty() {
        let mut warning = format!(
            "adopted despite {} difference(s) from release {}'s schema, recorded in the database's history:",
            adopted.differences.len(),
            adopted.version
        );
        for difference in &adopted.differences {
            warning.push_str("\n  - ");
            warning.push_str(difference);
        }
        warn_all(&[warning]);
    }
    warn_all(&adopted.warnings);
}

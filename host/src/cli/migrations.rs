//! `uplift migrations list`, `uplift verify-paths` and `uplift testdb`: the
//! schema migrations of the installed release, every upgrade path between
//! releases, and a database at a release with its fixtures.

use std::path::PathBuf;

use uplift::upgrade;

use super::Globals;
use super::failure::{Outcome, reported_unless};
use super::output::outln;

#[derive(Debug, clap::Subcommand)]
pub(super) enum MigrationsCommand {
    /// List applied, pending and drifted migrations
    List {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub(super) struct VerifyPathsArgs {
    /// Print one JSON object per path
    #[arg(long)]
    json: bool,
    /// Release folders (two or more, any order)
    #[arg(required = true, value_name = "RELEASE_DIR")]
    releases: Vec<PathBuf>,
}

/// `uplift migrations list`: exit 1 when a migration drifted.
pub(super) fn migrations(globals: &Globals, cmd: MigrationsCommand) -> Outcome {
    let MigrationsCommand::List { json } = cmd;
    let home = globals.home()?;
    let release = globals.release()?;
    let list = upgrade::migration_list(&home, &release)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for entry in &list {
        match &entry.applied_at {
            Some(at) if entry.adopted => outln!(
                "{:<9} {}  (adopted {at} at {}: found in place, never run by uplift)",
                entry.state,
                entry.file,
                entry.release_version.as_deref().unwrap_or("?")
            ),
            Some(at) => outln!(
                "{:<9} {}  (applied {at} by {})",
                entry.state,
                entry.file,
                entry.release_version.as_deref().unwrap_or("?")
            ),
            None => outln!("{:<9} {}", entry.state, entry.file),
        }
    }
    if list.is_empty() {
        outln!(
            "no migrations in {} and none applied",
            release.dir.display()
        );
    }
    reported_unless(!list.iter().any(|e| e.state.is_drift()))
}

/// `uplift verify-paths`: exit 1 when any path has problems.
pub(super) fn verify_paths(globals: &Globals, args: VerifyPathsArgs) -> Outcome {
    let out = globals.output();
    let json = args.json;
    let reports = uplift::upgrade_paths::verify_paths(&args.releases, &mut |report| {
        if json {
            return;
        }
        let mark = if report.ok() { "ok  " } else { "FAIL" };
        out.line(format_args!(
            "{mark} {} -> {}  {}",
            report.from, report.to, report.result
        ));
        for change in &report.plugins {
            out.line(format_args!("       plugin {change}"));
        }
        for problem in &report.problems {
            out.line(format_args!("       {problem}"));
        }
    })?;
    let failed = reports.iter().filter(|r| !r.ok()).count();
    if json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        out.line(format_args!(
            "{} paths checked, {failed} with problems",
            reports.len()
        ));
    }
    reported_unless(failed == 0)
}

#[derive(Debug, clap::Args)]
pub(super) struct TestdbArgs {
    /// The database file to create (it must not exist)
    #[arg(value_name = "OUT")]
    out: PathBuf,
}

/// `uplift testdb`: a database at the installed release with its fixtures.
pub(super) fn testdb(globals: &Globals, args: TestdbArgs) -> Outcome {
    let release = globals.release()?;
    let loaded = uplift::upgrade_paths::build_test_database(&release, &args.out)?;
    globals.output().line(format_args!(
        "{}: {} {} with {loaded} fixture file{} loaded from {}",
        args.out.display(),
        release.app,
        release.version,
        if loaded == 1 { "" } else { "s" },
        release.dir.join("fixtures").display()
    ));
    Ok(())
}

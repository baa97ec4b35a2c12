//! `uplift migrations list`, `uplift verify-paths` and `uplift testdb`: the
//! schema migrations of the installed release, every upgrade path between
//! releases, and a database at a release with its fixtures.

use std::path::PathBuf;

use uplift::upgrade;

use super::Globals;
use super::failure::{Failure, Outcome, reported_unless};
use super::output::{json_outcome, outln, print_json};

#[derive(Debug, clap::Subcommand)]
pub(super) enum MigrationsCommand {
    /// List applied, pending and drifted migrations
    List,
}

#[derive(Debug, clap::Args)]
pub(super) struct VerifyPathsArgs {
    /// Release folders (two or more, any order)
    #[arg(required = true, value_name = "RELEASE_DIR")]
    releases: Vec<PathBuf>,
}

/// `uplift migrations list`: exit 1 when a migration drifted.
pub(super) fn migrations(globals: &Globals, cmd: MigrationsCommand) -> Outcome {
    let MigrationsCommand::List = cmd;
    let home = globals.home()?;
    let release = globals.release()?;
    let list = upgrade::migration_list(&home, &release)?;
    let drifted = list.iter().filter(|e| e.state.is_drift()).count();
    let drift = || {
        Failure::found(
            "migration-drift",
            format!(
                "{drifted} applied migration{} no longer match{} the release's files",
                if drifted == 1 { "" } else { "s" },
                if drifted == 1 { "es" } else { "" }
            ),
        )
    };
    if globals.json {
        return json_outcome(&list, (drifted > 0).then(drift));
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
    reported_unless(drifted == 0, drift)
}

/// `uplift verify-paths`: exit 1 when any path has problems.
pub(super) fn verify_paths(globals: &Globals, args: VerifyPathsArgs) -> Outcome {
    let out = globals.output();
    let json = globals.json;
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
    let problems = || {
        Failure::found(
            "path-problems",
            format!("{} paths checked, {failed} with problems", reports.len()),
        )
    };
    if json {
        return json_outcome(&reports, (failed > 0).then(problems));
    }
    out.line(format_args!(
        "{} paths checked, {failed} with problems",
        reports.len()
    ));
    reported_unless(failed == 0, problems)
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
    if globals.json {
        print_json(&serde_json::json!({
            "outcome": "created",
            "database": args.out,
            "application": release.app,
            "version": release.version.to_string(),
            "fixtures": loaded,
        }));
        return Ok(());
    }
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

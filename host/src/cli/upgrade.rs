//! `uplift upgrade`, `uplift run` and `uplift status`: bringing the database
//! to the installed release, and saying where it stands.

use std::ffi::OsString;

use uplift::home::Home;
use uplift::hooks::{CacheOutcome, CompileRun, LogLevel, LogLine};
use uplift::release::Release;
use uplift::upgrade::{
    self, HookRun, Outcome, PhaseTime, Plan, PlanKind, UpgradeError, UpgradeOptions,
};
use uplift::version::Version;

use super::Globals;
use super::failure::{CommandError, Failure, Outcome as CommandOutcome};
use super::output::{Bars, Output, outln, print_json, warn_all};

#[derive(Debug, clap::Args)]
pub(super) struct UpgradeArgs {
    /// Print what would be done and change nothing
    #[arg(long)]
    plan: bool,
    /// Wait for another uplift working on this home instead of failing
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// Wait for another uplift working on this home instead of failing
    #[arg(long)]
    wait: bool,
    /// The command to run, after `--`
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// `uplift upgrade`.
pub(super) fn upgrade(globals: &Globals, args: UpgradeArgs) -> CommandOutcome {
    let home = globals.home()?;
    let release = globals.release()?;
    let options = UpgradeOptions {
        wait: args.wait,
        plan_only: args.plan,
    };
    // With --json, a failure is printed as JSON by `Failure::report`
    // (with `rolled_back`, from the error).
    let outcome = upgrade_reporting(globals, &home, &release, &options)?;
    if globals.json {
        print_json(&outcome);
    } else {
        print_outcome(&globals.output(), &outcome);
    }
    Ok(())
}

/// `uplift run`: upgrades if needed, then replaces this process with the
/// command (so it returns only on failure).
pub(super) fn run(globals: &Globals, args: RunArgs) -> CommandOutcome {
    let home = globals.home()?;
    let release = globals.release()?;
    let options = UpgradeOptions {
        wait: args.wait,
        plan_only: false,
    };
    // The application runs holding the home's lock shared, for its whole
    // life: upgrades and restores refuse (or, with --wait, wait) while it
    // runs, and several applications started this way share it. An upgrade
    // needs the lock alone, so the shared hold is taken only once the data
    // is up to date: if another uplift changes the data between the upgrade
    // and the hold (a restore), the loop upgrades again.
    for _ in 0..3 {
        let shared = home.lock_shared(args.wait)?;
        if upgrade::is_up_to_date(&home, &release)? {
            shared.keep_across_exec()?;
            return Err(exec(&args.command));
        }
        drop(shared);
        let outcome = upgrade_reporting(globals, &home, &release, &options)?;
        // With --json, stdout is the application's once it runs: what the
        // upgrade did is in `uplift history`.
        if !matches!(outcome, Outcome::UpToDate { .. }) && !globals.json {
            print_outcome(&globals.output(), &outcome);
        }
    }
    Err(CommandError::KeptChanging(home.root().to_path_buf()).into())
}

/// `uplift status`; with --quiet, the state alone.
pub(super) fn status(globals: &Globals) -> CommandOutcome {
    let home = globals.home()?;
    let release = globals.release()?;
    let status = upgrade::status(&home, &release)?;
    if globals.json {
        print_json(&status);
        return Ok(());
    }
    if globals.quiet {
        outln!("{}", status.state);
        return Ok(());
    }
    outln!("home             {}", home.root().display());
    outln!(
        "release          {} {} ({})",
        release.app,
        release.version,
        release.dir.display()
    );
    match &status.data_version {
        Some(v) => outln!("data version     {v}"),
        None if status.database_exists => {
            outln!("data version     none (not upgraded by uplift yet)")
        }
        None => outln!("data version     none (no database yet: `uplift upgrade` installs it)"),
    }
    outln!("state            {}", status.state);
    if let Some(adoptable) = &status.adoptable {
        print_adoptable(adoptable);
    }
    if let Some(adopted) = &status.adopted {
        outln!(
            "adopted          at {} on {}{}",
            adopted.version,
            adopted.at,
            match adopted.differences.len() {
                0 => String::new(),
                n => format!(" despite {n} difference(s) from its schema (--force)"),
            }
        );
        for d in &adopted.differences {
            outln!("  overridden     {d}");
        }
    }
    outln!(
        "migrations       {} applied, {} pending",
        status.applied,
        status.pending.len()
    );
    for m in &status.pending {
        outln!("  pending        {m}");
    }
    for d in &status.drift {
        outln!("  drift          {d}");
    }
    for edit in &status.accepted_edits {
        outln!(
            "  edited         {} (the release accepts the edit; the next upgrade records it)",
            edit.file
        );
    }
    for change in &status.plugin_changes {
        outln!("  plugin         {change}");
    }
    if !status.hooks.is_empty() {
        outln!("hooks to run     {}", status.hooks.len());
        for h in &status.hooks {
            outln!("  hook           {}/{}", h.plugin, h.hook);
        }
    }
    outln!("plugins          {}", status.plugins.len());
    for p in &status.plugins {
        let state = match (p.core, p.active) {
            (true, _) => "core",
            (false, true) => "enabled",
            (false, false) => "disabled",
        };
        match &p.recorded_version {
            Some(recorded) if Version::parse(&p.version).ok().as_ref() != Some(recorded) => outln!(
                "  {:<14} {} ({state}; the data was last upgraded with {recorded})",
                p.name,
                p.version
            ),
            Some(_) => outln!("  {:<14} {} ({state})", p.name, p.version),
            None => outln!(
                "  {:<14} {} ({state}; not yet activated on this data)",
                p.name,
                p.version
            ),
        }
    }
    if status.backups.is_empty() {
        outln!("backups          none yet");
    } else {
        outln!("latest backups");
    }
    for b in &status.backups {
        outln!(
            "  {}  ({}, data version {})",
            b.file,
            b.kind.as_deref().unwrap_or("?"),
            b.data_version.as_deref().unwrap_or("none")
        );
    }
    Ok(())
}

/// What `status` says of a database uplift does not manage.
fn print_adoptable(adoptable: &upgrade::Adoptable) {
    match (&adoptable.matches, &adoptable.command) {
        (Some(version), Some(command)) => {
            outln!("adoptable        its schema is release {version}'s: `{command}` adopts it")
        }
        (None, Some(command)) => outln!(
            "adoptable        its schema is none of the releases this one knows; \
             `{command}` (the closest) lists each difference"
        ),
        _ => outln!("adoptable        this release knows no schema to compare it with"),
    }
    for tried in &adoptable.tried {
        match tried.differences {
            0 => outln!("  {:<14} same schema", tried.version),
            n => outln!("  {:<14} {n} difference(s)", tried.version),
        }
    }
}

/// Runs the upgrade, reporting on stderr: progress bars (not with --quiet
/// or --json), and hooks' log lines (with --quiet, only warnings and
/// errors).
fn upgrade_reporting(
    globals: &Globals,
    home: &Home,
    release: &Release,
    options: &UpgradeOptions,
) -> Result<Outcome, UpgradeError> {
    let quiet = globals.quiet;
    let mut bars = Bars::new(quiet || globals.json);
    let reporter = upgrade::Reporter {
        progress: &mut bars,
        log: std::sync::Arc::new(move |line: &LogLine| {
            if !quiet || line.level >= LogLevel::Warn {
                eprintln!("{line}");
            }
        }),
    };
    upgrade::upgrade(home, release, options, reporter)
}

/// Replaces this process with `command`; returns only the error of failing
/// to.
fn exec(command: &[OsString]) -> Failure {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = command.split_first() else {
        return Failure::usage("no command given after --");
    };
    let cause = std::process::Command::new(program).args(args).exec();
    CommandError::Exec {
        program: program.to_string_lossy().into_owned(),
        cause,
    }
    .into()
}

/// What an upgrade did (or, with --plan, would do).
fn print_outcome(out: &Output, outcome: &Outcome) {
    match outcome {
        Outcome::UpToDate { version } => {
            out.line(format_args!("up to date: data version {version}"))
        }
        Outcome::Planned { plan } => print_plan(out, plan),
        Outcome::Installed {
            plan,
            migrations,
            compiled,
            hooks,
            phases,
            warnings,
            ..
        } => {
            out.line(format_args!(
                "installed {} with {} migrations",
                plan.to,
                migrations.len()
            ));
            print_ran(out, plan, compiled, hooks);
            print_phases(out, phases);
            warn_all(warnings);
        }
        Outcome::Upgraded {
            plan,
            backup,
            pruned,
            migrations,
            compiled,
            hooks,
            phases,
            warnings,
            ..
        } => {
            warn_all(warnings);
            out.line(format_args!("upgraded {}", what_changes(plan)));
            out.line(format_args!("  backup     {}", backup.display()));
            for path in pruned {
                out.line(format_args!("  pruned     {}", path.display()));
            }
            for m in migrations {
                out.line(format_args!("  migration  {} ({:.1} ms)", m.file, m.ms));
            }
            print_ran(out, plan, compiled, hooks);
            print_phases(out, phases);
        }
    }
}

/// The plugins an upgrade moved, the components it compiled and the hooks
/// it ran.
fn print_ran(out: &Output, plan: &Plan, compiled: &[CompileRun], hooks: &[HookRun]) {
    for change in &plan.plugins {
        out.line(format_args!("  plugin     {change}"));
    }
    for c in compiled {
        if c.cache == CacheOutcome::Hit {
            out.detail(format_args!(
                "  cached     {} {} (read from the compile cache, {:.1} ms)",
                c.plugin, c.version, c.ms
            ));
        } else {
            out.line(format_args!(
                "  compiled   {} {} ({:.1} ms, before the upgrade began)",
                c.plugin, c.version, c.ms
            ));
        }
    }
    print_skipped(out, plan);
    for h in hooks {
        out.line(format_args!(
            "  hook       {}/{} ({:.1} ms)",
            h.plugin, h.hook, h.ms
        ));
    }
}

/// With `-v`, the hooks that do not run and why.
fn print_skipped(out: &Output, plan: &Plan) {
    for s in &plan.skipped {
        out.detail(format_args!(
            "  skipped    {}/{} ({})",
            s.plugin, s.hook, s.why
        ));
    }
}

fn print_plan(out: &Output, plan: &Plan) {
    match plan.kind {
        PlanKind::Install => out.line(format_args!("plan: fresh install of {}", plan.to)),
        _ => out.line(format_args!("plan: upgrade {}", what_changes(plan))),
    }
    for change in &plan.plugins {
        out.line(format_args!("  plugin     {change}"));
    }
    if plan.migrations.is_empty() {
        out.line("  no migrations");
    }
    for m in &plan.migrations {
        out.line(format_args!("  migration  {m}"));
    }
    for h in &plan.hooks {
        let mut ranges = format!(
            "old_version {:?}, new_version {:?}",
            h.old_version, h.new_version
        );
        if let Some(range) = &h.plugin_old_version {
            ranges.push_str(&format!(", plugin_old_version {range:?}"));
        }
        if let Some(range) = &h.plugin_new_version {
            ranges.push_str(&format!(", plugin_new_version {range:?}"));
        }
        out.line(format_args!(
            "  hook       {}/{}  ({ranges})",
            h.plugin, h.hook
        ));
    }
    print_skipped(out, plan);
}

/// What a plan upgrades, in a few words: `0.6.4 -> 1.0.0`, or `the
/// plugins of data version 1.0.0 (...)`.
fn what_changes(plan: &Plan) -> String {
    match (plan.kind, &plan.from) {
        (PlanKind::Plugins, _) => format!(
            "the plugins of data version {} (the application's version stays)",
            plan.to
        ),
        (_, Some(from)) => format!("{from} -> {}", plan.to),
        (_, None) => plan.to.to_string(),
    }
}

fn print_phases(out: &Output, phases: &[PhaseTime]) {
    let parts: Vec<String> = phases
        .iter()
        .map(|p| format!("{} {:.1} ms", p.phase, p.ms))
        .collect();
    out.line(format_args!("  time       {}", parts.join(", ")));
}

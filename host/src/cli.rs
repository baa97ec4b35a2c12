//! The `uplift` command line. This is the only module that knows about the
//! terminal: argument parsing, output formats, progress bars and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::home::Home;
use crate::release::Release;
use crate::upgrade::{self, Outcome, Plan, UpgradeOptions};
use crate::version::{Version, VersionRange};

/// Exit code when the operation failed (the database is unchanged).
const EXIT_FAILED: u8 = 1;
/// Exit code for a usage error or invalid input (as clap uses).
const EXIT_USAGE: u8 = 2;

/// uplift upgrades an application's SQLite database when a new release is
/// installed: backup, migrations, sandboxed plugin hooks, all or nothing.
#[derive(Debug, Parser)]
#[command(name = "uplift", version, about, max_term_width = 100)]
struct Cli {
    /// The home folder holding the database, backups and plugins
    /// [default: ~/.uplift]
    #[arg(long, global = true, env = "UPLIFT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// The installed release: a folder with release.toml, migrations/ and plugins/
    #[arg(long, global = true, env = "UPLIFT_RELEASE", value_name = "DIR")]
    release: Option<PathBuf>,

    /// Print nothing but errors (and the results a command exists to print)
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the database to the installed release's version: backup,
    /// migrations, plugin hooks and the new version, all or nothing
    Upgrade {
        /// Print what would be done and change nothing
        #[arg(long)]
        plan: bool,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
        /// Wait for another uplift working on this home instead of failing
        #[arg(long)]
        wait: bool,
    },
    /// Upgrade if needed, then replace this process with CMD (for use on
    /// every start of the application)
    Run {
        /// Wait for another uplift working on this home instead of failing
        #[arg(long)]
        wait: bool,
        /// The command to run, after `--`
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// Show the release and data versions and what an upgrade would do
    Status {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Inspect schema migrations
    #[command(subcommand)]
    Migrations(MigrationsCommand),
    /// Check every upgrade path between an application's releases: data
    /// created at each release, upgraded directly to each later one, must have
    /// the schema of a fresh install (for CI); exit 1 on any difference
    VerifyPaths {
        /// Print one JSON object per path
        #[arg(long)]
        json: bool,
        /// Release folders (two or more, any order)
        #[arg(required = true, value_name = "RELEASE_DIR")]
        releases: Vec<PathBuf>,
    },
    /// Compare versions and check version ranges, as hooks use them
    #[command(subcommand)]
    Version(VersionCommand),
}

#[derive(Debug, Subcommand)]
enum MigrationsCommand {
    /// List applied, pending and drifted migrations
    List {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum VersionCommand {
    /// Print one line per VERSION saying whether it matches RANGE; exit 0 if
    /// all match, 1 if any does not, 2 on invalid input
    Match {
        /// A range such as "<0.6.4", ">=0.14, <0.16" or "^1.2 || 2.*"
        range: String,
        /// Versions such as 1.0.0, 0.15, 0.15.0rc10, 1.1.1.dev0
        #[arg(required = true)]
        versions: Vec<String>,
    },
    /// Print <, = or > comparing version A with version B
    Compare { a: String, b: String },
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", render_error(&err));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// message already quotes (library errors often include their source).
fn render_error(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = Output { quiet: cli.quiet };
    match cli.command {
        Command::Upgrade { plan, json, wait } => {
            let home = Home::resolve(cli.home)?;
            let release = Release::resolve(cli.release.as_deref())?;
            let options = UpgradeOptions {
                wait,
                plan_only: plan,
            };
            let outcome = upgrade::upgrade(&home, &release, &options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome)?);
            } else {
                out.outcome(&outcome);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { wait, command } => {
            let home = Home::resolve(cli.home)?;
            let release = Release::resolve(cli.release.as_deref())?;
            let options = UpgradeOptions {
                wait,
                plan_only: false,
            };
            let outcome = upgrade::upgrade(&home, &release, &options)?;
            if !matches!(outcome, Outcome::UpToDate { .. }) {
                out.outcome(&outcome);
            }
            exec(&command)
        }
        Command::Status { json } => status_command(cli.home, cli.release.as_deref(), json),
        Command::Migrations(MigrationsCommand::List { json }) => {
            migrations_command(cli.home, cli.release.as_deref(), json)
        }
        Command::VerifyPaths { json, releases } => verify_paths_command(&out, json, &releases),
        Command::Version(cmd) => Ok(version_command(cmd).unwrap_or_else(|err| {
            eprintln!("error: {}", render_error(&err));
            ExitCode::from(EXIT_USAGE)
        })),
    }
}

fn verify_paths_command(
    out: &Output,
    json: bool,
    releases: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let reports = crate::paths::verify_paths(releases, &mut |report| {
        if json {
            return;
        }
        let mark = if report.ok() { "ok  " } else { "FAIL" };
        out.line(format_args!(
            "{mark} {} -> {}  {}",
            report.from, report.to, report.result
        ));
        for problem in &report.problems {
            out.line(format_args!("       {problem}"));
        }
    })?;
    let failed = reports.iter().filter(|r| !r.ok()).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        out.line(format_args!(
            "{} paths checked, {failed} with problems",
            reports.len()
        ));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// Replaces this process with `command` (only returns on failure).
fn exec(command: &[std::ffi::OsString]) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command given after --"))?;
    let err = std::process::Command::new(program).args(args).exec();
    Err(anyhow::anyhow!(
        "could not run {}: {err}",
        program.to_string_lossy()
    ))
}

/// Prints human-readable results unless --quiet.
struct Output {
    quiet: bool,
}

impl Output {
    fn line(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            println!("{text}");
        }
    }

    fn outcome(&self, outcome: &Outcome) {
        match outcome {
            Outcome::UpToDate { version } => {
                self.line(format_args!("up to date: data version {version}"))
            }
            Outcome::Planned { plan } => self.plan(plan),
            Outcome::Installed {
                plan,
                migrations,
                phases,
            } => {
                self.line(format_args!(
                    "installed {} with {} migrations",
                    plan.to,
                    migrations.len()
                ));
                self.phases(phases);
            }
            Outcome::Upgraded {
                plan,
                backup,
                migrations,
                phases,
            } => {
                let from = plan
                    .from
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                self.line(format_args!("upgraded {from} -> {}", plan.to));
                if let Some(backup) = backup {
                    self.line(format_args!("  backup     {}", backup.display()));
                }
                for m in migrations {
                    self.line(format_args!("  migration  {} ({:.1} ms)", m.file, m.ms));
                }
                self.phases(phases);
            }
        }
    }

    fn plan(&self, plan: &Plan) {
        match &plan.from {
            Some(from) => self.line(format_args!("plan: upgrade {from} -> {}", plan.to)),
            None => self.line(format_args!("plan: fresh install of {}", plan.to)),
        }
        if plan.migrations.is_empty() {
            self.line("  no migrations");
        }
        for m in &plan.migrations {
            self.line(format_args!("  migration  {m}"));
        }
    }

    fn phases(&self, phases: &[upgrade::PhaseTime]) {
        let parts: Vec<String> = phases
            .iter()
            .map(|p| format!("{} {:.1} ms", p.phase, p.ms))
            .collect();
        self.line(format_args!("  time       {}", parts.join(", ")));
    }
}

fn status_command(
    home: Option<PathBuf>,
    release: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let home = Home::resolve(home)?;
    let release = Release::resolve(release)?;
    let status = upgrade::status(&home, &release)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("home             {}", home.root().display());
    println!(
        "release          {} {} ({})",
        release.app,
        release.version,
        release.dir.display()
    );
    match &status.data_version {
        Some(v) => println!("data version     {v}"),
        None if status.database_exists => {
            println!("data version     none (not upgraded by uplift yet)")
        }
        None => println!("data version     none (no database yet: `uplift upgrade` installs it)"),
    }
    println!("state            {}", status.state);
    println!(
        "migrations       {} applied, {} pending",
        status.applied,
        status.pending.len()
    );
    for m in &status.pending {
        println!("  pending        {m}");
    }
    for d in &status.drift {
        println!("  drift          {d}");
    }
    Ok(ExitCode::SUCCESS)
}

fn migrations_command(
    home: Option<PathBuf>,
    release: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let home = Home::resolve(home)?;
    let release = Release::resolve(release)?;
    let list = upgrade::migration_list(&home, &release)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    for entry in &list {
        match &entry.applied_at {
            Some(at) => println!(
                "{:<9} {}  (applied {at} by {})",
                entry.state,
                entry.file,
                entry.release_version.as_deref().unwrap_or("?")
            ),
            None => println!("{:<9} {}", entry.state, entry.file),
        }
    }
    if list.is_empty() {
        println!(
            "no migrations in {} and none applied",
            release.dir.display()
        );
    }
    let drifted = list
        .iter()
        .any(|e| e.state == "changed" || e.state == "missing");
    Ok(if drifted {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn version_command(cmd: VersionCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VersionCommand::Match { range, versions } => {
            let range = VersionRange::parse(&range)?;
            let versions = versions
                .iter()
                .map(|v| Version::parse(v))
                .collect::<Result<Vec<_>, _>>()?;
            let mut all = true;
            for version in &versions {
                if range.matches(version) {
                    println!("{version} matches {range}");
                } else {
                    println!("{version} does not match {range}");
                    all = false;
                }
            }
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        VersionCommand::Compare { a, b } => {
            let a = Version::parse(&a)?;
            let b = Version::parse(&b)?;
            let sign = match a.cmp(&b) {
                std::cmp::Ordering::Less => "<",
                std::cmp::Ordering::Equal => "=",
                std::cmp::Ordering::Greater => ">",
            };
            println!("{sign}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

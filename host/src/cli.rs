//! The `uplift` command line. This is the only module that knows about the
//! terminal: argument parsing, output formats, progress bars and exit codes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use uplift::backup::{self, BackupKind, BackupOptions, Progress, ProgressUnit, RestoreOptions};
use uplift::home::Home;
use uplift::release::Release;
use uplift::upgrade::{self, Outcome, Plan, UpgradeOptions};
use uplift::version::{Version, VersionRange};

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
    /// Back the database up as an SQL dump (that `sqlite3 new.db < FILE`
    /// also restores) and print its path
    Dbbackup {
        /// Where to write the dump [default: <home>/backups]
        #[arg(long, value_name = "DIR")]
        dest: Option<PathBuf>,
        /// Compress the dump with zstd (.dump.zst)
        #[arg(long)]
        compress: bool,
        /// Wait for another uplift working on this home instead of failing
        #[arg(long)]
        wait: bool,
    },
    /// Restore the database from a dump; the current database is backed up
    /// first and replaced only once the restored one checks out
    #[command(group = clap::ArgGroup::new("which").required(true).args(["file", "latest", "select"]))]
    Dbrestore {
        /// The dump to restore (uplift's .dump/.dump.zst, or `sqlite3 .dump` output)
        file: Option<PathBuf>,
        /// Restore the newest verified backup whose data version the
        /// installed release (--release) can run (automatic and manual
        /// backups; with --include-safety-backups, also the backups
        /// earlier restores made of the database they replaced)
        #[arg(long)]
        latest: bool,
        /// With --latest: also consider the safety backups that earlier
        /// restores made of the database they replaced
        #[arg(long, requires = "latest")]
        include_safety_backups: bool,
        /// Pick the backup from a numbered list (needs a terminal)
        #[arg(long)]
        select: bool,
        /// Check the restored database with PRAGMA quick_check only, not
        /// the full check (skips verifying that the indexes it just built
        /// hold exactly their tables' rows; about a tenth faster)
        #[arg(long)]
        quick_check: bool,
        /// Wait for another uplift working on this home instead of failing
        #[arg(long)]
        wait: bool,
    },
    /// List or prune the home's backups
    #[command(subcommand)]
    Backups(BackupsCommand),
    /// Inspect, validate and prepare plugin components
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// List, enable and disable plugins
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
enum BackupsCommand {
    /// List backups, oldest first by recorded time: name, kind, data
    /// version, time, size, and whether the checksum verifies
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove backups beyond the newest N of each kind (automatic, manual,
    /// pre-restore), keeping the newest backup of each data version (what a
    /// downgrade to it restores); files without an uplift header are never
    /// removed
    Prune {
        /// How many of each kind to keep
        #[arg(long, value_name = "N")]
        keep: usize,
    },
}

#[derive(Debug, Subcommand)]
enum HooksCommand {
    /// Print a component's manifest (read from its custom section; nothing
    /// is run)
    Inspect {
        /// The plugin component (.wasm)
        file: PathBuf,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Check plugin components for CI without running them: a component of
    /// the upgrade-hook world, importing only what uplift provides, with a
    /// valid manifest; with --release, the tables it names exist in that
    /// release's schema. Exit 0 if all are valid, 1 if any is not, 2 on a
    /// usage error
    Validate {
        /// Print one JSON object per file
        #[arg(long)]
        json: bool,
        /// Plugin components (.wasm)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Create a new plugin that builds and passes `hooks validate` as
    /// generated: a Rust crate using uplift-hooks-sdk, or a Python app.py
    New {
        /// The plugin's name: 1 to 64 of a-z 0-9 - _, starting with a letter
        name: String,
        /// The plugin's language
        #[arg(long, value_enum, default_value = "rust")]
        lang: LangArg,
        /// The folder to create it in (must not exist or be empty)
        /// [default: ./NAME]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run a plugin's hooks against a copy of a database (the original is
    /// never written) inside the real sandbox, and print their log and the
    /// rows they inserted, updated and deleted per table. With --release, the
    /// release's pending migrations are applied to the copy first, as the
    /// upgrade would. The sandbox's limits are the home's ([hooks] in
    /// uplift.toml). Exit 0 if every hook succeeded, 1 if one failed or was
    /// refused or a migration failed, 2 on a usage error
    Test {
        /// The plugin component (.wasm)
        plugin: PathBuf,
        /// The database to copy
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// The data version before the upgrade
        #[arg(long, value_name = "V")]
        from: String,
        /// The release version upgraded to [default: the version of
        /// --release]
        #[arg(long, value_name = "V")]
        to: Option<String>,
        /// Run only this hook, whatever its ranges
        #[arg(long, value_name = "NAME")]
        hook: Option<String>,
        /// Print one JSON object: hooks run, their results, log lines and
        /// changes per table
        #[arg(long)]
        json: bool,
    },
    /// Add or replace the manifest of a component (for languages without
    /// the SDK)
    EmbedManifest {
        /// The manifest, as TOML (see wit/MANIFEST.md)
        #[arg(long, value_name = "TOML")]
        manifest: PathBuf,
        /// The component to read
        input: PathBuf,
        /// Where to write the component with the manifest
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
    },
}

/// The language of `hooks new`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LangArg {
    Rust,
    Python,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// List the plugins of the release and the home, and which are active
    List {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Activate an optional plugin (recorded in the home's plugins.toml)
    Enable { name: String },
    /// Deactivate an optional plugin; core plugins of the release cannot be
    /// disabled
    Disable { name: String },
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
    ignore_file_size_signal();
    // This process does nothing but the command: its memory and open files
    // are the running hook's to account for, and when a hook or a
    // compilation is stuck past its limit inside a call nothing can
    // interrupt, ending the process is the way to stop it (hooks::bounds).
    uplift::hooks::bounds::supervise_whole_process();
    // Before anything opens a database: SQLite takes an allocator only then.
    uplift::hooks::bounds::install_sqlite_allocator();
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

/// A write beyond the file-size limit (`ulimit -f`) must fail with an error
/// the backup can clean up after, not kill the process with SIGXFSZ and
/// leave a temporary file behind.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // code; it only makes write(2) return EFBIG instead of raising SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Progress bars on stderr, drawn only on a terminal and without --quiet.
struct Bars {
    bar: Option<indicatif::ProgressBar>,
    enabled: bool,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        Bars {
            bar: None,
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bars {
    fn begin(&mut self, phase: &str, total: Option<u64>, unit: ProgressUnit) {
        if !self.enabled {
            return;
        }
        let bar = match total {
            Some(total) => indicatif::ProgressBar::new(total),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let template = match (unit, total.is_some()) {
            (ProgressUnit::Bytes, true) => {
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {prefix}"
            }
            (ProgressUnit::Rows, true) => {
                "{msg:>10} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}"
            }
            _ => "{msg:>10} {spinner} {elapsed}",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(phase.to_string());
        self.bar = Some(bar);
    }

    fn update(&mut self, done: u64, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if rows > 0 && bar.length().is_some() {
                bar.set_prefix(format!("{rows} rows"));
            }
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn dbbackup(
    home: &Home,
    dest: Option<PathBuf>,
    compress: bool,
    wait: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let db = home.db_path();
    if !db.exists() {
        bail!("there is no database to back up at {}", db.display());
    }
    // Shared: a backup may run beside the application (it reads one
    // snapshot), but not during an upgrade or a restore.
    let _lock = home.lock_shared(wait)?;
    let conn = rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("could not open {}", db.display()))?;
    let dir = dest.unwrap_or_else(|| home.backups_dir());
    let mut options = BackupOptions::new(BackupKind::Manual);
    options.compress = compress;
    let mut bars = Bars::new(quiet);
    let file = backup::write_backup(&conn, &dir, &options, &mut bars)?;
    if !quiet {
        eprintln!(
            "backed up {} rows ({}) of data version {}",
            file.rows,
            human_size(file.size),
            file.header.data_version.as_deref().unwrap_or("none")
        );
    }
    println!("{}", file.path.display());
    Ok(ExitCode::SUCCESS)
}

enum Which {
    File(PathBuf),
    Latest(backup::Candidates),
    Select,
}

fn describe_entries(entries: &[backup::BackupEntry]) -> String {
    if entries.is_empty() {
        return "  (no backups)".to_string();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "  {}  data version {}  {}  {}",
                e.file_name,
                e.data_version().unwrap_or("none"),
                e.created()
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "-".into()),
                e.status.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn dbrestore(
    home: &Home,
    release: Option<&Path>,
    which: Which,
    options: &RestoreOptions,
    wait: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    if matches!(which, Which::Select) && !std::io::stdin().is_terminal() {
        bail!(
            "dbrestore --select needs a terminal to pick from; pass the FILE to restore, or --latest"
        );
    }
    let _lock = home.lock(wait)?;
    home.remove_stale_temporaries()?;
    let dir = home.backups_dir();
    let file = match which {
        Which::File(file) => file,
        Which::Latest(candidates) => {
            let release_version = release.map(Release::read_version).transpose()?;
            match backup::latest_restorable(&dir, release_version.as_ref(), candidates)? {
                Some(entry) => {
                    if release_version.is_none() && !quiet {
                        eprintln!(
                            "warning: no --release given, so the data version was not checked against the installed release"
                        );
                    }
                    entry.path
                }
                None => {
                    let entries = backup::list(&dir)?;
                    let wanted = match &release_version {
                        Some(v) => format!(
                            "with a data version the installed release {v} can run (<= {v})"
                        ),
                        None => "that verifies".to_string(),
                    };
                    bail!(
                        "no backup in {} {wanted}; what exists:\n{}",
                        dir.display(),
                        describe_entries(&entries)
                    );
                }
            }
        }
        Which::Select => {
            let entries = backup::list(&dir)?;
            let usable: Vec<_> = entries
                .iter()
                .filter(|e| !matches!(e.status, backup::BackupStatus::Corrupt(_)))
                .collect();
            if usable.is_empty() {
                bail!(
                    "no usable backup in {}:\n{}",
                    dir.display(),
                    describe_entries(&entries)
                );
            }
            for (i, e) in usable.iter().enumerate() {
                eprintln!(
                    "{:>3}) {}  data version {}  {}  {}  {}",
                    i + 1,
                    e.file_name,
                    e.data_version().unwrap_or("none"),
                    e.created()
                        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                        .unwrap_or_else(|| "-".into()),
                    human_size(e.size),
                    e.status.as_str()
                );
            }
            eprint!("restore which backup (1-{})? ", usable.len());
            std::io::stderr().flush().ok();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            let n: usize = answer
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=usable.len()).contains(n))
                .with_context(|| {
                    format!(
                        "{:?} is not a number from 1 to {}; nothing was restored",
                        answer.trim(),
                        usable.len()
                    )
                })?;
            usable[n - 1].path.clone()
        }
    };
    let mut bars = Bars::new(quiet);
    let report = backup::restore(home, &file, options, &mut bars)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if !quiet {
        if let Some(safety) = &report.safety_backup {
            eprintln!(
                "the previous database was backed up to {}",
                safety.path.display()
            );
        }
        eprintln!(
            "restored {} ({} rows) into {}; data version {}",
            report.source.display(),
            report.rows,
            report.database.display(),
            report.data_version.as_deref().unwrap_or("none")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct ListedBackup<'a> {
    file: &'a str,
    path: String,
    kind: Option<BackupKind>,
    data_version: Option<&'a str>,
    created: Option<String>,
    size: u64,
    status: &'static str,
    problem: Option<&'a str>,
}

fn backups_command(home: &Home, cmd: BackupsCommand) -> anyhow::Result<ExitCode> {
    let dir = home.backups_dir();
    match cmd {
        BackupsCommand::List { json } => {
            let entries = backup::list(&dir)?;
            if json {
                let listed: Vec<ListedBackup<'_>> = entries
                    .iter()
                    .map(|e| ListedBackup {
                        file: &e.file_name,
                        path: e.path.display().to_string(),
                        kind: e.kind(),
                        data_version: e.data_version(),
                        created: e.created().map(|t| t.to_string()),
                        size: e.size,
                        status: e.status.as_str(),
                        problem: match &e.status {
                            backup::BackupStatus::Corrupt(reason) => Some(reason),
                            _ => None,
                        },
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else if entries.is_empty() {
                eprintln!("no backups in {}", dir.display());
            } else {
                println!(
                    "{:<44} {:<12} {:<14} {:<20} {:>10}  status",
                    "name", "kind", "data version", "time (UTC)", "size"
                );
                for e in &entries {
                    println!(
                        "{:<44} {:<12} {:<14} {:<20} {:>10}  {}",
                        e.file_name,
                        e.kind().map(|k| k.as_str()).unwrap_or("-"),
                        e.data_version()
                            .unwrap_or(if e.header.is_some() { "none" } else { "-" }),
                        e.created()
                            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_else(|| "-".into()),
                        human_size(e.size),
                        e.status.as_str()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupsCommand::Prune { keep } => {
            let _lock = home.lock(false)?;
            let removed = backup::prune(
                &dir,
                keep,
                &[
                    BackupKind::Automatic,
                    BackupKind::Manual,
                    BackupKind::PreRestore,
                ],
                &[],
            )?;
            for path in &removed {
                println!("removed {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
            let mut bars = Bars::new(cli.quiet || json);
            let outcome =
                upgrade::upgrade(&home, &release, &options, reporter(&mut bars, cli.quiet))?;
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
            // The application runs holding the home's lock shared, for its
            // whole life: upgrades and restores refuse (or, with --wait,
            // wait) while it runs, and several applications started this
            // way share it. An upgrade needs the lock alone, so the shared
            // hold is taken only once the data is up to date: if another
            // uplift changes the data between the upgrade and the hold (a
            // restore), the loop upgrades again.
            for _ in 0..3 {
                let shared = home.lock_shared(wait)?;
                if upgrade::is_up_to_date(&home, &release)? {
                    shared.keep_across_exec()?;
                    return exec(&command);
                }
                drop(shared);
                let mut bars = Bars::new(cli.quiet);
                let outcome =
                    upgrade::upgrade(&home, &release, &options, reporter(&mut bars, cli.quiet))?;
                if !matches!(outcome, Outcome::UpToDate { .. }) {
                    out.outcome(&outcome);
                }
            }
            bail!(
                "the database in {} kept changing while uplift tried to start the application (another uplift restoring or upgrading it?); run again",
                home.root().display()
            )
        }
        Command::Status { json } => status_command(cli.home, cli.release.as_deref(), json),
        Command::Migrations(MigrationsCommand::List { json }) => {
            migrations_command(cli.home, cli.release.as_deref(), json)
        }
        Command::VerifyPaths { json, releases } => verify_paths_command(&out, json, &releases),
        Command::Dbbackup {
            dest,
            compress,
            wait,
        } => {
            let home = Home::resolve(cli.home)?;
            dbbackup(&home, dest, compress, wait, cli.quiet)
        }
        Command::Dbrestore {
            file,
            latest,
            include_safety_backups,
            select,
            quick_check,
            wait,
        } => {
            let home = Home::resolve(cli.home)?;
            let candidates = if include_safety_backups {
                backup::Candidates::IncludingPreRestore
            } else {
                backup::Candidates::Backups
            };
            let which = match (file, latest, select) {
                (Some(file), _, _) => Which::File(file),
                (None, true, _) => Which::Latest(candidates),
                _ => Which::Select,
            };
            let mut options = RestoreOptions::default();
            if quick_check {
                options.check = backup::IntegrityCheck::Quick;
            }
            dbrestore(
                &home,
                cli.release.as_deref(),
                which,
                &options,
                wait,
                cli.quiet,
            )
        }
        Command::Backups(cmd) => {
            let home = Home::resolve(cli.home)?;
            backups_command(&home, cmd)
        }
        Command::Version(cmd) => Ok(version_command(cmd).unwrap_or_else(|err| {
            eprintln!("error: {}", render_error(&err));
            ExitCode::from(EXIT_USAGE)
        })),
        Command::Hooks(cmd) => hooks_command(&out, cli.home, cli.release.as_deref(), cmd),
        Command::Plugin(cmd) => plugin_command(&out, cli.home, cli.release.as_deref(), cmd),
    }
}

fn hooks_command(
    out: &Output,
    home: Option<PathBuf>,
    release: Option<&std::path::Path>,
    cmd: HooksCommand,
) -> anyhow::Result<ExitCode> {
    use uplift::hooks::manifest;
    match cmd {
        HooksCommand::Inspect { file, json } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("could not read {}: {e}", file.display()))?;
            let manifest = manifest::read_manifest(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&manifest)?);
            } else {
                print!("{manifest}");
            }
            Ok(ExitCode::SUCCESS)
        }
        HooksCommand::Validate { json, files } => {
            // With a home, compiling gets its compile_seconds, as in the
            // upgrade; without one, the default.
            let home = Home::resolve(home).ok().filter(|h| h.root().is_dir());
            let compile_seconds = match &home {
                Some(home) => home.settings()?.hooks.compile_seconds,
                None => uplift::home::HookLimits::default().compile_seconds,
            };
            let validator = match uplift::hooks::validate::Validator::new(release) {
                Ok(v) => v.with_compile_seconds(compile_seconds),
                Err(err) => {
                    eprintln!("error: {err}");
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            };
            let reports: Vec<_> = files.iter().map(|f| validator.validate(f)).collect();
            if json {
                for report in &reports {
                    println!("{}", serde_json::to_string(report)?);
                }
            } else {
                for report in &reports {
                    let name = match (&report.plugin, &report.version) {
                        (Some(p), Some(v)) => format!(" (plugin {p} {v})"),
                        _ => String::new(),
                    };
                    if report.valid {
                        out.line(format_args!("ok   {}{name}", report.file.display()));
                    } else {
                        println!("FAIL {}{name}", report.file.display());
                        for error in &report.errors {
                            println!("     {error}");
                        }
                    }
                }
            }
            Ok(if reports.iter().all(|r| r.valid) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        HooksCommand::New { name, lang, dir } => {
            use uplift::hooks::scaffold::{self, Lang};
            let lang = match lang {
                LangArg::Rust => Lang::Rust,
                LangArg::Python => Lang::Python,
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let made = match scaffold::scaffold(&name, lang, &dir, &scaffold::repo_root()) {
                Ok(made) => made,
                Err(err) => {
                    eprintln!("error: {err}");
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            };
            out.line(format_args!(
                "created plugin {name} in {}:",
                made.dir.display()
            ));
            for file in &made.files {
                out.line(format_args!("  {}", file.display()));
            }
            out.line(format_args!(
                "build it with, in that folder:\n  {}",
                made.build
            ));
            Ok(ExitCode::SUCCESS)
        }
        HooksCommand::Test {
            plugin,
            db,
            from,
            to,
            hook,
            json,
        } => {
            // With a home, the hooks get its limits, as in the upgrade, and
            // its compile cache spares recompiling the plugin on every run.
            // Without one (no folder there), the default limits apply.
            let home = Home::resolve(home).ok().filter(|h| h.root().is_dir());
            let limits = match &home {
                Some(home) => home.settings()?.hooks,
                None => uplift::home::HookLimits::default(),
            };
            let cache = home.map(|h| h.cache_dir());
            let versions = (from.as_str(), to.as_deref());
            hooks_test(
                out,
                release,
                (limits, cache),
                plugin,
                db,
                versions,
                hook,
                json,
            )
        }
        HooksCommand::EmbedManifest {
            manifest: toml_path,
            input,
            output,
        } => {
            let text = std::fs::read_to_string(&toml_path)
                .map_err(|e| anyhow::anyhow!("could not read {}: {e}", toml_path.display()))?;
            let parsed = manifest::HookManifest::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", toml_path.display()))?;
            let bytes = std::fs::read(&input)
                .map_err(|e| anyhow::anyhow!("could not read {}: {e}", input.display()))?;
            let embedded = manifest::embed_manifest(&bytes, &parsed)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            std::fs::write(&output, embedded)
                .map_err(|e| anyhow::anyhow!("could not write {}: {e}", output.display()))?;
            out.line(format_args!(
                "wrote {} with the manifest of plugin {} {}",
                output.display(),
                parsed.name,
                parsed.version
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `uplift hooks test`.
#[allow(clippy::too_many_arguments)]
fn hooks_test(
    out: &Output,
    release: Option<&Path>,
    (limits, cache): (uplift::home::HookLimits, Option<PathBuf>),
    plugin: PathBuf,
    db: PathBuf,
    (from, to): (&str, Option<&str>),
    hook: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use uplift::hook_test::{self, TrialError, TrialOptions};
    let usage = |message: String| {
        eprintln!("error: {message}");
        Ok(ExitCode::from(EXIT_USAGE))
    };
    let release = match release.map(Release::load).transpose() {
        Ok(release) => release,
        Err(e) => return usage(e.to_string()),
    };
    let from = match Version::parse(from) {
        Ok(v) => v,
        Err(e) => return usage(format!("--from {from}: {e}")),
    };
    let to = match (to, &release) {
        (Some(to), _) => match Version::parse(to) {
            Ok(v) => v,
            Err(e) => return usage(format!("--to {to}: {e}")),
        },
        (None, Some(release)) => release.version.clone(),
        (None, None) => {
            return usage(
                "give the release version upgraded to with --to V, or the release with --release DIR"
                    .to_string(),
            );
        }
    };
    let app = release
        .as_ref()
        .map_or_else(|| "test".to_string(), |r| r.app.clone());
    let opts = TrialOptions {
        plugin,
        db,
        from,
        to,
        hook,
        app,
        limits,
        release,
        cache,
    };
    let quiet_log = json || out.quiet;
    let log = std::sync::Arc::new(move |line: &uplift::hooks::LogLine| {
        if !quiet_log {
            println!("  {line}");
        }
    });
    // Printed as they are applied, before any hook's log: the order they
    // happen in.
    let migrated = |run: &uplift::upgrade::MigrationRun| {
        if !json {
            println!("migrated the copy first: {} ({:.0} ms)", run.file, run.ms);
        }
    };
    let report = match hook_test::run_trial(&opts, log, &migrated) {
        Ok(report) => report,
        // The upgrade would fail the same way: not a usage error.
        Err(err @ TrialError::Migrations { .. }) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        Err(err) => return usage(err.to_string()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_trial(&opts, &report);
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// `uplift hooks test`'s report as text (the migrations were printed as
/// they were applied, the hooks' log lines as they were written).
fn print_trial(opts: &uplift::hook_test::TrialOptions, report: &uplift::hook_test::TrialReport) {
    use uplift::hook_test;
    if let Some(release) = &opts.release
        && report.migrations.is_empty()
    {
        println!(
            "no migration of release {} was pending: the copy kept its schema",
            release.version
        );
    }
    if report.hooks.is_empty() {
        println!(
            "no hook of plugin {} {} matches an upgrade from {} to {}",
            report.plugin, report.plugin_version, report.from, report.to
        );
    } else {
        for h in &report.hooks {
            if h.ok {
                println!("ok   {}/{} ({} ms)", report.plugin, h.hook, h.ms);
            } else {
                println!("FAIL {}/{} ({} ms)", report.plugin, h.hook, h.ms);
                for line in h.error.as_deref().unwrap_or("").lines() {
                    println!("     {line}");
                }
            }
            if h.ok {
                // A failed hook's error already lists them.
                for r in &h.refused {
                    println!("     the sandbox refused (the hook went on): {r}");
                }
            }
            if h.ok && h.changes.is_empty() {
                println!("     no rows changed");
            }
            for t in &h.changes {
                println!(
                    "     {}: {} inserted, {} updated, {} deleted",
                    uplift::hooks::escape_untrusted(&t.table),
                    t.inserted,
                    t.updated,
                    t.deleted
                );
                for example in &t.examples {
                    println!("       {}", hook_test::describe_change(example));
                }
            }
        }
        println!("(a copy of {} was used and discarded)", opts.db.display());
    }
    if !report.foreign_key_violations.is_empty() {
        println!("FAIL foreign keys: the upgrade would be rolled back, these rows break them:");
        for v in &report.foreign_key_violations {
            println!("     {v}");
        }
    }
}

fn plugin_command(
    out: &Output,
    home: Option<PathBuf>,
    release: Option<&std::path::Path>,
    cmd: PluginCommand,
) -> anyhow::Result<ExitCode> {
    use uplift::hooks::{PluginOrigin, PluginSet};
    let home = Home::resolve(home)?;
    // Without a release, only the home's plugins are known.
    let (plugins_dir, core) = match release {
        Some(dir) => {
            let release = Release::load(dir)?;
            (release.plugins_dir(), release.core_plugins)
        }
        None => (home.root().join(".no-release"), Vec::new()),
    };
    let set = PluginSet::discover(&plugins_dir, &core, &home)?;
    match cmd {
        PluginCommand::List { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(set.plugins())?);
                return Ok(ExitCode::SUCCESS);
            }
            if set.plugins().is_empty() {
                out.line("no plugins found");
            }
            for p in set.plugins() {
                let status = if p.core {
                    "core (always active)"
                } else if p.active {
                    "enabled"
                } else {
                    "disabled"
                };
                let origin = match p.origin {
                    PluginOrigin::Release => "release",
                    PluginOrigin::Home => "home",
                };
                println!(
                    "{} {}  {status}  {} hook(s)  [{origin}] {}",
                    p.manifest.name,
                    p.manifest.version,
                    p.manifest.hooks.len(),
                    p.path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Enable { name } => {
            set.enable(&home, &name)?;
            out.line(format_args!("plugin {name} is active"));
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Disable { name } => {
            set.disable(&home, &name)?;
            out.line(format_args!("plugin {name} is disabled"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify_paths_command(
    out: &Output,
    json: bool,
    releases: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let reports = uplift::paths::verify_paths(releases, &mut |report| {
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

/// Where an upgrade reports: progress bars, and hooks' log lines on stderr
/// (with --quiet, only warnings and errors).
fn reporter(bars: &mut Bars, quiet: bool) -> upgrade::Reporter<'_> {
    upgrade::Reporter {
        progress: bars,
        log: std::sync::Arc::new(move |line: &uplift::hooks::LogLine| {
            if !quiet || line.level >= uplift::hooks::LogLevel::Warn {
                eprintln!("{line}");
            }
        }),
    }
}

/// Warnings go to stderr even with --quiet: each says something an
/// operator must know.
fn warn_all(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
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
                warnings,
                ..
            } => {
                self.line(format_args!(
                    "installed {} with {} migrations",
                    plan.to,
                    migrations.len()
                ));
                self.phases(phases);
                warn_all(warnings);
            }
            Outcome::Upgraded {
                plan,
                backup,
                pruned,
                migrations,
                hooks,
                phases,
                warnings,
                ..
            } => {
                warn_all(warnings);
                let from = plan
                    .from
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                self.line(format_args!("upgraded {from} -> {}", plan.to));
                self.line(format_args!("  backup     {}", backup.display()));
                for path in pruned {
                    self.line(format_args!("  pruned     {}", path.display()));
                }
                for m in migrations {
                    self.line(format_args!("  migration  {} ({:.1} ms)", m.file, m.ms));
                }
                for h in hooks {
                    self.line(format_args!(
                        "  hook       {}/{} ({:.1} ms)",
                        h.plugin, h.hook, h.ms
                    ));
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
        for h in &plan.hooks {
            self.line(format_args!(
                "  hook       {}/{}  (old_version {:?}, new_version {:?})",
                h.plugin, h.hook, h.old_version, h.new_version
            ));
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
    if !status.hooks.is_empty() {
        println!("hooks to run     {}", status.hooks.len());
        for h in &status.hooks {
            println!("  hook           {}/{}", h.plugin, h.hook);
        }
    }
    println!("plugins          {}", status.plugins.len());
    for p in &status.plugins {
        let state = match (p.core, p.active) {
            (true, _) => "core",
            (false, true) => "enabled",
            (false, false) => "disabled",
        };
        println!("  {:<14} {} ({state})", p.name, p.version);
    }
    if status.backups.is_empty() {
        println!("backups          none yet");
    } else {
        println!("latest backups");
    }
    for b in &status.backups {
        println!(
            "  {}  ({}, data version {})",
            b.file,
            b.kind.as_deref().unwrap_or("?"),
            b.data_version.as_deref().unwrap_or("none")
        );
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

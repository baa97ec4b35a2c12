//! The `uplift` command line. This is the only module that knows about the
//! terminal: argument parsing, output formats, progress bars and exit codes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::backup::{self, BackupKind, BackupOptions, Progress, ProgressUnit, RestoreOptions};
use crate::home::Home;
use crate::version::{Version, VersionRange};

/// Exit code for a usage error or invalid input.
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
        /// installed release (--release) can run
        #[arg(long)]
        latest: bool,
        /// Pick the backup from a numbered list (needs a terminal)
        #[arg(long)]
        select: bool,
        /// Check the restored database with PRAGMA quick_check instead of
        /// the full integrity_check (much faster on large databases; skips
        /// re-comparing the indexes it just built with their tables)
        #[arg(long)]
        quick_check: bool,
        /// Wait for another uplift working on this home instead of failing
        #[arg(long)]
        wait: bool,
    },
    /// List or prune the home's backups
    #[command(subcommand)]
    Backups(BackupsCommand),
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
    /// pre-restore); files that do not verify are never removed
    Prune {
        /// How many of each kind to keep
        #[arg(long, value_name = "N")]
        keep: usize,
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
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version(cmd) => version_command(cmd),
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
            select,
            quick_check,
            wait,
        } => {
            let home = Home::resolve(cli.home)?;
            let which = match (file, latest, select) {
                (Some(file), _, _) => Which::File(file),
                (None, true, _) => Which::Latest,
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
    }
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
    let _lock = home.lock(wait)?;
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
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
    Latest,
    Select,
}

/// The installed release's version, from `<release>/release.toml`.
// TODO(release.rs): replace by crate::release::Release::load(dir)?.version once it is on main.
fn release_version(dir: &Path) -> anyhow::Result<Version> {
    let path = dir.join("release.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let value: toml::Table =
        toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
    let version = value
        .get("version")
        .and_then(|v| v.as_str())
        .with_context(|| format!("{} has no version = \"...\"", path.display()))?;
    Ok(Version::parse(version)?)
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
    let dir = home.backups_dir();
    let file = match which {
        Which::File(file) => file,
        Which::Latest => {
            let release_version = release.map(release_version).transpose()?;
            match backup::latest_restorable(&dir, release_version.as_ref())? {
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
            )?;
            for path in &removed {
                println!("removed {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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

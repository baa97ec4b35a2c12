//! `uplift dbbackup`, `uplift dbrestore` and `uplift backups`: the home's
//! backups, made, restored, listed and pruned.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use uplift::backup::{
    self, BackupEntry, BackupKind, BackupOptions, BackupStatus, Candidates, IntegrityCheck,
    RestoreOptions,
};
use uplift::home::Home;
use uplift::release::Release;
use uplift::upgrade;

use super::Globals;
use super::failure::{CommandError, Outcome};
use super::output::{Bars, human_size, outln, print_json};

#[derive(Debug, clap::Args)]
pub(super) struct BackupArgs {
    /// Where to write the dump [default: <home>/backups]
    #[arg(long, value_name = "DIR")]
    dest: Option<PathBuf>,
    /// Compress the dump with zstd (.dump.zst)
    #[arg(long)]
    compress: bool,
    /// Wait for another uplift working on this home instead of failing
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct RestoreArgs {
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
    /// hold exactly their tables' rows: faster, and less thorough)
    #[arg(long)]
    quick_check: bool,
    /// Wait for another uplift working on this home instead of failing
    #[arg(long)]
    wait: bool,
    /// In a home of several databases (the release's [databases]): restore
    /// the main database alone, leaving the others as they are (at another
    /// moment than the dump's)
    #[arg(long)]
    main_alone: bool,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum BackupsCommand {
    /// List backups, oldest first by recorded time: name, kind, data
    /// version, time, size, and whether the checksum verifies
    List,
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

/// `uplift dbbackup`: prints the dump's path (even with --quiet: it is the
/// result).
pub(super) fn dbbackup(globals: &Globals, args: BackupArgs) -> Outcome {
    let home = globals.home()?;
    let db = home.db_path();
    if home.settings()?.database.is_none() && !db.exists() {
        return Err(CommandError::NoDatabase(db).into());
    }
    // Shared: a backup may run beside the application (it reads one
    // snapshot), but not during an upgrade or a restore.
    let _lock = home.lock_shared(args.wait)?;
    let dir = args.dest.unwrap_or_else(|| home.backups_dir());
    let mut options = BackupOptions::new(BackupKind::Manual);
    options.compress = args.compress;
    let mut bars = Bars::new(globals.quiet);
    let file = upgrade::back_up_home(&home, &dir, &options, &mut bars)?;
    if globals.json {
        print_json(&serde_json::json!({
            "outcome": "backed_up",
            "path": file.path,
            "rows": file.rows,
            "size": file.size,
            "data_version": file.header.data_version,
            "compressed": options.compress,
        }));
        return Ok(());
    }
    if !globals.quiet {
        eprintln!(
            "backed up {} rows ({}) of data version {}",
            file.rows,
            human_size(file.size),
            file.header.data_version.as_deref().unwrap_or("none")
        );
    }
    outln!("{}", file.path.display());
    Ok(())
}

/// Which dump `dbrestore` restores.
enum Which {
    File(PathBuf),
    Latest(Candidates),
    Select,
}

/// `uplift dbrestore`.
pub(super) fn dbrestore(globals: &Globals, args: RestoreArgs) -> Outcome {
    let home = globals.home()?;
    let candidates = if args.include_safety_backups {
        Candidates::IncludingPreRestore
    } else {
        Candidates::Backups
    };
    let which = match (args.file, args.latest) {
        (Some(file), _) => Which::File(file),
        (None, true) => Which::Latest(candidates),
        (None, false) => Which::Select,
    };
    if let Some(release) = globals.release.as_deref().map(Release::load).transpose()?
        && release.has_several_databases()
        && !args.main_alone
    {
        let others: Vec<&str> = release.databases[1..]
            .iter()
            .map(|d| d.file.as_str())
            .collect();
        return Err(CommandError::MainAlone {
            version: release.version.to_string(),
            main: home.db_path(),
            others: others.join(", "),
        }
        .into());
    }
    let mut options = RestoreOptions::default();
    if args.quick_check {
        options.check = IntegrityCheck::Quick;
    }
    if matches!(which, Which::Select) && !std::io::stdin().is_terminal() {
        return Err(CommandError::NoTerminal.into());
    }
    let _lock = home.lock(args.wait)?;
    home.remove_stale_temporaries()?;
    let dir = home.backups_dir();
    let file = match which {
        Which::File(file) => file,
        Which::Latest(candidates) => {
            latest(&dir, globals.release.as_deref(), candidates, globals.quiet)?
        }
        Which::Select => select(&dir)?,
    };
    let mut bars = Bars::new(globals.quiet);
    let report = upgrade::restore_home(&home, &file, &options, &mut bars)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if globals.json {
        print_json(&serde_json::json!({
            "outcome": "restored",
            "source": report.source,
            "database": report.database,
            "rows": report.rows,
            "data_version": report.data_version,
            "safety_backup": report.safety_backup.as_ref().map(|b| &b.path),
            "warnings": report.warnings,
        }));
        return Ok(());
    }
    if !globals.quiet {
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
    Ok(())
}

/// `dbrestore --latest`: the newest backup in `dir` the release in
/// `release` can run (any that verifies without one).
fn latest(
    dir: &Path,
    release: Option<&Path>,
    candidates: Candidates,
    quiet: bool,
) -> anyhow::Result<PathBuf> {
    let release_version = release.map(Release::read_version).transpose()?;
    if let Some(entry) = backup::latest_restorable(dir, release_version.as_ref(), candidates)? {
        if release_version.is_none() && !quiet {
            eprintln!(
                "warning: no --release given, so the data version was not checked against the installed release"
            );
        }
        return Ok(entry.path);
    }
    let entries = backup::list(dir)?;
    let wanted = match &release_version {
        Some(v) => format!("with a data version the installed release {v} can run (<= {v})"),
        None => "that verifies".to_string(),
    };
    Err(CommandError::NoBackup {
        dir: dir.to_path_buf(),
        wanted,
        listing: describe_entries(&entries),
    }
    .into())
}

/// `dbrestore --select`: asks on the terminal which backup of `dir` to
/// restore.
fn select(dir: &Path) -> anyhow::Result<PathBuf> {
    let entries = backup::list(dir)?;
    let usable: Vec<_> = entries
        .iter()
        .filter(|e| !matches!(e.status, BackupStatus::Corrupt(_)))
        .collect();
    if usable.is_empty() {
        return Err(CommandError::NoUsableBackup {
            dir: dir.to_path_buf(),
            listing: describe_entries(&entries),
        }
        .into());
    }
    for (i, e) in usable.iter().enumerate() {
        eprintln!(
            "{:>3}) {}  data version {}  {}  {}  {}",
            i + 1,
            e.file_name,
            e.data_version().unwrap_or("none"),
            created(e),
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
        .ok_or_else(|| CommandError::BadChoice {
            answer: answer.trim().to_string(),
            count: usable.len(),
        })?;
    Ok(usable[n - 1].path.clone())
}

/// A backup's recorded time in UTC, or `-`.
fn created(entry: &BackupEntry) -> String {
    entry
        .created()
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn describe_entries(entries: &[BackupEntry]) -> String {
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
                created(e),
                e.status.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One backup in `uplift backups list --json`.
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

/// `uplift backups list` and `uplift backups prune`.
pub(super) fn backups(globals: &Globals, cmd: BackupsCommand) -> Outcome {
    let home = globals.home()?;
    match cmd {
        BackupsCommand::List => list(&home, globals.json),
        BackupsCommand::Prune { keep } => prune(&home, keep, globals.json),
    }
}

fn list(home: &Home, json: bool) -> Outcome {
    let dir = home.backups_dir();
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
                    BackupStatus::Corrupt(reason) => Some(reason),
                    _ => None,
                },
            })
            .collect();
        print_json(&listed);
    } else if entries.is_empty() {
        eprintln!("no backups in {}", dir.display());
    } else {
        outln!(
            "{:<44} {:<12} {:<14} {:<20} {:>10}  status",
            "name",
            "kind",
            "data version",
            "time (UTC)",
            "size"
        );
        for e in &entries {
            outln!(
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
    Ok(())
}

fn prune(home: &Home, keep: usize, json: bool) -> Outcome {
    let _lock = home.lock(false)?;
    let removed = backup::prune(
        &home.backups_dir(),
        keep,
        &[
            BackupKind::Automatic,
            BackupKind::Manual,
            BackupKind::PreRestore,
        ],
        &[],
    )?;
    if json {
        print_json(&serde_json::json!({ "outcome": "pruned", "removed": removed }));
        return Ok(());
    }
    for path in &removed {
        outln!("removed {}", path.display());
    }
    Ok(())
}

//! Power loss, not just a killed process: the file-system operations of
//! `uplift upgrade` (with the example application's plugin hooks), `uplift
//! dbbackup` and `uplift dbrestore --latest` are recorded by the fault shim,
//! and every state a power cut could leave at each point of each (under
//! the model described in [`crate::faults`]) is checked:
//!
//! - the database is the old version or the new one, and `PRAGMA
//!   integrity_check` says ok; once the command has reported success, it is
//!   the new one (what it reported is durable);
//! - every backup file (`*.dump`, `*.dump.zst`) is complete and verifies,
//!   or is absent; a backup the command reported is there;
//! - rerunning `uplift upgrade` finishes (the new version, intact), and
//!   `uplift dbrestore --latest` then finds a complete backup and restores
//!   it.
//!
//! The normal test run checks a reduced, evenly spread and deterministic
//! sample of each operation's states; `bench/power-loss` checks them all
//! (`UPLIFT_FAULTS_FULL=1`) and prints the figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::faults::{self, Run, Snapshot};
use crate::support::{example_release, run, stderr, stdout, uplift};

/// How many crash states of each operation the normal test run checks.
const REDUCED_BUDGET: usize = 40;

/// How many states to check: all of them with `UPLIFT_FAULTS_FULL=1`.
pub(crate) fn budget(reduced: usize) -> usize {
    if std::env::var_os("UPLIFT_FAULTS_FULL").is_some_and(|v| v == "1") {
        usize::MAX
    } else {
        reduced
    }
}

/// The homes the fault tests start from, built once per test run: the
/// example application at 0.6.4 with its fixtures and a manual backup
/// (`old`), the same without any backup yet (`first`: its first upgrade
/// creates the backups folder), the same in WAL mode (`wal`: the application
/// switched its database to it), the same upgraded to 1.0.0 (`new`, holding
/// the upgrade's automatic backup too), and the plugins' compile cache, shared by every
/// home through a symbolic link (a cold compile of the Python plugin takes
/// half a minute in a debug build).
pub(crate) struct Homes {
    _scratch: tempfile::TempDir,
    pub old: PathBuf,
    pub first: PathBuf,
    pub wal: PathBuf,
    pub new: PathBuf,
    pub cache: PathBuf,
    /// Fingerprints of the database in `old` and in `new`.
    pub old_db: String,
    pub new_db: String,
}

pub(crate) fn homes() -> &'static Homes {
    static HOMES: OnceLock<Homes> = OnceLock::new();
    HOMES.get_or_init(|| {
        let scratch = tempfile::tempdir().unwrap();
        let old = scratch.path().join("old");
        crate::support::install_example(&old, "0.6.4");
        let out = run(&["--home", old.to_str().unwrap(), "dbbackup"]);
        assert!(out.status.success(), "{}", stderr(&out));

        // Fresh installs compile nothing; whatever cache folder there is
        // gives way to the shared one.
        let _ = std::fs::remove_dir_all(old.join("cache"));
        let first = scratch.path().join("first");
        crate::crash::copy_dir(&old, &first);
        std::fs::remove_dir_all(first.join("backups")).unwrap();
        let wal = scratch.path().join("wal");
        crate::crash::copy_dir(&old, &wal);
        let mode: String = rusqlite::Connection::open(wal.join("db.sqlite3"))
            .unwrap()
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let new = scratch.path().join("new");
        crate::crash::copy_dir(&old, &new);
        let out = run(&[
            "--home",
            new.to_str().unwrap(),
            "--release",
            example_release("1.0.0").to_str().unwrap(),
            "upgrade",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let cache = scratch.path().join("cache");
        std::fs::rename(new.join("cache"), &cache).unwrap();
        Homes {
            old_db: db_fingerprint(&old.join("db.sqlite3")).unwrap(),
            new_db: db_fingerprint(&new.join("db.sqlite3")).unwrap(),
            _scratch: scratch,
            old,
            first,
            wal,
            new,
            cache,
        }
    })
}

impl Homes {
    /// A copy of `template` at `to`, sharing the compile cache.
    pub(crate) fn copy(&self, template: &Path, to: &Path) {
        crate::crash::copy_dir(template, to);
        self.link_cache(to);
    }

    pub(crate) fn link_cache(&self, home: &Path) {
        std::os::unix::fs::symlink(&self.cache, home.join("cache")).unwrap();
    }
}

/// The database's data version and application tables, row by row (uplift's
/// own tables hold times, which differ from run to run), after SQLite has
/// rolled back a hot journal if there is one; an error if it is not intact.
pub(crate) fn db_fingerprint(db: &Path) -> Result<String, String> {
    if !db.is_file() {
        return Err(format!("{} is missing", db.display()));
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| format!("cannot open the database: {e}"))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("integrity_check failed: {e}"))?;
    if integrity != "ok" {
        return Err(format!("integrity_check: {integrity}"));
    }
    let version = uplift::internals::meta::data_version(&conn)
        .map_err(|e| format!("cannot read the data version: {e}"))?
        .map_or("none".to_string(), |v| v.to_string());
    let mut out = format!("data version {version}\n");
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table'
             AND name NOT LIKE 'uplift\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| format!("cannot read the schema: {e}"))?;
    for table in tables {
        out.push_str(&format!("{table}:\n"));
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1, 2"))
            .map_err(|e| format!("cannot read {table}: {e}"))?;
        let n = stmt.column_count();
        let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
        while let Some(row) = rows.next().map_err(|e| format!("reading {table}: {e}"))? {
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i).map_err(|e| e.to_string())?;
                out.push_str(&format!("{v:?}|"));
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// Every backup file in `home` is complete and verifies (a file that does
/// not is named in the error).
pub(crate) fn backups_complete(home: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(home.join("backups"))
        .into_iter()
        .flatten()
    {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".dump") || name.ends_with(".dump.zst") {
            match uplift::backup::verify(&path) {
                Ok(v) if v.is_verified() => {}
                other => {
                    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                    return Err(format!(
                        "backup {name} ({size} bytes) does not verify: {other:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The operations under test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Operation {
    Upgrade,
    /// The first upgrade of a home: no backups folder yet.
    FirstUpgrade,
    /// The upgrade of a database in WAL mode.
    WalUpgrade,
    Dbbackup,
    /// The first backup of a home: no backups folder yet.
    FirstDbbackup,
    DbrestoreLatest,
}

impl Operation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Upgrade => "upgrade",
            Operation::FirstUpgrade => "first upgrade",
            Operation::WalUpgrade => "upgrade in WAL mode",
            Operation::Dbbackup => "dbbackup",
            Operation::FirstDbbackup => "first dbbackup",
            Operation::DbrestoreLatest => "dbrestore --latest",
        }
    }

    /// The home it starts from.
    pub(crate) fn template(self) -> &'static Path {
        match self {
            Operation::Upgrade | Operation::Dbbackup => &homes().old,
            Operation::FirstUpgrade | Operation::FirstDbbackup => &homes().first,
            Operation::WalUpgrade => &homes().wal,
            Operation::DbrestoreLatest => &homes().new,
        }
    }

    /// The database it starts from and the one it makes.
    pub(crate) fn before_after(self) -> (&'static str, &'static str) {
        let h = homes();
        match self {
            Operation::Upgrade | Operation::FirstUpgrade | Operation::WalUpgrade => {
                (&h.old_db, &h.new_db)
            }
            Operation::Dbbackup | Operation::FirstDbbackup => (&h.old_db, &h.old_db),
            // The newest backup the new home holds is the upgrade's own, of
            // the old version.
            Operation::DbrestoreLatest => (&h.new_db, &h.old_db),
        }
    }

    /// The command, on `home`.
    pub(crate) fn command(self, home: &Path) -> Command {
        let mut cmd = uplift();
        cmd.args(["--home", home.to_str().unwrap()]);
        cmd.args(["--release", example_release("1.0.0").to_str().unwrap()]);
        match self {
            Operation::Upgrade | Operation::FirstUpgrade | Operation::WalUpgrade => {
                cmd.arg("upgrade")
            }
            Operation::Dbbackup | Operation::FirstDbbackup => cmd.arg("dbbackup"),
            Operation::DbrestoreLatest => cmd.args(["dbrestore", "--latest"]),
        };
        cmd
    }

    /// What it prints on standard output once it has done its work.
    pub(crate) fn success_line(self) -> &'static str {
        match self {
            Operation::Upgrade | Operation::FirstUpgrade | Operation::WalUpgrade => "upgraded ",
            Operation::Dbbackup | Operation::FirstDbbackup => ".dump",
            Operation::DbrestoreLatest => "restored ",
        }
    }
}

/// The checks every state left by a fault must pass, whatever the fault:
/// the database old or new and intact (`new` only, when `reported`); every
/// backup complete; a backup the operation reported (`reported_backup`)
/// present; a rerun of the upgrade finishes; `dbrestore --latest` then
/// restores a complete backup.
pub(crate) fn check_home(
    op: Operation,
    home: &Path,
    reported: bool,
    reported_backup: Option<&Path>,
) -> Result<(), String> {
    let h = homes();
    let (before, after) = op.before_after();
    let fp = db_fingerprint(&home.join("db.sqlite3"))?;
    if reported && fp != after {
        return Err(format!(
            "{} reported success, but the database is {}",
            op.name(),
            if fp == before {
                "the old one"
            } else {
                "neither old nor new"
            }
        ));
    }
    if fp != before && fp != after {
        return Err(format!(
            "the database is neither the old one nor the new one ({})",
            fp.lines().next().unwrap_or_default()
        ));
    }
    backups_complete(home)?;
    if let Some(backup) = reported_backup
        && !backup.is_file()
    {
        return Err(format!(
            "{} reported backup {}, which is gone",
            op.name(),
            backup.display()
        ));
    }

    let out = run_on(home, &["upgrade"]);
    if !out.status.success() {
        return Err(format!(
            "a rerun of upgrade failed: {}",
            stderr(&out).trim()
        ));
    }
    match db_fingerprint(&home.join("db.sqlite3")) {
        Ok(fp) if fp == h.new_db => {}
        Ok(fp) => {
            return Err(format!(
                "a rerun of upgrade left another database ({})",
                fp.lines().next().unwrap_or_default()
            ));
        }
        Err(e) => return Err(format!("after a rerun of upgrade: {e}")),
    }
    let out = run_on(home, &["dbrestore", "--latest"]);
    if !out.status.success() {
        return Err(format!(
            "dbrestore --latest failed after the rerun: {}",
            stderr(&out).trim()
        ));
    }
    match db_fingerprint(&home.join("db.sqlite3")) {
        // The newest backup holds the old version, or the new one when
        // `--latest` took a safety backup.
        Ok(fp) if fp == h.old_db || fp == h.new_db => Ok(()),
        Ok(fp) => Err(format!(
            "dbrestore --latest restored another database ({})",
            fp.lines().next().unwrap_or_default()
        )),
        Err(e) => Err(format!("after dbrestore --latest: {e}")),
    }
}

fn run_on(home: &Path, args: &[&str]) -> std::process::Output {
    let release = example_release("1.0.0");
    let mut full = vec![
        "--home",
        home.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
    ];
    full.extend_from_slice(args);
    run(&full)
}

/// Records `op` on a fresh copy of its home under `scratch`.
fn record(op: Operation, scratch: &Path) -> (Run, String) {
    let home = scratch.join("recorded");
    homes().copy(op.template(), &home);
    let initial = Snapshot::take(&home, &["cache"]);
    let log = scratch.join("ops.log");
    let out = faults::with_shim(&mut op.command(&home), &home, &log, None)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} under the shim failed: {}",
        op.name(),
        stderr(&out)
    );
    let ops = faults::read_log(&log, &home);
    (Run::new(initial, ops, &["cache"]), stdout(&out))
}

/// What checking an operation's crash states found.
pub(crate) struct Tally {
    pub ops: usize,
    pub states: usize,
    pub bad: Vec<String>,
}

impl Tally {
    pub(crate) fn summary(&self, what: &str) -> String {
        format!(
            "{what}: {} ops recorded, {} crash states checked, {} bad",
            self.ops,
            self.states,
            self.bad.len()
        )
    }
}

/// Records `op`, builds its crash states (at most `budget`) and checks each.
pub(crate) fn power_cuts(op: Operation, budget: usize) -> (Tally, Run) {
    let scratch = tempfile::tempdir().unwrap();
    let (run, out) = record(op, scratch.path());
    let reported_at = run
        .reported_at(op.success_line())
        .unwrap_or_else(|| panic!("{} printed no {:?}: {out}", op.name(), op.success_line()));
    let reported_backup = matches!(op, Operation::Dbbackup | Operation::FirstDbbackup).then(|| {
        let line = out.lines().find(|l| l.ends_with(".dump")).unwrap();
        // The backup as it is named in each crash state's own home.
        PathBuf::from(line)
            .file_name()
            .map(|n| PathBuf::from("backups").join(n))
            .unwrap()
    });
    let states = faults::crash_states(&run, budget, Some(reported_at));
    let mut bad = Vec::new();
    for (n, (crash, state)) in states.iter().enumerate() {
        let home = scratch.path().join(format!("state-{n}"));
        state.write_to(&home);
        homes().link_cache(&home);
        let reported = crash.at > reported_at;
        let backup = reported_backup
            .as_ref()
            .filter(|_| reported)
            .map(|b| home.join(b));
        if let Err(problem) = check_home(op, &home, reported, backup.as_deref()) {
            bad.push(format!("{}: {problem}", run.describe(crash)));
        }
        std::fs::remove_dir_all(&home).unwrap();
    }
    (
        Tally {
            ops: run.ops.len(),
            states: states.len(),
            bad,
        },
        run,
    )
}

/// Fails with every bad state, and the recording they refer to.
fn assert_no_bad_state(op: Operation, tally: &Tally, run: &Run) {
    let summary = tally.summary(&format!("power loss during {}", op.name()));
    eprintln!("{summary}");
    if std::env::var_os("UPLIFT_FAULTS_LISTING").is_some() {
        eprintln!("the recorded operations:\n{}", run.listing());
    }
    assert!(
        tally.bad.is_empty(),
        "{summary}:\n{}\nthe recorded operations:\n{}",
        tally.bad.join("\n"),
        run.listing()
    );
}

#[test]
fn power_loss_during_an_upgrade_leaves_old_or_new_and_a_rerun_finishes() {
    let op = Operation::Upgrade;
    let (tally, run) = power_cuts(op, budget(REDUCED_BUDGET));
    assert_no_bad_state(op, &tally, &run);
}

/// The first upgrade creates the backups folder: the backup it made must
/// survive with the upgrade it protects.
#[test]
fn power_loss_during_a_first_upgrade_keeps_its_backup() {
    let op = Operation::FirstUpgrade;
    let (tally, run) = power_cuts(op, budget(REDUCED_BUDGET));
    assert_no_bad_state(op, &tally, &run);
}

#[test]
fn power_loss_during_a_backup_leaves_complete_backups_only() {
    let op = Operation::Dbbackup;
    let (tally, run) = power_cuts(op, budget(REDUCED_BUDGET));
    assert_no_bad_state(op, &tally, &run);
}

/// In WAL mode a commit is durable once the log is synced; the log,
/// its index and the checkpoint must never leave the database between the
/// old version and the new.
#[test]
fn power_loss_during_an_upgrade_in_wal_mode_leaves_old_or_new() {
    let op = Operation::WalUpgrade;
    let (tally, run) = power_cuts(op, budget(REDUCED_BUDGET));
    assert_no_bad_state(op, &tally, &run);
}

/// The first backup creates the backups folder: once reported, the backup
/// must survive.
#[test]
fn power_loss_during_a_first_backup_keeps_the_reported_backup() {
    let op = Operation::FirstDbbackup;
    let (tally, run) = power_cuts(op, budget(REDUCED_BUDGET));
    assert_no_bad_state(op, &tally, &run);
}

#[test]
fn power_loss_during_a_restore_leaves_old_or_restored() {
    let op = Operation::DbrestoreLatest;
    let (tally, run) = power_cuts(op, budget(REDUCED_BUDGET));
    assert_no_bad_state(op, &tally, &run);
}

/// The harness finds what it is meant to find: a writer that renames its
/// new file into place before syncing it leaves, in some crash state, the
/// new name on a file whose data never reached the disk; the same writer
/// syncing first leaves the old contents or the new ones in every state.
#[test]
fn the_power_loss_harness_catches_a_rename_before_a_sync() {
    let check = |dir: &Path, reported: bool| -> Result<(), String> {
        let data = std::fs::read(dir.join("data")).map_err(|e| format!("data: {e}"))?;
        let old = data == b"old contents\n";
        let new = data.len() == 4096 && data.iter().all(|&b| b == b'n');
        match (old, new, reported) {
            (_, true, _) | (true, _, false) => Ok(()),
            (true, _, true) => Err("reported done, but the old contents are back".into()),
            _ => Err(format!(
                "data holds {} bytes, neither old nor new",
                data.len()
            )),
        }
    };
    let mut bad_states = Vec::new();
    for mode in ["safe", "unsafe"] {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("recorded");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("data"), "old contents\n").unwrap();
        let initial = Snapshot::take(&dir, &[]);
        let log = scratch.path().join("ops.log");
        let mut cmd = Command::new(faults::writer());
        cmd.arg(mode).arg(&dir);
        let out = faults::with_shim(&mut cmd, &dir, &log, None)
            .output()
            .unwrap();
        assert!(out.status.success(), "writer {mode}: {}", stderr(&out));
        let run = Run::new(initial, faults::read_log(&log, &dir), &[]);
        let reported_at = run.reported_at("done").expect("the writer reports");
        let states = faults::crash_states(&run, usize::MAX, Some(reported_at));
        assert!(states.len() > 5, "{mode}: only {} states", states.len());
        let mut bad = 0;
        for (n, (crash, state)) in states.iter().enumerate() {
            let home = scratch.path().join(format!("state-{n}"));
            state.write_to(&home);
            if check(&home, crash.at > reported_at).is_err() {
                bad += 1;
            }
        }
        bad_states.push((mode, states.len(), bad));
    }
    assert_eq!(bad_states[0].2, 0, "the safe writer: {bad_states:?}");
    assert!(bad_states[1].2 > 0, "the unsafe writer: {bad_states:?}");
}

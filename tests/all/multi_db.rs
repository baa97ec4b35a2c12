//! A home of several databases (`[databases]` in `release.toml`), upgraded
//! as one: every database's migrations in one transaction over the attached
//! files, atomic across them in WAL mode too (the journal modes recorded,
//! switched to DELETE for the transaction, switched back after); a failure
//! or a SIGKILL at any moment leaves every database old or every database
//! new, back in WAL mode after the next uplift command.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::crash::{copy_dir, status_json};
use crate::power_loss::db_fingerprint;
use crate::support::{run, stderr, stdout, uplift};

/// The three databases of the test application: (name, file).
const DATABASES: [(&str, &str); 3] = [
    ("main", "db.sqlite3"),
    ("jobs", "job_storage.sqlite3"),
    ("sessions", "sessions.sqlite3"),
];

/// The journal-mode record an interrupted upgrade leaves in the home.
const RECORD: &str = "uplift-journal-modes.json";

/// Writes a release of the three databases at `version` under `root`, with
/// `migrations` as (database, file, SQL).
fn release(root: &Path, version: &str, migrations: &[(&str, &str, &str)]) -> PathBuf {
    let dir = root.join(format!("release-{version}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut toml = format!("app = \"multi\"\nversion = \"{version}\"\n\n[databases]\n");
    for (name, file) in DATABASES {
        toml.push_str(&format!("{name} = \"{file}\"\n"));
        std::fs::create_dir_all(dir.join("migrations").join(name)).unwrap();
    }
    std::fs::write(dir.join("release.toml"), toml).unwrap();
    for (database, file, sql) in migrations {
        std::fs::write(dir.join("migrations").join(database).join(file), sql).unwrap();
    }
    dir
}

const V1: [(&str, &str, &str); 3] = [
    (
        "main",
        "0001_items.sql",
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    ),
    (
        "jobs",
        "0001_queue.sql",
        "CREATE TABLE jobs.queue (id TEXT PRIMARY KEY, state TEXT NOT NULL, payload TEXT);",
    ),
    (
        "sessions",
        "0001_sessions.sql",
        "CREATE TABLE sessions.session (key TEXT PRIMARY KEY, data TEXT NOT NULL);",
    ),
];

const V2: [(&str, &str, &str); 3] = [
    (
        "main",
        "0002_item_price.sql",
        "ALTER TABLE item ADD COLUMN price REAL NOT NULL DEFAULT 0;
         UPDATE item SET price = id * 1.5, name = name || '!';
         CREATE INDEX item_price ON item (price);",
    ),
    (
        "jobs",
        "0002_queue_priority.sql",
        "ALTER TABLE jobs.queue ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
         UPDATE jobs.queue SET priority = length(payload) % 5, payload = payload || '+';
         CREATE INDEX jobs.queue_priority ON queue (priority);",
    ),
    (
        "sessions",
        "0002_expiry.sql",
        "ALTER TABLE sessions.session ADD COLUMN expires TEXT;
         UPDATE sessions.session SET expires = '2030-01-01T00:00:00Z', data = upper(data);",
    ),
];

/// Releases 1.0.0 and 2.0.0 under `root`.
fn releases(root: &Path) -> (PathBuf, PathBuf) {
    let v1 = release(root, "1.0.0", &V1);
    let all: Vec<_> = V1.iter().chain(V2.iter()).copied().collect();
    let v2 = release(root, "2.0.0", &all);
    (v1, v2)
}

fn upgrade(home: &Path, release: &Path) -> std::process::Output {
    run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "upgrade",
    ])
}

/// A home installed at `v1` with `rows` rows in each database, then
/// switched to WAL mode by "the application", which stopped with committed
/// frames still in each `-wal` (no checkpoint).
fn wal_home(root: &Path, name: &str, v1: &Path, rows: u32) -> PathBuf {
    let home = root.join(name);
    let out = upgrade(&home, v1);
    assert!(out.status.success(), "{}", stderr(&out));
    let fill = |file: &str, sql: String| {
        let conn = rusqlite::Connection::open(home.join(file)).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch(&sql).unwrap();
    };
    let series =
        format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})");
    fill(
        "db.sqlite3",
        format!("{series} INSERT INTO item (id, name) SELECT i, 'item ' || i FROM n;"),
    );
    fill(
        "job_storage.sqlite3",
        format!(
            "{series} INSERT INTO queue (id, state, payload)
             SELECT 'job-' || i, 'queued', json_object('n', i, 'tags', json_array('a', 'b')) FROM n;"
        ),
    );
    fill(
        "sessions.sqlite3",
        format!("{series} INSERT INTO session (key, data) SELECT 'k' || i, 'data ' || i FROM n;"),
    );
    leave_frames_in_wal(&home);
    home
}

/// Writes one more row into each database and leaves it in the `-wal`: the
/// files are copied while the writing connection is open (its `-wal` holds
/// the commit), and put back once it closed (closing checkpoints).
fn leave_frames_in_wal(home: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    let conns: Vec<rusqlite::Connection> = DATABASES
        .iter()
        .map(|(name, file)| {
            let conn = rusqlite::Connection::open(home.join(file)).unwrap();
            conn.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
            let sql = match *name {
                "main" => "INSERT INTO item (id, name) VALUES (1000000, 'in the wal')",
                "jobs" => "INSERT INTO queue (id, state, payload) VALUES ('wal', 'done', '{}')",
                _ => "INSERT INTO session (key, data) VALUES ('wal', 'in the wal')",
            };
            conn.execute_batch(sql).unwrap();
            for suffix in ["", "-wal"] {
                std::fs::copy(
                    home.join(format!("{file}{suffix}")),
                    scratch.path().join(format!("{file}{suffix}")),
                )
                .unwrap();
            }
            conn
        })
        .collect();
    drop(conns);
    for (_, file) in DATABASES {
        let _ = std::fs::remove_file(home.join(format!("{file}-shm")));
        for suffix in ["", "-wal"] {
            std::fs::copy(
                scratch.path().join(format!("{file}{suffix}")),
                home.join(format!("{file}{suffix}")),
            )
            .unwrap();
        }
        assert!(
            std::fs::metadata(home.join(format!("{file}-wal")))
                .unwrap()
                .len()
                > 0
        );
    }
}

/// Each database's fingerprint (data version and application rows), read
/// from a copy of the home: the last connection to a WAL database
/// checkpoints it, and the home must stay as it is.
fn fingerprints(home: &Path) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("copy");
    copy_dir(home, &copy);
    DATABASES
        .iter()
        .map(|(_, file)| db_fingerprint(&copy.join(file)).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn journal_mode(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

/// Every database of `home` is in WAL mode, no journal-mode record is left,
/// and no rollback journal or super-journal either.
fn assert_wal_and_clean(home: &Path, what: &str) {
    for (_, file) in DATABASES {
        assert_eq!(journal_mode(&home.join(file)), "wal", "{what}: {file}");
    }
    assert!(!home.join(RECORD).exists(), "{what}: the record stayed");
    for entry in std::fs::read_dir(home).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with("-journal") && !name.contains("-mj"),
            "{what}: {name} left in the home"
        );
    }
}

fn applied(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT printf('%04d_%s', id, name) FROM uplift_migrations ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_home_of_three_wal_databases_upgrades_as_one_and_stays_in_wal_mode() {
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = releases(root.path());
    let home = wal_home(root.path(), "home", &v1, 200);
    let status = status_json(&home, &v2);
    assert_eq!(status["data_version"], "1.0.0");
    assert_eq!(
        status["pending"],
        serde_json::json!([
            "main/0002_item_price.sql",
            "jobs/0002_queue_priority.sql",
            "sessions/0002_expiry.sql"
        ])
    );
    assert_eq!(status["applied"], 3);

    let out = upgrade(&home, &v2);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_wal_and_clean(&home, "after the upgrade");
    assert_eq!(status_json(&home, &v2)["state"], "up to date");
    // The backup, read inside the transaction (in rollback-journal mode),
    // records the mode a restore gives back: WAL.
    let backups: Vec<_> = std::fs::read_dir(home.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let dump = std::fs::read_to_string(&backups[0]).unwrap();
    assert!(
        dump.contains("\n-- journal-mode: wal\n"),
        "{}",
        &dump[..400]
    );
    // Each database keeps its own history; the data version is main's.
    assert_eq!(
        applied(&home.join("db.sqlite3")),
        ["0001_items", "0002_item_price"]
    );
    assert_eq!(
        applied(&home.join("job_storage.sqlite3")),
        ["0001_queue", "0002_queue_priority"]
    );
    assert_eq!(
        applied(&home.join("sessions.sqlite3")),
        ["0001_sessions", "0002_expiry"]
    );
    let conn = rusqlite::Connection::open(home.join("job_storage.sqlite3")).unwrap();
    let meta: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'uplift_meta'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(meta, 0, "the data version is recorded once, in main");
    // The frames the application left in each -wal were upgraded too.
    let (payload, priority): (String, i64) = conn
        .query_row(
            "SELECT payload, priority FROM queue WHERE id = 'wal'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((payload.as_str(), priority), ("{}+", 2)); // length('{}') % 5
    let main = rusqlite::Connection::open(home.join("db.sqlite3")).unwrap();
    let name: String = main
        .query_row("SELECT name FROM item WHERE id = 1000000", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "in the wal!");

    // Listed per database, and the no-op path is a no-op.
    let out = run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        v2.to_str().unwrap(),
        "migrations",
        "list",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "main/0001_items.sql",
            "main/0002_item_price.sql",
            "jobs/0001_queue.sql",
            "jobs/0002_queue_priority.sql",
            "sessions/0001_sessions.sql",
            "sessions/0002_expiry.sql"
        ]
    );
    let out = upgrade(&home, &v2);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));
}

#[test]
fn a_failing_migration_in_the_second_database_leaves_all_three_untouched_in_wal_mode() {
    let root = tempfile::tempdir().unwrap();
    let (v1, _) = releases(root.path());
    let mut migrations: Vec<_> = V1.iter().chain(V2.iter()).copied().collect();
    migrations.retain(|m| m.0 != "jobs" || m.1 != "0002_queue_priority.sql");
    migrations.push((
        "jobs",
        "0002_queue_priority.sql",
        "UPDATE jobs.queue SET payload = 'changed';
         INSERT INTO jobs.queue (id, state) VALUES ('x', NULL);",
    ));
    let bad = release(root.path(), "2.0.0", &migrations);
    let home = wal_home(root.path(), "home", &v1, 100);
    let before = fingerprints(&home);

    let out = upgrade(&home, &bad);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("jobs/0002_queue_priority.sql"),
        "{}",
        stderr(&out)
    );
    assert_wal_and_clean(&home, "after the failed upgrade");
    for (_, file) in DATABASES {
        // The -wal of each is gone with uplift's connection (or empty).
        let wal = home.join(format!("{file}-wal"));
        assert!(
            !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
            "{file}-wal left behind"
        );
    }
    assert_eq!(fingerprints(&home), before, "a database changed");
}

#[test]
fn a_migration_creating_its_table_in_main_is_refused_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let mut migrations = V1.to_vec();
    migrations[1] = ("jobs", "0001_queue.sql", "CREATE TABLE queue (id TEXT);");
    let release = release(root.path(), "1.0.0", &migrations);
    let home = root.path().join("home");
    let out = upgrade(&home, &release);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("jobs/0001_queue.sql") && err.contains("jobs.NAME"),
        "{err}"
    );
    for (_, file) in DATABASES {
        assert!(
            !home.join(file).exists(),
            "{file}: the failed install left it behind"
        );
    }
}

/// `release.toml`'s `[databases]` (after `app` and `version`), and files
/// under `migrations/`: `status` refuses it, naming the file and what to do.
fn refused(databases: &str, files: &[&str], expected: &[&str]) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("release");
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    std::fs::write(
        dir.join("release.toml"),
        format!("app = \"multi\"\nversion = \"1.0.0\"\n\n[databases]\n{databases}"),
    )
    .unwrap();
    for file in files {
        let path = dir.join("migrations").join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "SELECT 1;").unwrap();
    }
    let home = root.path().join("home");
    let out = run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        dir.to_str().unwrap(),
        "upgrade",
    ]);
    assert!(!out.status.success(), "accepted: {databases}");
    let err = stderr(&out);
    for word in expected {
        assert!(err.contains(word), "{databases}: {err}");
    }
    assert!(!home.join("db.sqlite3").exists(), "{databases}: installed");
}

#[test]
fn invalid_databases_are_refused_with_what_to_do() {
    refused(
        "jobs = \"jobs.sqlite3\"\n",
        &[],
        &["release.toml", "no `main`"],
    );
    refused(
        "main = \"app.sqlite3\"\n",
        &[],
        &["databases.main", "db.sqlite3"],
    );
    refused(
        "main = \"db.sqlite3\"\nJobs = \"jobs.sqlite3\"\n",
        &[],
        &["databases.Jobs", "lowercase"],
    );
    refused(
        "main = \"db.sqlite3\"\ntemp = \"t.sqlite3\"\n",
        &[],
        &["databases.temp", "SQLite's"],
    );
    refused(
        "main = \"db.sqlite3\"\njobs = \"../jobs.sqlite3\"\n",
        &[],
        &["databases.jobs", "plain file name"],
    );
    refused(
        "main = \"db.sqlite3\"\njobs = \"db.sqlite3-wal\"\n",
        &[],
        &["databases.jobs", "SQLite's or uplift's own"],
    );
    refused(
        "main = \"db.sqlite3\"\njobs = \"j.sqlite3\"\nqueue = \"j.sqlite3\"\n",
        &[],
        &["databases.queue", "also database `jobs`"],
    );
    refused(
        "main = \"db.sqlite3\"\n",
        &["0001_x.sql"],
        &["0001_x.sql", "migrations/main/"],
    );
    refused(
        "main = \"db.sqlite3\"\n",
        &["jbos/0001_x.sql"],
        &["jbos", "not the migrations of any database"],
    );
}

/// SIGKILL at 64 moments spread over an upgrade of three WAL databases:
/// each kill leaves every database old or every database new (never a
/// mix), the next uplift command puts every database back in WAL mode and
/// removes the record, and a rerun finishes the upgrade.
#[test]
fn an_upgrade_of_three_wal_databases_killed_at_any_moment_leaves_all_old_or_all_new() {
    const MOMENTS: u32 = 64;
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = releases(root.path());
    let template = wal_home(root.path(), "template", &v1, 40_000);
    let old = fingerprints(&template);

    let reference = root.path().join("reference");
    copy_dir(&template, &reference);
    let started = Instant::now();
    let out = upgrade(&reference, &v2);
    let full = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let new = fingerprints(&reference);
    assert_ne!(old, new);

    let kill_after = |k: u32, delay: Duration| -> bool {
        let home = root.path().join(format!("crash-{k}"));
        copy_dir(&template, &home);
        crate::crash::kill_upgrade_after(&home, &v2, delay);

        // The next uplift command finishes what the kill left.
        let version = status_json(&home, &v2)["data_version"].clone();
        assert_wal_and_clean(&home, &format!("moment {k}"));
        let found = fingerprints(&home);
        let was_old = if found == old {
            assert_eq!(version, "1.0.0", "moment {k}");
            true
        } else if found == new {
            assert_eq!(version, "2.0.0", "moment {k}");
            false
        } else {
            let mixed: Vec<&str> = found
                .iter()
                .zip(&old)
                .zip(&new)
                .zip(DATABASES)
                .map(|(((f, o), n), (name, _))| match (f == o, f == n) {
                    (true, _) => "old",
                    (_, true) => "new",
                    _ => name,
                })
                .collect();
            panic!("moment {k}: neither all old nor all new: {mixed:?}");
        };
        let out = upgrade(&home, &v2);
        assert!(out.status.success(), "moment {k}: rerun: {}", stderr(&out));
        assert_eq!(fingerprints(&home), new, "moment {k}: rerun");
        assert_wal_and_clean(&home, &format!("moment {k}, rerun"));
        std::fs::remove_dir_all(&home).unwrap();
        was_old
    };
    // The moments the kill test of one database picks (`crash`).
    let outcomes = crate::crash::spread_kills(full, MOMENTS, kill_after);
    eprintln!(
        "three WAL databases: {outcomes:?} (old, new) of {MOMENTS} kills; an upgrade takes {full:?}"
    );
    assert!(outcomes.0 > 0, "no kill landed before the commit");
    assert!(outcomes.1 > 0, "no kill landed after the commit");
}

/// Power loss, not just a killed process, over a home of three WAL
/// databases: the upgrade's file-system operations are recorded by the
/// fault shim (`crate::faults`), and each state a power cut could leave
/// (a reduced, evenly spread sample: `UPLIFT_FAULTS_FULL=1` checks them
/// all) must give every database old or every database new (new once the
/// upgrade reported success), back in WAL mode after the next uplift
/// command, and a rerun must finish. Each state is written where the run
/// was recorded: a rollback journal names its super-journal by its full
/// path.
#[test]
fn power_loss_during_an_upgrade_of_three_wal_databases_leaves_all_old_or_all_new() {
    use crate::faults::{self, Run, Snapshot};
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = releases(root.path());
    let template = wal_home(root.path(), "template", &v1, 300);
    let old = fingerprints(&template);
    let reference = root.path().join("reference");
    copy_dir(&template, &reference);
    assert!(upgrade(&reference, &v2).status.success());
    let new = fingerprints(&reference);

    let home = root.path().join("home");
    copy_dir(&template, &home);
    let initial = Snapshot::take(&home, &[]);
    let log = root.path().join("ops.log");
    let mut cmd = uplift();
    cmd.args([
        "--home",
        home.to_str().unwrap(),
        "--release",
        v2.to_str().unwrap(),
        "upgrade",
    ]);
    let out = faults::with_shim(&mut cmd, &home, &log, None)
        .output()
        .unwrap();
    assert!(out.status.success(), "under the shim: {}", stderr(&out));
    let recorded = Run::new(initial, faults::read_log(&log, &home), &[]);
    let reported_at = recorded
        .reported_at("upgraded ")
        .unwrap_or_else(|| panic!("no success line: {}", stdout(&out)));
    let states = faults::crash_states(&recorded, crate::power_loss::budget(40), Some(reported_at));
    let mut bad = Vec::new();
    for (crash, state) in &states {
        std::fs::remove_dir_all(&home).unwrap();
        state.write_to(&home);
        let check = || -> Result<(), String> {
            let status = run(&[
                "--home",
                home.to_str().unwrap(),
                "--release",
                v2.to_str().unwrap(),
                "status",
            ]);
            if !status.status.success() {
                return Err(format!("status failed: {}", stderr(&status)));
            }
            if home.join(RECORD).exists() {
                return Err("the journal-mode record stayed".into());
            }
            for (_, file) in DATABASES {
                let mode = journal_mode(&home.join(file));
                if mode != "wal" {
                    return Err(format!("{file} is in journal mode {mode}"));
                }
            }
            let found = fingerprints(&home);
            let reported = crash.at > reported_at;
            if found != new && (reported || found != old) {
                return Err(format!(
                    "the databases are neither all old nor all new (reported: {reported})"
                ));
            }
            let rerun = upgrade(&home, &v2);
            if !rerun.status.success() {
                return Err(format!("a rerun failed: {}", stderr(&rerun)));
            }
            if fingerprints(&home) != new {
                return Err("a rerun left other databases".into());
            }
            Ok(())
        };
        if let Err(problem) = check() {
            bad.push(format!("{}: {problem}", recorded.describe(crash)));
        }
    }
    eprintln!(
        "power loss over three WAL databases: {} ops, {} states, {} bad",
        recorded.ops.len(),
        states.len(),
        bad.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// An application that keeps a database open (not started by `uplift
/// run`, so the home's lock does not keep it out) stops the upgrade before
/// anything is written: leaving WAL mode needs the database alone. The
/// databases already switched are switched back.
#[test]
fn a_database_held_open_by_an_application_makes_the_upgrade_refuse_with_nothing_changed() {
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = releases(root.path());
    let home = wal_home(root.path(), "home", &v1, 50);
    let before = fingerprints(&home);
    let app = rusqlite::Connection::open(home.join("job_storage.sqlite3")).unwrap();
    let n: i64 = app
        .query_row("SELECT count(*) FROM queue", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 51);

    let out = run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        v2.to_str().unwrap(),
        "upgrade",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("job_storage.sqlite3") && err.contains("open in another process"),
        "{err}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["code"], "journal-modes", "{json}");
    drop(app);
    assert_wal_and_clean(&home, "after the refusal");
    assert_eq!(fingerprints(&home), before);
    assert_eq!(status_json(&home, &v2)["data_version"], "1.0.0");
}

/// An applied migration of another database edited since is drift, named
/// with its database's folder; the release accepts the edit under that
/// name.
#[test]
fn an_edited_migration_of_another_database_is_drift_named_with_its_folder() {
    let root = tempfile::tempdir().unwrap();
    let (v1, _) = releases(root.path());
    let home = root.path().join("home");
    assert!(upgrade(&home, &v1).status.success());
    let mut edited: Vec<(&str, &str, String)> = V1
        .iter()
        .chain(V2.iter())
        .map(|(d, f, s)| (*d, *f, s.to_string()))
        .collect();
    edited[1].2.push_str("\n-- the queue of background jobs\n");
    let borrowed: Vec<(&str, &str, &str)> = edited
        .iter()
        .map(|(d, f, s)| (*d, *f, s.as_str()))
        .collect();
    let v2 = release(root.path(), "2.0.0", &borrowed);

    let status = status_json(&home, &v2);
    assert_eq!(status["state"], "blocked by drift", "{status}");
    let drift = status["drift"][0].as_str().unwrap();
    assert!(drift.contains("jobs/0001_queue.sql changed"), "{drift}");
    let out = upgrade(&home, &v2);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("jobs/0001_queue.sql"),
        "{}",
        stderr(&out)
    );

    // Accepted under its folder's name, the edit is recorded by the upgrade.
    let recorded = uplift::release::sha256_hex(V1[1].2.as_bytes());
    let toml = v2.join("release.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text = text.replace(
        "[databases]",
        &format!(
            "[migrations]\naccepted = {{ \"jobs/0001_queue.sql\" = [\"{recorded}\"] }}\n\n[databases]"
        ),
    );
    std::fs::write(&toml, text).unwrap();
    let out = upgrade(&home, &v2);
    assert!(out.status.success(), "{}", stderr(&out));
    let conn = rusqlite::Connection::open(home.join("job_storage.sqlite3")).unwrap();
    let checksum: String = conn
        .query_row(
            "SELECT checksum FROM uplift_migrations WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        checksum,
        uplift::release::sha256_hex(edited[1].2.as_bytes())
    );
}

/// `verify-paths` compares every database of each path with a fresh
/// install's, and names the database of a difference; `testdb` of a release
/// of several databases makes a folder holding each one, with its fixtures.
#[test]
fn verify_paths_and_testdb_cover_every_database() {
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = releases(root.path());
    std::fs::create_dir_all(v1.join("fixtures/jobs")).unwrap();
    std::fs::write(
        v1.join("fixtures/jobs/01_queue.sql"),
        "INSERT INTO queue (id, state, payload) VALUES ('f1', 'queued', '[1,2]');",
    )
    .unwrap();
    let out = run(&[
        "verify-paths",
        "--json",
        v1.to_str().unwrap(),
        v2.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["result"], "ok", "{reports}");

    // 2.0.0 edits sessions' first migration (accepted), so a fresh install
    // has a column an upgraded site does not.
    let mut migrations: Vec<_> = V1.iter().chain(V2.iter()).copied().collect();
    migrations[2].2 =
        "CREATE TABLE sessions.session (key TEXT PRIMARY KEY, data TEXT NOT NULL, ip TEXT);";
    let v2 = release(root.path(), "2.0.0", &migrations);
    let toml = v2.join("release.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        "[databases]",
        &format!(
            "[migrations]\naccepted = {{ \"sessions/0001_sessions.sql\" = [\"{}\"] }}\n\n[databases]",
            uplift::release::sha256_hex(V1[2].2.as_bytes())
        ),
    );
    std::fs::write(&toml, text).unwrap();
    let out = run(&[
        "verify-paths",
        "--json",
        v1.to_str().unwrap(),
        v2.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // A check that finds problems fails with its reports as the details.
    let failure: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failure["error"]["code"], "path-problems", "{failure}");
    let reports = &failure["error"]["details"];
    assert_eq!(reports[0]["result"], "schema differs", "{reports}");
    let problems = reports[0]["problems"].to_string();
    assert!(
        problems.contains("database sessions:") && problems.contains("ip"),
        "{problems}"
    );

    let out_dir = root.path().join("test-home");
    let out = run(&[
        "--release",
        v1.to_str().unwrap(),
        "testdb",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (_, file) in DATABASES {
        assert!(out_dir.join(file).is_file(), "{file} missing");
    }
    let conn = rusqlite::Connection::open(out_dir.join("job_storage.sqlite3")).unwrap();
    let payload: String = conn
        .query_row("SELECT payload FROM queue WHERE id = 'f1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(payload, "[1,2]");
    let again = run(&[
        "--release",
        v1.to_str().unwrap(),
        "testdb",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
}

/// In a home of several databases, `dbrestore` (which restores the main
/// database alone) refuses unless told `--main-alone`, changing nothing;
/// told so, it restores the main database and leaves the others.
#[test]
fn dbrestore_in_a_home_of_several_databases_restores_main_only_when_told() {
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = releases(root.path());
    let home = wal_home(root.path(), "home", &v1, 20);
    assert!(upgrade(&home, &v2).status.success());
    let upgraded = fingerprints(&home);
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "--home",
            home.to_str().unwrap(),
            "--release",
            v1.to_str().unwrap(),
            "dbrestore",
            "--latest",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = restore(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--main-alone") && err.contains("job_storage.sqlite3"),
        "{err}"
    );
    assert_eq!(fingerprints(&home), upgraded);

    let out = restore(&["--main-alone"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = fingerprints(&home);
    assert!(
        restored[0].starts_with("data version 1.0.0"),
        "{}",
        restored[0]
    );
    assert_eq!(restored[1..], upgraded[1..], "the other databases stayed");
    assert_eq!(journal_mode(&home.join("db.sqlite3")), "wal");
}

/// A home of one database (a release without `[databases]`) upgrades to a
/// release that names several: the main database's applied migrations are
/// the same files moved to `migrations/main/`, and the new database is
/// created and built in the same transaction.
#[test]
fn a_home_of_one_database_upgrades_to_a_release_of_several() {
    let root = tempfile::tempdir().unwrap();
    let single = root.path().join("release-single");
    std::fs::create_dir_all(single.join("migrations")).unwrap();
    std::fs::write(
        single.join("release.toml"),
        "app = \"multi\"\nversion = \"0.9.0\"\n",
    )
    .unwrap();
    std::fs::write(single.join("migrations").join(V1[0].1), V1[0].2).unwrap();
    let home = root.path().join("home");
    assert!(upgrade(&home, &single).status.success());
    rusqlite::Connection::open(home.join("db.sqlite3"))
        .unwrap()
        .execute_batch("PRAGMA journal_mode=WAL; INSERT INTO item (id, name) VALUES (1, 'kept');")
        .unwrap();

    // A failed first upgrade leaves no new database behind.
    let mut failing: Vec<_> = V1.iter().chain(V2.iter()).copied().collect();
    failing[4].2 = "UPDATE jobs.queue SET state = NULL WHERE 1; SELECT no_such_function();";
    let bad = release(root.path(), "2.0.0", &failing);
    let out = upgrade(&home, &bad);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for file in ["job_storage.sqlite3", "sessions.sqlite3"] {
        assert!(!home.join(file).exists(), "{file} left by a failed upgrade");
    }
    assert!(!home.join(RECORD).exists());

    let (_, v2) = releases(root.path());
    let status = status_json(&home, &v2);
    assert_eq!(status["applied"], 1, "{status}");
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");
    let out = upgrade(&home, &v2);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status_json(&home, &v2)["state"], "up to date");
    assert_eq!(
        applied(&home.join("job_storage.sqlite3")),
        ["0001_queue", "0002_queue_priority"]
    );
    assert_eq!(journal_mode(&home.join("db.sqlite3")), "wal");
    // A database the home did not have is created in rollback-journal mode.
    assert_eq!(journal_mode(&home.join("sessions.sqlite3")), "delete");
    assert!(!home.join(RECORD).exists());
    let name: String = rusqlite::Connection::open(home.join("db.sqlite3"))
        .unwrap()
        .query_row("SELECT name FROM item WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "kept!");
}

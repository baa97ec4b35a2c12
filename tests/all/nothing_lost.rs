//! Nothing is lost or half-applied, whatever runs beside uplift or is left
//! beside the database: leftovers of a removed database, a hook that
//! swallows a full disk, an application still holding the database, backup
//! retention, owners and modes, concurrent plugin changes, the no-op path's
//! own checks, and inputs that used to hang or pass silently.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{TestRelease, fingerprint, query_i64, run, stderr, stdout, uplift};

const NOTES: (&str, &str) = (
    "0001_notes.sql",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
);
const TAGS: (&str, &str) = (
    "0002_tags.sql",
    "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);",
);

struct Home {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Home {
            home: root.join("home"),
            root,
            _dir: dir,
        }
    }

    fn home(&self) -> &str {
        self.home.to_str().unwrap()
    }

    fn db(&self) -> PathBuf {
        self.home.join("db.sqlite3")
    }

    fn release(&self, version: &str, migrations: &[(&str, &str)]) -> TestRelease {
        TestRelease::new(
            &self.root,
            &format!("release-{version}"),
            "notebook",
            version,
            migrations,
        )
    }

    fn uplift(&self, release: &TestRelease, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--home", self.home(), "--release", release.path()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Installs `release` and writes a few notes.
    fn install(&self, release: &TestRelease) {
        let out = self.uplift(release, &["upgrade"]);
        assert!(out.status.success(), "install: {}", stderr(&out));
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.execute_batch("INSERT INTO notes(body) VALUES ('a'), ('b'), ('c');")
            .unwrap();
    }

    fn backups(&self) -> Vec<String> {
        crate::support::file_names(&self.home.join("backups"))
    }
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Copies `db` and the files SQLite keeps beside it to `to` while `conn`
/// is still open: what a process killed at that moment leaves on disk.
fn snapshot_files(db: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            std::fs::copy(&from, format!("{}{suffix}", to.display())).unwrap();
        }
    }
}

#[test]
fn a_fresh_install_never_applies_the_wal_of_a_removed_database() {
    let h = Home::new();
    std::fs::create_dir_all(&h.home).unwrap();
    // An application in WAL mode, killed with committed frames in its -wal;
    // then the operator moved db.sqlite3 away.
    let elsewhere = h.root.join("app.sqlite3");
    {
        let conn = rusqlite::Connection::open(&elsewhere).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE foreign_rows(x); INSERT INTO foreign_rows VALUES (1), (2), (3);",
        )
        .unwrap();
        snapshot_files(&elsewhere, &h.db());
    }
    std::fs::remove_file(h.db()).unwrap();
    let wal_before = std::fs::read(h.home.join("db.sqlite3-wal")).unwrap();
    assert!(!wal_before.is_empty());

    let release = h.release("1.0.0", &[NOTES]);
    let out = h.uplift(&release, &["upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("db.sqlite3-wal") && err.contains("moved to"),
        "{err}"
    );
    assert_eq!(integrity(&h.db()), "ok");
    assert_eq!(
        query_i64(
            &h.db(),
            "SELECT count(*) FROM sqlite_schema WHERE name = 'foreign_rows'"
        ),
        0,
        "the stale WAL was applied to the new database"
    );
    // The frames are kept for the operator, not deleted.
    let aside: Vec<String> = crate::support::file_names(&h.home)
        .into_iter()
        .filter(|n| n.starts_with("db.sqlite3-wal.set-aside-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(h.home.join(&aside[0])).unwrap(), wal_before);
}

#[test]
fn a_fresh_install_never_plays_back_the_hot_journal_of_a_removed_database() {
    let h = Home::new();
    std::fs::create_dir_all(&h.home).unwrap();
    let elsewhere = h.root.join("app.sqlite3");
    {
        let conn = rusqlite::Connection::open(&elsewhere).unwrap();
        conn.execute_batch(
            "PRAGMA cache_size=1; CREATE TABLE big(x); BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
             INSERT INTO big SELECT randomblob(500) FROM n;",
        )
        .unwrap();
        // A writer killed mid-transaction: its journal is hot.
        snapshot_files(&elsewhere, &h.db());
    }
    std::fs::remove_file(h.db()).unwrap();
    assert!(h.home.join("db.sqlite3-journal").exists());

    let release = h.release("1.0.0", &[NOTES]);
    let out = h.uplift(&release, &["upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(integrity(&h.db()), "ok");
    assert_eq!(query_i64(&h.db(), "SELECT count(*) FROM notes"), 0);
    assert!(!h.home.join("db.sqlite3-journal").exists());
}

/// A tmpfs of `mib` MiB mounted at `dir` for the test's life (the disk-full
/// test needs root, which CI has).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_hook_that_swallows_a_full_disk_commits_nothing() {
    let h = Home::new();
    let _disk = Tmpfs::mount(&h.home, 24);
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let before = fingerprint(&h.db());

    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    std::fs::write(
        v2.dir.join("release.toml"),
        "app = \"notebook\"\nversion = \"2.0.0\"\ncore_plugins = [\"hostile\"]\n",
    )
    .unwrap();
    let plugin = crate::support::hostile_with_manifest(
        "hostile",
        "1.0.0",
        r#"{"read": ["notes"], "write": ["notes"], "owns": "hostile_"}"#,
        &["best_effort"],
    );
    std::fs::create_dir_all(v2.dir.join("plugins")).unwrap();
    std::fs::write(v2.dir.join("plugins/hostile.wasm"), plugin).unwrap();
    // The compile cache lives elsewhere: the disk fills during the hook.
    std::fs::write(
        h.home.join("uplift.toml"),
        "[hooks]\ntimeout_seconds = 60\n",
    )
    .unwrap();

    let out = h.uplift(&v2, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("hostile/best_effort") && err.contains("ended the upgrade's transaction"),
        "{err}"
    );
    assert_eq!(
        fingerprint(&h.db()),
        before,
        "the hook's writes after the full disk were committed"
    );
    assert_eq!(integrity(&h.db()), "ok");
}

/// An application holding the database open: the sqlite3 shell, reading
/// its commands from a pipe that stays open until the value is dropped.
struct App(Child);

impl App {
    fn open(db: &Path, first: &str) -> App {
        use std::io::Write;
        let mut child = crate::support::sqlite3()
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(first.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let app = App(child);
        app.wait_until_open(db);
        app
    }

    fn wait_until_open(&self, db: &Path) {
        let pid = self.0.id();
        let ino = std::fs::metadata(db).unwrap().ino();
        for _ in 0..500 {
            let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.ino() == ino));
            if open {
                // Let it finish the statements it was given.
                std::thread::sleep(std::time::Duration::from_millis(100));
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the sqlite3 shell never opened {}", db.display());
    }
}

impl Drop for App {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn refuses_restore_beside(journal_mode: &str, first: &str) {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    {
        let conn = rusqlite::Connection::open(h.db()).unwrap();
        let _: String = conn
            .query_row(&format!("PRAGMA journal_mode={journal_mode}"), [], |r| {
                r.get(0)
            })
            .unwrap();
    }
    let out = h.uplift(&v1, &["dbbackup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let app = App::open(&h.db(), first);
    let before = fingerprint(&h.db());
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "restored under a running application"
    );
    let err = stderr(&out);
    assert!(err.contains("in use"), "{err}");
    assert!(err.contains(&format!("pid {}", app.0.id())), "{err}");
    drop(app);
    assert_eq!(fingerprint(&h.db()), before);
}

#[test]
fn restore_refuses_while_an_application_in_rollback_mode_has_the_database_open() {
    refuses_restore_beside("DELETE", "SELECT count(*) FROM notes;\n");
}

#[test]
fn restore_refuses_while_an_application_in_wal_mode_that_only_read_has_it_open() {
    refuses_restore_beside("WAL", "SELECT count(*) FROM notes;\n");
}

#[test]
fn restore_refuses_while_an_application_that_checkpoints_with_truncate_has_it_open() {
    refuses_restore_beside(
        "WAL",
        "INSERT INTO notes(body) VALUES ('d'); PRAGMA wal_checkpoint(TRUNCATE);\n",
    );
}

#[test]
fn an_application_started_by_uplift_run_keeps_upgrades_and_restores_out_until_it_exits() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let out = h.uplift(&v1, &["dbbackup"]);
    assert!(out.status.success());
    let marker = h.root.join("app-started");
    let mut app = uplift()
        .args([
            "--home",
            h.home(),
            "--release",
            v1.path(),
            "run",
            "--",
            "sh",
            "-c",
        ])
        .arg(format!("touch {}; exec sleep 30", marker.display()))
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if marker.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(marker.exists(), "the application never started");

    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    let out = h.uplift(&v2, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("in use by pid") && err.contains(&app.id().to_string()),
        "{err}"
    );
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert_eq!(out.status.code(), Some(1));
    // A second instance of the application shares the home.
    let out = h.uplift(&v1, &["run", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A manual backup may run beside it.
    let out = h.uplift(&v1, &["dbbackup"]);
    assert!(out.status.success(), "{}", stderr(&out));

    app.kill().unwrap();
    app.wait().unwrap();
    let out = h.uplift(&v2, &["upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn upgrade_keep(h: &Home, keep: usize) {
    std::fs::write(
        h.home.join("uplift.toml"),
        format!("[backups]\nkeep = {keep}\n"),
    )
    .unwrap();
}

#[test]
fn keep_zero_still_backs_up_and_keeps_what_each_downgrade_needs() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    upgrade_keep(&h, 0);
    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    let out = h.uplift(&v2, &["upgrade", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backup = PathBuf::from(report["backup"].as_str().unwrap());
    assert!(backup.exists(), "the upgrade's own backup was pruned");
    // Downgrading to 1.0.0 restores it.
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(query_i64(&h.db(), "SELECT count(*) FROM notes"), 3);
}

#[test]
fn failed_upgrades_never_prune_the_backups_older_releases_restore() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    upgrade_keep(&h, 2);
    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    assert!(h.uplift(&v2, &["upgrade"]).status.success());
    let after_first = h.backups();
    assert_eq!(after_first.len(), 1, "{after_first:?}");
    // A broken release, retried by a service manager.
    let broken = h.release(
        "3.0.0",
        &[NOTES, TAGS, ("0003_bad.sql", "SELECT no_such_function();")],
    );
    for _ in 0..3 {
        let out = h.uplift(&broken, &["upgrade"]);
        assert_eq!(out.status.code(), Some(1));
    }
    let names = h.backups();
    assert!(
        names.iter().any(|n| n.starts_with("db-v1.0.0_")),
        "the only backup release 1.0.0 can restore was pruned: {names:?}"
    );
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Rewrites the `created` line of an uplift dump's header (and its
/// checksum, which covers it): a backup written under another clock.
fn set_created(dump: &Path, created: &str) {
    let text = std::fs::read_to_string(dump).unwrap();
    let body_end = text.rfind("-- uplift-sha256: ").unwrap();
    let body: String = text[..body_end]
        .lines()
        .map(|l| {
            if l.starts_with("-- created: ") {
                format!("-- created: {created}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let sum = uplift::release::sha256_hex(body.as_bytes());
    std::fs::write(dump, format!("{body}-- uplift-sha256: {sum}\n")).unwrap();
}

#[test]
fn a_clock_set_back_never_makes_the_newest_backup_look_oldest() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    upgrade_keep(&h, 1);
    // An older backup (3 notes), written while the clock was years ahead.
    let out = h.uplift(&v1, &["dbbackup"]);
    let manual = PathBuf::from(stdout(&out).trim());
    set_created(&manual, "2099-01-01T00:00:00Z");
    {
        let conn = rusqlite::Connection::open(h.db()).unwrap();
        conn.execute_batch("INSERT INTO notes(body) VALUES ('fourth');")
            .unwrap();
    }
    // The upgrade's backup (4 notes) is the newest, whatever the clocks say.
    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    let out = h.uplift(&v2, &["upgrade", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(Path::new(report["backup"].as_str().unwrap()).exists());
    let out = h.uplift(&v2, &["dbrestore", "--latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query_i64(&h.db(), "SELECT count(*) FROM notes"),
        4,
        "restored the backup made under the clock set ahead, not the newest"
    );
}

#[test]
fn restoring_latest_twice_gives_the_same_database_not_the_safety_backup() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let out = h.uplift(&v1, &["dbbackup"]);
    assert!(out.status.success());
    {
        let conn = rusqlite::Connection::open(h.db()).unwrap();
        conn.execute_batch("INSERT INTO notes(body) VALUES ('after the backup');")
            .unwrap();
    }
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = fingerprint(&h.db());
    assert_eq!(query_i64(&h.db(), "SELECT count(*) FROM notes"), 3);
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fingerprint(&h.db()),
        first,
        "the second restore undid the first"
    );
    // Asked for, the safety backup is a candidate.
    let out = h.uplift(&v1, &["dbrestore", "--latest", "--include-safety-backups"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn two_backups_in_the_same_instant_restore_the_later_one() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let first = PathBuf::from(stdout(&h.uplift(&v1, &["dbbackup"])).trim());
    {
        let conn = rusqlite::Connection::open(h.db()).unwrap();
        conn.execute_batch("INSERT INTO notes(body) VALUES ('in the second');")
            .unwrap();
    }
    let second = PathBuf::from(stdout(&h.uplift(&v1, &["dbbackup"])).trim());
    let same = "2030-01-01T00:00:00Z";
    set_created(&first, same);
    set_created(&second, same);
    {
        let conn = rusqlite::Connection::open(h.db()).unwrap();
        conn.execute_batch("DELETE FROM notes;").unwrap();
    }
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(query_i64(&h.db(), "SELECT count(*) FROM notes"), 4);
}

#[test]
fn restore_keeps_the_owner_group_and_mode_of_the_database_it_replaces() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    assert!(h.uplift(&v1, &["dbbackup"]).status.success());
    let (uid, gid) = (65534, 65534); // nobody, nogroup
    std::os::unix::fs::chown(h.db(), Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(h.db(), std::fs::Permissions::from_mode(0o664)).unwrap();
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::metadata(h.db()).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(meta.mode() & 0o7777, 0o664);
}

#[test]
fn root_in_a_service_users_home_leaves_files_the_service_user_can_use() {
    let h = Home::new();
    // A home (and a root of tempdirs) the service user `nobody` can reach.
    std::fs::set_permissions(&h.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(&h.home).unwrap();
    std::os::unix::fs::chown(&h.home, Some(65534), Some(65534)).unwrap();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    assert!(h.uplift(&v2, &["upgrade"]).status.success());
    for path in [h.db(), h.home.join("uplift.lock"), h.home.join("backups")] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), 65534, "{} is root's", path.display());
    }
    for name in h.backups() {
        let meta = std::fs::metadata(h.home.join("backups").join(&name)).unwrap();
        assert_eq!(meta.uid(), 65534, "{name} is root's");
    }
    // The service user runs the application through uplift.
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(env!("CARGO_BIN_EXE_uplift"))
        .args([
            "--home",
            h.home(),
            "--release",
            v2.path(),
            "run",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn concurrent_plugin_enables_all_take_effect() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    std::fs::create_dir_all(h.home.join("plugins")).unwrap();
    let names = ["alpha", "beta", "gamma"];
    for name in names {
        let bytes = crate::support::hostile_with_manifest(name, "1.0.0", "{}", &["panic"]);
        std::fs::write(h.home.join(format!("plugins/{name}.wasm")), bytes).unwrap();
    }
    for round in 0..8 {
        let _ = std::fs::remove_file(h.home.join("plugins.toml"));
        let children: Vec<Child> = names
            .iter()
            .map(|name| {
                uplift()
                    .args([
                        "--home",
                        h.home(),
                        "--release",
                        v1.path(),
                        "plugin",
                        "enable",
                        name,
                    ])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let text = std::fs::read_to_string(h.home.join("plugins.toml")).unwrap();
        for name in names {
            assert!(
                text.contains(&format!("{name} = true")),
                "round {round} lost {name}: {text}"
            );
        }
    }
}

#[test]
fn a_killed_backups_and_restores_temporary_files_are_removed_by_the_next_run() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    std::fs::create_dir_all(h.home.join("backups")).unwrap();
    let stale = [
        h.home.join("backups/.uplift-backup-AbC123.tmp"),
        h.home.join(".db.sqlite3.restoring-XyZ789"),
        h.home.join("db.sqlite3.installing"),
    ];
    for path in &stale {
        std::fs::write(path, vec![0u8; 4096]).unwrap();
    }
    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    let out = h.uplift(&v2, &["upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for path in &stale {
        assert!(!path.exists(), "{} is still there", path.display());
    }
}

#[test]
fn a_release_with_a_new_migration_at_the_same_version_applies_it() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let same = TestRelease::new(
        &h.root,
        "release-1.0.0-b",
        "notebook",
        "1.0.0",
        &[NOTES, TAGS],
    );
    let out = h.uplift(&same, &["status"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(!text.contains("up to date"), "{text}");
    let out = h.uplift(&same, &["upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query_i64(
            &h.db(),
            "SELECT count(*) FROM sqlite_schema WHERE name = 'tags'"
        ),
        1
    );
    let out = h.uplift(&same, &["run", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn another_application_at_the_same_version_is_refused_even_on_the_no_op_path() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let other = TestRelease::new(&h.root, "other", "payroll", "1.0.0", &[NOTES]);
    for args in [&["upgrade"][..], &["run", "--", "true"][..]] {
        let out = h.uplift(&other, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("belongs to application \"notebook\""),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_runaway_migration_is_stopped_at_its_time_limit() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let before = fingerprint(&h.db());
    std::fs::write(
        h.home.join("uplift.toml"),
        "[migrations]\ntimeout_seconds = 1\n",
    )
    .unwrap();
    let runaway = (
        "0002_forever.sql",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;",
    );
    let v2 = h.release("2.0.0", &[NOTES, runaway]);
    let started = std::time::Instant::now();
    let out = h.uplift(&v2, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed().as_secs() < 30);
    let err = stderr(&out);
    assert!(
        err.contains("0002_forever.sql") && err.contains("timeout_seconds"),
        "{err}"
    );
    assert_eq!(fingerprint(&h.db()), before);
}

#[test]
fn migration_settings_out_of_range_are_refused_by_name() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    std::fs::write(
        h.home.join("uplift.toml"),
        "[migrations]\ntimeout_seconds = 0\n",
    )
    .unwrap();
    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    let out = h.uplift(&v2, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("uplift.toml") && err.contains("timeout_seconds"),
        "{err}"
    );
}

#[test]
fn restore_refuses_a_device_or_a_pipe_at_once() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    let fifo = h.root.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for file in [Path::new("/dev/zero"), fifo.as_path()] {
        let mut child = uplift()
            .args(["--home", h.home(), "dbrestore"])
            .arg(file)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut done = None;
        for _ in 0..1000 {
            if let Some(status) = child.try_wait().unwrap() {
                done = Some(status);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let Some(status) = done else {
            let _ = child.kill();
            panic!("dbrestore {} hung", file.display());
        };
        assert_eq!(status.code(), Some(1));
        let out = child.wait_with_output().unwrap();
        assert!(
            stderr(&out).contains("not a regular file"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_migration_numbered_before_an_applied_one_is_refused() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES, ("0010_ten.sql", "CREATE TABLE ten(x);")]);
    h.install(&v1);
    let v2 = h.release(
        "2.0.0",
        &[
            NOTES,
            ("0009_nine.sql", "CREATE TABLE nine(x);"),
            ("0010_ten.sql", "CREATE TABLE ten(x);"),
        ],
    );
    let out = h.uplift(&v2, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("0009_nine.sql") && err.contains("0010"),
        "{err}"
    );
}

#[test]
fn a_migration_file_with_an_upper_case_extension_is_refused_not_skipped() {
    let h = Home::new();
    let v1 = h.release(
        "1.0.0",
        &[NOTES, ("0002_tags.SQL", "CREATE TABLE tags(x);")],
    );
    let out = h.uplift(&v1, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("0002_tags.SQL"), "{}", stderr(&out));
    assert!(!h.db().exists());
}

#[test]
fn a_plugin_enabled_but_not_installed_stops_the_upgrade_until_disabled() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    std::fs::write(h.home.join("plugins.toml"), "[plugins]\nvanished = true\n").unwrap();
    let v2 = h.release("2.0.0", &[NOTES, TAGS]);
    let out = h.uplift(&v2, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("vanished"), "{}", stderr(&out));
    let out = h.uplift(&v2, &["plugin", "disable", "vanished"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = h.uplift(&v2, &["upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_restored_database_keeps_wal_mode_and_gains_no_statistics_table() {
    let h = Home::new();
    let v1 = h.release("1.0.0", &[NOTES]);
    h.install(&v1);
    {
        let conn = rusqlite::Connection::open(h.db()).unwrap();
        let _: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        // Statistics as an application without STAT4 makes them: only
        // sqlite_stat1.
        conn.execute_batch(
            "CREATE INDEX notes_body ON notes(body); ANALYZE; DROP TABLE IF EXISTS sqlite_stat4;",
        )
        .unwrap();
    }
    let schema = |db: &Path| -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = schema(&h.db());
    assert!(h.uplift(&v1, &["dbbackup"]).status.success());
    let out = h.uplift(&v1, &["dbrestore", "--latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let conn = rusqlite::Connection::open(h.db()).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    assert_eq!(schema(&h.db()), before);
}

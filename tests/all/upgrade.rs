//! `uplift upgrade`, `status`, `migrations list` and `run`: the atomic upgrade
//! and every way it refuses.

use std::path::Path;

use crate::support::{TestRelease, fingerprint, query_i64, run, stderr, stdout, uplift};

const INITIAL: (&str, &str) = (
    "0001_initial.sql",
    "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
);
const ADD_COLUMN: (&str, &str) = ("0002_price.sql", "ALTER TABLE item ADD COLUMN price REAL;");

struct Fixture {
    _dir: tempfile::TempDir,
    home: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let root = dir.path().to_path_buf();
        Fixture {
            _dir: dir,
            home,
            root,
        }
    }

    fn home(&self) -> &str {
        self.home.to_str().unwrap()
    }

    fn db(&self) -> std::path::PathBuf {
        self.home.join("db.sqlite3")
    }

    fn release(&self, version: &str, migrations: &[(&str, &str)]) -> TestRelease {
        TestRelease::new(
            &self.root,
            &format!("release-{version}"),
            "shop",
            version,
            migrations,
        )
    }

    fn upgrade(&self, release: &TestRelease) -> std::process::Output {
        run(&[
            "--home",
            self.home(),
            "--release",
            release.path(),
            "upgrade",
        ])
    }

    fn install_with_rows(&self, release: &TestRelease) {
        let out = self.upgrade(release);
        assert!(out.status.success(), "install failed: {}", stderr(&out));
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.execute_batch("INSERT INTO item (name) VALUES ('a'), ('b'), ('c');")
            .unwrap();
    }
}

#[test]
fn fresh_install_applies_every_migration_and_records_the_version() {
    let f = Fixture::new();
    let r = f.release("1.0.0", &[INITIAL, ADD_COLUMN]);
    let out = f.upgrade(&r);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("installed 1.0.0 with 2 migrations"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        query_i64(
            &f.db(),
            "SELECT count(*) FROM pragma_table_info('item') WHERE name = 'price'"
        ),
        1
    );
    assert_eq!(
        query_i64(&f.db(), "SELECT count(*) FROM uplift_migrations"),
        2
    );
    let status = run(&[
        "--home",
        f.home(),
        "--release",
        r.path(),
        "status",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["data_version"], "1.0.0");
    assert_eq!(json["state"], "up to date");
    assert!(!f.root.join("home/db.sqlite3.installing").exists());
}

#[test]
fn status_quiet_prints_the_state_alone() {
    let f = Fixture::new();
    let r1 = f.release("1.0.0", &[INITIAL]);
    let status = |release: &TestRelease| {
        let out = run(&[
            "--home",
            f.home(),
            "--release",
            release.path(),
            "status",
            "--quiet",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(status(&r1), "not installed\n");
    f.install_with_rows(&r1);
    assert_eq!(status(&r1), "up to date\n");
    let r2 = f.release("1.1.0", &[INITIAL, ADD_COLUMN]);
    assert_eq!(status(&r2), "upgrade needed\n");
}

#[test]
fn upgrade_applies_only_pending_migrations_and_keeps_rows() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let r2 = f.release("1.1.0", &[INITIAL, ADD_COLUMN]);
    let out = f.upgrade(&r2);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("upgraded 1.0.0 -> 1.1.0"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("0002_price.sql"), "{}", stdout(&out));
    assert_eq!(query_i64(&f.db(), "SELECT count(*) FROM item"), 3);
    assert_eq!(
        query_i64(&f.db(), "SELECT count(*) FROM uplift_migrations"),
        2
    );
    let version: String = rusqlite::Connection::open(f.db())
        .unwrap()
        .query_row(
            "SELECT value FROM uplift_meta WHERE key = 'data_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "1.1.0");
}

#[test]
fn already_upgraded_is_a_quick_no_op_that_changes_nothing() {
    let f = Fixture::new();
    let r = f.release("1.0.0", &[INITIAL]);
    f.install_with_rows(&r);
    let before = fingerprint(&f.db());
    let out = f.upgrade(&r);
    assert!(out.status.success());
    assert!(stdout(&out).contains("up to date: data version 1.0.0"));
    assert_eq!(fingerprint(&f.db()), before);
}

#[test]
fn plan_prints_pending_migrations_and_changes_nothing() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let before = fingerprint(&f.db());
    let r2 = f.release("1.1.0", &[INITIAL, ADD_COLUMN]);
    let out = run(&[
        "--home",
        f.home(),
        "--release",
        r2.path(),
        "upgrade",
        "--plan",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "planned");
    assert_eq!(json["plan"]["from"], "1.0.0");
    assert_eq!(json["plan"]["migrations"][0], "0002_price.sql");
    assert_eq!(fingerprint(&f.db()), before);
}

#[test]
fn a_failing_migration_rolls_everything_back_and_names_the_file() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let before = fingerprint(&f.db());
    let r2 = f.release(
        "1.1.0",
        &[
            INITIAL,
            ADD_COLUMN,
            ("0003_broken.sql", "UPDATE item SET name = NULL;"),
        ],
    );
    let out = f.upgrade(&r2);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("0003_broken.sql"), "{err}");
    assert!(err.contains("NOT NULL"), "{err}");
    assert_eq!(fingerprint(&f.db()), before, "the database changed");
}

#[test]
fn a_migration_that_commits_on_its_own_is_refused() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let before = fingerprint(&f.db());
    let r2 = f.release(
        "1.1.0",
        &[
            INITIAL,
            (
                "0002_commit.sql",
                "ALTER TABLE item ADD COLUMN price REAL; COMMIT; BEGIN; DELETE FROM item;",
            ),
        ],
    );
    let out = f.upgrade(&r2);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("0002_commit.sql uses COMMIT"), "{err}");
    assert_eq!(fingerprint(&f.db()), before);
}

#[test]
fn a_table_rebuild_with_foreign_keys_works_and_broken_references_roll_back() {
    let f = Fixture::new();
    let parent_child = (
        "0001_initial.sql",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), qty TEXT);
         INSERT INTO parent VALUES (1);
         INSERT INTO child VALUES (1, 1, '5');",
    );
    let out = f.upgrade(&f.release("1.0.0", &[parent_child]));
    assert!(out.status.success(), "{}", stderr(&out));
    // The 12-step rebuild of `parent` drops a table that `child` refers to:
    // that only works with foreign-key enforcement off.
    let rebuild = (
        "0002_rebuild_parent.sql",
        "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, label TEXT NOT NULL DEFAULT '');
         INSERT INTO parent_new (id) SELECT id FROM parent;
         DROP TABLE parent;
         ALTER TABLE parent_new RENAME TO parent;",
    );
    let out = f.upgrade(&f.release("1.1.0", &[parent_child, rebuild]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(query_i64(&f.db(), "SELECT count(*) FROM child"), 1);

    let before = fingerprint(&f.db());
    let orphan = ("0003_orphan.sql", "DELETE FROM parent;");
    let out = f.upgrade(&f.release("1.2.0", &[parent_child, rebuild, orphan]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("foreign keys"), "{}", stderr(&out));
    assert!(stderr(&out).contains("child"), "{}", stderr(&out));
    assert_eq!(fingerprint(&f.db()), before);
}

#[test]
fn data_newer_than_the_release_is_refused_with_the_versions() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("2.0.0", &[INITIAL]));
    let before = fingerprint(&f.db());
    let out = f.upgrade(&f.release("1.0.0", &[INITIAL]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("data version 2.0.0"), "{err}");
    assert!(err.contains("installed release 1.0.0"), "{err}");
    assert_eq!(fingerprint(&f.db()), before);
}

/// `upgrade --json` says on stdout why it failed, with a stable code, for
/// machines; people still read the error on stderr.
#[test]
fn a_failed_upgrade_with_json_says_why_on_stdout() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("2.0.0", &[INITIAL]));
    let r1 = f.release("1.0.0", &[INITIAL]);
    let out = run(&[
        "--home",
        f.home(),
        "--release",
        r1.path(),
        "upgrade",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "data-newer", "{failed}");
    assert_eq!(failed["error"]["rolled_back"], false, "{failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("data version 2.0.0"), "{message}");
    assert!(
        stderr(&out).contains("data version 2.0.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_changed_or_missing_applied_migration_is_drift() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL, ADD_COLUMN]));
    let before = fingerprint(&f.db());
    let edited = (
        "0002_price.sql",
        "ALTER TABLE item ADD COLUMN price INTEGER;",
    );
    let r2 = f.release("1.1.0", &[INITIAL, edited]);
    let out = f.upgrade(&r2);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("0002_price.sql changed after it was applied"),
        "{}",
        stderr(&out)
    );
    let list = run(&[
        "--home",
        f.home(),
        "--release",
        r2.path(),
        "migrations",
        "list",
    ]);
    assert_eq!(list.status.code(), Some(1));
    assert!(stdout(&list).contains("changed"), "{}", stdout(&list));

    let r3 = f.release("1.2.0", &[INITIAL]);
    let out = f.upgrade(&r3);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("was applied but is not in the release"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fingerprint(&f.db()), before);
}

#[test]
fn drift_blocks_the_upgrade_in_status_until_the_release_accepts_the_edit() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL, ADD_COLUMN]));
    let recorded = uplift::release::sha256_hex(ADD_COLUMN.1.as_bytes());
    let touched_up = (
        "0002_price.sql",
        "-- The price, in the shop's currency.\nALTER TABLE item ADD COLUMN price REAL;",
    );
    let third = (
        "0003_stock.sql",
        "ALTER TABLE item ADD COLUMN stock INTEGER;",
    );
    let r2 = f.release("1.1.0", &[INITIAL, touched_up, third]);
    let status = |release: &TestRelease| {
        let out = run(&["--home", f.home(), "--release", release.path(), "status"]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let text = status(&r2);
    assert!(text.contains("state            blocked by drift"), "{text}");
    assert!(
        text.contains(&format!(
            "[migrations] accepted = {{ \"0002_price.sql\" = [\"{recorded}\"] }}"
        )),
        "the message says how the release accepts the edit: {text}"
    );
    let before = fingerprint(&f.db());
    assert_eq!(f.upgrade(&r2).status.code(), Some(1));
    assert_eq!(fingerprint(&f.db()), before);

    // The release accepts the earlier file: no longer drift.
    let toml = r2.dir.join("release.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(&format!(
        "[migrations]\naccepted = {{ \"0002_price.sql\" = [\"{recorded}\"] }}\n"
    ));
    std::fs::write(&toml, text).unwrap();
    let text = status(&r2);
    assert!(text.contains("state            upgrade needed"), "{text}");
    assert!(text.contains("edited         0002_price.sql"), "{text}");
    let out = f.upgrade(&r2);
    assert!(out.status.success(), "{}", stderr(&out));
    let actual = uplift::release::sha256_hex(touched_up.1.as_bytes());
    let conn = rusqlite::Connection::open(f.db()).unwrap();
    let checksum: String = conn
        .query_row(
            "SELECT checksum FROM uplift_migrations WHERE id = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(checksum, actual, "the edit's checksum is recorded");
    let (event, details): (String, String) = conn
        .query_row(
            "SELECT event, details FROM uplift_history WHERE event = 'accept-migration-edit'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(event, "accept-migration-edit");
    assert!(
        details.contains(&recorded) && details.contains(&actual),
        "{details}"
    );
    assert!(status(&r2).contains("state            up to date"));
}

#[test]
fn a_bad_accepted_edit_in_release_toml_is_named() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    for (accepted, says) in [
        (
            "{ \"0009_none.sql\" = [] }",
            "names \"0009_none.sql\", but migrations/ has no such file",
        ),
        (
            "{ \"0001_initial.sql\" = [\"abc\"] }",
            "lists \"abc\", which is not a SHA-256 checksum",
        ),
    ] {
        let r = f.release("1.1.0", &[INITIAL, ADD_COLUMN]);
        let toml = r.dir.join("release.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(
            &toml,
            format!("{text}[migrations]\naccepted = {accepted}\n"),
        )
        .unwrap();
        let before = fingerprint(&f.db());
        let out = f.upgrade(&r);
        assert_eq!(out.status.code(), Some(1), "{accepted}");
        assert!(stderr(&out).contains(says), "{accepted}: {}", stderr(&out));
        assert_eq!(fingerprint(&f.db()), before);
    }
}

#[test]
fn migrations_list_shows_applied_and_pending() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let r2 = f.release("1.1.0", &[INITIAL, ADD_COLUMN]);
    let out = run(&[
        "--home",
        f.home(),
        "--release",
        r2.path(),
        "migrations",
        "list",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["state"], "applied");
    assert_eq!(json[0]["release_version"], "1.0.0");
    assert_eq!(json[1]["state"], "pending");
}

#[test]
fn a_database_not_made_by_uplift_is_refused() {
    let f = Fixture::new();
    std::fs::create_dir_all(&f.home).unwrap();
    rusqlite::Connection::open(f.db())
        .unwrap()
        .execute_batch("CREATE TABLE mine (x); INSERT INTO mine VALUES (1);")
        .unwrap();
    let before = fingerprint(&f.db());
    let out = f.upgrade(&f.release("1.0.0", &[INITIAL]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no uplift data version"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fingerprint(&f.db()), before);
}

#[test]
fn an_empty_database_file_gets_a_fresh_install() {
    let f = Fixture::new();
    std::fs::create_dir_all(&f.home).unwrap();
    std::fs::write(f.db(), b"").unwrap();
    let out = f.upgrade(&f.release("1.0.0", &[INITIAL]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query_i64(&f.db(), "SELECT count(*) FROM uplift_migrations"),
        1
    );
}

#[test]
fn another_applications_database_is_refused() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let other = TestRelease::new(&f.root, "other", "blog", "2.0.0", &[INITIAL]);
    let out = f.upgrade(&other);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("belongs to application \"shop\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_release_folders_are_named_in_the_error() {
    let f = Fixture::new();
    let missing = f.root.join("nowhere");
    let out = run(&[
        "--home",
        f.home(),
        "--release",
        missing.to_str().unwrap(),
        "upgrade",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nowhere/release.toml not found"),
        "{}",
        stderr(&out)
    );

    let r = f.release("1.0.0", &[INITIAL]);
    std::fs::write(
        r.dir.join("release.toml"),
        "app = \"shop\"\nversion = \"one\"\n",
    )
    .unwrap();
    let out = f.upgrade(&r);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("field `version`"), "{}", stderr(&out));

    std::fs::write(r.dir.join("release.toml"), "app = \"shop\"\n").unwrap();
    let out = f.upgrade(&r);
    assert!(
        stderr(&out).contains("missing field `version`"),
        "{}",
        stderr(&out)
    );

    std::fs::write(
        r.dir.join("release.toml"),
        "app = \"shop\"\nversion = \"1.0\"\n",
    )
    .unwrap();
    std::fs::write(r.dir.join("migrations/add_thing.sql"), "SELECT 1;").unwrap();
    let out = f.upgrade(&r);
    assert!(
        stderr(&out).contains("add_thing.sql is not named NNNN_name.sql"),
        "{}",
        stderr(&out)
    );
    assert!(!f.db().exists(), "nothing may be created for a bad release");

    let out = uplift()
        .args(["--home", f.home(), "upgrade"])
        .output()
        .unwrap();
    // No release at all is a usage error (a bad one, above, a failure).
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pass --release DIR or set UPLIFT_RELEASE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_second_runner_is_refused_while_the_home_is_locked() {
    let f = Fixture::new();
    let r = f.release("1.0.0", &[INITIAL]);
    f.install_with_rows(&r);
    let lock = uplift::home::Home::new(&f.home).lock(false).unwrap();
    let out = f.upgrade(&f.release("1.1.0", &[INITIAL, ADD_COLUMN]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "another uplift (pid {}) holds this home",
            std::process::id()
        )),
        "{err}"
    );
    drop(lock);
    let out = f.upgrade(&f.release("1.1.0", &[INITIAL, ADD_COLUMN]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn run_upgrades_then_becomes_the_command() {
    let f = Fixture::new();
    let r = f.release("1.0.0", &[INITIAL]);
    let out = run(&[
        "--home",
        f.home(),
        "--release",
        r.path(),
        "--quiet",
        "run",
        "--",
        "sh",
        "-c",
        "echo started with $0 $1; exit 7",
        "x",
        "y",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "started with x y\n");
    assert_eq!(
        query_i64(&f.db(), "SELECT count(*) FROM uplift_migrations"),
        1
    );

    let out = run(&[
        "--home",
        f.home(),
        "--release",
        r.path(),
        "run",
        "--",
        "/no/such/program",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("could not run /no/such/program"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_paths_passes_the_example_application() {
    let releases: Vec<String> = ["0.1.0", "0.2.0", "0.6.4", "1.0.0"]
        .iter()
        .map(|v| {
            crate::support::example_release(v)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut args = vec!["verify-paths", "--json"];
    args.extend(releases.iter().map(String::as_str));
    let out = run(&args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 6, "4 releases give 6 paths");
    assert!(json.as_array().unwrap().iter().all(|p| p["result"] == "ok"));
}

#[test]
fn verify_paths_catches_a_migration_numbered_into_the_past() {
    // Release 1.1 adds migration 0002 between two that 1.0 already had: an
    // upgraded database would get the columns in another order than a fresh
    // one. The upgrade refuses it, naming the migration.
    let f = Fixture::new();
    let add_b = ("0003_b.sql", "ALTER TABLE item ADD COLUMN b TEXT;");
    let add_a = ("0002_a.sql", "ALTER TABLE item ADD COLUMN a TEXT;");
    let r1 = f.release("1.0.0", &[INITIAL, add_b]);
    let r2 = f.release("1.1.0", &[INITIAL, add_a, add_b]);
    let out = run(&["verify-paths", r1.path(), r2.path()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL 1.0.0 -> 1.1.0  upgrade failed"),
        "{text}"
    );
    assert!(
        text.contains("migration 0002_a.sql is new but 0003 was already applied"),
        "{text}"
    );
    assert!(text.contains("1 paths checked, 1 with problems"), "{text}");
}

#[test]
fn verify_paths_needs_two_distinct_releases() {
    let f = Fixture::new();
    let r1 = f.release("1.0.0", &[INITIAL]);
    let out = run(&["verify-paths", r1.path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("at least two release folders"),
        "{}",
        stderr(&out)
    );
    let copy = TestRelease::new(&f.root, "copy", "shop", "1.0", &[INITIAL]);
    let out = run(&["verify-paths", r1.path(), copy.path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("are both release 1.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_upgrade_backs_up_first_and_a_downgrade_is_told_which_backup_to_restore() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let out = f.upgrade(&f.release("1.1.0", &[INITIAL, ADD_COLUMN]));
    assert!(out.status.success(), "{}", stderr(&out));
    let backups = crate::support::file_names(&f.home.join("backups"));
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(backups[0].starts_with("db-v1.0.0_"), "{backups:?}");
    assert!(stdout(&out).contains(&backups[0]), "{}", stdout(&out));

    // The operator reinstalls 1.0.0: uplift refuses and names the backup.
    let before = fingerprint(&f.db());
    let out = f.upgrade(&f.release("1.0.0", &[INITIAL]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("data version 1.1.0, newer than the installed release 1.0.0"),
        "{err}"
    );
    assert!(err.contains("uplift dbrestore --latest"), "{err}");
    assert!(err.contains(&backups[0]), "{err}");
    assert_eq!(fingerprint(&f.db()), before);
}

#[test]
fn a_failing_hook_rolls_back_the_migrations_too_and_names_plugin_hook_and_backup() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let before = fingerprint(&f.db());
    std::fs::write(f.home.join("uplift.toml"), "[hooks]\ntimeout_seconds = 1\n").unwrap();
    let r2 = f.release("1.1.0", &[INITIAL, ADD_COLUMN]);
    std::fs::write(
        r2.dir.join("release.toml"),
        "app = \"shop\"\nversion = \"1.1.0\"\ncore_plugins = [\"hostile\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(r2.dir.join("plugins")).unwrap();
    std::fs::copy(
        crate::support::component("uplift-test-hostile"),
        r2.dir.join("plugins/hostile.wasm"),
    )
    .unwrap();
    let out = f.upgrade(&r2);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("hostile/infinite_loop"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert!(
        err.contains("db-v1.0.0_"),
        "the message names the backup: {err}"
    );
    assert_eq!(
        fingerprint(&f.db()),
        before,
        "the migration must be rolled back with the hook"
    );
}

/// Makes `release` ship the hostile test plugin as its core plugin
/// `hostile`, with the manifest's `capabilities` (JSON) and `hooks` (names;
/// any versions).
fn ship_hostile(release: &TestRelease, version: &str, capabilities: &str, hooks: &[&str]) {
    std::fs::write(
        release.dir.join("release.toml"),
        format!("app = \"shop\"\nversion = \"{version}\"\ncore_plugins = [\"hostile\"]\n"),
    )
    .unwrap();
    let bytes = crate::support::hostile_with_manifest("hostile", version, capabilities, hooks);
    std::fs::create_dir_all(release.dir.join("plugins")).unwrap();
    std::fs::write(release.dir.join("plugins/hostile.wasm"), bytes).unwrap();
}

const SECRET: (&str, &str) = (
    "0002_secret.sql",
    "CREATE TABLE secret (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO secret (v) VALUES ('s1');",
);

const ADD_COLUMN_3: (&str, &str) = ("0003_price.sql", "ALTER TABLE item ADD COLUMN price REAL;");

fn plugin_tables(db: &std::path::Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name, plugin FROM uplift_plugin_tables ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_plugin_owns_across_upgrades_the_tables_it_created_and_never_a_core_table() {
    let f = Fixture::new();
    let owns = r#"{"read":[],"write":[],"owns":"hostile_"}"#;
    let out = f.upgrade(&f.release("1.0.0", &[INITIAL, SECRET]));
    assert!(out.status.success(), "install: {}", stderr(&out));
    assert_eq!(
        plugin_tables(&f.db()),
        [],
        "a fresh install records nothing"
    );

    // 1.1.0: the plugin creates its table; the record commits with it.
    let r = f.release("1.1.0", &[INITIAL, SECRET]);
    ship_hostile(&r, "1.1.0", owns, &["create_owned"]);
    let out = f.upgrade(&r);
    assert!(out.status.success(), "1.1.0: {}", stderr(&out));
    assert_eq!(
        plugin_tables(&f.db()),
        [("hostile_kept".to_string(), "hostile".to_string())]
    );

    // 1.2.0: a later upgrade's hooks still own it: they alter and drop it.
    let r = f.release("1.2.0", &[INITIAL, SECRET]);
    ship_hostile(
        &r,
        "1.2.0",
        owns,
        &["alter_owned", "write_owned", "drop_owned"],
    );
    let out = f.upgrade(&r);
    assert!(out.status.success(), "1.2.0: {}", stderr(&out));
    assert_eq!(plugin_tables(&f.db()), []);
    assert_eq!(
        query_i64(
            &f.db(),
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'hostile%'"
        ),
        0
    );

    // 1.3.0: a manifest whose prefix matches the core table `secret` does
    // not make it the plugin's: the upgrade fails and changes nothing.
    let before = fingerprint(&f.db());
    let r = f.release("1.3.0", &[INITIAL, SECRET, ADD_COLUMN_3]);
    ship_hostile(
        &r,
        "1.3.0",
        r#"{"read":[],"write":[],"owns":"secr"}"#,
        &["drop_core"],
    );
    let out = f.upgrade(&r);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("hostile/drop_core"), "{err}");
    assert!(
        err.contains(
            r#"plugin hostile may not drop table secret: it matches the owned prefix "secr" but was not created by hostile"#
        ),
        "{err}"
    );
    assert_eq!(
        fingerprint(&f.db()),
        before,
        "the upgrade changed the database"
    );
}

#[test]
fn the_first_upgrade_after_uplift_learned_provenance_adopts_plugin_tables_but_not_core_ones() {
    let f = Fixture::new();
    let owns = r#"{"read":[],"write":[],"owns":"hostile_"}"#;
    // The application itself has a table under the plugin's prefix.
    let settings = (
        "0003_settings.sql",
        "CREATE TABLE hostile_settings (k TEXT PRIMARY KEY, v TEXT);",
    );
    let out = f.upgrade(&f.release("1.0.0", &[INITIAL, SECRET, settings]));
    assert!(out.status.success(), "install: {}", stderr(&out));
    let r = f.release("1.1.0", &[INITIAL, SECRET, settings]);
    ship_hostile(&r, "1.1.0", owns, &["create_owned"]);
    let out = f.upgrade(&r);
    assert!(out.status.success(), "1.1.0: {}", stderr(&out));
    // As an uplift from before the record would have left it.
    rusqlite::Connection::open(f.db())
        .unwrap()
        .execute_batch("DROP TABLE uplift_plugin_tables")
        .unwrap();

    let r = f.release("1.2.0", &[INITIAL, SECRET, settings]);
    ship_hostile(&r, "1.2.0", owns, &["alter_owned"]);
    let out = f.upgrade(&r);
    assert!(out.status.success(), "1.2.0: {}", stderr(&out));
    assert_eq!(
        plugin_tables(&f.db()),
        [("hostile_kept".to_string(), "hostile".to_string())],
        "the plugin's table is adopted, the application's hostile_settings is not"
    );

    // Later, a table a migration creates under the prefix is not adopted:
    // adoption happens once, when the record is first made.
    let r = f.release("1.3.0", &[INITIAL, SECRET, settings]);
    ship_hostile(&r, "1.3.0", owns, &["write_owned"]);
    std::fs::write(
        r.dir.join("migrations/0004_copy.sql"),
        "CREATE TABLE hostile_settings_copy AS SELECT * FROM hostile_settings;",
    )
    .unwrap();
    let out = f.upgrade(&r);
    assert!(out.status.success(), "1.3.0: {}", stderr(&out));
    assert_eq!(
        plugin_tables(&f.db()),
        [("hostile_kept".to_string(), "hostile".to_string())],
        "a table a migration creates under the prefix is not the plugin's"
    );
}

/// A plugin's first use compiles its component before the upgrade's
/// transaction begins, and the report says so apart from the hook's own
/// time; `uplift plugin precompile` does it ahead, so that the upgrade then
/// compiles nothing.
#[test]
fn a_first_use_compiles_before_the_transaction_and_precompile_leaves_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let schema = [("0001_init.sql", "CREATE TABLE t (x);")];
    let r1 = TestRelease::new(dir.path(), "r1", "shop", "1.0.0", &schema);
    let r2 = TestRelease::new(dir.path(), "r2", "shop", "1.1.0", &schema);
    std::fs::write(
        r2.dir.join("release.toml"),
        "app = \"shop\"\nversion = \"1.1.0\"\ncore_plugins = [\"hostile\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(r2.dir.join("plugins")).unwrap();
    let plugin = crate::support::hostile_with_manifest(
        "hostile",
        "1.0.0",
        r#"{"owns":"hostile_"}"#,
        &["create_owned"],
    );
    std::fs::write(r2.dir.join("plugins/hostile.wasm"), plugin).unwrap();
    let upgrade = |home: &Path, release: &TestRelease| -> serde_json::Value {
        let out = run(&[
            "--home",
            home.to_str().unwrap(),
            "--release",
            release.path(),
            "upgrade",
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let phases = |outcome: &serde_json::Value| -> Vec<String> {
        outcome["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["phase"].as_str().unwrap().to_string())
            .collect()
    };
    let (first, ahead) = (dir.path().join("first"), dir.path().join("ahead"));
    for home in [&first, &ahead] {
        upgrade(home, &r1);
    }

    // First use: compiled before the transaction, reported apart.
    let outcome = upgrade(&first, &r2);
    assert_eq!(outcome["compiled"][0]["plugin"], "hostile", "{outcome}");
    assert_eq!(outcome["compiled"][0]["cache"], "compiled", "{outcome}");
    let phases_first = phases(&outcome);
    let compile = phases_first.iter().position(|p| p == "compile");
    let backup = phases_first.iter().position(|p| p == "backup");
    assert!(
        compile.is_some() && compile < backup,
        "the compilation comes before the backup, which the transaction begins with: {phases_first:?}"
    );

    // Ahead of time: the upgrade compiles nothing.
    let precompile = |expect: &str| {
        let out = run(&[
            "--home",
            ahead.to_str().unwrap(),
            "--release",
            r2.path(),
            "plugin",
            "precompile",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("hostile 1.0.0: {expect}")),
            "{}",
            stdout(&out)
        );
    };
    precompile("compiled");
    precompile("already compiled");
    let outcome = upgrade(&ahead, &r2);
    assert_eq!(outcome["compiled"][0]["cache"], "hit", "{outcome}");
    assert!(
        !phases(&outcome).contains(&"compile".to_string()),
        "{outcome}"
    );
    assert_eq!(outcome["hooks"][0]["hook"], "create_owned", "{outcome}");
}

/// `plugin precompile` without a release is a usage error that writes
/// nothing into the home.
#[test]
fn precompile_without_a_release_is_a_usage_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = uplift()
        .env_remove("UPLIFT_RELEASE")
        .args(["--home", home.to_str().unwrap(), "plugin", "precompile"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("release"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
}

/// The history and the log of each attempt, as `uplift history` and the
/// home's `logs/` show them.
fn history(f: &Fixture) -> serde_json::Value {
    let out = run(&["--home", f.home(), "history", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn attempt_logs(f: &Fixture) -> Vec<String> {
    crate::support::file_names(&f.home.join("logs"))
        .iter()
        .map(|name| std::fs::read_to_string(f.home.join("logs").join(name)).unwrap())
        .collect()
}

#[test]
fn every_upgrade_attempt_is_in_the_history_and_the_home_keeps_its_log() {
    let f = Fixture::new();
    let r1 = f.release("1.0.0", &[INITIAL]);
    f.install_with_rows(&r1);
    let r2 = f.release("1.1.0", &[INITIAL, ADD_COLUMN]);
    assert!(f.upgrade(&r2).status.success());
    // The no-op start keeps nothing.
    assert!(f.upgrade(&r2).status.success());

    let entries = history(&f);
    assert_eq!(entries.as_array().unwrap().len(), 2, "{entries}");
    assert_eq!(entries[0]["event"], "install");
    assert_eq!(entries[0]["outcome"], "installed");
    assert_eq!(entries[0]["to_version"], "1.0.0");
    assert_eq!(entries[1]["event"], "upgrade");
    assert_eq!(entries[1]["outcome"], "upgraded");
    assert_eq!(entries[1]["from_version"], "1.0.0");
    assert_eq!(
        entries[1]["details"]["migrations"][0]["name"],
        "0002_price.sql"
    );
    assert!(
        entries[1]["details"]["backup"]
            .as_str()
            .is_some_and(|b| b.contains("backups"))
    );

    let logs = attempt_logs(&f);
    assert_eq!(logs.len(), 2, "one log per attempt but the no-op");
    assert!(logs[1].contains("outcome  upgraded"), "{}", logs[1]);
    assert!(logs[1].contains("0002_price.sql"), "{}", logs[1]);

    let text = stdout(&run(&["--home", f.home(), "history"]));
    assert!(
        text.contains("upgrade                1.0.0 -> 1.1.0     upgraded"),
        "{text}"
    );
}

#[test]
fn a_failed_upgrade_is_recorded_after_its_rollback_and_changes_nothing_else() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let before = fingerprint(&f.db());
    let broken = (
        "0002_broken.sql",
        "ALTER TABLE item ADD COLUMN price REAL; SELECT * FROM nowhere;",
    );
    let out = f.upgrade(&f.release("1.1.0", &[INITIAL, broken]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        fingerprint(&f.db()),
        before,
        "rolled back: only the record of the attempt is new"
    );

    let entries = history(&f);
    let failed = &entries[1];
    assert_eq!(failed["event"], "upgrade", "{entries}");
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["to_version"], "1.1.0");
    assert_eq!(failed["details"]["error"]["code"], "migration-failed");
    assert!(
        failed["details"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no such table: nowhere") && m.contains("rolled back")),
        "{failed}"
    );
    let logs = attempt_logs(&f);
    assert!(
        logs[1].contains("outcome  failed (migration-failed)"),
        "{}",
        logs[1]
    );
    assert!(logs[1].contains("no such table: nowhere"), "{}", logs[1]);
    // A refusal before anything began is logged in the home, not written
    // into the database.
    let newer = f.release("0.9.0", &[INITIAL]);
    assert_eq!(f.upgrade(&newer).status.code(), Some(1));
    assert_eq!(history(&f).as_array().unwrap().len(), 2);
    assert!(attempt_logs(&f)[2].contains("outcome  failed (data-newer)"));
}

#[test]
fn report_json_gives_a_fleet_what_it_collects_from_a_site() {
    let f = Fixture::new();
    f.install_with_rows(&f.release("1.0.0", &[INITIAL]));
    let r2 = f.release("1.1.0", &[INITIAL, ADD_COLUMN]);
    assert!(f.upgrade(&r2).status.success());
    // A damaged backup beside the good one.
    let backups = f.home.join("backups");
    let good = crate::support::file_names(&backups)[0].clone();
    let mut bytes = std::fs::read(backups.join(&good)).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(backups.join("db-damaged.dump"), bytes).unwrap();

    let out = run(&[
        "--home",
        f.home(),
        "--release",
        r2.path(),
        "report",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], 1);
    assert_eq!(report["uplift"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        report["uplift"]["wasmtime"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        report["uplift"]["sqlite"]
            .as_str()
            .is_some_and(|v| v.starts_with('3'))
    );
    assert_eq!(report["application"]["name"], "shop");
    assert_eq!(report["application"]["release"], "1.1.0");
    assert_eq!(report["database"]["data_version"], "1.1.0");
    assert_eq!(report["database"]["state"], "up to date");
    assert!(report["database"]["size"].as_u64().unwrap() > 0);
    assert!(report["database"]["drift"].as_array().unwrap().is_empty());
    assert_eq!(report["last_upgrade"]["outcome"], "upgraded");
    assert_eq!(report["last_upgrade"]["from_version"], "1.0.0");
    let backups = report["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{report}");
    let verdict = |file: &str| {
        backups
            .iter()
            .find(|b| b["file"] == file)
            .map(|b| {
                (
                    b["verified"].as_bool().unwrap(),
                    b["size"].as_u64().unwrap(),
                )
            })
            .unwrap()
    };
    assert!(verdict(&good).0);
    assert!(verdict(&good).1 > 0);
    assert!(!verdict("db-damaged.dump").0);
    assert!(report["disk"]["free"].as_u64().unwrap() > 0);
    assert!(report["disk"]["total"].as_u64().unwrap() >= report["disk"]["free"].as_u64().unwrap());

    let text = stdout(&run(&[
        "--home",
        f.home(),
        "--release",
        r2.path(),
        "report",
    ]));
    assert!(text.contains("shop 1.1.0 at"), "{text}");
    assert!(text.contains("backups 2 ("), "{text}");
    assert!(text.contains("1 that do not verify"), "{text}");
}

//! The upgrade's foreign-key check: whatever a migration or a hook breaks is
//! refused (with foreign-key enforcement off during the upgrade), and only
//! the tables whose keys the upgrade could have broken are checked (it wrote
//! a child's key columns, or removed or could have removed a parent's keys,
//! or changed a table's shape other than by adding columns) — a violation
//! already sitting in a table is not the upgrade's business.

use std::path::PathBuf;

use crate::support::{TestRelease, fingerprint, hostile_with_manifest, run, stderr, stdout};

/// `parent` (rowid key and a UNIQUE code), `child` referring to a parent by
/// id, `tagged` referring to one by code; `other` and `stray`, which refers
/// to `other`, are unrelated to them.
const SCHEMA: (&str, &str) = (
    "0001_initial.sql",
    "CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
     CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
     CREATE TABLE tagged (id INTEGER PRIMARY KEY, code TEXT REFERENCES parent(code));
     CREATE TABLE other (id INTEGER PRIMARY KEY, label TEXT);
     CREATE TABLE stray (id INTEGER PRIMARY KEY, other_id INTEGER REFERENCES other(id), note TEXT);
     INSERT INTO parent VALUES (1, 'a'), (2, 'b');
     INSERT INTO child VALUES (1, 1);
     INSERT INTO tagged VALUES (1, 'a');
     INSERT INTO other VALUES (1, 'one');
     INSERT INTO stray VALUES (1, 1, NULL);",
);

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl Fixture {
    /// A home installed at 1.0.0 with [`SCHEMA`].
    fn installed() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture {
            root: dir.path().to_path_buf(),
            home: dir.path().join("home"),
            _dir: dir,
        };
        let out = f.upgrade(&f.release("1.0.0", &[]));
        assert!(out.status.success(), "install: {}", stderr(&out));
        f
    }

    fn db(&self) -> PathBuf {
        self.home.join("db.sqlite3")
    }

    /// A release at `version` with [`SCHEMA`] and then `migrations`.
    fn release(&self, version: &str, migrations: &[(&str, &str)]) -> TestRelease {
        let mut all = vec![SCHEMA];
        all.extend_from_slice(migrations);
        TestRelease::new(&self.root, &format!("r{version}"), "shop", version, &all)
    }

    fn upgrade(&self, release: &TestRelease) -> std::process::Output {
        run(&[
            "--home",
            self.home.to_str().unwrap(),
            "--release",
            release.path(),
            "upgrade",
            "--json",
        ])
    }

    /// Runs `sql` on the database with foreign-key enforcement off, as an
    /// application with a bug might have.
    fn plant(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
            .unwrap();
    }

    /// Upgrades to 1.1.0 with `migration` and asserts that it is refused for
    /// breaking foreign keys, with `expected` in the message, and that the
    /// database did not change.
    fn assert_refused(&self, migration: (&str, &str), expected: &str) {
        let before = fingerprint(&self.db());
        let out = self.upgrade(&self.release("1.1.0", &[migration]));
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains("left rows that break foreign keys"), "{err}");
        assert!(err.contains(expected), "{err}");
        assert_eq!(fingerprint(&self.db()), before, "the database changed");
    }
}

/// The number the JSON report gives for `foreign_key_tables_checked`; an
/// upgrade's last phases must be the flush of SQLite's cache, the check
/// after it, and COMMIT.
fn tables_checked(out: &std::process::Output) -> u64 {
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let phases: Vec<&str> = json["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases in {json}"))
        .iter()
        .filter_map(|p| p["phase"].as_str())
        .collect();
    if json["outcome"] == "upgraded" {
        assert!(
            phases.ends_with(&["flush", "foreign keys", "commit"]),
            "{phases:?}"
        );
    }
    json["foreign_key_tables_checked"]
        .as_u64()
        .unwrap_or_else(|| panic!("no foreign_key_tables_checked in {json}"))
}

#[test]
fn a_migration_deleting_parent_rows_an_untouched_child_refers_to_is_refused() {
    let f = Fixture::installed();
    f.assert_refused(
        ("0002_delete.sql", "DELETE FROM parent WHERE id = 1;"),
        "row 1 of child refers to a missing row of parent",
    );
}

#[test]
fn a_parent_rebuilt_by_the_twelve_step_procedure_losing_a_referenced_row_is_refused() {
    let f = Fixture::installed();
    f.assert_refused(
        (
            "0002_rebuild.sql",
            "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, extra TEXT);
             INSERT INTO parent_new (id, code) SELECT id, code FROM parent WHERE id <> 1;
             DROP TABLE parent;
             ALTER TABLE parent_new RENAME TO parent;",
        ),
        "row 1 of child refers to a missing row of parent",
    );
}

#[test]
fn a_migration_dropping_a_referenced_parent_table_is_refused() {
    let f = Fixture::installed();
    f.assert_refused(
        ("0002_drop.sql", "DROP TABLE parent;"),
        "row 1 of child refers to a missing row of parent",
    );
}

#[test]
fn renaming_a_referenced_parent_without_rewriting_its_children_is_refused() {
    let f = Fixture::installed();
    // Under legacy_alter_table, RENAME leaves `child` referring to `parent`;
    // the authorizer reports no write, only the schema shows the change.
    f.assert_refused(
        (
            "0002_rename.sql",
            "PRAGMA legacy_alter_table = ON; ALTER TABLE parent RENAME TO elder;",
        ),
        "row 1 of child refers to a missing row of parent",
    );
}

#[test]
fn a_column_added_with_a_foreign_key_to_a_missing_row_is_refused() {
    let f = Fixture::installed();
    // With enforcement off SQLite lets the default refer to anything.
    f.assert_refused(
        (
            "0002_tag.sql",
            "ALTER TABLE child ADD COLUMN tag INTEGER REFERENCES parent(id) DEFAULT 7;",
        ),
        "row 1 of child refers to a missing row of parent",
    );
}

#[test]
fn insert_or_replace_changing_a_referenced_unique_key_is_refused() {
    let f = Fixture::installed();
    // Row 1 keeps its id but its code 'a', which `tagged` refers to, is gone:
    // REPLACE deleted the old row, which the authorizer never reports.
    f.assert_refused(
        (
            "0002_replace.sql",
            "INSERT OR REPLACE INTO parent (id, code) VALUES (1, 'z');",
        ),
        "row 1 of tagged refers to a missing row of parent",
    );
}

/// `secret`, referred to by `secret_ref`, which the `delete_secret` hook
/// never touches.
const SECRET: (&str, &str) = (
    "0002_secret.sql",
    "CREATE TABLE secret (id INTEGER PRIMARY KEY, v TEXT);
     CREATE TABLE secret_ref (id INTEGER PRIMARY KEY, secret_id INTEGER REFERENCES secret(id));
     INSERT INTO secret VALUES (7, 's');
     INSERT INTO secret_ref VALUES (1, 7);",
);

/// The hostile test plugin at 1.2.0, allowed to write `secret`, with only
/// its `delete_secret` hook (`DELETE FROM secret`).
fn secret_deleter() -> Vec<u8> {
    hostile_with_manifest(
        "hostile",
        "1.2.0",
        r#"{"read":["secret"],"write":["secret"]}"#,
        &["delete_secret"],
    )
}

impl Fixture {
    /// [`Fixture::installed`], then upgraded to 1.1.0, which adds [`SECRET`].
    fn with_secret() -> Fixture {
        let f = Fixture::installed();
        let out = f.upgrade(&f.release("1.1.0", &[SECRET]));
        assert!(out.status.success(), "{}", stderr(&out));
        f
    }
}

#[test]
fn a_hook_deleting_referenced_parent_rows_is_refused() {
    let f = Fixture::with_secret();
    let before_hook = fingerprint(&f.db());

    let release = f.release("1.2.0", &[SECRET]);
    std::fs::write(
        release.dir.join("release.toml"),
        "app = \"shop\"\nversion = \"1.2.0\"\ncore_plugins = [\"hostile\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(release.dir.join("plugins")).unwrap();
    std::fs::write(release.dir.join("plugins/hostile.wasm"), secret_deleter()).unwrap();
    let out = f.upgrade(&release);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("left rows that break foreign keys"), "{err}");
    assert!(
        err.contains("row 1 of secret_ref refers to a missing row of secret"),
        "{err}"
    );
    assert_eq!(fingerprint(&f.db()), before_hook, "the database changed");
}

#[test]
fn a_violation_the_upgrade_did_not_make_is_not_its_business() {
    let f = Fixture::installed();
    // An application bug left `stray` referring to a missing `other` row.
    f.plant("INSERT INTO stray VALUES (2, 99, NULL);");

    // The upgrade writes `parent` only: `child` and `tagged` are checked,
    // `stray` is not, and its old violation does not stop the upgrade.
    let out = f.upgrade(&f.release(
        "1.1.0",
        &[("0002_parent.sql", "INSERT INTO parent VALUES (3, 'c');")],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tables_checked(&out), 2);

    // Nor when the upgrade writes `stray` in a way that cannot change a
    // key (a plain column), or adds a column to `other`.
    let parent = ("0002_parent.sql", "INSERT INTO parent VALUES (3, 'c');");
    let note = (
        "0003_note.sql",
        "UPDATE stray SET note = 'seen' WHERE id = 1;
         ALTER TABLE other ADD COLUMN extra TEXT NOT NULL DEFAULT '';
         UPDATE other SET extra = 'x';",
    );
    let out = f.upgrade(&f.release("1.2.0", &[parent, note]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tables_checked(&out), 0);

    // The same violation in a table whose keys the upgrade writes is
    // refused.
    let before = fingerprint(&f.db());
    let out = f.upgrade(&f.release(
        "1.3.0",
        &[
            parent,
            note,
            (
                "0004_stray.sql",
                "UPDATE stray SET other_id = other_id WHERE id = 1;",
            ),
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("row 2 of stray refers to a missing row of other"),
        "{err}"
    );
    assert_eq!(fingerprint(&f.db()), before, "the database changed");
}

#[test]
fn a_fresh_install_checks_every_table_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let release = TestRelease::new(dir.path(), "r", "shop", "1.0.0", &[SCHEMA]);
    let out = run(&[
        "--home",
        dir.path().join("home").to_str().unwrap(),
        "--release",
        release.path(),
        "upgrade",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tables_checked(&out), 3);
}

#[test]
fn hooks_test_reports_the_foreign_keys_a_hook_would_break_as_the_upgrade_would() {
    let f = Fixture::with_secret();
    let before = fingerprint(&f.db());
    let plugin = f.root.join("hostile.wasm");
    std::fs::write(&plugin, secret_deleter()).unwrap();
    let out = run(&[
        "hooks",
        "test",
        plugin.to_str().unwrap(),
        "--db",
        f.db().to_str().unwrap(),
        "--from",
        "1.1.0",
        "--to",
        "1.2.0",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("ok   hostile/delete_secret"), "{text}");
    assert!(
        text.contains("FAIL foreign keys: the upgrade would be rolled back"),
        "{text}"
    );
    assert!(
        text.contains("row 1 of secret_ref refers to a missing row of secret"),
        "{text}"
    );
    assert_eq!(fingerprint(&f.db()), before, "the database changed");
}

//! `uplift adopt`: a database uplift did not create is adopted at the
//! release whose schema it has exactly, or refused with every difference;
//! its rows are never touched.

use std::path::{Path, PathBuf};

use crate::support::{example_release, file_names, run, stderr, stdout};

/// A home whose database the example application made before it used
/// uplift: its schema built by `sql`, its rows by the release's fixtures.
struct Site {
    _dir: tempfile::TempDir,
    home: PathBuf,
}

impl Site {
    fn new(sql: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let conn = rusqlite::Connection::open(home.join("db.sqlite3")).unwrap();
        conn.execute_batch(sql).unwrap();
        Site { _dir: dir, home }
    }

    /// A site made by the example application's own scripts at `version`:
    /// its migrations run as plain SQL, then its sample rows.
    fn at(version: &str) -> Site {
        let release = example_release(version);
        let mut sql = String::new();
        for dir in ["migrations", "fixtures"] {
            for name in file_names(&release.join(dir)) {
                sql.push_str(&std::fs::read_to_string(release.join(dir).join(name)).unwrap());
                sql.push('\n');
            }
        }
        Site::new(&sql)
    }

    fn db(&self) -> PathBuf {
        self.home.join("db.sqlite3")
    }

    fn uplift(&self, args: &[&str]) -> std::process::Output {
        let release = example_release("1.0.0");
        let mut all = vec![
            "--home",
            self.home.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        run(&all)
    }

    fn sql(&self, sql: &str) {
        rusqlite::Connection::open(self.db())
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    fn backups(&self) -> Vec<String> {
        file_names(&self.home.join("backups"))
    }
}

/// Every row and the definition of every object that is not uplift's: what
/// adopting must never change.
fn application_data(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    let objects: Vec<(String, String, Option<String>)> = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema
             WHERE tbl_name NOT LIKE 'uplift\\_%' ESCAPE '\\' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = String::new();
    for (kind, name, sql) in objects {
        out.push_str(&format!("{kind} {name}: {sql:?}\n"));
        if kind == "table" {
            let query = format!("SELECT * FROM \"{name}\" ORDER BY rowid");
            let mut stmt = conn.prepare(&query).unwrap();
            let columns = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..columns {
                    let value: rusqlite::types::Value = row.get(i).unwrap();
                    out.push_str(&format!("{value:?}|"));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Asserts the application's data is still `before`, showing the first
/// line that differs.
fn assert_unchanged(db: &Path, before: &str) {
    let after = application_data(db);
    if let Some((b, a)) = before.lines().zip(after.lines()).find(|(b, a)| b != a) {
        panic!("the application's data changed: {b:?} became {a:?}");
    }
    assert_eq!(before.len(), after.len(), "the application's data changed");
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[test]
fn a_database_made_by_plain_sql_scripts_is_adopted_at_the_release_it_matches_then_upgrades() {
    let site = Site::at("0.6.4");
    let rows_before = application_data(&site.db());

    // status says plainly it can be adopted, and at which release.
    let out = site.uplift(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("not managed by uplift"), "{text}");
    assert!(
        text.contains("its schema is release 0.6.4's: `uplift adopt --as 0.6.4` adopts it"),
        "{text}"
    );
    let status = json(&site.uplift(&["status", "--json"]));
    assert_eq!(status["adoptable"]["matches"], "0.6.4");
    let tried: Vec<(&str, u64)> = status["adoptable"]["tried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["version"].as_str().unwrap(),
                t["differences"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tried[0].0, "1.0.0", "newest first: {tried:?}");
    assert!(tried[0].1 > 0, "1.0.0's schema is not 0.6.4's: {tried:?}");
    assert!(tried.contains(&("0.6.4", 0)), "{tried:?}");

    let out = site.uplift(&["adopt", "--as", "0.6.4", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let adopted = json(&out);
    assert_eq!(adopted["outcome"], "adopted");
    assert_eq!(adopted["version"], "0.6.4");
    assert_eq!(adopted["migrations"].as_array().unwrap().len(), 5);
    assert!(adopted["differences"].as_array().unwrap().is_empty());
    assert_eq!(site.backups().len(), 1, "a backup is made before adopting");

    assert_unchanged(&site.db(), &rows_before);
    let conn = rusqlite::Connection::open(site.db()).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM uplift_meta WHERE key = 'data_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "0.6.4");
    // The history of migrations, with the release's checksums, marked adopted.
    let release = uplift::release::Release::load(&example_release("1.0.0")).unwrap();
    let recorded: Vec<(u32, String, bool)> = conn
        .prepare("SELECT id, checksum, adopted FROM uplift_migrations ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: Vec<(u32, String, bool)> = release.migrations().unwrap()[..5]
        .iter()
        .map(|m| (m.id, m.checksum.clone(), true))
        .collect();
    assert_eq!(recorded, expected);
    drop(conn);

    let out = site.uplift(&["migrations", "list", "--json"]);
    let list = json(&out);
    assert_eq!(list[0]["adopted"], true, "{list}");

    // From here it is a site like any other: the upgrade to 1.0.0 runs the
    // remaining migrations and the hooks for 0.6.4 → 1.0.0.
    let out = site.uplift(&["upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A line per hook as it starts, even into a pipe.
    assert!(
        stderr(&out).contains("hook badges/first_lesson"),
        "{}",
        stderr(&out)
    );
    let history = json(&site.uplift(&["history", "--json"]));
    let upgraded = &history[1];
    assert_eq!(upgraded["event"], "upgrade", "{history}");
    assert_eq!(upgraded["from_version"], "0.6.4");
    assert_eq!(
        upgraded["details"]["migrations"].as_array().unwrap().len(),
        2
    );
    let status = json(&site.uplift(&["status", "--json"]));
    assert_eq!(status["state"], "up to date");
    assert_eq!(status["adopted"]["version"], "0.6.4");
    assert!(
        status["adopted"]["differences"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// The 0.2.0 schema as another tool writes it: quoted names, lower-case
/// types, constraints apart, its own history table, and a cache.
const BY_ANOTHER_TOOL: &str = r#"
CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);
INSERT INTO "django_migrations" ("app", "name", "applied")
    VALUES ('learnhub', '0001_initial', '2020-01-01'), ('learnhub', '0002_lesson', '2020-02-01');
CREATE TABLE "facility" ("id" integer PRIMARY KEY, "name" text NOT NULL);
CREATE TABLE "learner" (
    "id" integer PRIMARY KEY,
    "facility_id" integer NOT NULL,
    "username" text NOT NULL,
    "joined" text,
    "email" text,
    FOREIGN KEY ("facility_id") REFERENCES "facility" ("id"));
CREATE TABLE "lesson" ("id" integer PRIMARY KEY, "facility_id" integer REFERENCES "facility" ("id"),
    "title" text NOT NULL, "created" text);
CREATE TABLE "cache_pages" ("key" text PRIMARY KEY, "body" blob);
CREATE INDEX "cache_pages_by_body" ON "cache_pages" ("body");
INSERT INTO "facility" VALUES (1, 'Kakuma');
INSERT INTO "learner" VALUES (1, 1, 'amina', '2020-01-02', 'amina@example.org');
"#;

#[test]
fn a_database_made_by_another_tool_is_adopted_leaving_its_tables_alone() {
    let site = Site::new(BY_ANOTHER_TOOL);
    let status = json(&site.uplift(&["status", "--json"]));
    assert_eq!(status["adoptable"]["matches"], "0.2.0", "{status}");
    let before = application_data(&site.db());

    let out = site.uplift(&["adopt", "--as", "0.2.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("3 migrations recorded as applied"), "{text}");
    assert!(
        text.contains("left alone (release.toml ignores them): index cache_pages_by_body, table cache_pages, table django_migrations"),
        "{text}"
    );
    assert_unchanged(&site.db(), &before);
}

/// The 0.6.4 schema with four changes an operator might find on a site.
fn drifted() -> Site {
    let site = Site::at("0.6.4");
    site.sql(
        "DROP INDEX learner_username;
         ALTER TABLE learner ADD COLUMN nickname TEXT;
         CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         ALTER TABLE progress RENAME TO progress_old;
         CREATE TABLE progress (learner_id INTEGER NOT NULL REFERENCES learner(id),
                                lesson_id INTEGER NOT NULL REFERENCES lesson(id),
                                score INTEGER, PRIMARY KEY (learner_id, lesson_id));
         INSERT INTO progress SELECT * FROM progress_old;
         DROP TABLE progress_old;",
    );
    site
}

#[test]
fn a_drifted_database_is_refused_listing_every_difference_and_nothing_changes() {
    let site = drifted();
    let before = file_bytes(&site.db());

    let out = site.uplift(&["adopt", "--as", "0.6.4"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not have the schema of release 0.6.4 (4 differences)"),
        "{err}"
    );
    for difference in [
        "index learner_username is missing: release 0.6.4 has it",
        "table learner: column nickname is extra (this database has it as TEXT); column order is",
        "table notes is in this database but not in release 0.6.4",
        "table progress: column score is INTEGER in this database but TEXT in release 0.6.4",
        "`uplift adopt --as 0.6.4 --force`",
    ] {
        assert!(
            err.contains(difference),
            "missing {difference:?} in:\n{err}"
        );
    }
    assert!(
        file_bytes(&site.db()) == before,
        "the database file is untouched"
    );
    assert!(
        site.backups().is_empty(),
        "nothing is written when adopting is refused"
    );

    let out = site.uplift(&["adopt", "--as", "0.6.4", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"]["code"], "schema-differs");

    // status tells the closest release, and the command that lists why.
    let text = stdout(&site.uplift(&["status"]));
    assert!(
        text.contains("its schema is none of the releases this one knows; `uplift adopt --as 0.6.4` (the closest)"),
        "{text}"
    );
    assert!(
        file_bytes(&site.db()) == before,
        "the database file changed"
    );
}

#[test]
fn force_adopts_despite_differences_and_records_what_it_overrode() {
    let site = drifted();
    let rows_before = application_data(&site.db());

    let out = site.uplift(&["adopt", "--as", "0.6.4", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: adopted despite 4 difference(s)"),
        "{err}"
    );
    assert!(
        err.contains("table notes is in this database but not in release 0.6.4"),
        "{err}"
    );
    assert_unchanged(&site.db(), &rows_before);

    let conn = rusqlite::Connection::open(site.db()).unwrap();
    let (outcome, details): (String, String) = conn
        .query_row(
            "SELECT outcome, details FROM uplift_history WHERE event = 'adopt'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(outcome, "adopted despite differences");
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(details["differences"].as_array().unwrap().len(), 4);
    assert!(
        details["backup"]
            .as_str()
            .is_some_and(|b| b.contains("backups"))
    );

    let history = json(&site.uplift(&["history", "--json"]));
    assert_eq!(history[0]["event"], "adopt", "{history}");
    assert_eq!(history[0]["to_version"], "0.6.4");
    assert_eq!(
        history[0]["details"]["differences"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let text = stdout(&site.uplift(&["history"]));
    assert!(
        text.contains("adopt                  0.6.4              adopted despite differences"),
        "{text}"
    );

    let text = stdout(&site.uplift(&["status"]));
    assert!(text.contains("adopted          at 0.6.4 on"), "{text}");
    assert!(
        text.contains("despite 4 difference(s) from its schema (--force)"),
        "{text}"
    );
    assert!(
        text.contains("  overridden     table notes is in this database"),
        "{text}"
    );
}

#[test]
fn adopting_what_cannot_be_adopted_says_why_and_changes_nothing() {
    // No database at all.
    let dir = tempfile::tempdir().unwrap();
    let release = example_release("1.0.0");
    let out = run(&[
        "--home",
        dir.path().join("home").to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "adopt",
        "--as",
        "0.6.4",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("so nothing to adopt: `uplift upgrade` installs"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("home/db.sqlite3").exists(),
        "no database is created"
    );

    // An empty database.
    let empty = Site::new("");
    let out = empty.uplift(&["adopt", "--as", "0.6.4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has no tables, so nothing to adopt"),
        "{}",
        stderr(&out)
    );

    let site = Site::at("0.6.4");
    let before = file_bytes(&site.db());
    // A version the release knows nothing of.
    let out = site.uplift(&["adopt", "--as", "0.5.0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("release 1.0.0 does not know the schema of 0.5.0")
            && err.contains("(1.0.0, 0.6.4, 0.2.0, 0.1.0)"),
        "{err}"
    );
    // Not a version at all: a usage error.
    let out = site.uplift(&["adopt", "--as", "banana"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--as"), "{}", stderr(&out));
    assert!(
        file_bytes(&site.db()) == before,
        "the database file changed"
    );
    assert!(site.backups().is_empty());

    // Already managed.
    assert!(site.uplift(&["adopt", "--as", "0.6.4"]).status.success());
    let out = site.uplift(&["adopt", "--as", "0.6.4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("is already managed by uplift (data version 0.6.4), so nothing to adopt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_release_toml_with_a_bad_adopt_table_is_named_and_changes_nothing() {
    let site = Site::at("0.2.0");
    let before = file_bytes(&site.db());
    for (adopt, says) in [
        (
            "ignore = [\"cache_[\"]",
            "`adopt.ignore` pattern \"cache_[\" is not a valid glob",
        ),
        (
            "releases = { \"zero\" = 1 }",
            "`adopt.releases` key \"zero\" is not a version",
        ),
        (
            "releases = { \"0.2.0\" = 42 }",
            "migrations/ has no migration numbered 0042",
        ),
        (
            "releases = { \"2.0.0\" = 1 }",
            "lists 2.0.0, which is not older than this release",
        ),
        ("baseline = 1", "unknown field `baseline`"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("release");
        std::fs::create_dir_all(release.join("migrations")).unwrap();
        for name in file_names(&example_release("1.0.0").join("migrations")) {
            std::fs::copy(
                example_release("1.0.0").join("migrations").join(&name),
                release.join("migrations").join(&name),
            )
            .unwrap();
        }
        std::fs::write(
            release.join("release.toml"),
            format!("app = \"learnhub\"\nversion = \"1.0.0\"\n[adopt]\n{adopt}\n"),
        )
        .unwrap();
        let out = run(&[
            "--home",
            site.home.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
            "adopt",
            "--as",
            "0.2.0",
        ]);
        assert_eq!(out.status.code(), Some(1), "{adopt}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("release.toml") && err.contains(says),
            "{adopt}: {err}"
        );
    }
    assert!(
        file_bytes(&site.db()) == before,
        "the database file changed"
    );
    assert!(site.backups().is_empty());
}

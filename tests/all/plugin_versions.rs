//! Plugins with lives of their own: a plugin's hooks run when the plugin is
//! activated or upgraded, even when the application's version stays; an
//! older plugin than the data has seen is refused; a disabled plugin keeps
//! its tables and continues from its recorded version. Each in a real
//! upgrade (through `uplift run`'s start-up check too) and in
//! `verify-paths`. The plugin is the example application's `notes`, built
//! as version 1.0.0 (crate `notes-v1`) and 2.0.0 (crate `notes`).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{
    component, example_release, file_names, fingerprint, query_i64, run, stderr, stdout,
};

/// A home and the release folders of one test.
struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Site {
            home: root.join("home"),
            root,
            _dir: dir,
        }
    }

    /// A learnhub release `version` with learnhub 0.1.0's schema and, as
    /// core plugins, the components `plugins` (name, file).
    fn release(&self, version: &str, plugins: &[(&str, &Path)]) -> PathBuf {
        let dir = self.root.join(format!("release-{version}"));
        std::fs::create_dir_all(dir.join("migrations")).unwrap();
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        let initial = "migrations/0001_initial.sql";
        std::fs::copy(example_release("0.1.0").join(initial), dir.join(initial)).unwrap();
        let names: Vec<String> = plugins.iter().map(|(n, _)| format!("{n:?}")).collect();
        std::fs::write(
            dir.join("release.toml"),
            format!(
                "app = \"learnhub\"\nversion = \"{version}\"\ncore_plugins = [{}]\n",
                names.join(", ")
            ),
        )
        .unwrap();
        for (name, file) in plugins {
            std::fs::copy(file, dir.join("plugins").join(format!("{name}.wasm"))).unwrap();
        }
        dir
    }

    /// `uplift --home HOME --release RELEASE ARGS`.
    fn uplift(&self, release: &Path, args: &[&str]) -> Output {
        let mut all = vec![
            "--home",
            self.home.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Runs `uplift ARGS` and insists that it succeeds; returns stdout.
    fn ok(&self, release: &Path, args: &[&str]) -> String {
        let out = self.uplift(release, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// Installs `release` with three learners.
    fn install(&self, release: &Path) {
        self.ok(release, &["upgrade"]);
        rusqlite::Connection::open(self.db())
            .unwrap()
            .execute_batch(
                "INSERT INTO facility (id, name) VALUES (1, 'North');
                 INSERT INTO learner (facility_id, username) VALUES (1, 'a'), (1, 'b'), (1, 'c');",
            )
            .unwrap();
    }

    /// A home of learnhub 1.0.0 (no core plugins) with three learners, whose
    /// data activated notes from `file`, in the home's plugins/; and the
    /// release.
    fn with_notes_from(file: &Path) -> (Site, PathBuf) {
        let site = Site::new();
        let release = site.release("1.0.0", &[]);
        site.install(&release);
        site.home_plugin(file);
        site.ok(&release, &["plugin", "enable", "notes"]);
        site.ok(&release, &["upgrade"]);
        (site, release)
    }

    /// Puts `file` in the home's plugins/ as notes.wasm (replacing it).
    fn home_plugin(&self, file: &Path) {
        let dir = self.home.join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(file, dir.join("notes.wasm")).unwrap();
    }

    fn db(&self) -> PathBuf {
        self.home.join("db.sqlite3")
    }

    fn backups(&self) -> Vec<String> {
        file_names(&self.home.join("backups"))
    }

    /// The version of notes the data records.
    fn recorded(&self) -> Option<String> {
        rusqlite::Connection::open(self.db())
            .unwrap()
            .query_row(
                "SELECT version FROM uplift_plugins WHERE name = 'notes'",
                [],
                |r| r.get(0),
            )
            .ok()
    }

    fn status(&self, release: &Path) -> serde_json::Value {
        serde_json::from_str(&self.ok(release, &["status", "--json"])).unwrap()
    }
}

fn notes_v1() -> PathBuf {
    component("notes-v1")
}

fn notes_v2() -> PathBuf {
    component("notes")
}

fn has_column(db: &Path, table: &str, column: &str) -> bool {
    query_i64(
        db,
        &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'"),
    ) == 1
}

fn table_exists(db: &Path, table: &str) -> bool {
    query_i64(
        db,
        &format!("SELECT count(*) FROM sqlite_schema WHERE name = '{table}'"),
    ) == 1
}

#[test]
fn enabling_a_plugin_activates_it_at_the_next_start_with_a_backup() {
    let site = Site::new();
    let release = site.release("1.0.0", &[]);
    site.install(&release);
    site.home_plugin(&notes_v1());
    // Installed but not enabled: nothing to do.
    assert_eq!(
        site.ok(&release, &["upgrade"]),
        "up to date: data version 1.0.0\n"
    );

    site.ok(&release, &["plugin", "enable", "notes"]);
    let status = site.status(&release);
    assert_eq!(status["state"], "upgrade needed");
    assert_eq!(
        status["plugin_changes"],
        serde_json::json!([{"plugin": "notes", "from": null, "to": "1.0.0"}])
    );
    assert_eq!(status["hooks"][0]["hook"], "create_notes");
    let plan = site.ok(&release, &["upgrade", "--plan"]);
    assert!(
        plan.contains("plan: upgrade the plugins of data version 1.0.0")
            && plan.contains("plugin     notes (first activation) -> 1.0.0")
            && plan.contains("hook       notes/create_notes"),
        "{plan}"
    );
    assert!(site.backups().is_empty());

    // `uplift run`'s start-up check notices it, and upgrades first.
    let out = site.uplift(&release, &["run", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(query_i64(&site.db(), "SELECT count(*) FROM notes_note"), 3);
    assert_eq!(site.recorded().as_deref(), Some("1.0.0"));
    let backups = site.backups();
    assert!(
        backups.len() == 1 && backups[0].starts_with("db-v1.0.0_"),
        "{backups:?}"
    );
    assert_eq!(
        site.ok(&release, &["upgrade"]),
        "up to date: data version 1.0.0\n"
    );
}

#[test]
fn a_failing_activation_is_rolled_back_whole_and_named() {
    // A release without learnhub's `learner`: create_notes creates its
    // table, then fails reading learners; the table goes with the rest.
    let site = Site::new();
    let release = site.root.join("shop");
    std::fs::create_dir_all(release.join("migrations")).unwrap();
    std::fs::write(
        release.join("release.toml"),
        "app = \"shop\"\nversion = \"1.0.0\"\ncore_plugins = []\n",
    )
    .unwrap();
    std::fs::write(
        release.join("migrations/0001_item.sql"),
        "CREATE TABLE item (id INTEGER PRIMARY KEY);",
    )
    .unwrap();
    site.ok(&release, &["upgrade"]);
    site.home_plugin(&notes_v1());
    site.ok(&release, &["plugin", "enable", "notes"]);
    let before = fingerprint(&site.db());

    let out = site.uplift(&release, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("notes/create_notes") && err.contains("rolled back"),
        "{err}"
    );
    assert_eq!(fingerprint(&site.db()), before);
    assert!(!table_exists(&site.db(), "notes_note"));
    assert_eq!(site.recorded(), None);
}

#[test]
fn a_newer_plugin_in_the_home_upgrades_its_data_from_the_recorded_version() {
    let (site, release) = Site::with_notes_from(&notes_v1());
    assert!(!has_column(&site.db(), "notes_note", "pinned"));

    site.home_plugin(&notes_v2());
    let status = site.status(&release);
    assert_eq!(
        status["plugin_changes"],
        serde_json::json!([{"plugin": "notes", "from": "1.0.0", "to": "2.0.0"}])
    );
    let out = site.ok(&release, &["upgrade"]);
    assert!(
        out.contains("upgraded the plugins of data version 1.0.0")
            && out.contains("plugin     notes 1.0.0 -> 2.0.0")
            && out.contains("hook       notes/create_notes")
            && out.contains("hook       notes/add_pinned"),
        "{out}"
    );
    assert!(has_column(&site.db(), "notes_note", "pinned"));
    assert_eq!(query_i64(&site.db(), "SELECT count(*) FROM notes_note"), 3);
    assert_eq!(site.recorded().as_deref(), Some("2.0.0"));
    assert_eq!(site.backups().len(), 2);
    assert_eq!(
        query_i64(
            &site.db(),
            "SELECT count(*) FROM uplift_meta WHERE key = 'data_version' AND value = '1.0.0'"
        ),
        1
    );
}

#[test]
fn an_older_plugin_than_the_data_has_seen_is_refused_and_changes_nothing() {
    let (site, release) = Site::with_notes_from(&notes_v2());
    let before_notes = site.backups();
    assert_eq!(before_notes.len(), 1);

    site.home_plugin(&notes_v1());
    let before = fingerprint(&site.db());
    let out = site.uplift(&release, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for part in [
        "plugin notes 1.0.0 is older than the data, which was upgraded with notes 2.0.0",
        "Install notes 2.0.0 or newer again",
        "`uplift plugin disable notes`",
        &format!("all that qualify: {}", before_notes[0]),
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    let json = site.uplift(&release, &["upgrade", "--json"]);
    let failed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(failed["error"]["code"], "plugin-downgrade");
    let started = site.uplift(&release, &["run", "--", "true"]);
    assert_eq!(started.status.code(), Some(1), "{}", stderr(&started));
    assert_eq!(site.status(&release)["state"], "plugin older than data");

    assert_eq!(fingerprint(&site.db()), before);
    assert_eq!(site.backups(), before_notes);
}

#[test]
fn a_disabled_plugin_keeps_its_tables_and_continues_from_its_recorded_version() {
    let (site, release) = Site::with_notes_from(&notes_v1());

    site.ok(&release, &["plugin", "disable", "notes"]);
    // A newer component while it is disabled changes nothing either.
    site.home_plugin(&notes_v2());
    assert_eq!(
        site.ok(&release, &["upgrade"]),
        "up to date: data version 1.0.0\n"
    );
    assert_eq!(query_i64(&site.db(), "SELECT count(*) FROM notes_note"), 3);
    assert_eq!(site.recorded().as_deref(), Some("1.0.0"));
    let status = site.status(&release);
    assert_eq!(status["state"], "up to date");
    assert_eq!(status["plugins"][0]["active"], false);
    assert_eq!(status["plugins"][0]["recorded_version"], "1.0.0");

    site.ok(&release, &["plugin", "enable", "notes"]);
    let out = site.ok(&release, &["upgrade"]);
    assert!(
        out.contains("plugin     notes 1.0.0 -> 2.0.0") && out.contains("notes/add_pinned"),
        "{out}"
    );
    assert!(has_column(&site.db(), "notes_note", "pinned"));
    assert_eq!(site.recorded().as_deref(), Some("2.0.0"));
}

#[test]
fn bad_plugin_ranges_versions_and_records_are_named_and_change_nothing() {
    let site = Site::new();
    let release = site.release("1.0.0", &[]);
    site.install(&release);
    let before = fingerprint(&site.db());
    let plugins = site.home.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (manifest, expected) in [
        (
            r#"{"uplift_manifest":1,"name":"notes","version":"2.0.0","hooks":[{"name":"h","plugin_old_version":"<<2"}]}"#,
            "hook h plugin_old_version: invalid range \"<<2\"",
        ),
        (
            r#"{"uplift_manifest":1,"name":"notes","version":"two","hooks":[]}"#,
            "version: invalid version \"two\"",
        ),
    ] {
        // A component holding nothing but its manifest: only that is read.
        let mut wasm = wasm_encoder::Component::new();
        wasm.section(&wasm_encoder::CustomSection {
            name: "uplift:manifest".into(),
            data: manifest.as_bytes().into(),
        });
        let wasm = wasm.finish();
        std::fs::write(plugins.join("notes.wasm"), &wasm).unwrap();
        for args in [&["upgrade"][..], &["run", "--", "true"]] {
            let out = site.uplift(&release, args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = stderr(&out);
            assert!(
                err.contains("notes.wasm") && err.contains(expected),
                "{args:?}: {err}"
            );
        }
    }
    std::fs::remove_file(plugins.join("notes.wasm")).unwrap();
    assert_eq!(fingerprint(&site.db()), before);

    site.home_plugin(&notes_v1());
    site.ok(&release, &["plugin", "enable", "notes"]);
    site.ok(&release, &["upgrade"]);
    rusqlite::Connection::open(site.db())
        .unwrap()
        .execute(
            "UPDATE uplift_plugins SET version = 'soon' WHERE name = 'notes'",
            [],
        )
        .unwrap();
    let before = fingerprint(&site.db());
    let out = site.uplift(&release, &["upgrade", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("records plugin notes at version \"soon\""),
        "{}",
        stderr(&out)
    );
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed["error"]["code"], "bookkeeping");
    assert_eq!(fingerprint(&site.db()), before);
}

/// `uplift verify-paths --json` over `releases`: its exit code and reports
/// (on failure, the failure object's details, its code `path-problems`).
fn verify_paths(releases: &[&Path]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["verify-paths", "--json"];
    args.extend(releases.iter().map(|r| r.to_str().unwrap()));
    let out = run(&args);
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("verify-paths prints JSON");
    if json["outcome"] == "failed" {
        assert_eq!(json["error"]["code"], "path-problems", "{json}");
        return (out.status.code(), json["error"]["details"].clone());
    }
    (out.status.code(), json)
}

/// The plugin changes of the path `from` -> `to`, as text.
fn path_plugins(reports: &serde_json::Value, from: &str, to: &str) -> Vec<String> {
    let report = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["from"] == from && r["to"] == to)
        .unwrap_or_else(|| panic!("no path {from} -> {to}"));
    assert_eq!(report["result"], "ok", "{report}");
    report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {} -> {}", c["plugin"], c["from"], c["to"]))
        .collect()
}

#[test]
fn verify_paths_shows_a_plugin_activated_and_upgraded_by_releases() {
    let site = Site::new();
    let (v1, v2) = (notes_v1(), notes_v2());
    let a = site.release("1.0.0", &[]);
    let b = site.release("1.1.0", &[("notes", &v1)]);
    let c = site.release("1.2.0", &[("notes", &v2)]);
    let (code, reports) = verify_paths(&[&a, &b, &c]);
    assert_eq!(code, Some(0), "{reports}");
    assert_eq!(
        path_plugins(&reports, "1.0.0", "1.1.0"),
        [r#""notes" null -> "1.0.0""#]
    );
    assert_eq!(
        path_plugins(&reports, "1.0.0", "1.2.0"),
        [r#""notes" null -> "2.0.0""#]
    );
    assert_eq!(
        path_plugins(&reports, "1.1.0", "1.2.0"),
        [r#""notes" "1.0.0" -> "2.0.0""#]
    );

    let out = run(&["verify-paths", b.to_str().unwrap(), c.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("       plugin notes 1.0.0 -> 2.0.0"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verify_paths_fails_a_release_that_ships_an_older_plugin() {
    let site = Site::new();
    let (v1, v2) = (notes_v1(), notes_v2());
    let b = site.release("1.1.0", &[("notes", &v2)]);
    let c = site.release("1.2.0", &[("notes", &v1)]);
    let (code, reports) = verify_paths(&[&b, &c]);
    assert_eq!(code, Some(1), "{reports}");
    assert_eq!(reports[0]["result"], "upgrade failed");
    let problem = reports[0]["problems"][0].as_str().unwrap();
    assert!(
        problem.contains(
            "plugin notes 1.0.0 is older than the data, which was upgraded with notes 2.0.0"
        ),
        "{problem}"
    );
}

#[test]
fn verify_paths_keeps_a_dropped_plugin_and_continues_it_when_shipped_again() {
    // 1.1.0 no longer ships notes (its record and tables stay); 1.2.0 ships
    // it again, newer: data from 1.0.0 continues from notes 1.0.0.
    let site = Site::new();
    let (v1, v2) = (notes_v1(), notes_v2());
    let a = site.release("1.0.0", &[("notes", &v1)]);
    let b = site.release("1.1.0", &[]);
    let c = site.release("1.2.0", &[("notes", &v2)]);
    let (code, reports) = verify_paths(&[&a, &b, &c]);
    assert_eq!(code, Some(0), "{reports}");
    assert!(path_plugins(&reports, "1.0.0", "1.1.0").is_empty());
    assert_eq!(
        path_plugins(&reports, "1.0.0", "1.2.0"),
        [r#""notes" "1.0.0" -> "2.0.0""#]
    );
    assert_eq!(
        path_plugins(&reports, "1.1.0", "1.2.0"),
        [r#""notes" null -> "2.0.0""#]
    );
}

//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root folder.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// An `uplift` command with a clean environment (no UPLIFT_HOME or
/// UPLIFT_RELEASE leaking in from the developer's shell).
pub(crate) fn uplift() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uplift"));
    cmd.env_remove("UPLIFT_HOME").env_remove("UPLIFT_RELEASE");
    cmd
}

/// Runs `uplift ARGS` and returns its output.
pub(crate) fn run(args: &[&str]) -> Output {
    uplift().args(args).output().expect("uplift runs")
}

/// Standard output as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The example application's release folder for `version`.
pub(crate) fn example_release(version: &str) -> PathBuf {
    repo_root().join("example-hooks/app/releases").join(version)
}

/// A release folder written by a test: `release.toml` plus migrations.
pub(crate) struct TestRelease {
    pub dir: PathBuf,
}

impl TestRelease {
    /// Creates `root/name` with a release.toml for `app` at `version` and the
    /// given migrations (file name, SQL).
    pub(crate) fn new(
        root: &Path,
        name: &str,
        app: &str,
        version: &str,
        migrations: &[(&str, &str)],
    ) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("migrations")).unwrap();
        std::fs::write(
            dir.join("release.toml"),
            format!("app = \"{app}\"\nversion = \"{version}\"\ncore_plugins = []\n"),
        )
        .unwrap();
        for (file, sql) in migrations {
            std::fs::write(dir.join("migrations").join(file), sql).unwrap();
        }
        TestRelease { dir }
    }

    pub(crate) fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

/// Every row of every table (including uplift's), as text, in a stable
/// order: a fingerprint that changes if anything in the database changes,
/// but for `uplift_history`. That table is the one thing a failed upgrade
/// adds, after its rollback: the record of the attempt (tests of the
/// history check it themselves).
pub(crate) fn fingerprint(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut out = String::new();
    let mut tables = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema
             WHERE sql IS NOT NULL AND tbl_name <> 'uplift_history' ORDER BY type, name",
        )
        .unwrap();
    let schema: Vec<(String, String)> = tables
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, sql) in &schema {
        out.push_str(sql);
        out.push('\n');
        if sql.starts_with("CREATE TABLE") {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT * FROM \"{}\" ORDER BY 1",
                    name.replace('"', "\"\"")
                ))
                .unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..n {
                    let v: rusqlite::types::Value = row.get(i).unwrap();
                    out.push_str(&format!("{v:?}|"));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Runs one SQL query returning a single integer.
pub(crate) fn query_i64(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A `Command` running the real `sqlite3` shell, which `scripts/setup`
/// installs; panics with that hint when it is missing.
pub(crate) fn sqlite3() -> Command {
    let found = Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "the sqlite3 shell is missing: run scripts/setup");
    Command::new("sqlite3")
}

/// Runs a command to completion with stdin closed and returns its output.
pub(crate) fn run_cmd(cmd: &mut Command) -> Output {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .expect("the command should start")
}

/// The names of the files in a folder, sorted (empty if it does not exist).
pub(crate) fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("readable entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// A plugin component built by `scripts/build-plugins` (crate name, e.g.
/// `uplift-test-hostile`).
pub(crate) fn component(crate_name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins first",
        path.display()
    );
    path
}

/// Installs the example application's release `version` into a new home at
/// `home` and loads that release's fixtures; returns the database's path.
pub(crate) fn install_example(home: &Path, version: &str) -> PathBuf {
    let release = example_release(version);
    let out = run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "upgrade",
    ]);
    assert!(out.status.success(), "install {version}: {}", stderr(&out));
    let db = home.join("db.sqlite3");
    let loaded = uplift::release::Release::load(&release).unwrap();
    uplift::upgrade_paths::load_fixtures(&db, &loaded).unwrap();
    db
}

/// The hostile test plugin's component with its manifest replaced: plugin
/// `name` at `version`, `capabilities` (the manifest's JSON object) and the
/// hooks `hooks` (any versions, in that order).
pub(crate) fn hostile_with_manifest(
    name: &str,
    version: &str,
    capabilities: &str,
    hooks: &[&str],
) -> Vec<u8> {
    let hooks: Vec<String> = hooks
        .iter()
        .map(|h| format!(r#"{{"name":"{h}"}}"#))
        .collect();
    let json = format!(
        r#"{{"uplift_manifest":1,"name":"{name}","version":"{version}","capabilities":{capabilities},"hooks":[{}]}}"#,
        hooks.join(",")
    );
    let manifest = uplift::hooks::HookManifest::from_section(json.as_bytes()).unwrap();
    let component = std::fs::read(component("uplift-test-hostile")).unwrap();
    uplift::hooks::manifest::embed_manifest(&component, &manifest).unwrap()
}

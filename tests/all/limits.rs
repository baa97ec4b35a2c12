//! Every resource a hook can make uplift use is bounded (issue 14,
//! "Exhaustion"): one test per class of attack, at small sizes, with the
//! greedy test plugin (`tests/plugins/greedy`). Each runs in its own
//! `uplift` process, as an operator's would: SQLite's memory limit and the
//! watchdog's samples of memory and open files are process-wide, and the
//! last resort against a stuck call is to end the process.
//!
//! Each test checks that the attack is stopped with a message naming the
//! plugin, the hook and the limit, that the database is unchanged, and that
//! a well-behaved hook runs normally afterwards (in the same process for
//! `uplift hooks test`, which goes on to the next hook; in the next run for
//! an upgrade that uplift had to end). `bench/exhaustion` runs the same
//! attacks at full size.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::support::{TestRelease, fingerprint, run, stderr, stdout};

/// The greedy plugin's component with only the hooks `hooks`, in that
/// order (any versions).
fn greedy_with(hooks: &[&str]) -> Vec<u8> {
    let hooks: Vec<String> = hooks
        .iter()
        .map(|h| format!(r#"{{"name":"{h}"}}"#))
        .collect();
    let json = format!(
        r#"{{"uplift_manifest":1,"name":"greedy","version":"0.1.0","capabilities":{{"read":["attack_size"],"owns":"greedy_"}},"hooks":[{}]}}"#,
        hooks.join(",")
    );
    let manifest = uplift::hooks::HookManifest::from_section(json.as_bytes()).unwrap();
    let component = std::fs::read(crate::support::component("uplift-test-greedy")).unwrap();
    uplift::hooks::manifest::embed_manifest(&component, &manifest).unwrap()
}

/// A home with `settings` as its `uplift.toml`, a database holding the
/// attack's size, and the greedy plugin.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(settings: &str, attack: &str, size: i64) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("uplift.toml"), settings).unwrap();
        let conn = Connection::open(dir.path().join("app.sqlite3")).unwrap();
        conn.execute_batch("CREATE TABLE attack_size(k TEXT PRIMARY KEY, n INTEGER);")
            .unwrap();
        conn.execute("INSERT INTO attack_size VALUES (?1, ?2)", (attack, size))
            .unwrap();
        Site { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("app.sqlite3")
    }

    /// `uplift hooks test --json` of the greedy plugin with hooks `hooks`
    /// on a copy of the database: the report and how long it took.
    fn trial(&self, hooks: &[&str]) -> (serde_json::Value, Duration) {
        let plugin = self.dir.path().join("greedy.wasm");
        std::fs::write(&plugin, greedy_with(hooks)).unwrap();
        let started = Instant::now();
        let out = run(&[
            "--home",
            self.home().to_str().unwrap(),
            "hooks",
            "test",
            plugin.to_str().unwrap(),
            "--db",
            self.db().to_str().unwrap(),
            "--from",
            "1.0.0",
            "--to",
            "1.1.0",
            "--json",
        ]);
        let took = started.elapsed();
        let json: serde_json::Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
        // A hook stopped at a limit fails the trial: the report is the
        // failure object's details.
        let report = if json["outcome"] == "failed" {
            assert_eq!(json["error"]["code"], "hook", "{json:#}");
            json["error"]["details"].clone()
        } else {
            json
        };
        (report, took)
    }
}

/// Runs `attack` in `uplift hooks test` under `settings`, checks it was
/// stopped by the limit whose message starts with `limit` (naming plugin and
/// hook), that the database is unchanged and that the well-behaved `modest`
/// then runs; returns the attack's error and how long its run took.
/// (`hooks test`, like the upgrade, stops at the first failed hook, so
/// `modest` runs next; that the same connection is sound after a stopped
/// hook is `bounds::tests` and `hooks::` in-process.)
fn stopped_by(settings: &str, attack: &str, size: i64, limit: &str) -> (String, Duration) {
    let site = Site::new(settings, attack, size);
    let before = fingerprint(&site.db());
    let (report, took) = site.trial(&[attack, "modest"]);
    let hooks = report["hooks"].as_array().expect("a hooks array");
    assert_eq!(hooks.len(), 1, "{report:#}");
    let error = hooks[0]["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        hooks[0]["ok"], false,
        "{attack} was not stopped: {report:#}"
    );
    assert!(
        error.starts_with(&format!("hook greedy/{attack} was stopped: {limit}")),
        "{attack}: {error}"
    );
    assert_eq!(fingerprint(&site.db()), before, "the database changed");
    let (report, _) = site.trial(&["modest"]);
    assert_eq!(report["hooks"][0]["ok"], true, "{report:#}");
    (error, took)
}

/// Limits small enough for tests, with the wasm memory cap high enough
/// that the watchdog's process memory limit (which includes it twice) is
/// never what stops these attacks.
const SMALL: &str = "[hooks]\ntimeout_seconds = 30\nmemory_mib = 1024\nmax_reply_mib = 32\n\
                     database_memory_mib = 8\ndisk_mib = 8\n";

#[test]
fn a_wide_row_of_large_values_is_stopped_by_the_database_memory_limit() {
    // 20 values of 1 MB: 20 MB that SQLite builds before the reply counts.
    let (error, _) = stopped_by(SMALL, "wide_row", 1_000_000, "database memory limit");
    assert!(error.contains("8 MiB"), "{error}");
    assert!(error.contains("database_memory_mib"), "{error}");
}

#[test]
fn large_values_bound_to_many_cursors_are_stopped_by_the_database_memory_limit() {
    stopped_by(SMALL, "bound_blobs", 1_000_000, "database memory limit");
}

#[test]
fn cursors_parked_on_large_rows_are_stopped_by_the_database_memory_limit() {
    stopped_by(SMALL, "parked_cursors", 1_000_000, "database memory limit");
}

#[test]
fn a_reply_of_many_nulls_counts_what_each_value_costs() {
    // A million NULLs: no bytes of data, but tens of megabytes for the host.
    stopped_by(SMALL, "many_nulls", 1_000_000, "reply limit");
}

#[test]
fn a_sort_spilling_to_temporary_files_is_stopped_by_the_disk_limit() {
    // 200 MB sorted: SQLite's sorter writes it to deleted temporary files,
    // which the watchdog sees through the process's open files.
    let settings = "[hooks]\ntimeout_seconds = 60\nmemory_mib = 1024\ndisk_mib = 16\n";
    let (error, _) = stopped_by(settings, "order_by", 200, "disk limit");
    assert!(error.contains("16 MiB"), "{error}");
}

#[test]
fn blobs_written_into_an_owned_table_are_stopped_by_the_disk_limit() {
    stopped_by(SMALL, "owned_blobs", 0, "disk limit");
}

#[test]
fn blobs_written_into_a_temp_table_are_stopped_by_the_disk_limit() {
    stopped_by(SMALL, "temp_table", 0, "disk limit");
}

#[test]
fn a_sleep_past_the_deadline_is_stopped_at_once() {
    let settings = "[hooks]\ntimeout_seconds = 10\n";
    let (_, took) = stopped_by(settings, "sleep", 60, "time limit: ran longer than 10 s");
    // Stopped when it asked to sleep, not when the deadline came.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// A release at `version` of the app `site`, whose core plugin is the greedy
/// plugin with `hooks`; its first migration creates `attack_size`.
fn release(root: &Path, version: &str, hooks: &[&str], attack: &str, size: i64) -> TestRelease {
    let create = format!(
        "CREATE TABLE attack_size(k TEXT PRIMARY KEY, n INTEGER);\n\
         INSERT INTO attack_size VALUES ('{attack}', {size});"
    );
    let release = TestRelease::new(
        root,
        &format!("release-{version}"),
        "site",
        version,
        &[("0001_attack.sql", &create)],
    );
    std::fs::write(
        release.dir.join("release.toml"),
        format!("app = \"site\"\nversion = \"{version}\"\ncore_plugins = [\"greedy\"]\n"),
    )
    .unwrap();
    std::fs::create_dir_all(release.dir.join("plugins")).unwrap();
    std::fs::write(release.dir.join("plugins/greedy.wasm"), greedy_with(hooks)).unwrap();
    release
}

fn upgrade(home: &Path, release: &TestRelease) -> std::process::Output {
    run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        release.path(),
        "upgrade",
    ])
}

#[test]
fn one_sql_function_call_past_the_time_limit_ends_uplift_and_leaves_the_database_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let installed = release(root.path(), "1.0.0", &[], "instr", 0);
    assert!(upgrade(&home, &installed).status.success());
    std::fs::write(home.join("uplift.toml"), "[hooks]\ntimeout_seconds = 1\n").unwrap();
    let db = home.join("db.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE attack_size SET n = 1000000", [])
        .unwrap();
    let before = fingerprint(&db);

    // instr() of a 1 MB text and a 0.5 MB needle: one SQL function call of
    // about half a million half-megabyte comparisons (tens of seconds),
    // inside which SQLite checks for no interrupt.
    let out = upgrade(
        &home,
        &release(root.path(), "1.1.0", &["instr"], "instr", 0),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("hook greedy/instr was stopped: time limit: ran longer than 1 s"),
        "{err}"
    );
    assert!(err.contains("uplift ended itself"), "{err}");
    assert!(err.contains("exactly as it was"), "{err}");

    // SQLite rolls the unfinished transaction back when the database is next
    // opened (the hot journal), and the next upgrade works.
    assert_eq!(fingerprint(&db), before, "the database changed");
    let out = upgrade(
        &home,
        &release(root.path(), "1.1.0", &["modest"], "instr", 0),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_component_that_compiles_past_the_compile_limit_ends_uplift_before_any_hook_runs() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let installed = release(root.path(), "1.0.0", &[], "modest", 0);
    assert!(upgrade(&home, &installed).status.success());
    std::fs::write(home.join("uplift.toml"), "[hooks]\ncompile_seconds = 1\n").unwrap();
    let db = home.join("db.sqlite3");
    let before = fingerprint(&db);

    // A component whose one function nests 15,000 loops (45 KB): wasmtime
    // compiles it in time that grows with the square of the depth (about
    // 20 s here).
    let slow = release(root.path(), "1.1.0", &["modest"], "modest", 0);
    let json = r#"{"uplift_manifest":1,"name":"greedy","version":"0.1.0","capabilities":{"owns":"greedy_"},"hooks":[{"name":"modest"}]}"#;
    let manifest = uplift::hooks::HookManifest::from_section(json.as_bytes()).unwrap();
    let component = nested_loops_component(15_000);
    std::fs::write(
        slow.dir.join("plugins/greedy.wasm"),
        uplift::hooks::manifest::embed_manifest(&component, &manifest).unwrap(),
    )
    .unwrap();
    let out = upgrade(&home, &slow);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("plugin greedy (")
            && err.contains(
                "was stopped: compile limit: compiling its component took longer than 1 s"
            ),
        "{err}"
    );
    assert_eq!(fingerprint(&db), before, "the database changed");
}

/// A component embedding one core module whose one function nests `depth`
/// loops.
fn nested_loops_component(depth: usize) -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, Component, Function, FunctionSection, Instruction, Module, ModuleSection,
        TypeSection,
    };
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut body = Function::new([]);
    for _ in 0..depth {
        body.instruction(&Instruction::Loop(wasm_encoder::BlockType::Empty));
    }
    for _ in 0..depth {
        body.instruction(&Instruction::End);
    }
    body.instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&body);
    let mut module = Module::new();
    module.section(&types).section(&functions).section(&code);
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    component.finish()
}

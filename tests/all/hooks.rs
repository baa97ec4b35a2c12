//! Hooks in the sandbox: the well-behaved plugin's happy path, every hostile
//! plugin hook stopped with a clear error and the database unchanged, plugin
//! discovery and plan order, the compile cache, and `uplift hooks validate`.
//!
//! The plugin components come from `scripts/build-plugins`.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use uplift::home::{Home, HookLimits};
use uplift::hooks::manifest::{self, HookManifest};
use uplift::hooks::{CacheOutcome, CompileCache};
use uplift::hooks::{
    CollectLog, HookContext, HookError, HookOutcome, HookRunner, Limit, PlannedHook, PluginSet,
};
use uplift::internals::RunOnConnection;
use uplift::version::Version;

use crate::support;

/// A plugin component built by `scripts/build-plugins`.
fn component(crate_name: &str) -> PathBuf {
    support::component(crate_name)
}

fn hostile() -> PathBuf {
    component("uplift-test-hostile")
}

fn tidy() -> PathBuf {
    component("uplift-test-tidy")
}

/// The hook `hook` of the plugin at `path`, as the plan would give it.
fn planned(path: &Path, hook: &str) -> PlannedHook {
    let bytes = std::fs::read(path).unwrap();
    let m = manifest::read_manifest(&bytes).unwrap();
    assert!(m.hook(hook).is_some(), "{} has no hook {hook}", m.name);
    PlannedHook {
        plugin: m.name.clone(),
        plugin_version: m.version.clone(),
        hook: hook.to_string(),
        path: path.to_path_buf(),
        capabilities: m.capabilities.clone(),
        old_version: "*".into(),
        new_version: "*".into(),
        plugin_old_version: None,
        plugin_new_version: None,
    }
}

fn limits() -> HookLimits {
    HookLimits {
        timeout_seconds: 1,
        memory_mib: 64,
        max_reply_mib: 8,
        max_log_kib: 16,
        ..HookLimits::default()
    }
}

/// A runner sharing one compile cache across the tests (so each component
/// is compiled once).
fn runner() -> HookRunner {
    let cache = CompileCache::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("hook-cache"));
    HookRunner::with_cache(Some(cache), &limits()).unwrap()
}

fn context() -> HookContext {
    HookContext {
        app: "notebook".into(),
        old_version: "0.9.0".into(),
        new_version: "1.0.0".into(),
        dry_run: false,
    }
}

/// A database like an application's, inside the upgrade's transaction.
fn database() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO notes(body) VALUES ('alpha'), ('beta'), ('gamma'), ('delta'), ('epsilon');
         CREATE TABLE secret(id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO secret(v) VALUES ('s1'), ('s2');
         CREATE TABLE uplift_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO uplift_meta VALUES ('data_version', '0.9.0');
         BEGIN IMMEDIATE;",
    )
    .unwrap();
    conn
}

/// Every schema object and every row of every table, as text.
fn dump(conn: &Connection) -> String {
    let mut out = String::new();
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY name")
        .unwrap();
    let objects: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (kind, name, sql) in objects {
        out.push_str(&format!("{kind} {name}: {sql:?}\n"));
        if kind == "table" {
            let mut rows = conn
                .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid"))
                .unwrap();
            let n = rows.column_count();
            let all: Vec<String> = rows
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for row in all {
                out.push_str(&format!("  {row}\n"));
            }
        }
    }
    out
}

/// Runs hostile hook `hook` and checks it fails, leaves the database exactly
/// as before and inside the upgrade's transaction, and that another plugin's
/// hook then runs normally. Returns the error.
fn stopped(hook: &str) -> HookError {
    let mut runner = runner();
    let mut conn = database();
    stopped_on(&mut runner, &mut conn, &hostile(), hook)
}

/// Runs hook `hook` of the plugin at `plugin` on `conn` and checks what
/// [`stopped`] checks.
fn stopped_on(
    runner: &mut HookRunner,
    conn: &mut Connection,
    plugin: &Path,
    hook: &str,
) -> HookError {
    let attempt = planned(plugin, hook);
    let name = attempt.plugin.clone();
    let before = dump(conn);
    let log = CollectLog::new();
    let err = runner
        .run(conn, &attempt, &context(), log.clone())
        .expect_err("the hostile hook must fail");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{name}/{hook}")),
        "the error does not name plugin and hook: {text}"
    );
    assert_eq!(dump(conn), before, "{name}/{hook} changed the database");
    assert!(
        !conn.is_autocommit(),
        "{name}/{hook} ended the upgrade's transaction"
    );
    // Another hook in the same upgrade is unaffected.
    runner
        .run(
            conn,
            &planned(&tidy(), "shout"),
            &context(),
            CollectLog::new(),
        )
        .expect("a well-behaved hook after the hostile one");
    let shouted: String = conn
        .query_row("SELECT body FROM notes WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(shouted, "ALPHA");
    err
}

fn assert_limit(err: &HookError, expected: fn(&Limit) -> bool) {
    match err {
        HookError::Limit { limit, .. } if expected(limit) => {}
        other => panic!("expected a limit error, got: {other}"),
    }
}

fn assert_refused(err: &HookError, reason: &str) {
    let text = err.to_string();
    assert!(
        matches!(err, HookError::Failed { refused, .. } if !refused.is_empty()),
        "expected a refusal, got: {text}"
    );
    assert!(text.contains("not authorized"), "{text}");
    assert!(text.contains(reason), "{text} does not say {reason:?}");
}

#[test]
fn a_well_behaved_hook_reads_writes_owns_and_logs() {
    let mut runner = runner();
    let mut conn = database();
    let log = CollectLog::new();
    let outcome = runner
        .run(
            &mut conn,
            &planned(&tidy(), "copy_notes"),
            &context(),
            log.clone(),
        )
        .unwrap();
    assert!(outcome.refused.is_empty());
    let copied: Vec<(i64, String, i64)> = conn
        .prepare("SELECT id, body, len FROM tidy_copy ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(copied.len(), 5);
    assert_eq!(copied[4], (5, "epsilon".to_string(), 7));
    let lines: Vec<String> = log.lines().iter().map(|l| l.to_string()).collect();
    assert!(
        lines.contains(&"[tidy/copy_notes] copied 5 notes for notebook 0.9.0 -> 1.0.0".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"[tidy/copy_notes] stdout works too".to_string()),
        "{lines:?}"
    );

    runner
        .run(
            &mut conn,
            &planned(&tidy(), "shout"),
            &context(),
            log.clone(),
        )
        .unwrap();
    let bodies: Vec<String> = conn
        .prepare("SELECT body FROM notes ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(bodies[0], "ALPHA");
    assert_eq!(bodies[5], "shouted 5");
    // Still inside the upgrade's transaction: the caller decides.
    assert!(!conn.is_autocommit());
    conn.execute_batch("ROLLBACK").unwrap();
    let count: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'tidy_copy'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 0);
}

#[test]
fn the_sdk_probe_sees_the_same_on_the_real_host() {
    // The SDK's tests run on a small test host; this runs the same hook on
    // uplift's own, sandbox and all.
    let mut runner = runner();
    let mut conn = database();
    conn.execute_batch("CREATE TABLE facility (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .unwrap();
    let probe = component("sdk-probe");
    runner
        .run(
            &mut conn,
            &planned(&probe, "second"),
            &context(),
            CollectLog::new(),
        )
        .unwrap();
    let seen: Vec<String> = conn
        .prepare("SELECT what FROM probe_seen WHERE hook = 'second' ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seen, crate::sdk::SECOND_SEES);
}

#[test]
fn execute_many_changes_every_row_once_in_batches() {
    let mut runner = runner();
    let mut conn = database();
    conn.execute_batch(
        "CREATE TABLE bench(id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2500)
         INSERT INTO bench SELECT i, 0 FROM c;",
    )
    .unwrap();
    let bulk = component("uplift-test-bulk");
    for hook in ["update_each_row_batched", "update_each_row"] {
        runner
            .run(
                &mut conn,
                &planned(&bulk, hook),
                &context(),
                CollectLog::new(),
            )
            .unwrap_or_else(|e| panic!("{hook}: {e}"));
    }
    let (rows, min, max): (i64, i64, i64) = conn
        .query_row("SELECT count(*), min(v), max(v) FROM bench", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((rows, min, max), (2500, 2, 2));
}

#[test]
fn an_infinite_loop_is_stopped_by_the_time_limit() {
    let err = stopped("infinite_loop");
    assert_limit(&err, |l| matches!(l, Limit::Time { seconds: 1 }));
    assert!(err.to_string().contains("time limit"));
}

#[test]
fn a_runaway_query_is_interrupted_at_the_deadline() {
    assert_limit(&stopped("runaway_query"), |l| {
        matches!(l, Limit::Time { .. })
    });
}

#[test]
fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    let err = stopped("memory_bomb");
    assert_limit(&err, |l| matches!(l, Limit::Memory { mib: 64 }));
    assert!(err.to_string().contains("memory limit"));
}

#[test]
fn deep_recursion_traps_with_a_stack_overflow() {
    let err = stopped("deep_recursion");
    assert!(matches!(err, HookError::Trap { .. }), "{err}");
    // Rust's stack lives in linear memory: overflowing it is an out-of-bounds
    // access; a deeper native stack would be a stack-overflow trap.
    assert!(err.to_string().contains("stack overflow"), "{err}");
    assert!(err.to_string().contains("guest backtrace"), "{err}");
}

#[test]
fn a_query_returning_gigabytes_is_stopped_by_the_reply_limit() {
    let err = stopped("huge_query");
    assert_limit(&err, |l| matches!(l, Limit::Reply { mib: 8 }));
    assert!(err.to_string().contains("use a cursor"));
}

#[test]
fn a_single_huge_value_is_stopped_by_the_length_limit() {
    // SQLite's length limit is lowered to the reply cap for the hook, so
    // the two-gigabyte blob is never even built; the error names SQLite's
    // length limit, not the reply's.
    let err = stopped("huge_blob");
    assert_limit(&err, |l| matches!(l, Limit::Length { mib: 8 }));
    assert!(err.to_string().contains("length limit"), "{err}");
}

#[test]
fn reading_an_undeclared_table_is_refused() {
    assert_refused(&stopped("read_undeclared"), "may not read table secret");
}

#[test]
fn writing_an_undeclared_table_is_refused() {
    assert_refused(&stopped("write_undeclared"), "may not write table secret");
}

#[test]
fn attach_is_refused() {
    assert_refused(&stopped("attach"), "ATTACH");
    assert!(!Path::new("/tmp/uplift-hostile.db").exists());
}

#[test]
fn pragma_writable_schema_is_refused() {
    assert_refused(&stopped("writable_schema"), "PRAGMA writable_schema");
}

#[test]
fn commit_cannot_escape_the_savepoint() {
    assert_refused(&stopped("commit"), "transaction control");
}

#[test]
fn rollback_cannot_escape_the_savepoint() {
    assert_refused(&stopped("rollback"), "transaction control");
}

#[test]
fn release_cannot_escape_the_savepoint() {
    assert_refused(&stopped("release"), "SAVEPOINT/RELEASE");
}

#[test]
fn dropping_a_core_table_is_refused() {
    assert_refused(&stopped("drop_core"), "may not drop table secret");
}

// ------------------------------------------------------------ owned tables

/// The hostile component with its manifest replaced: plugin `name` with
/// `capabilities` (JSON) and every hook of `hooks`, written into `dir`.
fn hostile_as(dir: &Path, name: &str, capabilities: &str, hooks: &[&str]) -> PathBuf {
    let bytes = support::hostile_with_manifest(name, "1.0", capabilities, hooks);
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs `hook` of the plugin at `plugin` on `conn`, which must succeed, and
/// records what it created and dropped, as the upgrade does.
fn run_and_record(
    runner: &mut HookRunner,
    conn: &mut Connection,
    plugin: &Path,
    hook: &str,
) -> HookOutcome {
    let planned = planned(plugin, hook);
    let outcome = runner
        .run(conn, &planned, &context(), CollectLog::new())
        .unwrap_or_else(|e| panic!("{hook}: {e}"));
    uplift::internals::meta::record_plugin_tables(
        conn,
        &planned.plugin,
        &outcome.created,
        &outcome.dropped,
    )
    .unwrap();
    outcome
}

fn recorded(conn: &Connection) -> Vec<(String, String)> {
    conn.prepare("SELECT name, plugin FROM uplift_plugin_tables ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

const NOT_CREATED: &str = "but was not created by hostile";

#[test]
fn a_prefix_matching_a_core_table_does_not_own_it() {
    let tmp = tempfile::tempdir().unwrap();
    let hooks = [
        "read_undeclared",
        "write_undeclared",
        "drop_core",
        "alter_core",
    ];
    let caps = r#"{"read":["notes"],"write":["notes"],"owns":"secr"}"#;
    let greedy = hostile_as(tmp.path(), "hostile", caps, &hooks);
    let mut runner = runner();
    for (hook, reason) in [
        ("read_undeclared", "may not read table secret"),
        ("write_undeclared", "may not write table secret"),
        ("drop_core", "may not drop table secret"),
        ("alter_core", "may not alter table secret"),
    ] {
        let mut conn = database();
        let err = stopped_on(&mut runner, &mut conn, &greedy, hook);
        assert_refused(&err, reason);
        assert_refused(&err, r#"it matches the owned prefix "secr" "#);
        assert_refused(&err, NOT_CREATED);
    }
}

#[test]
fn a_declared_core_table_under_the_prefix_is_readable_but_not_droppable() {
    let tmp = tempfile::tempdir().unwrap();
    let caps = r#"{"read":["notes","secret"],"write":["notes"],"owns":"secret"}"#;
    let reader = hostile_as(
        tmp.path(),
        "hostile",
        caps,
        &["read_undeclared", "drop_core"],
    );
    let mut runner = runner();
    let mut conn = database();
    // The read succeeds (the hook then fails on purpose, saying what it read).
    let err = stopped_on(&mut runner, &mut conn, &reader, "read_undeclared");
    assert!(err.to_string().contains("read 2 secret rows"), "{err}");
    let err = stopped_on(&mut runner, &mut conn, &reader, "drop_core");
    assert_refused(&err, "may not drop table secret");
    assert_refused(&err, NOT_CREATED);
}

#[test]
fn a_plugin_keeps_owning_the_tables_it_created_in_earlier_hooks() {
    let mut runner = runner();
    let mut conn = database();
    let hostile = hostile();
    let outcome = run_and_record(&mut runner, &mut conn, &hostile, "create_owned");
    assert_eq!(outcome.created, ["hostile_kept"]);
    assert!(outcome.dropped.is_empty());
    // The record is committed with the upgrade; the next upgrade finds it.
    conn.execute_batch("COMMIT; BEGIN IMMEDIATE").unwrap();
    assert_eq!(
        recorded(&conn),
        [("hostile_kept".to_string(), "hostile".to_string())]
    );
    for hook in ["read_owned", "write_owned", "alter_owned"] {
        let outcome = run_and_record(&mut runner, &mut conn, &hostile, hook);
        assert!(
            outcome.created.is_empty() && outcome.dropped.is_empty(),
            "{hook}"
        );
    }
    // The row it created, the row it wrote, the column it added.
    let rows: (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(x) FROM hostile_kept WHERE y IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, (2, 3));
    // A rename inside the prefix moves the record to the new name.
    let outcome = run_and_record(&mut runner, &mut conn, &hostile, "rename_owned");
    assert_eq!(
        (outcome.created, outcome.dropped),
        (
            vec!["hostile_moved".to_string()],
            vec!["hostile_kept".to_string()]
        )
    );
    assert_eq!(
        recorded(&conn),
        [("hostile_moved".to_string(), "hostile".to_string())]
    );
    let outcome = run_and_record(&mut runner, &mut conn, &hostile, "drop_moved");
    assert_eq!(outcome.dropped, ["hostile_moved"]);
    assert!(recorded(&conn).is_empty());
    assert!(!dump(&conn).contains("hostile_"));
}

/// The hooks that touch `hostile_kept`, and how the sandbox refuses each
/// when the plugin does not own it.
const KEPT_REFUSALS: [(&str, &str); 5] = [
    ("read_owned", "may not read table hostile_kept"),
    ("write_owned", "may not write table hostile_kept"),
    ("alter_owned", "may not alter table hostile_kept"),
    ("rename_owned", "may not alter table hostile_kept"),
    ("drop_owned", "may not drop table hostile_kept"),
];

#[test]
fn a_table_under_the_prefix_that_is_not_recorded_is_not_owned() {
    // As if an application migration had created it: it existed before the
    // hook, and no record says the plugin created it.
    let mut runner = runner();
    let mut conn = database();
    conn.execute_batch(
        "CREATE TABLE hostile_kept(x INTEGER); INSERT INTO hostile_kept VALUES (7);",
    )
    .unwrap();
    let hostile = hostile();
    for (hook, reason) in KEPT_REFUSALS {
        let err = stopped_on(&mut runner, &mut conn, &hostile, hook);
        assert_refused(&err, reason);
        assert_refused(&err, NOT_CREATED);
    }
}

#[test]
fn plugins_with_overlapping_prefixes_cannot_touch_each_others_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let hooks = [
        "create_owned",
        "read_owned",
        "write_owned",
        "alter_owned",
        "rename_owned",
        "drop_owned",
    ];
    // `hostile` owns `hostile_`; `intruder` owns the wider `hostile`.
    let intruder = hostile_as(
        tmp.path(),
        "intruder",
        r#"{"read":["notes"],"write":["notes"],"owns":"hostile"}"#,
        &hooks,
    );
    let mut runner = runner();
    let mut conn = database();
    run_and_record(&mut runner, &mut conn, &hostile(), "create_owned");
    for (hook, reason) in KEPT_REFUSALS
        .into_iter()
        .chain([("create_owned", "may not create table hostile_kept")])
    {
        let err = stopped_on(&mut runner, &mut conn, &intruder, hook);
        assert_refused(&err, reason);
        assert_refused(
            &err,
            r#"it matches the owned prefix "hostile" but was not created by intruder"#,
        );
    }
    assert_eq!(
        recorded(&conn),
        [("hostile_kept".to_string(), "hostile".to_string())]
    );
    // The other way round too: what the intruder creates is its own.
    let mut conn = database();
    run_and_record(&mut runner, &mut conn, &intruder, "create_owned");
    let err = stopped_on(&mut runner, &mut conn, &hostile(), "drop_owned");
    assert_refused(&err, "may not drop table hostile_kept");
    assert_refused(&err, NOT_CREATED);
    run_and_record(&mut runner, &mut conn, &intruder, "drop_owned");
    assert!(recorded(&conn).is_empty());
}

#[test]
fn writing_uplift_tables_is_refused() {
    assert_refused(&stopped("write_uplift"), "uplift's own table");
}

#[test]
fn reading_sqlite_schema_is_refused() {
    assert_refused(&stopped("read_schema"), "SQLite's schema");
}

#[test]
fn flooding_the_log_is_stopped_by_the_log_limit() {
    assert_limit(&stopped("log_flood"), |l| {
        matches!(l, Limit::Log { kib: 16 })
    });
}

#[test]
fn flooding_stdout_is_stopped_by_the_log_limit() {
    assert_limit(&stopped("stdout_flood"), |l| {
        matches!(l, Limit::Log { kib: 16 })
    });
}

#[test]
fn reading_a_file_through_wasi_fails() {
    let err = stopped("read_file");
    assert!(
        err.to_string().contains("could not read /etc/passwd"),
        "{err}"
    );
}

#[test]
fn a_panic_is_reported_with_its_message_and_backtrace() {
    let err = stopped("panic");
    let text = err.to_string();
    assert!(matches!(err, HookError::Trap { .. }), "{text}");
    assert!(text.contains("panics on purpose"), "{text}");
    assert!(text.contains("guest backtrace"), "{text}");
}

#[test]
fn leaking_statements_is_stopped_by_the_statement_limit() {
    let err = stopped("leak_statements");
    assert_limit(&err, |l| matches!(l, Limit::Handles { max: 10_000 }));
}

#[test]
fn a_failing_hook_rolls_back_its_own_changes() {
    let err = stopped("write_then_fail");
    assert!(matches!(err, HookError::Failed { .. }));
    assert!(err.to_string().contains("failed on purpose"));
}

#[test]
fn renaming_an_owned_table_out_of_the_prefix_is_refused() {
    // Refused as the statement is prepared (an existing name must not
    // answer "there is already another table"), and rolled back.
    assert_refused(
        &stopped("rename_out"),
        "may not rename a table to users: it owns only names starting with hostile_",
    );
}

#[test]
fn creating_a_trigger_is_refused() {
    assert_refused(&stopped("create_trigger"), "creating trigger");
}

#[test]
fn a_handled_refusal_is_logged_and_the_hook_goes_on() {
    let mut runner = runner();
    let mut conn = database();
    let log = CollectLog::new();
    let outcome = runner
        .run(
            &mut conn,
            &planned(&hostile(), "ignore_refusal"),
            &context(),
            log.clone(),
        )
        .unwrap();
    assert_eq!(outcome.refused.len(), 1);
    assert!(outcome.refused[0].contains("may not read table secret"));
    let lines: Vec<String> = log.lines().iter().map(|l| l.to_string()).collect();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "[hostile/ignore_refusal] warn: refused: plugin hostile may not read table secret"
        )),
        "{lines:?}"
    );
    let last: String = conn
        .query_row("SELECT body FROM notes ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(last, "secret refused: true");
}

#[test]
fn the_compile_cache_is_used_and_a_corrupt_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let mut runner =
        HookRunner::with_cache(Some(CompileCache::new(dir.path())), &limits()).unwrap();
    let first = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(first.cache, CacheOutcome::Compiled);
    let second = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);

    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (code, checksum) = (&entries[0], &entries[1]);
    assert!(code.to_string_lossy().ends_with(".cwasm"), "{entries:?}");
    assert!(
        checksum.to_string_lossy().ends_with(".cwasm.xxh3"),
        "{entries:?}"
    );

    // A flipped byte in the middle of the code.
    let mut bytes = std::fs::read(code).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(code, &bytes).unwrap();
    let third = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(
        third.cache,
        CacheOutcome::Compiled,
        "a corrupt entry was trusted"
    );
    let fourth = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(fourth.cache, CacheOutcome::Hit);

    // A truncated file, then a lost checksum.
    let bytes = std::fs::read(code).unwrap();
    std::fs::write(code, &bytes[..bytes.len() - 100]).unwrap();
    let fifth = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(
        fifth.cache,
        CacheOutcome::Compiled,
        "a truncated entry was trusted"
    );
    std::fs::remove_file(checksum).unwrap();
    let sixth = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(
        sixth.cache,
        CacheOutcome::Compiled,
        "an entry without checksum was trusted"
    );
    let seventh = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(seventh.cache, CacheOutcome::Hit);
}

#[test]
fn storing_an_entry_prunes_old_named_and_other_engines_entries_only() {
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, b"stale").unwrap();
        path
    };
    let (digest, engine) = ("ab".repeat(32), "0123456789abcdef");
    // Entries of the SHA-256 naming (uplift before BLAKE3), of another
    // engine, and a temporary file of a store killed two hours ago.
    let old_code = put(&format!("{digest}-{engine}.cwasm"));
    let old_sum = put(&format!("{digest}-{engine}.cwasm.sha256"));
    let other_code = put(&format!("blake3-{digest}-{engine}.cwasm"));
    let other_sum = put(&format!("blake3-{digest}-{engine}.cwasm.xxh3"));
    let killed = put(".store-killed");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&killed)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    // What must stay: a store in progress, and files uplift did not write.
    let in_progress = put(".store-running");
    let notes = put("notes.txt");
    let odd = put(&format!("blake3-{digest}.cwasm"));

    let mut runner =
        HookRunner::with_cache(Some(CompileCache::new(dir.path())), &limits()).unwrap();
    let first = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(first.cache, CacheOutcome::Compiled);

    for gone in [&old_code, &old_sum, &other_code, &other_sum, &killed] {
        assert!(!gone.exists(), "{} was not pruned", gone.display());
    }
    for kept in [&in_progress, &notes, &odd] {
        assert!(kept.exists(), "{} was pruned", kept.display());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| ![&in_progress, &notes, &odd].contains(&p))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries[0].to_string_lossy().ends_with(".cwasm"));
    assert!(entries[1].to_string_lossy().ends_with(".cwasm.xxh3"));
    let second = runner.load_and_instantiate(&tidy()).unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);
}

// ---------------------------------------------------------------- plugins

/// An empty component (no imports, no exports) carrying `manifest`.
fn component_with(manifest: &str) -> Vec<u8> {
    let m = HookManifest::from_section(manifest.as_bytes()).unwrap();
    manifest::embed_manifest(&empty_component(), &m).unwrap()
}

fn empty_component() -> Vec<u8> {
    wasm_encoder::Component::new().finish()
}

fn manifest_json(name: &str, hooks: &str) -> String {
    format!(r#"{{"uplift_manifest":1,"name":"{name}","version":"1.0","hooks":[{hooks}]}}"#)
}

#[test]
fn plugins_are_found_in_the_release_and_the_home_and_planned_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tmp.path().join("release/plugins");
    let home = Home::new(tmp.path().join("home"));
    std::fs::create_dir_all(&release).unwrap();
    std::fs::create_dir_all(home.plugins_dir()).unwrap();
    let write = |dir: &Path, file: &str, json: String| {
        std::fs::write(dir.join(file), component_with(&json)).unwrap()
    };
    write(
        &release,
        "b.wasm",
        manifest_json(
            "bravo",
            r#"{"name":"late","old_version":">=0.5"},{"name":"early","old_version":"<0.5"},{"name":"any"}"#,
        ),
    );
    write(
        &release,
        "a.wasm",
        manifest_json(
            "alpha",
            r#"{"name":"one","old_version":">=0.5"},{"name":"two","new_version":"<0.1"}"#,
        ),
    );
    write(
        &home.plugins_dir(),
        "c.wasm",
        manifest_json("charlie", r#"{"name":"x"}"#),
    );

    let set = PluginSet::discover(&release, &["bravo".to_string()], &home).unwrap();
    let names: Vec<_> = set.plugins().iter().map(|p| (p.name(), p.active)).collect();
    assert_eq!(
        names,
        [("alpha", false), ("bravo", true), ("charlie", false)]
    );

    set.enable(&home, "alpha").unwrap();
    set.enable(&home, "charlie").unwrap();
    set.disable(&home, "charlie").unwrap();
    let err = set.disable(&home, "bravo").unwrap_err();
    assert!(err.to_string().contains("core plugin"), "{err}");
    assert!(set.enable(&home, "nobody").is_err());

    let set = PluginSet::discover(&release, &["bravo".to_string()], &home).unwrap();
    // Nothing recorded: every active plugin's first activation.
    let changes = set.changes(&[]).unwrap();
    let plan = set.plan(
        &Version::parse("0.6").unwrap(),
        &Version::parse("1.0").unwrap(),
        &changes,
        uplift::hooks::PlanScope::Application,
    );
    let order: Vec<String> = plan
        .iter()
        .map(|h| format!("{}/{}", h.plugin, h.hook))
        .collect();
    // Unbounded old_version first (bravo/any), then by lower bound 0.5:
    // alpha before bravo by name; bravo/early does not match 0.6, alpha/two
    // does not match 1.0, charlie is disabled.
    assert_eq!(order, ["bravo/any", "alpha/one", "bravo/late"]);
}

#[test]
fn two_plugins_with_the_same_name_are_an_error_naming_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tmp.path().join("plugins");
    let home = Home::new(tmp.path().join("home"));
    std::fs::create_dir_all(&release).unwrap();
    std::fs::create_dir_all(home.plugins_dir()).unwrap();
    std::fs::write(
        release.join("one.wasm"),
        component_with(&manifest_json("same", "")),
    )
    .unwrap();
    std::fs::write(
        home.plugins_dir().join("two.wasm"),
        component_with(&manifest_json("same", "")),
    )
    .unwrap();
    let err = PluginSet::discover(&release, &[], &home)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("one.wasm") && err.contains("two.wasm"),
        "{err}"
    );
}

#[test]
fn a_missing_core_plugin_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::new(tmp.path().join("home"));
    let err = PluginSet::discover(&tmp.path().join("none"), &["big-leap".into()], &home)
        .unwrap_err()
        .to_string();
    assert!(err.contains("big-leap"), "{err}");
}

// ------------------------------------------------------------- validation

fn validate(files: &[&Path]) -> (i32, Vec<serde_json::Value>) {
    let mut args: Vec<&str> = vec!["hooks", "validate", "--json"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = support::run(&args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // An invalid file fails the command: the reports are the failure
    // object's details.
    let reports = if json["outcome"] == "failed" {
        assert_eq!(json["error"]["code"], "invalid-plugin", "{json}");
        json["error"]["details"].clone()
    } else {
        json
    };
    let reports = reports.as_array().expect("an array of reports").clone();
    (out.status.code().unwrap_or(-1), reports)
}

fn errors(report: &serde_json::Value) -> String {
    report["errors"].to_string()
}

#[test]
fn validate_accepts_real_plugins() {
    let (code, reports) = validate(&[&hostile(), &tidy()]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r["valid"] == true));
    assert_eq!(reports[1]["plugin"], "tidy");
}

#[test]
fn validate_rejects_broken_files_with_a_reason_each() {
    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let not_wasm = file("not.wasm", b"#!/bin/sh\necho hi\n");
    let core = file("core.wasm", &wasm_encoder::Module::new().finish());
    let other_world = file("other.wasm", &component_with(&manifest_json("other", "")));
    let no_manifest = {
        // A real hook component with its manifest sections stripped.
        let bytes = std::fs::read(tidy()).unwrap();
        file("bare.wasm", &strip_manifest(&bytes))
    };
    let bad_json = file(
        "badjson.wasm",
        &with_raw_section(&std::fs::read(tidy()).unwrap(), b"{not json"),
    );
    let bad_range = file(
        "badrange.wasm",
        &with_raw_section(
            &std::fs::read(tidy()).unwrap(),
            manifest_json("p", r#"{"name":"h","old_version":"<banana"}"#).as_bytes(),
        ),
    );
    let (code, reports) = validate(&[
        &not_wasm,
        &core,
        &other_world,
        &no_manifest,
        &bad_json,
        &bad_range,
        &tidy(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(reports.len(), 7);
    assert!(
        errors(&reports[0]).contains("not a WebAssembly file"),
        "{}",
        errors(&reports[0])
    );
    assert!(
        errors(&reports[1]).contains("core WebAssembly module"),
        "{}",
        errors(&reports[1])
    );
    assert!(
        errors(&reports[2]).contains("does not export"),
        "{}",
        errors(&reports[2])
    );
    assert!(
        errors(&reports[3]).contains("no `uplift:manifest`"),
        "{}",
        errors(&reports[3])
    );
    assert!(
        errors(&reports[4]).contains("not valid JSON"),
        "{}",
        errors(&reports[4])
    );
    assert!(
        errors(&reports[5]).contains("invalid range"),
        "{}",
        errors(&reports[5])
    );
    assert_eq!(reports[6]["valid"], true);
    for r in &reports[..6] {
        assert_eq!(r["valid"], false);
    }
}

#[test]
fn validate_checks_tables_against_a_release_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let release = notebook_release(tmp.path(), "CREATE TABLE other(id INTEGER PRIMARY KEY);");
    let out = validate_against(&release.dir, &tidy());
    assert_eq!(out.status.code(), Some(1));
    let text = support::stdout(&out);
    assert!(text.contains("names table notes"), "{text}");

    let out = validate_against(Path::new("/nonexistent/release"), &tidy());
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
}

/// Release 1.0.0 of app `notebook` under `root`, with one migration.
fn notebook_release(root: &Path, sql: &str) -> support::TestRelease {
    support::TestRelease::new(root, "rel", "notebook", "1.0.0", &[("0001_init.sql", sql)])
}

/// `uplift hooks validate --release RELEASE PLUGIN`.
fn validate_against(release: &Path, plugin: &Path) -> std::process::Output {
    support::run(&[
        "hooks",
        "validate",
        "--release",
        release.to_str().unwrap(),
        plugin.to_str().unwrap(),
    ])
}

#[test]
fn validate_refuses_an_owned_prefix_that_matches_a_release_table() {
    let tmp = tempfile::tempdir().unwrap();
    let release = notebook_release(
        tmp.path(),
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE notebook(id INTEGER PRIMARY KEY);",
    );
    let greedy = hostile_as(
        tmp.path(),
        "greedy",
        r#"{"read":["notes"],"owns":"note"}"#,
        &["read_owned"],
    );
    let out = validate_against(&release.dir, &greedy);
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    let text = support::stdout(&out);
    assert!(
        text.contains(
            r#"capabilities.owns prefix "note" matches table(s) notes, notebook of release"#
        ),
        "{text}"
    );
    // A prefix of its own passes.
    let modest = hostile_as(
        tmp.path(),
        "modest",
        r#"{"read":["notes"],"owns":"modest_"}"#,
        &["read_owned"],
    );
    let out = validate_against(&release.dir, &modest);
    assert_eq!(out.status.code(), Some(0), "{}", support::stdout(&out));
}

#[test]
fn validate_warns_of_hooks_whose_ranges_never_match_the_releases_named() {
    let tmp = tempfile::tempdir().unwrap();
    let release = notebook_release(tmp.path(), "CREATE TABLE notes(id INTEGER PRIMARY KEY);");
    let json = r#"{"uplift_manifest":1,"name":"ranged","version":"1.0.0","capabilities":{},"hooks":[
        {"name":"for_this_release","old_version":"<1.0.0","new_version":">=1.0.0"},
        {"name":"for_two","old_version":"<2.0.0","new_version":">=2.0.0"},
        {"name":"for_plugin_two","plugin_new_version":">=2.0"}]}"#;
    let manifest = uplift::hooks::HookManifest::from_section(json.as_bytes()).unwrap();
    let component = std::fs::read(support::component("uplift-test-hostile")).unwrap();
    let plugin = tmp.path().join("ranged.wasm");
    std::fs::write(
        &plugin,
        uplift::hooks::manifest::embed_manifest(&component, &manifest).unwrap(),
    )
    .unwrap();

    let out = validate_against(&release.dir, &plugin);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings do not fail: {}",
        support::stdout(&out)
    );
    let text = support::stdout(&out);
    assert!(
        text.contains(r#"warning: hook for_two: new_version ">=2.0.0" matches none of the releases named (1.0.0)"#),
        "{text}"
    );
    assert!(
        text.contains(r#"warning: hook for_plugin_two: plugin_new_version ">=2.0" does not match this plugin's own version 1.0.0"#),
        "{text}"
    );
    assert!(!text.contains("hook for_this_release"), "{text}");

    // Naming the later release it is meant for quiets the first.
    let out = support::run(&[
        "hooks",
        "validate",
        "--release",
        release.dir.to_str().unwrap(),
        "--later",
        "2.0.0",
        "--json",
        plugin.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = &reports[0];
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(warnings[0].as_str().unwrap().contains("for_plugin_two"));
    // A later release that is not a version is a usage error.
    let out = support::run(&[
        "hooks",
        "validate",
        "--later",
        "two",
        plugin.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn embed_manifest_replaces_the_manifest_and_inspect_shows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("hook.toml");
    std::fs::write(
        &toml,
        "name = \"renamed\"\nversion = \"2.0.0\"\n[capabilities]\nread = [\"notes\"]\n[[hooks]]\nname = \"shout\"\nold_version = \"<1.0\"\n",
    )
    .unwrap();
    let out_file = tmp.path().join("out.wasm");
    let out = support::run(&[
        "hooks",
        "embed-manifest",
        "--manifest",
        toml.to_str().unwrap(),
        tidy().to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let out = support::run(&["hooks", "inspect", "--json", out_file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&support::stdout(&out)).unwrap();
    assert_eq!(json["name"], "renamed");
    assert_eq!(json["hooks"][0]["old_version"], "<1.0");
    let (code, _) = validate(&[&out_file]);
    assert_eq!(code, 0, "the component still validates after embedding");

    std::fs::write(
        &toml,
        "name = \"x\"\nversion = \"1\"\n[[hooks]]\nname = \"h\"\nold_version = \"<banana\"\n",
    )
    .unwrap();
    let bad_out = tmp.path().join("bad.wasm");
    let out = support::run(&[
        "hooks",
        "embed-manifest",
        "--manifest",
        toml.to_str().unwrap(),
        tidy().to_str().unwrap(),
        "-o",
        bad_out.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("invalid range"),
        "{}",
        support::stderr(&out)
    );
    assert!(!bad_out.exists());
}

/// `bytes` with every `uplift:manifest` section removed, at any depth.
fn strip_manifest(bytes: &[u8]) -> Vec<u8> {
    // Replacing the top-level section with one that embed_manifest writes and
    // then renaming it is simpler than rewriting nested modules: rename every
    // occurrence of the section name to a name of the same length.
    let needle = manifest::SECTION_NAME.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + needle.len() <= out.len() {
        if &out[i..i + needle.len()] == needle {
            out[i..i + needle.len()].copy_from_slice(b"uplift:ignored_");
            i += needle.len();
        } else {
            i += 1;
        }
    }
    out
}

/// `bytes` without its manifest, plus a top-level section holding `data`.
fn with_raw_section(bytes: &[u8], data: &[u8]) -> Vec<u8> {
    use wasm_encoder::Encode;
    let mut out = strip_manifest(bytes);
    out.push(0); // the custom section's id; `encode` writes size, name and data
    wasm_encoder::CustomSection {
        name: manifest::SECTION_NAME.into(),
        data: data.into(),
    }
    .encode(&mut out);
    out
}

#[test]
fn plugin_commands_list_enable_and_refuse_to_disable_core_plugins() {
    let tmp = tempfile::tempdir().unwrap();
    let release = support::TestRelease::new(tmp.path(), "rel", "notebook", "1.0.0", &[]);
    std::fs::create_dir_all(release.dir.join("plugins")).unwrap();
    std::fs::copy(tidy(), release.dir.join("plugins/tidy.wasm")).unwrap();
    let toml_path = release.dir.join("release.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let text = text.replace("core_plugins = []", "core_plugins = [\"tidy\"]");
    std::fs::write(&toml_path, text).unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join("plugins")).unwrap();
    std::fs::copy(hostile(), home.join("plugins/hostile.wasm")).unwrap();
    let args = |extra: &[&str]| {
        let mut v = vec![
            "--home",
            home.to_str().unwrap(),
            "--release",
            release.dir.to_str().unwrap(),
            "plugin",
        ];
        v.extend_from_slice(extra);
        support::run(&v)
    };
    let out = args(&["list"]);
    let text = support::stdout(&out);
    assert!(text.contains("tidy 1.2.0  core (always active)"), "{text}");
    assert!(text.contains("hostile 0.1.0  disabled"), "{text}");
    assert!(args(&["enable", "hostile"]).status.success());
    assert!(support::stdout(&args(&["list"])).contains("hostile 0.1.0  enabled"));
    let out = args(&["disable", "tidy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        support::stderr(&out).contains("core plugin"),
        "{}",
        support::stderr(&out)
    );
    assert!(!args(&["enable", "nobody"]).status.success());
}

// ----------------------------------------------------------------- escapes

/// The hostile plugin's `script` hook with `capabilities` (JSON; it may
/// always read `script`), run on `conn` with `statements` (SQL and the one
/// parameter bound, if any): what it logged for each statement, in order
/// (`#N ok: rows` or `#N error CODE (EXTENDED): message`), or how the hook
/// failed.
fn run_script(
    runner: &mut HookRunner,
    conn: &mut Connection,
    capabilities: &str,
    statements: &[(&str, rusqlite::types::Value)],
) -> Result<Vec<String>, HookError> {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = hostile_as(tmp.path(), "hostile", capabilities, &["script"]);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS script(id INTEGER PRIMARY KEY, sql TEXT NOT NULL, param);
         DELETE FROM script;",
    )
    .unwrap();
    for (sql, param) in statements {
        conn.execute(
            "INSERT INTO script(sql, param) VALUES (?1, ?2)",
            (sql, param),
        )
        .unwrap();
    }
    let log = CollectLog::new();
    let outcome = runner.run(conn, &planned(&plugin, "script"), &context(), log.clone())?;
    uplift::internals::meta::record_plugin_tables(
        conn,
        "hostile",
        &outcome.created,
        &outcome.dropped,
    )
    .unwrap();
    Ok(log
        .lines()
        .into_iter()
        .filter(|l| l.source == uplift::hooks::LogSource::Hook)
        .map(|l| l.message)
        .collect())
}

fn sql(text: &str) -> (&str, rusqlite::types::Value) {
    (text, rusqlite::types::Value::Null)
}

const READS_NOTES: &str = r#"{"read":["script","notes"],"write":[],"owns":"hostile_"}"#;

#[test]
fn fts3_tokenizer_gives_a_hook_no_address_and_no_call_through_its_pointer() {
    use rusqlite::types::Value as V;
    let mut runner = runner();
    let mut conn = database();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE docs USING fts4(body); INSERT INTO docs VALUES ('hello world');",
    )
    .unwrap();
    let caps = r#"{"read":["script","docs"],"write":[],"owns":"hostile_"}"#;
    let lines = run_script(
        &mut runner,
        &mut conn,
        caps,
        &[
            ("SELECT fts3_tokenizer(?)", V::Text("simple".into())),
            // Replaces the tokenizer with a pointer of the hook's choosing:
            // the FTS4 query below would then call through 0x4141...
            ("SELECT fts3_tokenizer('simple', ?)", V::Blob(vec![0x41; 8])),
            sql("SELECT count(*) FROM docs WHERE docs MATCH 'hello'"),
        ],
    )
    .unwrap();
    assert!(lines[0].starts_with("#1 error 23 (23)"), "{lines:?}");
    assert!(lines[1].starts_with("#2 error 23 (23)"), "{lines:?}");
    assert_eq!(lines[2], "#3 ok: [[Value::Integer(1)]]");
}

#[test]
fn a_hook_cannot_tell_an_undeclared_table_from_a_missing_one() {
    let mut runner = runner();
    let mut conn = database();
    conn.execute_batch("CREATE UNIQUE INDEX secret_v ON secret(v)")
        .unwrap();
    let probes = [
        "SELECT v FROM {}",
        "SELECT nope FROM {}",
        "UPDATE {} SET nope = 1",
        "DROP TABLE IF EXISTS {}",
        "DROP INDEX IF EXISTS {}_v",
        "REINDEX {}_v",
        "CREATE INDEX IF NOT EXISTS {}_v ON hostile_t(x)",
    ];
    let mut statements = vec![sql("CREATE TABLE hostile_t(x)")];
    let texts: Vec<String> = probes
        .iter()
        .flat_map(|p| [p.replace("{}", "secret"), p.replace("{}", "nosuch")])
        .collect();
    statements.extend(texts.iter().map(|t| sql(t)));
    let lines = run_script(&mut runner, &mut conn, READS_NOTES, &statements).unwrap();
    assert_eq!(lines[0], "#1 ok: []");
    for (pair, probe) in lines[1..].chunks(2).zip(probes) {
        let answer = |line: &str| line.split_once(": ").map(|(_, a)| a.to_string());
        assert!(pair[0].contains("error 23 (23)"), "{probe}: {pair:?}");
        assert_eq!(answer(&pair[0]), answer(&pair[1]), "{probe}");
    }
}

#[test]
fn an_owned_table_may_refer_only_to_tables_the_plugin_may_write() {
    let mut runner = runner();
    let mut conn = database();
    let statements: Vec<String> = ["secret", "notes", "uplift_meta"]
        .iter()
        .flat_map(|parent| {
            [
                format!("CREATE TABLE hostile_pin(x REFERENCES {parent}(id))"),
                format!("CREATE TABLE hostile_pin(x INTEGER /* c */ REFERENCES \"{parent}\")"),
            ]
        })
        .chain(["CREATE TABLE hostile_bare(x)".to_string()])
        .chain(["ALTER TABLE hostile_bare ADD COLUMN y REFERENCES secret".to_string()])
        .collect();
    let script: Vec<_> = statements.iter().map(|s| sql(s)).collect();
    let lines = run_script(&mut runner, &mut conn, READS_NOTES, &script).unwrap();
    for (line, statement) in lines.iter().zip(&statements) {
        if statement.starts_with("CREATE TABLE hostile_bare") {
            assert!(line.ends_with("ok: []"), "{statement}: {line}");
        } else {
            assert!(line.contains("error 23 (23)"), "{statement}: {line}");
        }
    }
    // notes is declared (for reading): the refusal may say why.
    assert!(
        lines[2].contains("may not refer to table notes by foreign key"),
        "{lines:?}"
    );
    assert!(lines[2].contains("capabilities.write"), "{lines:?}");
    // secret is not: the hook learns nothing of it.
    assert!(lines[0].contains(uplift::hooks::HIDDEN), "{lines:?}");
    assert!(!dump(&conn).contains("hostile_pin"));
    // To a table it may write, or owns, a key is fine.
    let mut conn = database();
    let writes = r#"{"read":["script"],"write":["notes"],"owns":"hostile_"}"#;
    let lines = run_script(
        &mut runner,
        &mut conn,
        writes,
        &[
            sql("CREATE TABLE hostile_pin(x REFERENCES notes(id))"),
            sql("CREATE TABLE hostile_sub(y REFERENCES hostile_pin(x))"),
        ],
    )
    .unwrap();
    assert_eq!(lines, ["#1 ok: []", "#2 ok: []"]);
}

#[test]
fn an_owned_view_may_read_only_what_the_plugin_may_read() {
    let mut runner = runner();
    for (view, says) in [
        ("SELECT v FROM secret", "reads secret"),
        (
            "SELECT n.body FROM notes n JOIN uplift_meta m ON 1",
            "reads uplift_meta",
        ),
        ("SELECT sqlite_version() AS v", "calls sqlite_version()"),
        ("SELECT * FROM nosuch", "does not compile"),
    ] {
        let mut conn = database();
        let create = format!("CREATE VIEW hostile_watch AS {view}");
        let err = run_script(&mut runner, &mut conn, READS_NOTES, &[sql(&create)])
            .expect_err("a view beyond the manifest");
        let text = err.to_string();
        assert!(matches!(err, HookError::Dependency { .. }), "{text}");
        assert!(
            text.contains("view hostile_watch of plugin hostile"),
            "{text}"
        );
        assert!(text.contains(says), "{text} does not say {says:?}");
        assert!(!dump(&conn).contains("hostile_watch"));
    }
    let mut conn = database();
    let lines = run_script(
        &mut runner,
        &mut conn,
        READS_NOTES,
        &[
            sql("CREATE TABLE hostile_t(x)"),
            sql("CREATE VIEW hostile_v AS SELECT body, x FROM notes, hostile_t"),
            sql(
                "CREATE VIEW hostile_w AS WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 3)
                 SELECT i, value FROM r, json_each('[1]'), hostile_v",
            ),
        ],
    )
    .unwrap();
    assert_eq!(lines, ["#1 ok: []", "#2 ok: []", "#3 ok: []"]);
}

#[test]
fn temp_objects_live_as_long_as_the_hook_that_made_them() {
    let mut runner = runner();
    let mut conn = database();
    let lines = run_script(
        &mut runner,
        &mut conn,
        READS_NOTES,
        &[
            sql("CREATE TEMP TABLE hostile_scratch(x)"),
            sql("INSERT INTO hostile_scratch SELECT id FROM notes"),
            sql("CREATE TEMP VIEW hostile_peek AS SELECT * FROM hostile_scratch"),
            sql("SELECT count(*) FROM hostile_peek"),
        ],
    )
    .unwrap();
    assert_eq!(lines[3], "#4 ok: [[Value::Integer(5)]]");
    let temp: i64 = conn
        .query_row("SELECT count(*) FROM temp.sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(temp, 0, "the hook's TEMP objects outlived it");
    // The next hook of the plugin may use the names again.
    let lines = run_script(
        &mut runner,
        &mut conn,
        READS_NOTES,
        &[sql("CREATE TEMP TABLE hostile_scratch(y)")],
    )
    .unwrap();
    assert_eq!(lines, ["#1 ok: []"]);
}

#[test]
fn owned_autoincrement_tables_and_declared_fts5_tables_work() {
    let mut runner = runner();
    let mut conn = database();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE docs USING fts5(body); INSERT INTO docs VALUES ('hello world');",
    )
    .unwrap();
    let caps = r#"{"read":["script"],"write":["docs"],"owns":"hostile_"}"#;
    let lines = run_script(
        &mut runner,
        &mut conn,
        caps,
        &[
            sql("CREATE TABLE hostile_seq(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)"),
            sql("INSERT INTO hostile_seq(v) VALUES ('a')"),
            sql("SELECT body FROM docs WHERE docs MATCH 'hello'"),
            sql("INSERT INTO docs VALUES ('more words')"),
        ],
    )
    .unwrap();
    assert_eq!(
        lines,
        [
            "#1 ok: []",
            "#2 ok: []",
            "#3 ok: [[Value::Text(\"hello world\")]]",
            "#4 ok: []"
        ]
    );
}

#[test]
fn control_characters_in_what_a_plugin_says_are_escaped() {
    let mut runner = runner();
    let mut conn = database();
    let log = CollectLog::new();
    let err = runner
        .run(
            &mut conn,
            &planned(&hostile(), "spoof"),
            &context(),
            log.clone(),
        )
        .expect_err("the spoofing hook fails on purpose");
    let mut shown: Vec<String> = log.lines().iter().map(|l| l.to_string()).collect();
    shown.push(err.to_string());
    let all = shown.join("\n");
    for line in &shown {
        for part in line.split('\n') {
            assert!(
                !part.chars().any(uplift::hooks::is_unsafe_char),
                "{part:?} reaches the terminal raw"
            );
        }
    }
    for escaped in [
        "log\\r[tidy/shout] forged\\x1b[2K\\x1b]52;c;cHduZWQ=\\x07",
        "stdout\\x1b[1A\\u{9b}2K\\u{202e}",
        "stderr\\x1b]0;title\\x1b\\\\\\x08",
        "error\\n[tidy/shout] forged\\r\\x1b[31m",
    ] {
        assert!(all.contains(escaped), "{all} does not show {escaped:?}");
    }
}

/// A migration of the release being installed, applied as the upgrade does.
fn migrate(conn: &Connection, id: u32, sql: &str) -> Result<(), uplift::migrations::MigrateError> {
    let migration = uplift::release::Migration {
        database: "main".into(),
        in_database_folder: false,
        id,
        name: format!("step{id}"),
        path: PathBuf::from(format!("{id:04}_step{id}.sql")),
        sql: sql.to_string(),
        checksum: "0".repeat(64),
    };
    let version = Version::parse("2.0.0").unwrap();
    uplift::internals::migration::apply(
        conn,
        &migration,
        &version,
        &uplift::internals::changes::WrittenTables::new(),
        std::time::Duration::from_secs(60),
    )
    .map(drop)
}

#[test]
fn a_plugin_view_does_not_stop_a_later_migration_that_rebuilds_what_it_reads() {
    let mut runner = runner();
    let mut conn = database();
    conn.execute_batch(
        "CREATE TABLE progress(id INTEGER PRIMARY KEY, score INTEGER, note TEXT);
         INSERT INTO progress(score) VALUES (1), (2), (3);",
    )
    .unwrap();
    let caps = r#"{"read":["script","progress"],"write":[],"owns":"hostile_"}"#;
    let lines = run_script(
        &mut runner,
        &mut conn,
        caps,
        &[sql(
            "CREATE VIEW hostile_watch AS SELECT score FROM progress",
        )],
    )
    .unwrap();
    assert_eq!(lines, ["#1 ok: []"]);
    conn.execute_batch("COMMIT; BEGIN IMMEDIATE").unwrap();
    // A later release rebuilds the table the view reads (SQLite's 12-step
    // way): with the view in place, the RENAME fails on it.
    migrate(
        &conn,
        2,
        "CREATE TABLE progress_new(id INTEGER PRIMARY KEY, score REAL, note TEXT);
         INSERT INTO progress_new SELECT id, score, note FROM progress;
         DROP TABLE progress;
         ALTER TABLE progress_new RENAME TO progress;",
    )
    .expect("the plugin's view is set aside while the migration runs");
    let total: f64 = conn
        .query_row("SELECT sum(score) FROM hostile_watch", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, 6.0, "the view is back, over the rebuilt table");
    // A migration that removes what the view reads: the view is left out
    // (its plugin's hooks create it again), the migration goes through.
    migrate(&conn, 3, "ALTER TABLE progress DROP COLUMN score").unwrap();
    let views: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'hostile_watch'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(views, 0);
}

#[test]
fn a_refused_statement_is_shown_escaped() {
    let mut runner = runner();
    let mut conn = database();
    let tmp = tempfile::tempdir().unwrap();
    let plugin = hostile_as(tmp.path(), "hostile", READS_NOTES, &["script"]);
    conn.execute_batch(
        "CREATE TABLE script(id INTEGER PRIMARY KEY, sql TEXT NOT NULL, param);
         INSERT INTO script(sql) VALUES ('SELECT * FROM \"x' || char(27) || ']52;c;cHduZWQ=' || char(7) || '\"');",
    )
    .unwrap();
    let log = CollectLog::new();
    let outcome = runner
        .run(
            &mut conn,
            &planned(&plugin, "script"),
            &context(),
            log.clone(),
        )
        .unwrap();
    assert_eq!(outcome.refused.len(), 1, "{:?}", outcome.refused);
    let shown = outcome.refused[0].clone();
    assert!(
        !shown.chars().any(uplift::hooks::is_unsafe_char),
        "{shown:?}"
    );
    assert!(shown.contains("x\\x1b]52;c;cHduZWQ=\\x07"), "{shown}");
}

#[test]
fn a_long_value_inside_sql_names_the_length_limit_not_the_reply() {
    // The reply is one integer; the value SQLite would build is 100 MB.
    let mut runner = runner();
    let mut conn = database();
    let err = run_script(
        &mut runner,
        &mut conn,
        READS_NOTES,
        &[(
            "SELECT length(zeroblob(?))",
            rusqlite::types::Value::Integer(100 << 20),
        )],
    )
    .expect_err("over SQLite's length limit");
    assert_limit(&err, |l| matches!(l, Limit::Length { mib: 8 }));
    let text = err.to_string();
    assert!(
        text.contains("length limit") && !text.contains("reply limit"),
        "{text}"
    );
}

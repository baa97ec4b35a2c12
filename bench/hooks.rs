//! Benchmarks of the hook sandbox (not timed tests):
//!
//! 1. Compile cache: cold (compile and store) and warm (from `cache/`)
//!    load-and-instantiate of a Rust hook component, and of a Python one
//!    when given. Targets: warm under 5 ms (Rust), under 100 ms (Python).
//! 2. Database access: a hook updating 1,000,000 rows one at a time through a
//!    prepared statement, against a native Rust program doing the same with
//!    rusqlite, side by side in one run. Target: the hook at most 1.5x.
//!
//! ```text
//! scripts/build-plugins
//! cargo bench -p uplift --bench hooks                       # Rust hook only
//! cargo bench -p uplift --bench hooks -- --python FILE.wasm # and a componentize-py hook
//! cargo bench -p uplift --bench hooks -- --rows 100000      # fewer rows
//! ```
//!
//! The Python figure needs a Python plugin component (componentize-py, ~18 MB,
//! built by the SDK's Python example); pass its path with `--python` or the
//! `UPLIFT_BENCH_PYTHON` environment variable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use uplift::home::HookLimits;
use uplift::hooks::manifest;
use uplift::hooks::{CacheOutcome, CompileCache};
use uplift::hooks::{HookContext, HookRunner, LogLine, PlannedHook};
use uplift::internals::RunOnConnection;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn component(name: &str) -> PathBuf {
    let path = target_dir().join("wasm32-wasip2/release").join(name);
    if !path.is_file() {
        eprintln!(
            "{} is missing: run scripts/build-plugins first",
            path.display()
        );
        std::process::exit(2);
    }
    path
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Cold and warm load-and-instantiate of the component at `path`.
fn cache_bench(label: &str, path: &Path, limits: &HookLimits) {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut runner =
        HookRunner::with_cache(Some(CompileCache::new(dir.path())), limits).expect("the engine");
    let cold = runner.load_and_instantiate(path).expect("cold load");
    assert_eq!(cold.cache, CacheOutcome::Compiled);
    let mut warm = Vec::new();
    let (mut loads, mut insts) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        // A new runner each time: nothing is kept in memory between loads.
        let mut runner = HookRunner::with_cache(Some(CompileCache::new(dir.path())), limits)
            .expect("the engine");
        let report = runner.load_and_instantiate(path).expect("warm load");
        assert_eq!(report.cache, CacheOutcome::Hit);
        warm.push(report.load + report.instantiate);
        loads.push(report.load);
        insts.push(report.instantiate);
    }
    println!(
        "{label} ({:.1} MB component): cold load+instantiate {} (compile {}), warm median {} (load {}, instantiate {}) over {} runs",
        size as f64 / 1e6,
        ms(cold.load + cold.instantiate),
        ms(cold.load),
        ms(median(warm.clone())),
        ms(median(loads)),
        ms(median(insts)),
        warm.len()
    );
}

fn bench_db(path: &Path, rows: i64) -> Connection {
    let _ = std::fs::remove_file(path);
    let conn = Connection::open(path).expect("the benchmark database");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE bench(id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         BEGIN;",
    )
    .expect("schema");
    {
        let mut insert = conn
            .prepare("INSERT INTO bench(id, v) VALUES (?1, 0)")
            .expect("insert");
        for id in 1..=rows {
            insert.execute([id]).expect("insert a row");
        }
    }
    conn.execute_batch("COMMIT").expect("commit");
    conn
}

fn native_update(conn: &Connection, rows: i64) -> Duration {
    conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    let started = Instant::now();
    {
        let mut update = conn
            .prepare("UPDATE bench SET v = v + 1 WHERE id = ?1")
            .expect("prepare");
        for id in 1..=rows {
            let changed = update.execute([id]).expect("update");
            assert_eq!(changed, 1);
        }
    }
    let elapsed = started.elapsed();
    conn.execute_batch("ROLLBACK").expect("rollback");
    elapsed
}

fn hook_update(runner: &mut HookRunner, conn: &mut Connection, hook: &PlannedHook) -> Duration {
    conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    let ctx = HookContext {
        app: "bench".into(),
        old_version: "1.0".into(),
        new_version: "2.0".into(),
        dry_run: false,
    };
    let outcome = runner
        .run(
            conn,
            hook,
            &ctx,
            Arc::new(|line: &LogLine| eprintln!("{line}")),
        )
        .expect("the hook runs");
    conn.execute_batch("ROLLBACK").expect("rollback");
    outcome.duration
}

fn update_bench(rows: i64, limits: &HookLimits) {
    let path = component("uplift_test_bulk.wasm");
    let m = manifest::read_manifest(&std::fs::read(&path).expect("read the component"))
        .expect("its manifest");
    let hook = |name: &str| PlannedHook {
        plugin: m.name.clone(),
        plugin_version: m.version.clone(),
        hook: name.into(),
        path: path.clone(),
        capabilities: m.capabilities.clone(),
        old_version: "*".into(),
        new_version: "*".into(),
        plugin_old_version: None,
        plugin_new_version: None,
    };
    let (each, batched) = (hook("update_each_row"), hook("update_each_row_batched"));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut conn = bench_db(&dir.path().join("bench.sqlite3"), rows);
    let mut runner =
        HookRunner::with_cache(Some(CompileCache::new(dir.path().join("cache"))), limits)
            .expect("the engine");
    // Warm-up: compiles the component, fills SQLite's page cache.
    native_update(&conn, rows);
    hook_update(&mut runner, &mut conn, &each);
    hook_update(&mut runner, &mut conn, &batched);
    let (mut native, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        native.push(native_update(&conn, rows));
        one.push(hook_update(&mut runner, &mut conn, &each));
        many.push(hook_update(&mut runner, &mut conn, &batched));
    }
    let (native, one, many) = (median(native), median(one), median(many));
    let ratio = |d: Duration| d.as_secs_f64() / native.as_secs_f64();
    println!(
        "{rows} single-row UPDATEs through a prepared statement (median of 5, interleaved): \
         native rusqlite {}; hook, one `execute` call per row {} ({:.2}x); \
         hook, `execute-many` with 1,000 parameter lists per call {} ({:.2}x)",
        ms(native),
        ms(one),
        ratio(one),
        ms(many),
        ratio(many)
    );
}

fn main() {
    // As the `uplift` binary does, first thing: SQLite's memory is then
    // counted while hooks run, and the figures include what that costs.
    uplift::hooks::install_sqlite_allocator();
    let mut args = std::env::args().skip(1);
    let mut python = std::env::var_os("UPLIFT_BENCH_PYTHON").map(PathBuf::from);
    let mut rows: i64 = 1_000_000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--python" => python = args.next().map(PathBuf::from),
            "--rows" => {
                rows = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| {
                    eprintln!("--rows takes a number");
                    std::process::exit(2)
                })
            }
            "--bench" => {} // passed by `cargo bench`
            other => {
                eprintln!("unknown argument {other:?}; see the header of bench/hooks.rs");
                std::process::exit(2);
            }
        }
    }
    let limits = HookLimits::default();
    cache_bench("Rust hook", &component("uplift_test_tidy.wasm"), &limits);
    match python {
        Some(path) => cache_bench("Python hook", &path, &limits),
        None => println!(
            "Python hook: skipped (pass --python FILE.wasm or UPLIFT_BENCH_PYTHON with a componentize-py plugin)"
        ),
    }
    update_bench(rows, &limits);
}

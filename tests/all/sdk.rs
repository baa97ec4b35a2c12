//! The Rust hooks SDK, seen from outside: components built from
//! `tests/plugins/sdk-probe` and `example-hooks/*` carry the manifest their
//! macros declare, dispatch `hooks.run` to the right function, and their
//! database helpers behave over the real WIT interface.
//!
//! The components run in a small harness (`harness` below) that implements
//! the `uplift:hooks` imports over an in-memory SQLite database with no
//! sandbox policy: it tests the SDK's side of the contract. The host's own
//! sandbox is tested by the hooks module.

use std::path::PathBuf;

use serde_json::Value as Json;

use crate::support::repo_root;

/// A component built by `scripts/build-plugins`.
fn component(file: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("wasm32-wasip2/release").join(file);
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins first",
        path.display()
    );
    path
}

/// Every `uplift:manifest` fragment in the component, at any nesting depth
/// (the Rust SDK's fragments live in the core module; a manifest appended by
/// a tool lives at the component's top level).
fn manifest_fragments(wasm: &[u8]) -> Vec<Json> {
    let mut text = String::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CustomSection(section) = payload.expect("valid wasm")
            && section.name() == "uplift:manifest"
        {
            text.push_str(std::str::from_utf8(section.data()).expect("UTF-8 manifest"));
        }
    }
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Json>()
        .collect::<Result<_, _>>()
        .expect("the manifest is concatenated JSON objects")
}

/// The merged manifest: the plugin fragment plus the hooks, ordered by
/// their `order` key.
fn manifest(file: &str) -> (Json, Vec<Json>) {
    let wasm = std::fs::read(component(file)).unwrap();
    let fragments = manifest_fragments(&wasm);
    let plugin: Vec<&Json> = fragments
        .iter()
        .filter(|f| f.get("name").is_some())
        .collect();
    assert_eq!(
        plugin.len(),
        1,
        "{file}: exactly one plugin fragment in {fragments:?}"
    );
    for f in &fragments {
        assert_eq!(f["uplift_manifest"], 1, "{file}: format version in {f}");
    }
    let mut hooks: Vec<Json> = Vec::new();
    for f in &fragments {
        hooks.extend(f.get("hook").cloned());
        hooks.extend(f["hooks"].as_array().into_iter().flatten().cloned());
    }
    hooks.sort_by_key(|h| h["order"].as_u64());
    (plugin[0].clone(), hooks)
}

fn hook_summary(hooks: &[Json]) -> Vec<(String, String, String)> {
    hooks
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_string(),
                h["old_version"].as_str().unwrap().to_string(),
                h["new_version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn big_leap_carries_the_manifest_its_macros_declare() {
    let (plugin, hooks) = manifest("big_leap.wasm");
    assert_eq!(plugin["name"], "big-leap");
    assert_eq!(plugin["version"], "1.0.0");
    assert_eq!(
        plugin["capabilities"]["read"],
        serde_json::json!(["facility"])
    );
    assert_eq!(plugin["capabilities"]["write"], serde_json::json!([]));
    assert_eq!(plugin["capabilities"]["owns"], "bigleap_");
    assert_eq!(
        hook_summary(&hooks),
        [("big_leap_upgrade".into(), "<0.6.4".into(), ">=1.0.0".into())]
    );
}

#[test]
fn email_backfill_writes_learner_and_reads_facility() {
    let (plugin, hooks) = manifest("email_backfill.wasm");
    assert_eq!(plugin["name"], "email-backfill");
    assert_eq!(
        plugin["capabilities"]["read"],
        serde_json::json!(["facility"])
    );
    assert_eq!(
        plugin["capabilities"]["write"],
        serde_json::json!(["learner"])
    );
    assert!(plugin["capabilities"].get("owns").is_none());
    assert_eq!(
        hook_summary(&hooks),
        [("backfill_emails".into(), "<1.0.0".into(), ">=1.0.0".into())]
    );
}

#[test]
fn badges_declares_its_hooks_in_source_order() {
    let (plugin, hooks) = manifest("badges.wasm");
    assert_eq!(plugin["capabilities"]["owns"], "badges_");
    assert_eq!(
        plugin["capabilities"]["read"],
        serde_json::json!(["learner", "progress"])
    );
    assert_eq!(
        hook_summary(&hooks),
        [
            ("create_tables".into(), "*".into(), ">=0.2.0".into()),
            ("first_lesson".into(), "<1.0.0".into(), ">=1.0.0".into()),
        ]
    );
}

#[test]
fn a_plugin_without_a_version_takes_its_crates_version() {
    let (plugin, hooks) = manifest("sdk_probe.wasm");
    assert_eq!(plugin["name"], "sdk-probe");
    assert_eq!(plugin["version"], "0.3.0");
    let names: Vec<String> = hook_summary(&hooks).into_iter().map(|h| h.0).collect();
    assert_eq!(names, ["first", "second", "third", "fails"]);
}

fn probe() -> harness::Probe {
    let probe = harness::Probe::load(&component("sdk_probe.wasm"));
    probe.sql("CREATE TABLE facility (id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
    probe.sql("INSERT INTO facility VALUES (1, 'North'), (2, 'South')");
    probe
}

fn seen(probe: &harness::Probe, hook: &str) -> Vec<String> {
    probe.strings(&format!(
        "SELECT what FROM probe_seen WHERE hook = '{hook}' ORDER BY rowid"
    ))
}

/// What the probe's hook `second` (prepared statements, `execute_many`, a
/// cursor) records, on this test host and on the real one (tests/all/hooks.rs).
pub(crate) const SECOND_SEES: [&str; 4] = [
    "sum=500500 labelled=100 count=1000",
    "execute_many added=500 count=1500",
    r#"kept=2 error=Some((19, "parameter list 2: UNIQUE constraint failed: probe_unique.n"))"#,
    "count=1500 code=Some(25)",
];

#[test]
fn run_dispatches_each_hook_to_its_own_function() {
    let mut probe = probe();
    for hook in ["third", "first", "second"] {
        probe.run(hook).unwrap_or_else(|e| panic!("{hook}: {e}"));
    }
    assert_eq!(seen(&probe, "first"), ["dry_run=false"]);
    assert_eq!(seen(&probe, "second"), SECOND_SEES);
    assert_eq!(
        seen(&probe, "third"),
        [
            r#"facilities=2 first=Some("1:North") names=["North", "South"]"#,
            "syntax error code=Some(1)",
            "missing=None",
            r#"null into i64: cannot read column "NULL": expected INTEGER (for i64), found NULL"#,
            r#"columns=["facility_id", "name"]"#,
        ]
    );
    let hooks_in_order = probe.strings("SELECT DISTINCT hook FROM probe_seen ORDER BY rowid");
    assert_eq!(hooks_in_order, ["third", "first", "second"]);
}

#[test]
fn run_refuses_a_hook_name_the_plugin_does_not_have() {
    let mut probe = probe();
    let err = probe.run("fourth").unwrap_err();
    assert_eq!(
        err,
        r#"plugin "sdk-probe" has no hook named "fourth" (it has: fails, first, second, third)"#
    );
    assert!(
        probe
            .strings("SELECT name FROM sqlite_master WHERE name = 'probe_seen'")
            .is_empty()
    );
}

#[test]
fn a_failing_hook_returns_its_message_to_the_host() {
    let mut probe = probe();
    assert_eq!(
        probe.run("fails").unwrap_err(),
        "this hook always fails (on purpose)"
    );
}

#[test]
fn log_macros_and_println_reach_the_host() {
    let mut probe = probe();
    probe.run("first").unwrap();
    probe.run("third").unwrap();
    assert!(
        probe.log().contains(&(
            "info".to_string(),
            "first ran from 0.9.0 to 1.0.0".to_string()
        )),
        "{:?}",
        probe.log()
    );
    assert!(
        probe
            .log()
            .contains(&("warn".to_string(), "a warning".to_string()))
    );
    assert_eq!(probe.stdout(), "third says hello on stdout\n");
}

#[test]
fn email_backfill_fills_only_missing_addresses_through_a_cursor() {
    let mut plugin = harness::Probe::load(&component("email_backfill.wasm"));
    plugin.sql(
        "CREATE TABLE facility (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE learner (id INTEGER PRIMARY KEY, facility_id INTEGER NOT NULL,
                               username TEXT NOT NULL, joined TEXT, email TEXT);
         INSERT INTO facility VALUES (1, 'North'), (7, 'South');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO learner (id, facility_id, username, email)
              SELECT i, CASE WHEN i % 2 THEN 1 ELSE 7 END, 'User' || i,
                     CASE WHEN i % 3 = 0 THEN 'kept' || i || '@x.org' END
                FROM n;",
    );
    plugin.run("backfill_emails").unwrap();
    assert!(
        plugin
            .strings("SELECT id FROM learner WHERE email IS NULL")
            .is_empty()
    );
    assert_eq!(
        plugin.strings("SELECT email FROM learner WHERE id IN (1, 2, 3) ORDER BY id"),
        ["user1@1.example.org", "user2@7.example.org", "kept3@x.org"]
    );
    assert!(
        plugin.log().contains(&(
            "info".into(),
            "gave 1334 learners a placeholder email address".into()
        )),
        "{:?}",
        plugin.log()
    );
}

#[test]
fn the_python_plugin_carries_its_manifest_at_the_component_top_level() {
    let (plugin, hooks) = manifest("py_stats.wasm");
    assert_eq!(plugin["name"], "py-stats");
    assert_eq!(plugin["version"], "1.0.0");
    assert_eq!(
        plugin["capabilities"]["read"],
        serde_json::json!(["learner"])
    );
    assert_eq!(plugin["capabilities"]["owns"], "pystats_");
    assert_eq!(
        hook_summary(&hooks),
        [(
            "summarize_learners".into(),
            "<1.0.0".into(),
            ">=1.0.0".into()
        )]
    );
}

#[test]
fn the_python_plugin_runs_its_hook_and_refuses_unknown_ones() {
    let mut plugin = harness::Probe::load(&component("py_stats.wasm"));
    plugin.sql(
        "CREATE TABLE learner (id INTEGER PRIMARY KEY, facility_id INTEGER NOT NULL,
                               username TEXT NOT NULL, joined TEXT, email TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
         INSERT INTO learner (id, facility_id, username) SELECT i, i % 3 + 1, 'u' || i FROM n;",
    );
    plugin.run("summarize_learners").unwrap();
    assert_eq!(
        plugin.strings(
            "SELECT facility_id || ':' || learners FROM pystats_summary ORDER BY facility_id"
        ),
        ["1:400", "2:400", "3:400"]
    );
    assert!(
        plugin.log().contains(&(
            "info".into(),
            "counted 1200 learners in 3 facilities".into()
        )),
        "{:?}",
        plugin.log()
    );
    assert_eq!(plugin.stdout(), "py-stats: 0.9.0 -> 1.0.0\n");

    let err = plugin.run("nope").unwrap_err();
    assert_eq!(
        err,
        "plugin 'py-stats' has no hook named 'nope' (it has: summarize_learners)"
    );
}

/// Runs hooks-sdk/python/build-plugin on `source` (as app.py in a fresh
/// folder); returns its exit code, stderr and whether it wrote the output.
fn build_python(source: &str) -> (Option<i32>, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.py");
    std::fs::write(&app, source).unwrap();
    let out = dir.path().join("out.wasm");
    let result = std::process::Command::new(repo_root().join("hooks-sdk/python/build-plugin"))
        .arg(&app)
        .arg("-o")
        .arg(&out)
        .arg("--uplift")
        .arg(env!("CARGO_BIN_EXE_uplift"))
        .output()
        .expect("python3 runs build-plugin");
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    (result.status.code(), stderr, out.exists())
}

#[test]
fn python_build_refuses_a_bad_range_naming_the_file_and_hook() {
    let (code, stderr, written) = build_python(
        "from uplift_hooks import plugin, version_upgrade\n\
         plugin(name=\"p\", version=\"1.0.0\")\n\
         @version_upgrade(old_version=\"<<0.6\", new_version=\">=1.0.0\")\n\
         def leap(ctx):\n    pass\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("app.py:4: hook leap old_version: invalid range \"<<0.6\""),
        "{stderr}"
    );
    assert!(!written);
}

#[test]
fn python_build_refuses_bad_manifests_before_building() {
    for (source, expected) in [
        (
            "plugin(name=\"Bad Name\", version=\"1.0\")\n@version_upgrade(old_version=\"*\", new_version=\"*\")\ndef h(ctx): pass\n",
            "app.py:1: name: invalid plugin name \"Bad Name\"",
        ),
        (
            "plugin(name=\"p\", version=\"1.0\", reads=[\"sqlite_master\"])\n@version_upgrade(old_version=\"*\", new_version=\"*\")\ndef h(ctx): pass\n",
            "app.py:1: capabilities.read: table \"sqlite_master\" cannot be declared",
        ),
        (
            "plugin(name=\"p\", version=\"1.0\")\n@version_upgrade(old_version=\"*\")\ndef h(ctx): pass\n",
            "@version_upgrade needs new_version",
        ),
        (
            "plugin(name=\"p\", version=\"1.0\")\n@version_upgrade(old_version=\"*\", new_version=\"*\")\ndef h(): pass\n",
            "must take exactly one argument",
        ),
        (
            "plugin(name=\"p\", version=\"2.0\")\n@version_upgrade(plugin_old_version=\"<<2.0\")\ndef h(ctx): pass\n",
            "app.py:3: hook h plugin_old_version: invalid range \"<<2.0\"",
        ),
        (
            "plugin(name=\"p\", version=\"2.0\")\n@version_upgrade(new_version=\"*\", plugin_new_version=\"*\")\ndef h(ctx): pass\n",
            "@version_upgrade needs old_version",
        ),
        (
            "plugin(name=\"p\", version=\"2.0\")\n@version_upgrade(plugin_version=\"*\")\ndef h(ctx): pass\n",
            "@version_upgrade takes old_version, new_version, plugin_old_version, plugin_new_version, not plugin_version",
        ),
        (
            "V = \"1.0\"\nplugin(name=\"p\", version=V)\n",
            "must be a literal",
        ),
        (
            &format!(
                "plugin(name=\"p\", version=\"1.0\")\n@version_upgrade(old_version=\"*\", new_version=\"*\")\ndef {}(ctx): pass\n",
                "h".repeat(65)
            ),
            "app.py:3: hooks: invalid hook name",
        ),
        (
            "plugin(name=\"p\", version=\"one\")\n@version_upgrade(old_version=\"*\", new_version=\"*\")\ndef h(ctx): pass\n",
            "app.py:1: version: invalid version \"one\"",
        ),
    ] {
        let (code, stderr, written) = build_python(source);
        assert_eq!(code, Some(1), "{source}: {stderr}");
        assert!(
            stderr.starts_with("build-plugin: ") && stderr.contains(expected),
            "{source}: {stderr}"
        );
        assert!(!written, "{source}");
    }
}

/// Just enough of a host to run SDK components: the `uplift:hooks` imports
/// over an in-memory SQLite database, WASI with nothing granted but a
/// captured stdout.
mod harness {
    use std::collections::VecDeque;
    use std::path::Path;

    use rusqlite::types::{Value as SqlValue, ValueRef};
    use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
    use wasmtime::{Engine, Store};
    use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    wasmtime::component::bindgen!({
        path: "../wit",
        world: "upgrade-hook",
        with: {
            "uplift:hooks/database.statement": StatementSql,
            "uplift:hooks/database.cursor": CursorRows,
        },
    });

    use self::uplift::hooks::types::{DbError, Rows, Value};
    use exports::uplift::hooks::hooks::Context;

    /// A prepared statement: its SQL (re-prepared from SQLite's cache).
    /// Public because `bindgen!`'s `with` re-exports it.
    #[allow(unreachable_pub)]
    pub struct StatementSql(String);

    /// A cursor: the rows left to hand out.
    #[allow(unreachable_pub)]
    pub struct CursorRows {
        columns: Vec<String>,
        rows: VecDeque<Vec<Value>>,
    }

    pub(super) struct State {
        wasi: WasiCtx,
        table: ResourceTable,
        db: rusqlite::Connection,
        log: Vec<(String, String)>,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    fn db_error(e: rusqlite::Error) -> DbError {
        let extended_code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => f.extended_code,
            _ => 1,
        };
        let code = extended_code & 0xff;
        DbError {
            code,
            extended_code,
            message: e.to_string(),
        }
    }

    fn to_sql(v: &Value) -> SqlValue {
        match v {
            Value::Null => SqlValue::Null,
            Value::Integer(i) => SqlValue::Integer(*i),
            Value::Real(r) => SqlValue::Real(*r),
            Value::Text(s) => SqlValue::Text(s.clone()),
            Value::Blob(b) => SqlValue::Blob(b.clone()),
        }
    }

    fn from_sql(v: ValueRef<'_>) -> Value {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }

    impl State {
        fn run_execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
            let mut stmt = self.db.prepare_cached(sql).map_err(db_error)?;
            let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
            let n = stmt
                .execute(rusqlite::params_from_iter(params))
                .map_err(db_error)?;
            Ok(n as u64)
        }

        fn run_query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            let mut stmt = self.db.prepare_cached(sql).map_err(db_error)?;
            let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
            let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(db_error)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(db_error)? {
                out.push(
                    (0..columns.len())
                        .map(|i| from_sql(row.get_ref(i).expect("column in range")))
                        .collect(),
                );
            }
            Ok(Rows { columns, rows: out })
        }

        fn open_cursor(
            &mut self,
            sql: &str,
            params: &[Value],
        ) -> Result<Resource<CursorRows>, DbError> {
            let rows = self.run_query(sql, params)?;
            Ok(self
                .table
                .push(CursorRows {
                    columns: rows.columns,
                    rows: rows.rows.into(),
                })
                .expect("resource table has room"))
        }
    }

    impl self::uplift::hooks::types::Host for State {}

    impl self::uplift::hooks::log::Host for State {
        fn log(&mut self, level: self::uplift::hooks::log::Level, message: String) {
            use self::uplift::hooks::log::Level;
            let level = match level {
                Level::Trace => "trace",
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            self.log.push((level.to_string(), message));
        }
    }

    impl self::uplift::hooks::database::Host for State {
        fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, DbError> {
            self.run_execute(&sql, &params)
        }
        fn execute_batch(&mut self, sql: String) -> Result<(), DbError> {
            self.db.execute_batch(&sql).map_err(db_error)
        }
        fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, DbError> {
            self.run_query(&sql, &params)
        }
        fn open_cursor(
            &mut self,
            sql: String,
            params: Vec<Value>,
        ) -> Result<Resource<CursorRows>, DbError> {
            State::open_cursor(self, &sql, &params)
        }
        fn prepare(&mut self, sql: String) -> Result<Resource<StatementSql>, DbError> {
            self.db.prepare_cached(&sql).map_err(db_error)?;
            Ok(self.table.push(StatementSql(sql)).expect("room"))
        }
        fn last_insert_rowid(&mut self) -> i64 {
            self.db.last_insert_rowid()
        }
    }

    impl self::uplift::hooks::database::HostStatement for State {
        fn execute(
            &mut self,
            this: Resource<StatementSql>,
            params: Vec<Value>,
        ) -> Result<u64, DbError> {
            let sql = self.table.get(&this).expect("live statement").0.clone();
            self.run_execute(&sql, &params)
        }
        fn execute_many(
            &mut self,
            this: Resource<StatementSql>,
            params: Vec<Value>,
        ) -> Result<u64, DbError> {
            let sql = self.table.get(&this).expect("live statement").0.clone();
            let width = self
                .db
                .prepare_cached(&sql)
                .map_err(db_error)?
                .parameter_count();
            if width == 0 || !params.len().is_multiple_of(width) {
                return Err(DbError {
                    code: 25,
                    extended_code: 25,
                    message: format!("{} values for lists of {width}", params.len()),
                });
            }
            let mut changed = 0;
            for (index, list) in params.chunks(width).enumerate() {
                changed += self.run_execute(&sql, list).map_err(|mut e| {
                    e.message = format!("parameter list {index}: {}", e.message);
                    e
                })?;
            }
            Ok(changed)
        }
        fn query(
            &mut self,
            this: Resource<StatementSql>,
            params: Vec<Value>,
        ) -> Result<Rows, DbError> {
            let sql = self.table.get(&this).expect("live statement").0.clone();
            self.run_query(&sql, &params)
        }
        fn cursor(
            &mut self,
            this: Resource<StatementSql>,
            params: Vec<Value>,
        ) -> Result<Resource<CursorRows>, DbError> {
            let sql = self.table.get(&this).expect("live statement").0.clone();
            State::open_cursor(self, &sql, &params)
        }
        fn columns(&mut self, this: Resource<StatementSql>) -> Vec<String> {
            let sql = self.table.get(&this).expect("live statement").0.clone();
            let stmt = self.db.prepare_cached(&sql).expect("prepared before");
            stmt.column_names().iter().map(|c| c.to_string()).collect()
        }
        fn drop(&mut self, this: Resource<StatementSql>) -> wasmtime::Result<()> {
            self.table.delete(this)?;
            Ok(())
        }
    }

    impl self::uplift::hooks::database::HostCursor for State {
        fn columns(&mut self, this: Resource<CursorRows>) -> Vec<String> {
            self.table.get(&this).expect("live cursor").columns.clone()
        }
        fn next(
            &mut self,
            this: Resource<CursorRows>,
            max_rows: u32,
        ) -> Result<Vec<Vec<Value>>, DbError> {
            let cursor = self.table.get_mut(&this).expect("live cursor");
            let n = (max_rows as usize).min(cursor.rows.len());
            Ok(cursor.rows.drain(..n).collect())
        }
        fn drop(&mut self, this: Resource<CursorRows>) -> wasmtime::Result<()> {
            self.table.delete(this)?;
            Ok(())
        }
    }

    /// One component instance over its own in-memory database.
    pub(super) struct Probe {
        store: Store<State>,
        hooks: UpgradeHook,
        stdout: MemoryOutputPipe,
        plugin: String,
    }

    impl Probe {
        pub(super) fn load(path: &Path) -> Probe {
            let engine = Engine::default();
            let component = Component::from_file(&engine, path).expect("component loads");
            let mut linker = Linker::<State>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI links");
            UpgradeHook::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
                .expect("uplift:hooks links");
            let stdout = MemoryOutputPipe::new(1 << 16);
            let wasi = WasiCtx::builder().stdout(stdout.clone()).build();
            let state = State {
                wasi,
                table: ResourceTable::new(),
                db: rusqlite::Connection::open_in_memory().expect("in-memory database"),
                log: Vec::new(),
            };
            let mut store = Store::new(&engine, state);
            let hooks = UpgradeHook::instantiate(&mut store, &component, &linker)
                .expect("component instantiates");
            let plugin = path
                .file_stem()
                .map(|s| s.to_string_lossy().replace('_', "-"))
                .unwrap_or_default();
            Probe {
                store,
                hooks,
                stdout,
                plugin,
            }
        }

        /// Runs SQL on the database directly (test set-up).
        pub(super) fn sql(&self, sql: &str) {
            self.store
                .data()
                .db
                .execute_batch(sql)
                .expect("set-up SQL runs");
        }

        /// The first column of every row of `sql`, as text.
        pub(super) fn strings(&self, sql: &str) -> Vec<String> {
            let db = &self.store.data().db;
            let mut stmt = db.prepare(sql).expect("test query prepares");
            stmt.query_map([], |row| row.get::<_, String>(0))
                .expect("test query runs")
                .collect::<Result<_, _>>()
                .expect("text values")
        }

        /// Calls `hooks.run` for `hook`, upgrading from 0.9.0 to 1.0.0.
        pub(super) fn run(&mut self, hook: &str) -> Result<(), String> {
            let ctx = Context {
                app: "learnhub".into(),
                plugin: self.plugin.clone(),
                plugin_version: "0.3.0".into(),
                hook: hook.into(),
                old_version: "0.9.0".into(),
                new_version: "1.0.0".into(),
                dry_run: false,
            };
            self.hooks
                .uplift_hooks_hooks()
                .call_run(&mut self.store, &ctx)
                .expect("the hook does not trap")
        }

        pub(super) fn log(&self) -> &[(String, String)] {
            &self.store.data().log
        }

        pub(super) fn stdout(&self) -> String {
            String::from_utf8_lossy(&self.stdout.contents()).into_owned()
        }
    }
}

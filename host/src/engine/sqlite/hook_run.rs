//! Running one hook on the SQLite engine: the hook's savepoint, its
//! capability ([`SqliteCapability`]) under the authorizer and SQLite's own
//! limits, and what is checked after it (schema changes only of what the
//! plugin owns, what its tables and views refer to, TEMP objects dropped).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::capability::SqliteCapability;
use super::changes::WrittenTables;
use crate::engine::sqlite::authorizer::{self, Ownership, Policy};
use crate::engine::sqlite::dependencies;
use crate::engine::sqlite::limits::SqliteBounds;
use crate::hooks::bindings::UpgradeHookPre;
use crate::hooks::bounds::Trip;
use crate::hooks::sandbox::HostState;
use crate::hooks::{
    HookContext, HookError, HookOutcome, HookRunner, LogSink, PlannedHook, escape_untrusted,
};

/// SQLite virtual-machine instructions between checks of the time limit.
const PROGRESS_OPS: i32 = 10_000;

/// The savepoint each hook runs in.
const SAVEPOINT: &str = "uplift_hook";

/// Runs one hook on `conn`, which is inside the upgrade's transaction.
///
/// The hook runs in its own savepoint, store and limits, with the
/// authorizer enforcing its plugin's capabilities and a progress handler
/// stopping runaway queries. On success the savepoint is released; on any
/// failure it is rolled back, so the database is exactly as before the
/// hook. Log lines go to `log` as they are written.
///
/// `conn` is taken out of the caller's reference for the hook's duration
/// (wasmtime's store data must be `'static`; an empty in-memory
/// connection holds its place) and is always put back before this
/// returns.
///
/// The plugin owns the tables under its prefix that the hook creates and
/// those `conn` records as the plugin's (`uplift_plugin_tables`, read
/// here when it exists; see [`Ownership`]); nothing is recorded here:
/// the caller records [`HookOutcome::created`] and forgets
/// [`HookOutcome::dropped`] with [`super::meta::record_plugin_tables`].
///
/// Fails when the component cannot be loaded, the hook traps, returns an
/// error, hits a limit, leaves a schema change outside what it owns, or
/// leaves a table or view that refers beyond its manifest (a foreign key
/// on a table it may not write, a view over one it may not read: see
/// `dependencies`); the error names the plugin, the hook and the reason.
/// The TEMP tables and views the hook created are dropped when it ends.
/// The connection is expected to have `foreign_keys` off, as the upgrade
/// and `uplift hooks test` have it (keys are checked before COMMIT).
pub(crate) fn run_hook(
    runner: &mut HookRunner,
    conn: &mut Connection,
    written: Option<&WrittenTables>,
    hook: &PlannedHook,
    ctx: &HookContext,
    log: Arc<dyn LogSink>,
) -> Result<HookOutcome, HookError> {
    let loading = Instant::now();
    let pre = runner.load(&hook.path, &hook.plugin)?;
    let load = loading.elapsed();
    let db_err = |what: &'static str| {
        move |source: rusqlite::Error| HookError::Database {
            plugin: hook.plugin.clone(),
            hook: hook.hook.clone(),
            what,
            source: source.into(),
        }
    };
    let placeholder = Connection::open_in_memory().map_err(db_err("open an in-memory database"))?;
    let before = schema_snapshot(conn).map_err(db_err("read the schema"))?;
    let existing = authorizer::existing_tables(conn).map_err(db_err("read the schema"))?;
    let recorded = super::meta::plugin_tables(conn, &hook.plugin).map_err(db_err(
        "read which tables the plugin created (uplift_plugin_tables)",
    ))?;
    let ownership = Ownership::new(&hook.plugin, &hook.capabilities, &existing, &recorded)
        .with_schema_of(conn)
        .map_err(db_err("read the schema"))?;
    conn.execute_batch(&format!("SAVEPOINT {SAVEPOINT}"))
        .map_err(db_err("start the hook's savepoint"))?;

    let started = Instant::now();
    let real = std::mem::replace(conn, placeholder);
    let (returned, result) = run_in_store(runner, real, &pre, hook, ctx, &ownership, written, log);
    *conn = returned;
    let duration = started.elapsed();

    let result = result.and_then(|outcome| {
        let after = schema_snapshot(conn).map_err(db_err("read the schema"))?;
        if let Some(object) = schema_violation(&before, &after, &ownership) {
            return Err(HookError::SchemaChange {
                plugin: hook.plugin.clone(),
                hook: hook.hook.clone(),
                object: escape_untrusted(&object).into_owned(),
            });
        }
        let problem = dependency_problem(conn, &hook.plugin, &before, &after, &ownership)
            .map_err(db_err("check what the hook's tables and views refer to"))?;
        if let Some(problem) = problem {
            return Err(HookError::Dependency {
                plugin: hook.plugin.clone(),
                hook: hook.hook.clone(),
                problem: escape_untrusted(&problem).into_owned(),
            });
        }
        drop_new_temp_objects(conn, &before, &after)
            .map_err(db_err("drop the TEMP tables and views the hook created"))?;
        Ok((outcome, created_and_dropped(&before, &after)))
    });
    match result {
        Ok(((log_bytes, refused, instantiate), (created, dropped))) => {
            conn.execute_batch(&format!("RELEASE {SAVEPOINT}"))
                .map_err(db_err("release the hook's savepoint"))?;
            Ok(HookOutcome {
                plugin: hook.plugin.clone(),
                hook: hook.hook.clone(),
                duration,
                setup: load + instantiate,
                log_bytes,
                refused,
                created,
                dropped,
            })
        }
        Err(err) => {
            if conn.is_autocommit() {
                // SQLite already rolled everything back, the savepoint
                // with it.
                // A limit (memory, disk, time) that made SQLite end it
                // is the cause the operator needs; it stopped the hook.
                return Err(match err {
                    HookError::TransactionLost { .. } | HookError::Limit { .. } => err,
                    other => HookError::TransactionLost {
                        plugin: hook.plugin.clone(),
                        hook: hook.hook.clone(),
                        cause: other.to_string(),
                    },
                });
            }
            conn.execute_batch(&format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}"))
                .map_err(db_err("roll back the hook's savepoint"))?;
            Err(err)
        }
    }
}

/// What a process stopped by the watchdog during a hook leaves of the
/// database, for the operator.
const AFTER_STOP: &str = "Nothing the upgrade did was committed: SQLite rolls its transaction back \
                          from the journal the next time the database is opened, leaving the \
                          database exactly as it was.";

/// Runs the hook with `conn` in its capability; always gives `conn` back,
/// with the authorizer, progress handler and limits removed and every
/// statement of the hook finalized.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn run_in_store(
    runner: &HookRunner,
    conn: Connection,
    pre: &UpgradeHookPre<HostState>,
    hook: &PlannedHook,
    ctx: &HookContext,
    ownership: &Ownership,
    written: Option<&WrittenTables>,
    sink: Arc<dyn LogSink>,
) -> (
    Connection,
    Result<(usize, Vec<String>, Duration), HookError>,
) {
    let limits = runner.limits();
    let timeout = Duration::from_secs(limits.timeout_seconds);
    let deadline = Instant::now() + timeout;
    let mut policy = Policy::with_ownership(ownership.clone());
    if let Some(written) = written {
        policy.record_writes(written.clone());
    }
    let new_statement = policy.statement_flag();
    let policy = Arc::new(Mutex::new(policy));
    // The bounds run PRAGMAs: before the authorizer, which refuses them.
    let bounds = SqliteBounds::apply(&conn, limits);
    let saved_config = match authorizer::install(&conn, &policy) {
        Ok(saved) => saved,
        Err(source) => {
            bounds.restore(&conn);
            let err = HookError::Database {
                plugin: hook.plugin.clone(),
                hook: hook.hook.clone(),
                what: "turn on SQLite's defensive settings",
                source: source.into(),
            };
            return (conn, Err(err));
        }
    };
    let trip = Arc::new(Trip::default());
    let interrupt = conn.get_interrupt_handle();
    let watch = runner.watch(
        hook,
        deadline,
        Box::new(move || interrupt.interrupt()),
        AFTER_STOP,
        Arc::clone(&trip),
    );
    let stopped = Arc::clone(&trip);
    conn.progress_handler(
        PROGRESS_OPS,
        Some(move || Instant::now() >= deadline || stopped.get().is_some()),
    );
    let capability = Box::new(SqliteCapability {
        conn,
        policy,
        new_statement,
        max_reply: usize::try_from(limits.max_reply_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        reply_mib: limits.max_reply_mib,
        deadline,
        timeout_seconds: limits.timeout_seconds,
        refused: Vec::new(),
        trip: Arc::clone(&trip),
        bounds: Some(bounds),
    });
    let (capability, called) = runner.call(pre, hook, ctx, capability, deadline, &trip, sink);
    drop(watch);
    let capability = match capability.into_any().downcast::<SqliteCapability>() {
        Ok(capability) => *capability,
        Err(_) => unreachable!("the capability given to the hook comes back"),
    };
    let SqliteCapability { conn, bounds, .. } = capability;
    authorizer::remove(&conn, saved_config);
    conn.progress_handler(0, None::<fn() -> bool>);
    if let Some(bounds) = bounds {
        bounds.restore(&conn);
    }
    let result = called.map(|called| (called.log_bytes, called.refused, called.instantiate));
    (conn, result)
}

/// One row of `sqlite_schema` (or `sqlite_temp_schema`).
type SchemaRow = (String, String, String, String, Option<String>);

fn schema_snapshot(conn: &Connection) -> rusqlite::Result<Vec<SchemaRow>> {
    let mut stmt = conn.prepare(
        "SELECT 'main', type, name, tbl_name, sql FROM main.sqlite_schema
         UNION ALL
         SELECT 'temp', type, name, tbl_name, sql FROM temp.sqlite_schema
         ORDER BY 1, 2, 3",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    rows.collect()
}

/// The first schema object added, removed or changed between `before` and
/// `after` that the plugin does not own: every changed object must be owned
/// (an index: its name under the prefix, or SQLite's automatic index, and its
/// table owned), where an existing object under the prefix that the plugin
/// did not create is not owned.
fn schema_violation(
    before: &[SchemaRow],
    after: &[SchemaRow],
    ownership: &Ownership,
) -> Option<String> {
    let changed = before
        .iter()
        .filter(|row| !after.contains(row))
        .chain(after.iter().filter(|row| !before.contains(row)));
    for (_, kind, name, table, _) in changed {
        if authorizer::is_sqlite_bookkeeping(name) {
            continue; // SQLite's own, made inside an allowed statement
        }
        let owned = ownership.owns(table)
            && (ownership.owns(name) || name.starts_with("sqlite_autoindex_"));
        if !owned {
            return Some(format!("{kind} {name}"));
        }
    }
    None
}

/// What is wrong with what the tables and views the hook created or
/// changed refer to (see [`dependencies`]), if anything.
fn dependency_problem(
    conn: &Connection,
    plugin: &str,
    before: &[SchemaRow],
    after: &[SchemaRow],
    ownership: &Ownership,
) -> rusqlite::Result<Option<String>> {
    let changed: Vec<dependencies::Object<'_>> = after
        .iter()
        .filter(|row| !before.contains(row) && !authorizer::is_sqlite_bookkeeping(&row.2))
        .map(|(schema, kind, name, ..)| dependencies::Object { schema, kind, name })
        .collect();
    if changed.is_empty() {
        return Ok(None);
    }
    dependencies::check(
        conn,
        plugin,
        &changed,
        &Policy::with_ownership(ownership.clone()),
    )
}

/// Drops the TEMP tables and views in `after` but not in `before`: a TEMP
/// object lives as long as the hook that made it (scratch space), so that
/// no hook finds another's, or its own from an earlier hook, on the
/// upgrade's connection. Their indexes go with them; a hook cannot create
/// triggers.
fn drop_new_temp_objects(
    conn: &Connection,
    before: &[SchemaRow],
    after: &[SchemaRow],
) -> rusqlite::Result<()> {
    for (schema, kind, name, ..) in after {
        let new = !before
            .iter()
            .any(|(s, k, n, ..)| s == schema && k == kind && n == name);
        if schema == "temp" && new && (kind == "table" || kind == "view") {
            let what = if kind == "view" { "VIEW" } else { "TABLE" };
            conn.execute_batch(&format!(
                "DROP {what} IF EXISTS temp.{}",
                crate::engine::sqlite::sql::quote_ident(name)
            ))?;
        }
    }
    Ok(())
}

/// The tables and views of the main schema in `after` but not in `before`
/// (created), and in `before` but not in `after` (dropped); a rename is
/// both. Names compare case-insensitively, as SQLite's do.
fn created_and_dropped(before: &[SchemaRow], after: &[SchemaRow]) -> (Vec<String>, Vec<String>) {
    let names = |rows: &[SchemaRow]| -> Vec<String> {
        rows.iter()
            .filter(|(schema, kind, name, ..)| {
                schema == "main"
                    && (kind == "table" || kind == "view")
                    && !name.to_ascii_lowercase().starts_with("sqlite_")
            })
            .map(|(_, _, name, ..)| name.clone())
            .collect()
    };
    let (before, after) = (names(before), names(after));
    let missing = |from: &[String], other: &[String]| -> Vec<String> {
        let other: HashSet<String> = other.iter().map(|n| n.to_ascii_lowercase()).collect();
        from.iter()
            .filter(|n| !other.contains(&n.to_ascii_lowercase()))
            .cloned()
            .collect()
    };
    (missing(&after, &before), missing(&before, &after))
}

//! uplift's own bookkeeping inside the application database: the data
//! version, the application's name and each plugin's version. Keeping them in
//! the database (not in a side file) means they move in the same transaction
//! as the migrations and travel inside every backup.
//!
//! ```sql
//! CREATE TABLE uplift_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
//! -- keys: 'data_version', 'app'
//! CREATE TABLE uplift_plugins (name TEXT PRIMARY KEY, version TEXT NOT NULL,
//!                              updated_at TEXT NOT NULL);
//! -- the plugin version each active plugin's hooks were last considered at,
//! -- and when the data reached it (changed only with the version)
//! -- the tables and views each plugin's hooks created (see below)
//! CREATE TABLE uplift_plugin_tables (name TEXT PRIMARY KEY COLLATE NOCASE,
//!                                    plugin TEXT NOT NULL);
//! -- what uplift did to the database (crate::history)
//! CREATE TABLE uplift_history (id INTEGER PRIMARY KEY, event TEXT NOT NULL,
//!     started_at TEXT NOT NULL, ended_at TEXT NOT NULL, from_version TEXT,
//!     to_version TEXT NOT NULL, outcome TEXT NOT NULL,
//!     uplift_version TEXT NOT NULL, details TEXT NOT NULL);  -- details: JSON
//! ```
//!
//! Hooks can never read or write tables whose name starts with `uplift_`.
//!
//! `uplift_plugin_tables` is the provenance behind `capabilities.owns`: a
//! plugin owns the tables under its prefix that it created, not every table
//! whose name happens to start with it (an application table `learner` is
//! not a plugin's because its manifest says `owns = "learn"`). The upgrade
//! records, after each successful hook and in the same transaction, the
//! tables and views the hook created and forgets those it dropped or renamed
//! away ([`record_plugin_tables`]); a table that no longer exists at the end
//! of an upgrade is forgotten too ([`forget_missing_plugin_tables`]), so a
//! stale record never hands a plugin a table created later by someone else.
//! A database upgraded by an uplift from before this record gets it on its
//! next upgrade, filled once by [`adopt_plugin_tables`].
//!
//! A plugin's views are set aside while each migration runs
//! ([`set_aside_plugin_views`], [`put_back_plugin_views`]): a migration
//! that rebuilds a table a plugin's view reads (create, copy, drop, rename)
//! would otherwise fail on the view ("error in view ..."), and the
//! application could not upgrade until someone dropped it by hand. A view
//! holds no data; one that no longer compiles against the migrated schema
//! is not put back, and its plugin's hooks create it again.

use rusqlite::{Connection, OptionalExtension, params};

use super::sql::table_exists;
use crate::engine::MetaError;
use crate::history::HistoryEntry;
use crate::hooks::RecordedPlugin;
use crate::names::{UPLIFT_TABLE_PREFIX, starts_with_ignore_case};
use crate::version::Version;

/// Creates uplift's tables if they are missing.
pub fn ensure_tables(conn: &Connection) -> Result<(), MetaError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS uplift_meta (
             key   TEXT PRIMARY KEY,
             value TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS uplift_plugins (
             name       TEXT PRIMARY KEY,
             version    TEXT NOT NULL,
             updated_at TEXT NOT NULL
         );",
    )?;
    ensure_plugin_tables(conn)?;
    Ok(())
}

/// Creates `uplift_plugin_tables` if it is missing.
fn ensure_plugin_tables(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS uplift_plugin_tables (
             name   TEXT PRIMARY KEY COLLATE NOCASE,
             plugin TEXT NOT NULL
         );",
    )
}

fn get(conn: &Connection, key: &str) -> Result<Option<String>, rusqlite::Error> {
    if !table_exists(conn, "uplift_meta")? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT value FROM uplift_meta WHERE key = ?1",
        [key],
        |row| row.get(0),
    )
    .optional()
}

fn set(conn: &Connection, key: &str, value: &str) -> Result<(), MetaError> {
    ensure_tables(conn)?;
    conn.execute(
        "INSERT INTO uplift_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// The release version the database was last upgraded to; `None` for a
/// database uplift has never upgraded.
pub fn data_version(conn: &Connection) -> Result<Option<Version>, MetaError> {
    match get(conn, "data_version")? {
        None => Ok(None),
        Some(stored) => Version::parse(&stored)
            .map(Some)
            .map_err(|source| MetaError::BadVersion { stored, source }),
    }
}

/// Records the data version (inside the caller's transaction, if any).
pub fn set_data_version(conn: &Connection, version: &Version) -> Result<(), MetaError> {
    set(conn, "data_version", &version.to_string())
}

/// The application name recorded with the data version.
pub fn app_name(conn: &Connection) -> Result<Option<String>, MetaError> {
    Ok(get(conn, "app")?)
}

/// Records the application name.
pub fn set_app_name(conn: &Connection, app: &str) -> Result<(), MetaError> {
    set(conn, "app", app)
}

/// Records a plugin's version after an upgrade considered its hooks.
/// `updated_at` is when the data reached that version (to the millisecond):
/// it changes only with the version, so that the backups made before it
/// hold the data as an older version of the plugin left it.
pub fn set_plugin_version(conn: &Connection, name: &str, version: &str) -> Result<(), MetaError> {
    ensure_tables(conn)?;
    conn.execute(
        "INSERT INTO uplift_plugins (name, version, updated_at)
         VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                                          updated_at = excluded.updated_at
          WHERE version != excluded.version",
        params![name, version],
    )?;
    Ok(())
}

/// Every plugin version the data records, by name; none when uplift never
/// recorded one. Only reads. Fails when SQLite does, or a recorded version
/// does not parse.
pub fn plugin_versions(conn: &Connection) -> Result<Vec<RecordedPlugin>, MetaError> {
    if !table_exists(conn, "uplift_plugins")? {
        return Ok(Vec::new());
    }
    let mut stmt =
        conn.prepare("SELECT name, version, updated_at FROM uplift_plugins ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
    })?;
    let mut recorded = Vec::new();
    for row in rows {
        let (name, stored, updated_at) = row?;
        let version = Version::parse(&stored).map_err(|source| MetaError::BadPluginVersion {
            plugin: name.clone(),
            stored,
            source: Box::new(source),
        })?;
        recorded.push(RecordedPlugin {
            name,
            version,
            updated_at,
        });
    }
    Ok(recorded)
}

/// The tables and views recorded as created by `plugin`'s hooks, sorted;
/// empty when the database has no `uplift_plugin_tables` (never upgraded by
/// this version of uplift, or a bare database in a test or benchmark).
/// Only reads, so it works on a read-only connection. Fails only when SQLite
/// does.
pub fn plugin_tables(conn: &Connection, plugin: &str) -> Result<Vec<String>, rusqlite::Error> {
    if !table_exists(conn, "uplift_plugin_tables")? {
        return Ok(Vec::new());
    }
    let mut stmt =
        conn.prepare("SELECT name FROM uplift_plugin_tables WHERE plugin = ?1 ORDER BY name")?;
    let rows = stmt.query_map([plugin], |row| row.get(0))?;
    rows.collect()
}

/// Records that `plugin`'s hook created the tables and views `created` and
/// dropped (or renamed away) `dropped`: inside the caller's transaction,
/// after the hook's savepoint was released. Creates `uplift_plugin_tables`
/// when it is missing (`uplift hooks test` records into its copy of a
/// database that may not have it). A name created again replaces whatever
/// was recorded for it. Fails only when SQLite does.
pub fn record_plugin_tables(
    conn: &Connection,
    plugin: &str,
    created: &[String],
    dropped: &[String],
) -> Result<(), rusqlite::Error> {
    if created.is_empty() && dropped.is_empty() {
        return Ok(());
    }
    ensure_plugin_tables(conn)?;
    let mut forget = conn.prepare_cached("DELETE FROM uplift_plugin_tables WHERE name = ?1")?;
    for name in dropped {
        forget.execute([name])?;
    }
    let mut remember = conn.prepare_cached(
        "INSERT INTO uplift_plugin_tables (name, plugin) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET name = excluded.name, plugin = excluded.plugin",
    )?;
    for name in created {
        remember.execute(params![name, plugin])?;
    }
    Ok(())
}

/// Forgets recorded plugin tables that no longer exist (a migration dropped
/// them, or the hook's table was temporary): called at the end of each
/// upgrade, so that a table created later under the same name is not taken
/// for the plugin's. Does nothing without `uplift_plugin_tables`. Fails only
/// when SQLite does.
pub fn forget_missing_plugin_tables(conn: &Connection) -> Result<(), rusqlite::Error> {
    if !table_exists(conn, "uplift_plugin_tables")? {
        return Ok(());
    }
    conn.execute(
        "DELETE FROM uplift_plugin_tables
          WHERE name NOT IN (SELECT name FROM main.sqlite_schema
                              WHERE type IN ('table', 'view'))",
        [],
    )?;
    Ok(())
}

/// A plugin's view set aside by [`set_aside_plugin_views`].
#[derive(Debug, Clone)]
pub struct SetAsideView {
    /// The view's name.
    pub name: String,
    /// Its `CREATE VIEW` statement, as `sqlite_schema` keeps it.
    pub sql: String,
}

/// Drops every view of the main schema recorded as a plugin's, and returns
/// them for [`put_back_plugin_views`]: called before a migration, inside the
/// upgrade's transaction (a failed migration rolls the drop back with
/// everything else). Does nothing, and costs one lookup, when no plugin has
/// a view. Fails only when SQLite does.
pub fn set_aside_plugin_views(conn: &Connection) -> Result<Vec<SetAsideView>, rusqlite::Error> {
    if !table_exists(conn, "uplift_plugin_tables")? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT s.name, s.sql FROM main.sqlite_schema AS s
           JOIN uplift_plugin_tables AS p ON p.name = s.name
          WHERE s.type = 'view' AND s.sql IS NOT NULL ORDER BY s.name",
    )?;
    let views: Vec<SetAsideView> = stmt
        .query_map([], |r| {
            Ok(SetAsideView {
                name: r.get(0)?,
                sql: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for view in &views {
        conn.execute_batch(&format!(
            "DROP VIEW main.{}",
            super::sql::quote_ident(&view.name)
        ))?;
    }
    Ok(views)
}

/// Creates again the views [`set_aside_plugin_views`] dropped, after the
/// migration, each from its own statement. A view whose name a migration
/// has taken, or that no longer compiles against the migrated schema (it
/// reads a column or table that is gone), is left out; its record is
/// forgotten at the end of the upgrade ([`forget_missing_plugin_tables`]).
/// Returns the names of the views left out. Fails only when SQLite does.
pub fn put_back_plugin_views(
    conn: &Connection,
    views: &[SetAsideView],
) -> Result<Vec<String>, rusqlite::Error> {
    let mut left_out = Vec::new();
    for view in views {
        // One statement only (`execute` refuses more): the text is the
        // plugin's, as SQLite stored it when the hook created the view.
        if conn.execute(&view.sql, []).is_err() {
            left_out.push(view.name.clone());
            continue;
        }
        let quoted = super::sql::quote_ident(&view.name);
        if conn
            .prepare(&format!("SELECT * FROM main.{quoted}"))
            .is_err()
        {
            conn.execute_batch(&format!("DROP VIEW main.{quoted}"))?;
            left_out.push(view.name.clone());
        }
    }
    Ok(left_out)
}

/// Whether the database has `uplift_plugin_tables` (an uplift from before it
/// upgraded the database last, if it has a data version but not this).
/// Fails only when SQLite does.
pub fn has_plugin_tables(conn: &Connection) -> Result<bool, rusqlite::Error> {
    table_exists(conn, "uplift_plugin_tables")
}

/// Fills `uplift_plugin_tables` for a database last upgraded by an uplift
/// that did not record what plugins create, so that plugins keep the tables
/// their hooks made then. A table or view is recorded as plugin P's when
/// its name starts with P's owned prefix and with no other plugin's, P is
/// recorded in `uplift_plugins` (it was active in an earlier upgrade), and it
/// is not one of `core` (the tables and views the release's migrations
/// create, see [`super::schema::schema_tables`]). `owners` are the
/// active plugins and their owned prefixes. Creates the record if missing;
/// returns what it recorded, as (table, plugin). Fails only when SQLite does.
pub fn adopt_plugin_tables(
    conn: &Connection,
    owners: &[(String, String)],
    core: &[String],
) -> Result<Vec<(String, String)>, rusqlite::Error> {
    ensure_plugin_tables(conn)?;
    let known: Vec<String> = match table_exists(conn, "uplift_plugins")? {
        true => {
            let mut stmt = conn.prepare("SELECT name FROM uplift_plugins")?;
            let names = stmt.query_map([], |r| r.get(0))?;
            names.collect::<Result<_, _>>()?
        }
        false => Vec::new(),
    };
    let mut stmt = conn.prepare(
        "SELECT name FROM main.sqlite_schema WHERE type IN ('table', 'view') ORDER BY name",
    )?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut adopted = Vec::new();
    for table in tables {
        if starts_with_ignore_case(&table, UPLIFT_TABLE_PREFIX)
            || starts_with_ignore_case(&table, "sqlite_")
            || core.iter().any(|c| c.eq_ignore_ascii_case(&table))
        {
            continue;
        }
        let matching: Vec<&(String, String)> = owners
            .iter()
            .filter(|(_, prefix)| starts_with_ignore_case(&table, prefix))
            .collect();
        if let [(plugin, _)] = matching[..]
            && known.iter().any(|k| k == plugin)
        {
            adopted.push((table, plugin.clone()));
        }
    }
    for (table, plugin) in &adopted {
        record_plugin_tables(conn, plugin, std::slice::from_ref(table), &[])?;
    }
    Ok(adopted)
}

/// Appends `entry` to `uplift_history` (created if missing), inside the
/// caller's transaction.
pub fn record_history(conn: &Connection, entry: &HistoryEntry) -> Result<(), MetaError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS uplift_history (
             id             INTEGER PRIMARY KEY,
             event          TEXT NOT NULL,
             started_at     TEXT NOT NULL,
             ended_at       TEXT NOT NULL,
             from_version   TEXT,
             to_version     TEXT NOT NULL,
             outcome        TEXT NOT NULL,
             uplift_version TEXT NOT NULL,
             details        TEXT NOT NULL
         );",
    )?;
    conn.execute(
        "INSERT INTO uplift_history (event, started_at, ended_at, from_version, to_version,
                                     outcome, uplift_version, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            entry.event,
            entry.started_at,
            entry.ended_at,
            entry.from_version,
            entry.to_version,
            entry.outcome,
            entry.uplift_version,
            entry.details.to_string()
        ],
    )?;
    Ok(())
}

/// The history, oldest first; empty without `uplift_history`. Only reads.
/// An entry whose details are not JSON keeps them as a string.
pub fn history(conn: &Connection) -> Result<Vec<HistoryEntry>, rusqlite::Error> {
    if !table_exists(conn, "uplift_history")? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT event, started_at, ended_at, from_version, to_version, outcome,
                uplift_version, details
         FROM uplift_history ORDER BY id",
    )?;
    let rows = stmt.query_map([], |row| {
        let details: String = row.get(7)?;
        Ok(HistoryEntry {
            event: row.get(0)?,
            started_at: row.get(1)?,
            ended_at: row.get(2)?,
            from_version: row.get(3)?,
            to_version: row.get(4)?,
            outcome: row.get(5)?,
            uplift_version: row.get(6)?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        })
    })?;
    rows.collect()
}

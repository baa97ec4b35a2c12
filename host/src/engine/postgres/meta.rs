//! uplift's bookkeeping in a PostgreSQL database: a schema of its own,
//! `uplift`, whose tables mirror the SQLite engine's `uplift_*` tables
//! column for column, so that `status`, `migrations list` and `history`
//! read the same things on both engines, and everything travels inside
//! every backup.
//!
//! ```sql
//! CREATE SCHEMA uplift;
//! CREATE TABLE uplift.meta (key text PRIMARY KEY, value text NOT NULL);
//! -- keys: 'data_version', 'app'
//! CREATE TABLE uplift.plugins (name text PRIMARY KEY, version text NOT NULL,
//!                              updated_at text NOT NULL);
//! CREATE TABLE uplift.plugin_tables (name text PRIMARY KEY, plugin text NOT NULL);
//! CREATE TABLE uplift.migrations (id integer PRIMARY KEY, name text NOT NULL,
//!     checksum text NOT NULL, applied_at text NOT NULL,
//!     release_version text NOT NULL, duration_ms bigint NOT NULL,
//!     adopted boolean NOT NULL DEFAULT false);
//! CREATE TABLE uplift.history (id bigserial PRIMARY KEY, event text NOT NULL,
//!     started_at text NOT NULL, ended_at text NOT NULL, from_version text,
//!     to_version text NOT NULL, outcome text NOT NULL,
//!     uplift_version text NOT NULL, details text NOT NULL);  -- details: JSON
//! ```
//!
//! Times are text in UTC (`2026-01-02T03:04:05Z`), as on SQLite.

use postgres::Client;

use super::error::PgError;
use crate::history::HistoryEntry;
use crate::migrations::AppliedMigration;
use crate::release::Migration;

/// The schema uplift keeps its bookkeeping in.
pub(crate) const SCHEMA: &str = "uplift";

const CREATE: &str = "
    CREATE SCHEMA IF NOT EXISTS uplift;
    CREATE TABLE IF NOT EXISTS uplift.meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    CREATE TABLE IF NOT EXISTS uplift.plugins (
        name       text PRIMARY KEY,
        version    text NOT NULL,
        updated_at text NOT NULL
    );
    CREATE TABLE IF NOT EXISTS uplift.plugin_tables (
        name   text PRIMARY KEY,
        plugin text NOT NULL
    );
    CREATE TABLE IF NOT EXISTS uplift.migrations (
        id              integer PRIMARY KEY,
        name            text NOT NULL,
        checksum        text NOT NULL,
        applied_at      text NOT NULL,
        release_version text NOT NULL,
        duration_ms     bigint NOT NULL,
        adopted         boolean NOT NULL DEFAULT false
    );
    CREATE TABLE IF NOT EXISTS uplift.history (
        id             bigserial PRIMARY KEY,
        event          text NOT NULL,
        started_at     text NOT NULL,
        ended_at       text NOT NULL,
        from_version   text,
        to_version     text NOT NULL,
        outcome        text NOT NULL,
        uplift_version text NOT NULL,
        details        text NOT NULL
    );";

const TABLES: [&str; 5] = ["meta", "plugins", "plugin_tables", "migrations", "history"];

/// Now, in UTC to the second, as the history's times are written.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Whether every bookkeeping table exists.
pub(crate) fn tables_exist(client: &mut Client) -> Result<bool, PgError> {
    let names: Vec<String> = TABLES.iter().map(|t| format!("{SCHEMA}.{t}")).collect();
    let row = client
        .query_one(
            "SELECT bool_and(to_regclass(n) IS NOT NULL) FROM unnest($1::text[]) AS n",
            &[&names],
        )
        .map_err(PgError::sql("look for uplift's tables"))?;
    Ok(row.get::<_, Option<bool>>(0).unwrap_or(false))
}

/// Creates whatever bookkeeping is missing (nothing is written when all of
/// it exists, so that a transaction's backup sees it unwritten).
pub(crate) fn ensure(client: &mut Client) -> Result<(), PgError> {
    if tables_exist(client)? {
        return Ok(());
    }
    client
        .batch_execute(CREATE)
        .map_err(PgError::sql("create uplift's tables (schema uplift)"))
}

/// A `uplift.meta` value; `None` when it, or the table, is missing.
pub(crate) fn get(client: &mut Client, key: &str) -> Result<Option<String>, PgError> {
    if !table_exists(client, "meta")? {
        return Ok(None);
    }
    let row = client
        .query_opt("SELECT value FROM uplift.meta WHERE key = $1", &[&key])
        .map_err(PgError::sql(format!("read {key} from uplift.meta")))?;
    Ok(row.map(|r| r.get(0)))
}

/// Sets a `uplift.meta` value.
pub(crate) fn set(client: &mut Client, key: &str, value: &str) -> Result<(), PgError> {
    client
        .execute(
            "INSERT INTO uplift.meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .map_err(PgError::sql(format!("record {key} in uplift.meta")))?;
    Ok(())
}

fn table_exists(client: &mut Client, table: &str) -> Result<bool, PgError> {
    let name = format!("{SCHEMA}.{table}");
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .map_err(PgError::sql(format!("look for {name}")))?;
    Ok(row.get(0))
}

/// The recorded plugin versions, as stored (name, version, updated_at).
pub(crate) fn plugin_rows(client: &mut Client) -> Result<Vec<(String, String, String)>, PgError> {
    if !table_exists(client, "plugins")? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT name, version, updated_at FROM uplift.plugins ORDER BY name",
            &[],
        )
        .map_err(PgError::sql("read uplift.plugins"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Records each plugin's version; `updated_at` moves only with the
/// version (see the SQLite engine's `uplift_plugins`).
pub(crate) fn set_plugin_versions(
    client: &mut Client,
    plugins: &[(&str, &str)],
) -> Result<(), PgError> {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    for (name, version) in plugins {
        client
            .execute(
                "INSERT INTO uplift.plugins (name, version, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                                                  updated_at = excluded.updated_at
                 WHERE uplift.plugins.version <> excluded.version",
                &[name, version, &now],
            )
            .map_err(PgError::sql(format!("record plugin {name}'s version")))?;
    }
    // A plugin table that no longer exists is forgotten.
    client
        .execute(
            "DELETE FROM uplift.plugin_tables WHERE to_regclass(quote_ident(name)) IS NULL",
            &[],
        )
        .map_err(PgError::sql("forget plugin tables that are gone"))?;
    Ok(())
}

/// The applied migrations, in order (none without the table).
pub(crate) fn applied(client: &mut Client) -> Result<Vec<AppliedMigration>, PgError> {
    if !table_exists(client, "migrations")? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT id, name, checksum, applied_at, release_version, duration_ms, adopted
             FROM uplift.migrations ORDER BY id",
            &[],
        )
        .map_err(PgError::sql("read uplift.migrations"))?;
    Ok(rows
        .iter()
        .map(|r| AppliedMigration {
            id: r.get::<_, i32>(0).max(0) as u32,
            name: r.get(1),
            checksum: r.get(2),
            applied_at: r.get(3),
            release_version: r.get(4),
            duration_ms: r.get::<_, i64>(5).max(0) as u64,
            adopted: r.get(6),
        })
        .collect())
}

/// How many migrations are recorded (0 without the table).
pub(crate) fn applied_count(client: &mut Client) -> Result<usize, PgError> {
    if !table_exists(client, "migrations")? {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT count(*) FROM uplift.migrations", &[])
        .map_err(PgError::sql("count uplift.migrations"))?;
    Ok(row.get::<_, i64>(0).max(0) as usize)
}

/// Records a migration as applied (`adopted`: found in place, never run).
pub(crate) fn record_migration(
    client: &mut Client,
    migration: &Migration,
    release: &str,
    duration_ms: i64,
    adopted: bool,
) -> Result<(), PgError> {
    let id = migration.id as i32;
    client
        .execute(
            "INSERT INTO uplift.migrations
                 (id, name, checksum, applied_at, release_version, duration_ms, adopted)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &id,
                &migration.name,
                &migration.checksum,
                &now(),
                &release,
                &duration_ms,
                &adopted,
            ],
        )
        .map_err(PgError::sql(format!(
            "record migration {} in uplift.migrations",
            migration.file_name()
        )))?;
    Ok(())
}

/// Records `checksum` as migration `id`'s.
pub(crate) fn record_checksum(client: &mut Client, id: u32, checksum: &str) -> Result<(), PgError> {
    let id = id as i32;
    client
        .execute(
            "UPDATE uplift.migrations SET checksum = $2 WHERE id = $1",
            &[&id, &checksum],
        )
        .map_err(PgError::sql("record an accepted edit in uplift.migrations"))?;
    Ok(())
}

/// Appends `entry` to `uplift.history`.
pub(crate) fn record_history(client: &mut Client, entry: &HistoryEntry) -> Result<(), PgError> {
    client
        .execute(
            "INSERT INTO uplift.history (event, started_at, ended_at, from_version, to_version,
                                         outcome, uplift_version, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &entry.event,
                &entry.started_at,
                &entry.ended_at,
                &entry.from_version,
                &entry.to_version,
                &entry.outcome,
                &entry.uplift_version,
                &entry.details.to_string(),
            ],
        )
        .map_err(PgError::sql("record the upgrade in uplift.history"))?;
    Ok(())
}

/// The history, oldest first (none without the table).
pub(crate) fn history(client: &mut Client) -> Result<Vec<HistoryEntry>, PgError> {
    if !table_exists(client, "history")? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT event, started_at, ended_at, from_version, to_version, outcome,
                    uplift_version, details
             FROM uplift.history ORDER BY id",
            &[],
        )
        .map_err(PgError::sql("read uplift.history"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let details: String = r.get(7);
            HistoryEntry {
                event: r.get(0),
                started_at: r.get(1),
                ended_at: r.get(2),
                from_version: r.get(3),
                to_version: r.get(4),
                outcome: r.get(5),
                uplift_version: r.get(6),
                details: serde_json::from_str(&details)
                    .unwrap_or(serde_json::Value::String(details)),
            }
        })
        .collect())
}

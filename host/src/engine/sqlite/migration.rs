//! Migrations on SQLite: the history table and applying one file.
//!
//! ```sql
//! CREATE TABLE uplift_migrations (
//!     id              INTEGER PRIMARY KEY,  -- the NNNN of NNNN_name.sql
//!     name            TEXT NOT NULL,        -- the name part
//!     checksum        TEXT NOT NULL,        -- SHA-256 of the file, hex
//!     applied_at      TEXT NOT NULL,        -- UTC, RFC 3339
//!     release_version TEXT NOT NULL,        -- the release that applied it
//!     duration_ms     INTEGER NOT NULL,
//!     adopted         INTEGER NOT NULL DEFAULT 0  -- 1: recorded by `uplift adopt`,
//! );                                             --    never run by uplift
//! ```
//!
//! `adopted` came after the table: a history from an older uplift gains it
//! (as 0) the next time uplift writes to it, and reads as 0 until then.
//!
//! In a home of several databases each database keeps its own history, in
//! its own file (so that it travels with that database's backup); every
//! function here takes the schema name the connection reaches it by
//! (`main`, or the name it is attached as).

use std::time::{Duration, Instant};

use super::changes::WrittenTables;
use super::sql::{quote_ident, table_exists_in};
use crate::migrations::{AppliedMigration, MigrateError};
use crate::release::Migration;
use crate::version::Version;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization, TransactionOperation};
use rusqlite::{Connection, params};

/// Creates database `schema`'s history table if it is missing, and its
/// `adopted` column if the table is older than it.
pub fn ensure_history(conn: &Connection, schema: &str) -> rusqlite::Result<()> {
    let table = history_table(schema);
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
             id              INTEGER PRIMARY KEY,
             name            TEXT NOT NULL,
             checksum        TEXT NOT NULL,
             applied_at      TEXT NOT NULL,
             release_version TEXT NOT NULL,
             duration_ms     INTEGER NOT NULL,
             adopted         INTEGER NOT NULL DEFAULT 0
         );"
    ))?;
    if !has_adopted_column(conn, schema)? {
        conn.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0"
        ))?;
    }
    Ok(())
}

/// `"schema".uplift_migrations`.
fn history_table(schema: &str) -> String {
    format!("{}.uplift_migrations", quote_ident(schema))
}

fn has_adopted_column(conn: &Connection, schema: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info('uplift_migrations', ?1) WHERE name = 'adopted'",
        [schema],
        |row| row.get(0),
    )
}

/// Database `schema`'s applied migrations, in order; empty for a database
/// without history.
pub fn applied(conn: &Connection, schema: &str) -> rusqlite::Result<Vec<AppliedMigration>> {
    if !table_exists_in(conn, schema, "uplift_migrations")? {
        return Ok(Vec::new());
    }
    let adopted = if has_adopted_column(conn, schema)? {
        "adopted"
    } else {
        "0"
    };
    let table = history_table(schema);
    let mut stmt = conn.prepare(&format!(
        "SELECT id, name, checksum, applied_at, release_version, duration_ms, {adopted}
         FROM {table} ORDER BY id"
    ))?;
    let rows = stmt.query_map([], |row| {
        Ok(AppliedMigration {
            id: row.get(0)?,
            name: row.get(1)?,
            checksum: row.get(2)?,
            applied_at: row.get(3)?,
            release_version: row.get(4)?,
            duration_ms: row.get::<_, i64>(5)?.max(0) as u64,
            adopted: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// How many migrations database `schema`'s history records (0 without a
/// history table): the no-op path compares it with the release's count.
pub fn applied_count(conn: &Connection, schema: &str) -> rusqlite::Result<usize> {
    if !table_exists_in(conn, schema, "uplift_migrations")? {
        return Ok(0);
    }
    let table = history_table(schema);
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(n.max(0) as usize)
}

/// Records `checksum` as database `schema`'s migration `id`'s (an edit the
/// release accepts).
pub fn record_checksum(
    conn: &Connection,
    schema: &str,
    id: u32,
    checksum: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "UPDATE {} SET checksum = ?2 WHERE id = ?1",
            history_table(schema)
        ),
        params![id, checksum],
    )?;
    Ok(())
}

/// Records `migrations` as applied without running them, marked as
/// adopted: `uplift adopt` found the schema they build already in place.
/// `version` is the release the database was adopted at.
pub fn record_adopted(
    conn: &Connection,
    migrations: &[Migration],
    version: &Version,
) -> rusqlite::Result<()> {
    for migration in migrations {
        ensure_history(conn, &migration.database)?;
        let mut insert = conn.prepare_cached(&format!(
            "INSERT INTO {}
                 (id, name, checksum, applied_at, release_version, duration_ms, adopted)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?4, 0, 1)",
            history_table(&migration.database)
        ))?;
        insert.execute(params![
            migration.id,
            migration.name,
            migration.checksum,
            version.to_string()
        ])?;
    }
    Ok(())
}

/// Applies one migration and records it, inside the caller's transaction,
/// with plugins' views set aside while it runs (see [`super::meta`]).
/// Transaction control inside the file is refused (by SQLite's authorizer,
/// before it can take effect); what the file's statements write, and how
/// they change the schema, is recorded in `written` (see [`super::changes`]:
/// the statements run one at a time, and each ALTER TABLE is watched).
/// A migration creates objects only in its own database (`migration.
/// database`): in a home of several databases an unqualified `CREATE TABLE`
/// lands in `main`, so a migration of another database names it
/// (`CREATE TABLE jobs.queue ...`), and one that does not is refused before
/// anything is created. Returns how long the SQL took.
pub fn apply(
    conn: &Connection,
    migration: &Migration,
    release_version: &Version,
    written: &WrittenTables,
    timeout: Duration,
) -> Result<Duration, MigrateError> {
    ensure_history(conn, &migration.database)?;
    // Plugins' views step aside while the migration runs (see crate::meta).
    let views = super::meta::set_aside_plugin_views(conn)?;
    let refused = std::sync::Arc::new(std::sync::Mutex::new(None::<Refusal>));
    let seen = refused.clone();
    let recorder = written.clone();
    let own = migration.database.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        recorder.observe(&ctx.action);
        if let Some((kind, name)) = created_object(&ctx.action)
            && let Some(database) = ctx.database_name
            && database != own
            && database != "temp"
        {
            if let Ok(mut slot) = seen.lock() {
                *slot = Some(Refusal::ElsewhereCreated {
                    what: format!("{kind} {name}"),
                    database: database.to_string(),
                });
            }
            return Authorization::Deny;
        }
        let statement = match ctx.action {
            AuthAction::Transaction { operation } => match operation {
                TransactionOperation::Begin => "BEGIN",
                TransactionOperation::Rollback => "ROLLBACK",
                TransactionOperation::Release => "RELEASE",
                _ => "COMMIT",
            },
            AuthAction::Savepoint { operation, .. } => match operation {
                TransactionOperation::Release => "RELEASE",
                TransactionOperation::Rollback => "ROLLBACK TO",
                _ => "SAVEPOINT",
            },
            _ => return Authorization::Allow,
        };
        if let Ok(mut slot) = seen.lock() {
            *slot = Some(Refusal::TransactionControl(statement));
        }
        Authorization::Deny
    }));
    let started = Instant::now();
    // A runaway statement (a recursive CTE without end) is stopped between
    // SQLite's instructions once the time is up.
    let deadline = started.checked_add(timeout);
    conn.progress_handler(
        10_000,
        Some(move || deadline.is_some_and(|d| Instant::now() >= d)),
    );
    let result = super::changes::run_batch(conn, &migration.sql, written);
    let elapsed = started.elapsed();
    conn.progress_handler(0, None::<fn() -> bool>);
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    if let Err(e) = &result
        && e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted)
        && deadline.is_some_and(|d| Instant::now() >= d)
    {
        return Err(MigrateError::TimedOut {
            file: migration.file_name(),
            seconds: timeout.as_secs(),
        });
    }
    if let Err(e) = result {
        let refusal = refused.lock().ok().and_then(|mut slot| slot.take());
        return Err(match refusal {
            Some(Refusal::TransactionControl(statement)) => MigrateError::TransactionControl {
                file: migration.file_name(),
                statement: statement.to_string(),
            },
            Some(Refusal::ElsewhereCreated { what, database }) => MigrateError::OtherDatabase {
                file: migration.file_name(),
                what,
                database,
                own: migration.database.clone(),
            },
            None => MigrateError::Failed {
                file: migration.file_name(),
                message: e.to_string(),
            },
        });
    }
    super::meta::put_back_plugin_views(conn, &views)?;
    conn.execute(
        &format!(
            "INSERT INTO {} (id, name, checksum, applied_at, release_version, duration_ms)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?4, ?5)",
            history_table(&migration.database)
        ),
        params![
            migration.id,
            migration.name,
            migration.checksum,
            release_version.to_string(),
            elapsed.as_millis() as i64
        ],
    )?;
    Ok(elapsed)
}

/// Why the authorizer refused a migration's statement.
enum Refusal {
    /// `BEGIN`, `COMMIT`, `SAVEPOINT`...
    TransactionControl(&'static str),
    /// An object created in a database other than the migration's own.
    ElsewhereCreated { what: String, database: String },
}

/// What `action` creates, as (kind, name), if it creates a schema object.
fn created_object(action: &AuthAction<'_>) -> Option<(&'static str, String)> {
    Some(match action {
        AuthAction::CreateTable { table_name } => ("table", table_name.to_string()),
        AuthAction::CreateIndex { index_name, .. } => ("index", index_name.to_string()),
        AuthAction::CreateView { view_name } => ("view", view_name.to_string()),
        AuthAction::CreateTrigger { trigger_name, .. } => ("trigger", trigger_name.to_string()),
        AuthAction::CreateVtable { table_name, .. } => ("virtual table", table_name.to_string()),
        _ => return None,
    })
}

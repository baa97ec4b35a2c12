//! Schema migrations: the history table, drift detection and applying.
//!
//! Every applied migration is recorded in the same transaction that applies
//! it, so the history can never disagree with the schema:
//!
//! ```sql
//! CREATE TABLE uplift_migrations (
//!     id              INTEGER PRIMARY KEY,  -- the NNNN of NNNN_name.sql
//!     name            TEXT NOT NULL,        -- the name part
//!     checksum        TEXT NOT NULL,        -- SHA-256 of the file, hex
//!     applied_at      TEXT NOT NULL,        -- UTC, RFC 3339
//!     release_version TEXT NOT NULL,        -- the release that applied it
//!     duration_ms     INTEGER NOT NULL
//! );
//! ```
//!
//! A migration that was applied and whose file has since changed or
//! disappeared is *drift*: uplift refuses to upgrade until it is resolved,
//! because the schema no longer matches what the release describes.

use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization, TransactionOperation};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::release::{Migration, Release};
use crate::version::Version;
use crate::written::WrittenTables;

/// Errors reading the history or applying a migration.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// SQLite failed outside any one migration.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A migration's SQL failed.
    #[error("migration {file} failed: {message}")]
    Failed { file: String, message: String },
    /// A migration ran longer than `[migrations] timeout_seconds`.
    #[error(
        "migration {file} ran longer than {seconds} s and was stopped \
         (raise [migrations] timeout_seconds in uplift.toml if it really needs longer)"
    )]
    TimedOut { file: String, seconds: u64 },
    /// A migration tried to control the transaction itself.
    #[error(
        "migration {file} uses {statement}: migrations must not begin, commit or roll back transactions \
         (uplift runs all of them in one transaction); remove it from the file"
    )]
    TransactionControl { file: String, statement: String },
    /// Applied migrations no longer match the release's files.
    #[error("{}", describe_drift(.0))]
    Drift(Vec<Drift>),
    /// The release's migrations could not be read.
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
}

fn describe_drift(drift: &[Drift]) -> String {
    let items: Vec<String> = drift.iter().map(|d| d.to_string()).collect();
    format!(
        "the database's migration history does not match this release: {}; \
         install the release the database was upgraded with, or restore a backup",
        items.join("; ")
    )
}

/// A migration recorded as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedMigration {
    /// Its number.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// The checksum of the file that was applied.
    pub checksum: String,
    /// When (UTC, RFC 3339).
    pub applied_at: String,
    /// The release that applied it.
    pub release_version: String,
    /// How long it took.
    pub duration_ms: u64,
}

/// An applied migration that no longer matches the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    /// The file changed since it was applied.
    Changed {
        id: u32,
        name: String,
        recorded: String,
        actual: String,
    },
    /// The file is gone from the release.
    Missing { id: u32, name: String },
    /// The file is new, but a migration numbered after it was already
    /// applied: it would run after migrations written to follow it.
    OutOfOrder {
        id: u32,
        name: String,
        /// The highest number applied.
        after: u32,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Changed { id, name, .. } => {
                write!(
                    f,
                    "migration {id:04}_{name}.sql changed after it was applied"
                )
            }
            Drift::Missing { id, name } => {
                write!(
                    f,
                    "migration {id:04}_{name}.sql was applied but is not in the release"
                )
            }
            Drift::OutOfOrder { id, name, after } => {
                write!(
                    f,
                    "migration {id:04}_{name}.sql is new but {after:04} was already applied \
                     (a release must number new migrations after every applied one: renumber it)"
                )
            }
        }
    }
}

/// Where the database stands against a release's migrations.
#[derive(Debug, Clone, Default)]
pub struct MigrationStatus {
    /// Recorded as applied (whether or not they still match).
    pub applied: Vec<AppliedMigration>,
    /// In the release, not yet applied, in order.
    pub pending: Vec<Migration>,
    /// Applied ones that no longer match.
    pub drift: Vec<Drift>,
}

/// Creates the history table if it is missing.
pub fn ensure_history(conn: &Connection) -> Result<(), MigrateError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS uplift_migrations (
             id              INTEGER PRIMARY KEY,
             name            TEXT NOT NULL,
             checksum        TEXT NOT NULL,
             applied_at      TEXT NOT NULL,
             release_version TEXT NOT NULL,
             duration_ms     INTEGER NOT NULL
         );",
    )?;
    Ok(())
}

/// The applied migrations, in order; empty for a database without history.
pub fn applied(conn: &Connection) -> Result<Vec<AppliedMigration>, MigrateError> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'uplift_migrations'",
        [],
        |row| row.get(0),
    )?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT id, name, checksum, applied_at, release_version, duration_ms
         FROM uplift_migrations ORDER BY id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(AppliedMigration {
            id: row.get(0)?,
            name: row.get(1)?,
            checksum: row.get(2)?,
            applied_at: row.get(3)?,
            release_version: row.get(4)?,
            duration_ms: row.get::<_, i64>(5)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many migrations the history records (0 without a history table):
/// the no-op path compares it with the release's count.
pub fn applied_count(conn: &Connection) -> Result<usize, MigrateError> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'uplift_migrations'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let n: i64 = conn.query_row("SELECT count(*) FROM uplift_migrations", [], |r| r.get(0))?;
    Ok(n.max(0) as usize)
}

/// Compares the history with the release's migrations.
pub fn status(conn: &Connection, release: &Release) -> Result<MigrationStatus, MigrateError> {
    let migrations = release.migrations()?;
    let applied = applied(conn)?;
    let mut drift = Vec::new();
    for record in &applied {
        match migrations.iter().find(|m| m.id == record.id) {
            None => drift.push(Drift::Missing {
                id: record.id,
                name: record.name.clone(),
            }),
            Some(m) if m.checksum != record.checksum => drift.push(Drift::Changed {
                id: record.id,
                name: record.name.clone(),
                recorded: record.checksum.clone(),
                actual: m.checksum.clone(),
            }),
            Some(_) => {}
        }
    }
    let pending: Vec<Migration> = migrations
        .iter()
        .filter(|m| !applied.iter().any(|a| a.id == m.id))
        .cloned()
        .collect();
    if let Some(after) = applied.iter().map(|a| a.id).max() {
        for m in pending.iter().filter(|m| m.id < after) {
            drift.push(Drift::OutOfOrder {
                id: m.id,
                name: m.name.clone(),
                after,
            });
        }
    }
    Ok(MigrationStatus {
        applied,
        pending,
        drift,
    })
}

/// Applies one migration and records it, inside the caller's transaction,
/// with plugins' views set aside while it runs (see [`crate::meta`]).
/// Transaction control inside the file is refused (by SQLite's authorizer,
/// before it can take effect); what the file's statements write, and how
/// they change the schema, is recorded in `written` (see [`crate::written`]:
/// the statements run one at a time, and each ALTER TABLE is watched).
/// Returns how long the SQL took.
pub fn apply(
    conn: &Connection,
    migration: &Migration,
    release_version: &Version,
    written: &WrittenTables,
    timeout: Duration,
) -> Result<Duration, MigrateError> {
    ensure_history(conn)?;
    // Plugins' views step aside while the migration runs (see crate::meta).
    let views = crate::meta::set_aside_plugin_views(conn)?;
    let refused = std::sync::Arc::new(std::sync::Mutex::new(None::<&'static str>));
    let seen = refused.clone();
    let recorder = written.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        recorder.observe(&ctx.action);
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
            *slot = Some(statement);
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
    let result = crate::written::run_batch(conn, &migration.sql, written);
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
        let statement = refused.lock().ok().and_then(|mut slot| slot.take());
        return Err(match statement {
            Some(statement) => MigrateError::TransactionControl {
                file: migration.file_name(),
                statement: statement.to_string(),
            },
            None => MigrateError::Failed {
                file: migration.file_name(),
                message: e.to_string(),
            },
        });
    }
    crate::meta::put_back_plugin_views(conn, &views)?;
    conn.execute(
        "INSERT INTO uplift_migrations (id, name, checksum, applied_at, release_version, duration_ms)
         VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?4, ?5)",
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

/// A row that breaks a foreign key, from `PRAGMA foreign_key_check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKeyViolation {
    /// The table holding the row.
    pub table: String,
    /// The row's rowid (None for WITHOUT ROWID tables).
    pub rowid: Option<i64>,
    /// The table it refers to.
    pub parent: String,
}

impl std::fmt::Display for ForeignKeyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rowid {
            Some(rowid) => write!(
                f,
                "row {rowid} of {} refers to a missing row of {}",
                self.table, self.parent
            ),
            None => write!(
                f,
                "a row of {} refers to a missing row of {}",
                self.table, self.parent
            ),
        }
    }
}

/// Runs `PRAGMA foreign_key_check` on the whole main database; at most
/// `limit` violations are returned. The upgrade checks only what it could
/// have broken, with [`crate::written::check_foreign_keys`], which falls back
/// to this.
pub fn foreign_key_violations(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<ForeignKeyViolation>, rusqlite::Error> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let rows = stmt.query_map([], ForeignKeyViolation::from_row)?;
    rows.take(limit).collect()
}

impl ForeignKeyViolation {
    /// Reads a row of `foreign_key_check` (table, rowid, parent, ...).
    pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ForeignKeyViolation> {
        Ok(ForeignKeyViolation {
            table: row.get(0)?,
            rowid: row.get(1)?,
            parent: row.get(2)?,
        })
    }
}

//! The history of applied migrations, compared with a release's.
//!
//! Every applied migration is recorded (number, name, checksum, time, the
//! release that applied it) in the same transaction that applies it, so the
//! history can never disagree with the schema. A migration that was applied
//! and whose file has since changed or disappeared, or a new one numbered
//! before one already applied, is *drift*: uplift refuses to upgrade until
//! it is resolved, because the schema no longer matches what the release
//! describes. How the history is stored is the engine's (see
//! [`crate::engine::Database::applied_migrations`]).

use serde::Serialize;

use crate::engine::EngineError;
use crate::release::{Migration, Release, ReleaseError};

/// Errors reading the history or applying a migration.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database failed outside any one migration.
    #[error("database error")]
    Database(#[from] EngineError),
    /// A migration's SQL failed.
    #[error("migration {file} failed: {message}")]
    Failed {
        /// The migration's file name (`0003_add_email.sql`).
        file: String,
        /// SQLite's error message.
        message: String,
    },
    /// A migration ran longer than `[migrations] timeout_seconds`.
    #[error(
        "migration {file} ran longer than {seconds} s and was stopped \
         (raise [migrations] timeout_seconds in uplift.toml if it really needs longer)"
    )]
    TimedOut {
        /// The migration's file name (`0003_add_email.sql`).
        file: String,
        /// The time limit, in seconds.
        seconds: u64,
    },
    /// A migration tried to control the transaction itself.
    #[error(
        "migration {file} uses {statement}: migrations must not begin, commit or roll back transactions \
         (uplift runs all of them in one transaction); remove it from the file"
    )]
    TransactionControl {
        /// The migration's file name (`0003_add_email.sql`).
        file: String,
        /// The statement it used (`BEGIN`, `COMMIT`, `SAVEPOINT`...).
        statement: String,
    },
    /// A migration holds a statement that cannot run inside the upgrade's
    /// transaction on this engine (found before anything started).
    #[error(
        "migration {file} line {line}: {statement} cannot run in the upgrade: {why}; nothing was changed"
    )]
    NotTransactional {
        /// The migration's file name (`0003_add_email.sql`).
        file: String,
        /// The line where the statement starts.
        line: usize,
        /// The statement's leading keywords (`CREATE INDEX CONCURRENTLY`).
        statement: String,
        /// Why, and what to write instead.
        why: &'static str,
    },
    /// A migration of one database created an object in another (an
    /// unqualified `CREATE` lands in `main`).
    #[error(
        "migration {file} creates {what} in database {database}, but it is a migration of \
         database {own}: name it {own}.NAME (an unqualified CREATE makes it in main)"
    )]
    OtherDatabase {
        /// The migration's file name (`jobs/0001_queue.sql`).
        file: String,
        /// What it creates (`table queue`).
        what: String,
        /// Where it would be created.
        database: String,
        /// The migration's own database.
        own: String,
    },
    /// Applied migrations no longer match the release's files.
    #[error("{}", describe_drift(.0))]
    Drift(Vec<Drift>),
    /// The release's migrations could not be read.
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
}

impl MigrateError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them).
    pub fn code(&self) -> &'static str {
        match self {
            MigrateError::Drift(_) => "migration-drift",
            MigrateError::TimedOut { .. } => "migration-timeout",
            MigrateError::TransactionControl { .. } => "migration-transaction-control",
            MigrateError::NotTransactional { .. } => "migration-not-transactional",
            MigrateError::OtherDatabase { .. } => "migration-other-database",
            MigrateError::Release(err) => err.code(),
            MigrateError::Database(_) | MigrateError::Failed { .. } => "migration-failed",
        }
    }
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
    /// Recorded by `uplift adopt`: its schema was found in place, and
    /// uplift never ran it.
    pub adopted: bool,
}

/// An applied migration that no longer matches the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    /// The file changed since it was applied.
    Changed {
        /// The database's folder in a release declaring `[databases]`.
        #[serde(skip_serializing_if = "Option::is_none")]
        database: Option<String>,
        /// The migration's number.
        id: u32,
        /// The migration's name.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the release's file.
        actual: String,
    },
    /// The file is gone from the release.
    Missing {
        /// The database's folder in a release declaring `[databases]`.
        #[serde(skip_serializing_if = "Option::is_none")]
        database: Option<String>,
        /// The migration's number.
        id: u32,
        /// The migration's name.
        name: String,
    },
    /// The file is new, but a migration numbered after it was already
    /// applied: it would run after migrations written to follow it.
    OutOfOrder {
        /// The database's folder in a release declaring `[databases]`.
        #[serde(skip_serializing_if = "Option::is_none")]
        database: Option<String>,
        /// The migration's number.
        id: u32,
        /// The migration's name.
        name: String,
        /// The highest number applied.
        after: u32,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let folder = |database: &Option<String>| match database {
            Some(db) => format!("{db}/"),
            None => String::new(),
        };
        match self {
            Drift::Changed {
                database,
                id,
                name,
                recorded,
                ..
            } => {
                let db = folder(database);
                write!(
                    f,
                    "migration {db}{id:04}_{name}.sql changed after it was applied (if the edit \
                     changes nothing the database needs, the release can accept it: \
                     [migrations] accepted = {{ \"{db}{id:04}_{name}.sql\" = [\"{recorded}\"] }} \
                     in release.toml)"
                )
            }
            Drift::Missing { database, id, name } => {
                let db = folder(database);
                write!(
                    f,
                    "migration {db}{id:04}_{name}.sql was applied but is not in the release"
                )
            }
            Drift::OutOfOrder {
                database,
                id,
                name,
                after,
            } => {
                let db = folder(database);
                write!(
                    f,
                    "migration {db}{id:04}_{name}.sql is new but {db}{after:04} was already applied \
                     (a release must number new migrations after every applied one: renumber it)"
                )
            }
        }
    }
}

/// An applied migration whose file changed since, in a way the release
/// accepts (`[migrations] accepted` in `release.toml`): not drift. The next
/// upgrade records the new checksum, and the edit in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcceptedEdit {
    /// The database the migration is of (`main` in a home of one).
    #[serde(skip_serializing_if = "is_main")]
    pub database: String,
    /// The migration's number.
    pub id: u32,
    /// Its file name.
    pub file: String,
    /// The checksum recorded when it was applied.
    pub recorded: String,
    /// The checksum of the release's file.
    pub actual: String,
}

fn is_main(database: &str) -> bool {
    database == crate::release::MAIN_DATABASE
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
    /// Applied ones whose files changed in a way the release accepts.
    pub accepted: Vec<AcceptedEdit>,
}

/// Compares database `database`'s history with its migrations in the
/// release.
pub fn status(
    applied: Vec<AppliedMigration>,
    release: &Release,
    database: &str,
) -> Result<MigrationStatus, MigrateError> {
    let migrations = release.migrations_of(database)?;
    check_accepted_names(release)?;
    let folder = release.declares_databases.then(|| database.to_string());
    let mut drift = Vec::new();
    let mut accepted = Vec::new();
    for record in &applied {
        match migrations.iter().find(|m| m.id == record.id) {
            None => drift.push(Drift::Missing {
                database: folder.clone(),
                id: record.id,
                name: record.name.clone(),
            }),
            Some(m) if m.checksum != record.checksum => {
                let file = m.file_name();
                let accepts = release
                    .accepted_edits
                    .get(&file)
                    .is_some_and(|sums| sums.contains(&record.checksum));
                if accepts {
                    accepted.push(AcceptedEdit {
                        database: database.to_string(),
                        id: record.id,
                        file,
                        recorded: record.checksum.clone(),
                        actual: m.checksum.clone(),
                    });
                } else {
                    drift.push(Drift::Changed {
                        database: folder.clone(),
                        id: record.id,
                        name: record.name.clone(),
                        recorded: record.checksum.clone(),
                        actual: m.checksum.clone(),
                    });
                }
            }
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
                database: folder.clone(),
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
        accepted,
    })
}

/// Refuses `[migrations] accepted` naming a file the release does not have
/// (a typo would otherwise accept nothing, silently).
fn check_accepted_names(release: &Release) -> Result<(), MigrateError> {
    if release.accepted_edits.is_empty() {
        return Ok(());
    }
    let migrations = release.all_migrations()?;
    for file in release.accepted_edits.keys() {
        if !migrations.iter().any(|m| m.file_name() == *file) {
            return Err(MigrateError::Release(ReleaseError::Manifest {
                path: release.dir.join("release.toml"),
                message: format!(
                    "`migrations.accepted` names {file:?}, but migrations/ has no such file: \
                     give the migration's file name, e.g. \"0003_add_email.sql\""
                ),
            }));
        }
    }
    Ok(())
}

//! Why a backup or a restore failed.

use std::path::PathBuf;

use super::FORMAT_VERSION;
use crate::disk::IoError;
use crate::engine::EngineError;
use crate::engine::sqlite::backup::sqlparse::SplitError;
use crate::errors::chain_text;
use crate::home::HomeError;

/// Why a backup could not be made. Whatever the error, no backup file was
/// left behind and the database was only read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file-system operation failed (full disk, file-size limit,
    /// permissions...).
    #[error(transparent)]
    Io(#[from] IoError),
    /// The database could not be opened.
    #[error("could not open {}", path.display())]
    Open {
        /// The database.
        path: PathBuf,
        /// The database's error.
        #[source]
        source: EngineError,
    },
    /// Reading the database failed.
    #[error("could not read the database ({what})")]
    Sqlite {
        /// What was being read.
        what: String,
        /// The database's error.
        #[source]
        source: EngineError,
    },
    /// uplift's bookkeeping in the database could not be read.
    #[error("could not read the data version")]
    Meta(#[from] crate::engine::MetaError),
    /// The file just written did not verify: the disk or the file system
    /// returned something else than what was written.
    #[error(
        "the backup just written to {} does not verify ({}); it was removed, check the disk",
        path.display(),
        not_verified_text(.failure)
    )]
    NotVerified {
        /// The temporary file.
        path: PathBuf,
        /// Why reading it back failed; `None` when it was read back whole
        /// but its checksum differs from the one written.
        failure: Option<BackupFileError>,
    },
    /// The engine's dump tool (`pg_dump`) failed or could not be run.
    #[error("{} failed: {message}", tool.display())]
    Dumper {
        /// The tool.
        tool: PathBuf,
        /// What it said, or why it could not run.
        message: String,
    },
    /// Every candidate name for the file was taken.
    #[error("could not find a free file name for the backup in {}", dir.display())]
    NoFreeName {
        /// The destination folder.
        dir: PathBuf,
    },
}

impl BackupError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them): `backup` for all of them, as in
    /// [`crate::UpgradeError::code`].
    pub fn code(&self) -> &'static str {
        "backup"
    }
}

fn not_verified_text(failure: &Option<BackupFileError>) -> String {
    match failure {
        Some(failure) => crate::errors::chain_text(failure),
        None => "the checksum read back differs from the one written".into(),
    }
}

/// A backup file (a dump) that cannot be used, and why: what [`super::verify`]
/// finds. The file is named in each message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupFileError {
    /// The file holds nothing.
    #[error("{} is empty: it is not a backup; remove it or pick another", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file ends before its checksum trailer (or before the final
    /// `COMMIT;` of a foreign dump).
    #[error("{} is truncated ({detail}): it cannot be restored; pick another backup", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// The checksum does not match, or the file is damaged otherwise.
    #[error("{} is corrupt ({detail}): it cannot be restored; pick another backup", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file is not an SQL dump at all.
    #[error("{} is not an SQL dump ({detail})", path.display())]
    NotADump {
        /// The file.
        path: PathBuf,
        /// Why not.
        detail: String,
    },
    /// Written by a newer uplift in a format this one does not know.
    #[error("{} was written in dump format {format}, newer than this uplift's ({FORMAT_VERSION}): restore it with a newer uplift", path.display())]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        format: u32,
    },
    /// Reading the file failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl BackupFileError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them).
    pub fn code(&self) -> &'static str {
        match self {
            BackupFileError::Io(_) => "io",
            BackupFileError::Empty { .. }
            | BackupFileError::Truncated { .. }
            | BackupFileError::Corrupt { .. }
            | BackupFileError::NotADump { .. }
            | BackupFileError::NewerFormat { .. } => "backup-invalid",
        }
    }
}

/// Why a restore failed. Whatever the error, the home's database is as it
/// was (a safety backup may have been written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The dump is of another engine's database than the home's.
    #[error(
        "refusing to restore {}: it is a backup of a {dump} database, and this home's database is {home}; nothing was changed",
        path.display()
    )]
    OtherEngine {
        /// The dump.
        path: PathBuf,
        /// The dump's engine.
        dump: String,
        /// The home's.
        home: &'static str,
    },
    /// A PostgreSQL home's database is restored only from uplift's own
    /// PostgreSQL backups, and through `uplift::upgrade::restore_home`.
    #[error(
        "refusing to restore {}: this home's database is PostgreSQL, which uplift restores only from \
         its own PostgreSQL backups, with `uplift dbrestore`; nothing was changed",
        path.display()
    )]
    NotOnPostgres {
        /// The dump.
        path: PathBuf,
    },
    /// `psql` could not restore the dump.
    #[error("could not restore {}: {message}; the current database was left as it was", path.display())]
    Psql {
        /// The dump.
        path: PathBuf,
        /// What psql said.
        message: String,
    },
    /// The PostgreSQL database could not be reached or worked on.
    #[error(transparent)]
    Postgres(#[from] crate::engine::postgres::PgError),
    /// The dump is truncated, corrupt, empty, not a dump or unreadable.
    #[error("refusing to restore: {}; nothing was changed", chain_text(.0))]
    Verify(BackupFileError),
    /// The home folder could not be prepared.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The current database could not be backed up first.
    #[error("could not back up the current database {} before restoring over it: {}; nothing was changed (if the database is damaged beyond dumping, move it away and restore again)", database.display(), chain_text(.cause))]
    SafetyBackup {
        /// The current database.
        database: PathBuf,
        /// What failed (shown in the message, with its causes).
        cause: BackupError,
    },
    /// The dump contains a statement a dump never needs.
    #[error("refusing to restore {}: line {line} {reason}: {excerpt}; nothing was changed", path.display())]
    Refused {
        /// The dump.
        path: PathBuf,
        /// Line where the statement starts.
        line: u64,
        /// What is refused.
        reason: String,
        /// The start of the statement.
        excerpt: String,
    },
    /// A statement of the dump failed.
    #[error("could not restore {}: the statement at line {line} failed: {cause}: {excerpt}; nothing was changed", path.display())]
    Statement {
        /// The dump.
        path: PathBuf,
        /// Line where the statement starts.
        line: u64,
        /// The start of the statement.
        excerpt: String,
        /// The database's error (shown in the message).
        cause: EngineError,
    },
    /// The dump's text could not be split into statements.
    #[error("could not restore {}: {cause}; nothing was changed", path.display())]
    Split {
        /// The dump.
        path: PathBuf,
        /// What went wrong (shown in the message).
        cause: SplitError,
    },
    /// The dump ends with `ROLLBACK` (sqlite3 writes that when its dump
    /// failed).
    #[error("refusing to restore {}: line {line} rolls the dump back, so the dump is incomplete; nothing was changed", path.display())]
    RolledBack {
        /// The dump.
        path: PathBuf,
        /// The line of the `ROLLBACK`.
        line: u64,
    },
    /// The restored database failed `PRAGMA integrity_check` or
    /// `PRAGMA foreign_key_check`.
    #[error("the database restored from {} fails its {check}: {details}; the current database was left as it was", path.display())]
    Check {
        /// The dump.
        path: PathBuf,
        /// Which check.
        check: &'static str,
        /// The first problems reported.
        details: String,
    },
    /// Another process still has the current database open.
    #[error("{} is in use ({evidence}): stop the application using it and restore again; nothing was changed", database.display())]
    InUse {
        /// The current database.
        database: PathBuf,
        /// What shows it (the processes that have it open, or SQLite's lock).
        evidence: String,
    },
    /// Working on the temporary database failed.
    #[error("could not build the restored database {}: {cause}; nothing was changed", path.display())]
    Build {
        /// The temporary database.
        path: PathBuf,
        /// The database's error (shown in the message).
        cause: EngineError,
    },
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// An upgrade of the home's several databases was interrupted, and
    /// finishing it first (see `engine::sqlite::multi`) failed.
    #[error(
        "an interrupted upgrade of the home's databases could not be finished before restoring: {}; \
         nothing was restored",
        chain_text(.0)
    )]
    Interrupted(#[from] crate::engine::sqlite::multi::JournalModeError),
}

impl RestoreError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them).
    pub fn code(&self) -> &'static str {
        match self {
            RestoreError::Verify(err) => err.code(),
            RestoreError::Home(err) => err.code(),
            RestoreError::SafetyBackup { .. } => "safety-backup",
            RestoreError::Refused { .. } => "dump-refused",
            RestoreError::Statement { .. } => "dump-failed",
            RestoreError::Split { .. } => "dump-invalid",
            RestoreError::RolledBack { .. } => "dump-incomplete",
            RestoreError::Check { .. } => "restore-check",
            RestoreError::InUse { .. } => "in-use",
            RestoreError::Build { .. } => "database",
            RestoreError::Io(_) => "io",
            RestoreError::OtherEngine { .. } | RestoreError::NotOnPostgres { .. } => "other-engine",
            RestoreError::Psql { .. } => "dump-failed",
            RestoreError::Postgres(err) => err.code(),
            RestoreError::Interrupted(_) => "journal-modes",
        }
    }
}

impl From<BackupFileError> for RestoreError {
    fn from(err: BackupFileError) -> RestoreError {
        RestoreError::Verify(err)
    }
}

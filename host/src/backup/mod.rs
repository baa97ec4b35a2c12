//! Backups of the application database as plain SQL dumps: the backup files
//! themselves (naming, the header, [`list`], [`verify`], retention with
//! [`prune_automatic`] and [`prune`], [`latest_restorable`]), and the entry
//! points of the writer ([`back_up_file`]) and the restore ([`restore`]),
//! which the SQLite engine carries out (`engine::sqlite::backup`).
//!
//! # The dump format
//!
//! A dump is SQL text that the `sqlite3` command-line shell restores on its
//! own (`sqlite3 new.db < file.dump`), framed by comment lines that only
//! uplift reads:
//!
//! ```text
//! -- uplift-dump-format: 1
//! -- app: example
//! -- data-version: 1.4.0
//! -- kind: manual
//! -- created: 2025-06-01T10:11:12.123456789Z
//! -- sqlite-version: 3.50.2
//! PRAGMA foreign_keys=OFF;
//! BEGIN TRANSACTION;
//! CREATE TABLE ...;              -- each table, then its rows
//! INSERT INTO "t" VALUES(...);
//! ...                            -- virtual tables, sqlite_stat1, sqlite_sequence
//! CREATE INDEX ...;              -- indexes, triggers and views after the data
//! PRAGMA user_version=...; PRAGMA application_id=...;
//! COMMIT;
//! -- uplift-sha256: <hex SHA-256 of every byte before this line>
//! ```
//!
//! With compression the whole text is one zstd frame (`.dump.zst`); the
//! checksum is always over the uncompressed text. A file that starts with the
//! header but lacks the trailer is truncated; a file whose checksum does not
//! match is corrupt; both are refused before anything is touched. A dump
//! without the header (for example one made by `sqlite3 db .dump`) is
//! accepted for restore, flagged as unverified.
//!
//! Values are written so that they come back bit for bit, whichever SQLite
//! reads them: integers in decimal; floats as `m.0` (their integer
//! significand) times or divided by powers of two written as integers, an
//! expression every step of which is exact, because SQLite's own
//! decimal-to-float conversion is not correctly rounded (integral floats
//! below 2^53 are simply `3.0`; the infinities `9.0e+999` and `-9.0e+999`;
//! `-0.0` keeps its sign); text in quotes, with the control characters the
//! shell's line reader would damage (`\n`, `\r`, NUL) spelled `char(...)`
//! and joined with `||`; text that is not valid UTF-8 as
//! `CAST(X'..' AS TEXT)`; blobs as `X'..'`. Rowids of tables without an
//! `INTEGER PRIMARY KEY` are written explicitly; generated columns are left
//! out of the inserts; virtual tables are declared through
//! `PRAGMA writable_schema` as sqlite3's `.dump` does, their shadow tables
//! dumped like any other. `sqlite_stat4` (planner samples, present only when
//! SQLite is built with STAT4) is not carried: `ANALYZE` rebuilds it.
//!
//! # Restoring
//!
//! [`restore`] runs a dump as a data-only program: statements other than
//! `CREATE`, `INSERT`, `DELETE FROM sqlite_sequence`, `ANALYZE` and four
//! pragmas are refused, and an authorizer refuses `ATTACH`, extension
//! loading, temporary objects and any write to the schema table but a
//! virtual-table declaration. `INSERT`s in the forms above (and the
//! `unistr()` and `replace()` texts of sqlite3 shells' dumps) are parsed
//! here and bound to one prepared statement per table; anything else is
//! handed to SQLite as written. The restored database is checked in pieces
//! on several cores before it replaces anything (see [`IntegrityCheck`]).
//!
//! # Locking
//!
//! Nothing here takes the home's lock: the command line does, and so does
//! `uplift upgrade`, which backs up inside its transaction while it holds
//! it.

pub(crate) mod error;
pub(crate) mod files;

use std::fmt;
use std::path::PathBuf;

pub(crate) use crate::disk::{IoError, io_err};

pub use crate::engine::sqlite::backup::check::IntegrityCheck;
pub use crate::engine::sqlite::backup::dump::back_up_file;
pub use crate::engine::sqlite::backup::restore::{RestoreOptions, RestoreReport, restore};
pub use crate::engine::sqlite::backup::sqlparse::SplitError;
pub use error::{BackupError, BackupFileError, RestoreError};
pub use files::{
    BackupEntry, BackupStatus, Candidates, DumpHeader, VerifiedDump, latest_restorable, list,
    list_headers, prune, prune_automatic, verify,
};

/// The version of the dump format written by this uplift. Dumps of a newer
/// format are refused with a message saying so.
pub const FORMAT_VERSION: u32 = 1;

/// What to write and how.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Why the backup is made; recorded in the header and used by retention.
    pub kind: BackupKind,
    /// Compress the dump with zstd (`.dump.zst`).
    pub compress: bool,
    /// The application name to record; `None` reads it from the database
    /// (`uplift_meta`), which may not know it either.
    pub app: Option<String>,
    /// The data version to record and name the file after; `None` reads it
    /// from the database. A database without one gets a
    /// `db-unversioned_...` name.
    pub data_version: Option<String>,
    /// Re-read the finished file and check its checksum before renaming it
    /// into place.
    pub verify: bool,
    /// The journal mode to record (what a restore gives the restored
    /// database); `None` reads the database's. An upgrade of several
    /// databases gives the mode the database had before the upgrade took
    /// it out of WAL mode for its transaction.
    pub journal_mode: Option<String>,
}

impl BackupOptions {
    /// Options for a backup of the given kind: uncompressed, app name and
    /// data version read from the database, verified after writing.
    pub fn new(kind: BackupKind) -> Self {
        BackupOptions {
            kind,
            compress: false,
            app: None,
            data_version: None,
            verify: true,
            journal_mode: None,
        }
    }
}

/// A finished backup file.
#[derive(Debug, Clone)]
pub struct BackupFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size on disk in bytes (compressed size for `.dump.zst`).
    pub size: u64,
    /// Size of the SQL text in bytes (before compression).
    pub text_size: u64,
    /// Hex SHA-256 of the SQL text before the trailer line.
    pub sha256: String,
    /// The header written at the top of the file.
    pub header: files::DumpHeader,
    /// Rows written (all tables).
    pub rows: u64,
    /// How many connections read the database for it: 2 when a second
    /// connection could read the first one's snapshot, and the tables were
    /// dumped on two threads.
    pub connections: usize,
}

/// Why a backup was made. Retention treats the kinds differently:
/// automatic backups beyond the newest N are pruned after each new one,
/// the others stay until the operator prunes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// Made by `uplift upgrade` before it changes the database.
    Automatic,
    /// Made by the operator with `uplift dbbackup`.
    Manual,
    /// Made by `uplift dbrestore` of the database it was about to replace.
    PreRestore,
}

impl BackupKind {
    /// The word used in dump headers and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Automatic => "automatic",
            BackupKind::Manual => "manual",
            BackupKind::PreRestore => "pre-restore",
        }
    }

    /// Parses the word written by [`BackupKind::as_str`].
    pub fn parse(word: &str) -> Option<BackupKind> {
        match word {
            "automatic" => Some(BackupKind::Automatic),
            "manual" => Some(BackupKind::Manual),
            "pre-restore" => Some(BackupKind::PreRestore),
            _ => None,
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a progress report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    /// Bytes (of the dump file being read).
    Bytes,
    /// Table rows.
    Rows,
}

/// Receives progress of a long operation (dump, verification, restore). The
/// library calls it; the command line draws bars from it. All methods have
/// empty defaults, so an implementation picks what it needs.
pub trait Progress {
    /// A phase begins, such as "dumping", "verifying" or "restoring";
    /// `total` is its size in `unit` when known.
    fn begin(&mut self, _phase: &str, _total: Option<u64>, _unit: ProgressUnit) {}
    /// The current phase has reached `done` (in its unit) and `rows` rows.
    fn update(&mut self, _done: u64, _rows: u64) {}
    /// The current phase is finished.
    fn end(&mut self) {}
    /// A step worth a line of its own begins (`hook badges/first_lesson`):
    /// shown as it starts, and kept.
    fn step(&mut self, _what: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Syncs a folder so that a rename inside it is durable.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<(), IoError> {
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    crate::disk::sync_dir(dir).map_err(io_err("could not sync folder", dir))
}

//! The engine seam: every step of an upgrade that touches the database goes
//! through [`Database`], which each database engine implements. The upgrade
//! transaction ([`crate::transaction`]) decides the order of the steps and
//! what they mean; an engine decides how each is done on its database (SQL
//! dialect, locking, backups, how a hook reaches the data). SQLite
//! ([`sqlite`]) and PostgreSQL ([`postgres`]) implement it; nothing in it
//! assumes a file, a rollback journal or SQLite's authorizer. A home's
//! `uplift.toml` chooses the engine (`[database]`: PostgreSQL; without it,
//! the home's SQLite file).

mod error;
pub(crate) mod postgres;
pub(crate) mod sqlite;

pub(crate) use error::CommitError;
pub use error::{EngineError, MetaError};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::backup::BackupError;
use crate::backup::{BackupOptions, Progress};
use crate::history::HistoryEntry;
use crate::hooks::HookError;
use crate::hooks::{HookContext, HookOutcome, HookRunner, LogSink, PlannedHook, RecordedPlugin};
use crate::migrations::MigrateError;
use crate::migrations::{AcceptedEdit, AppliedMigration};
use crate::release::{Migration, Release, ReleaseError};
use crate::schema::Schema;
use crate::upgrade::error::UpgradeError;
use crate::version::Version;

/// One database as an upgrade sees it. Reads may happen at any time; the
/// steps from [`Database::begin`] to [`Database::commit`] (or
/// [`Database::rollback`]) form one transaction, which
/// [`crate::transaction::UpgradeTransaction`] drives.
pub(crate) trait Database {
    /// Where the database is, for messages.
    fn location(&self) -> &Path;

    /// The data version uplift recorded, if any.
    fn data_version(&self) -> Result<Option<Version>, MetaError>;

    /// The application that uplift recorded as the data's owner, if any.
    fn app_name(&self) -> Result<Option<String>, MetaError>;

    /// The plugin versions uplift recorded (`uplift_plugins`), by name; the
    /// no-op path compares them with the installed plugins, so it must cost
    /// one read.
    fn plugin_versions(&self) -> Result<Vec<RecordedPlugin>, MetaError>;

    /// The migrations database `database` (`main`, or another of the
    /// home's) records as applied, in order (none without uplift's history,
    /// or when that database is not there yet).
    fn applied_migrations(&self, database: &str) -> Result<Vec<AppliedMigration>, EngineError>;

    /// How many migrations database `database`'s history records: the
    /// no-op path compares it with the release's count, so it must cost one
    /// read.
    fn applied_count(&self, database: &str) -> Result<usize, EngineError>;

    /// Whether the database holds tables of the application's (any table
    /// that is neither the engine's nor uplift's own).
    fn has_user_tables(&self) -> Result<bool, EngineError>;

    /// The database's schema, the engine's and uplift's own objects left
    /// out.
    fn schema(&self) -> Result<Schema, EngineError>;

    /// The schemas `release`'s migrations build on an empty database of
    /// this engine, after each migration numbered in `checkpoints` (0:
    /// before any).
    fn release_schemas(
        &self,
        release: &Release,
        checkpoints: &[u32],
    ) -> Result<BTreeMap<u32, Schema>, ReleaseError>;

    /// What uplift did to the database, oldest first.
    fn history(&self) -> Result<Vec<HistoryEntry>, EngineError>;

    /// Refuses, before anything starts, a migration this engine cannot run
    /// inside the upgrade's transaction, naming the file and the
    /// statement.
    fn check_migrations(&self, migrations: &[Migration]) -> Result<(), MigrateError>;

    /// Why this engine cannot run hooks, if it cannot (no sandbox for
    /// them yet): an upgrade whose plan holds hooks is then refused before
    /// anything starts, never run unsandboxed.
    fn refuses_hooks(&self) -> Option<&'static str>;

    /// Begins the upgrade's transaction and holds the write lock of every
    /// database it spans until it ends (one transaction, committed
    /// atomically across them); makes sure uplift's own tables exist inside
    /// it.
    fn begin(&mut self) -> Result<(), MetaError>;

    /// Writes a backup of the data as this transaction sees it (the state
    /// being upgraded, exactly) into `dir`; returns the file.
    fn back_up(
        &mut self,
        dir: &Path,
        options: &BackupOptions,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf, BackupError>;

    /// Applies one migration and records it in the history, stopped after
    /// `timeout`; returns how long its SQL took.
    fn apply_migration(
        &mut self,
        migration: &Migration,
        release: &Version,
        timeout: Duration,
    ) -> Result<Duration, MigrateError>;

    /// Whether the database recorded, when the transaction began, which
    /// tables plugins created.
    fn had_plugin_record(&self) -> bool;

    /// Takes the tables under each `(plugin, prefix)` of `owners` that the
    /// release's migrations do not create as that plugin's.
    fn adopt_plugin_tables(
        &mut self,
        owners: &[(String, String)],
        release: &Release,
    ) -> Result<(), UpgradeError>;

    /// Gives one hook its database capability (what its manifest declares,
    /// nothing more) and runs it in its own savepoint; records what it
    /// created as its plugin's.
    fn run_hook(
        &mut self,
        runner: &mut HookRunner,
        hook: &PlannedHook,
        ctx: &HookContext,
        log: std::sync::Arc<dyn LogSink>,
    ) -> Result<HookOutcome, HookError>;

    /// Records each plugin's version, forgets the records of plugin tables
    /// that are gone, and records the application and its data version.
    fn record_versions(
        &mut self,
        app: &str,
        version: &Version,
        plugins: &[(&str, &str)],
    ) -> Result<(), MetaError>;

    /// Appends `entry` to the history, inside the transaction.
    fn record_history(&mut self, entry: &HistoryEntry) -> Result<(), MetaError>;

    /// Appends `entry` to the history in a transaction of its own, once
    /// the upgrade's was rolled back: a failed attempt is recorded, and
    /// nothing else is written.
    fn record_after_rollback(&mut self, entry: &HistoryEntry) -> Result<(), MetaError>;

    /// Records, inside the transaction, that each of `edits` is accepted by
    /// the release `release`: the migration's recorded checksum becomes its
    /// file's, and the edit is added to the history.
    fn accept_migration_edits(
        &mut self,
        edits: &[AcceptedEdit],
        release: &Version,
    ) -> Result<(), MetaError>;

    /// Records an adoption, inside the transaction: `migrations` as
    /// applied without running them (marked as adopted), the application
    /// and the data version `version`, and `entry` in the history. No row
    /// of the application's is touched.
    fn record_adoption(
        &mut self,
        app: &str,
        version: &Version,
        migrations: &[Migration],
        entry: &HistoryEntry,
    ) -> Result<(), MetaError>;

    /// Every write is done: lets the storage take what the transaction
    /// wrote before the commit has to wait for it.
    fn flush(&mut self) -> Result<(), EngineError>;

    /// Checks the foreign keys the transaction's writes could have broken;
    /// at most `limit` violations are described.
    fn check_foreign_keys(&mut self, limit: usize) -> Result<ForeignKeyCheck, EngineError>;

    /// The rows of every table `include` accepts, keyed so that two
    /// snapshots compare row by row (`uplift hooks test`).
    fn table_rows(&self, include: &dyn Fn(&str) -> bool) -> Result<TableRows, EngineError>;

    /// Commits. Returns a warning when the commit took effect but could not
    /// be made durable.
    fn commit(&mut self) -> Result<Option<String>, CommitError>;

    /// Whether the transaction begun by [`Database::begin`] is still open
    /// (an engine may end it by itself after a full disk or an I/O error).
    fn in_transaction(&self) -> bool;

    /// Rolls back whatever the transaction did (nothing when it is over).
    fn rollback(&mut self);
}

/// The result of [`Database::check_foreign_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignKeyCheck {
    /// At most `limit` rows that break a foreign key.
    pub violations: Vec<ForeignKeyViolation>,
    /// How many tables' foreign keys were checked.
    pub tables_checked: usize,
    /// Whether what was written was unknown, so the whole database was
    /// checked.
    pub whole_database: bool,
}

/// A row that breaks a foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKeyViolation {
    /// The table holding the row.
    pub table: String,
    /// The row's rowid (None for tables without one).
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

/// A row's key: its rowid (0 for a table without one), so rows sort in
/// rowid order, and the key as shown (`rowid=N`, or the primary key's
/// columns).
pub(crate) type RowKey = (i64, String);

/// The rows of one table: key → column → value.
pub(crate) type Rows = BTreeMap<RowKey, BTreeMap<String, Cell>>;

/// One value of a row, as `uplift hooks test` shows it: typed, with long
/// text and blobs shortened. Shown as an SQL literal (`NULL`, `42`, `'it''s'`,
/// `x'00ff' (2 bytes)`); serialized as JSON of its type (`null`, `42`,
/// `"it's"`, `{"blob": "00ff", "bytes": 2}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text: its first characters, and whether there was more.
    Text {
        /// The text, or its first characters.
        text: String,
        /// Whether it was cut short.
        truncated: bool,
    },
    /// A blob: its first bytes in hex, and its length.
    Blob {
        /// The first bytes, in hex.
        hex: String,
        /// Its length in bytes.
        bytes: usize,
    },
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Integer(i) => write!(f, "{i}"),
            Cell::Real(r) => write!(f, "{r:?}"),
            Cell::Text { text, truncated } => {
                write!(f, "'{}'", text.replace('\'', "''"))?;
                if *truncated {
                    f.write_str("…")?;
                }
                Ok(())
            }
            Cell::Blob { hex, bytes } => {
                let more = if hex.len() / 2 < *bytes { "…" } else { "" };
                write!(f, "x'{hex}'{more} ({bytes} bytes)")
            }
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Cell::Null => serializer.serialize_none(),
            Cell::Integer(i) => serializer.serialize_i64(*i),
            // JSON has no infinity: those are shown as their literal.
            Cell::Real(r) if !r.is_finite() => serializer.serialize_str(&format!("{r:?}")),
            Cell::Real(r) => serializer.serialize_f64(*r),
            Cell::Text { text, truncated } if *truncated => {
                serializer.serialize_str(&format!("{text}…"))
            }
            Cell::Text { text, .. } => serializer.serialize_str(text),
            Cell::Blob { hex, bytes } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("blob", hex)?;
                map.serialize_entry("bytes", bytes)?;
                map.end()
            }
        }
    }
}

/// The rows of several tables, by table name.
pub(crate) type TableRows = BTreeMap<String, Rows>;

//! The SQLite engine: [`SqliteDatabase`] implements the seam
//! ([`crate::engine::Database`]) on one database file.
//!
//! Two safeguards belong to its transaction. A [`commit::CommitGate`] turns
//! every commit but the upgrade's own into a rollback: SQLite ends a
//! transaction by itself after a full disk or an I/O error, and whatever ran
//! after that would commit statement by statement. And a
//! [`writeback::Writeback`] starts the disk writing what the transaction
//! wrote while the next step uses the processor.

pub(crate) mod authorizer;
pub(crate) mod backup;
mod capability;
pub mod changes;
mod commit;
pub(crate) mod dependencies;
pub(crate) mod foreign_keys;
pub(crate) mod hook_run;
pub(crate) mod install;
pub(crate) mod limits;
pub mod meta;
pub mod migration;
pub(crate) mod multi;
pub(crate) mod raw;
mod rows;
pub(crate) mod schema;
pub(crate) mod sql;
mod writeback;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use self::backup::dump::OpenTransaction;
use self::changes::{SchemaRows, WrittenTables};
use self::commit::CommitGate;
use self::writeback::Writeback;
use crate::backup::{BackupError, BackupFile, BackupOptions, Progress};
use crate::engine::{CommitError, Database, EngineError, ForeignKeyCheck, MetaError, TableRows};
use crate::history::HistoryEntry;
use crate::hooks::{
    HookContext, HookError, HookOutcome, HookRunner, LogSink, PlannedHook, RecordedPlugin,
};
use crate::migrations::{AcceptedEdit, AppliedMigration, MigrateError};
use crate::release::{Migration, Release, ReleaseError};
use crate::schema::Schema;
use crate::upgrade::error::UpgradeError;
use crate::version::Version;

/// The version of the SQLite library uplift is built with.
pub fn version() -> &'static str {
    rusqlite::version()
}

impl From<rusqlite::Error> for EngineError {
    fn from(source: rusqlite::Error) -> EngineError {
        EngineError::new(source)
    }
}

impl From<rusqlite::Error> for MetaError {
    fn from(source: rusqlite::Error) -> MetaError {
        MetaError::Database(source.into())
    }
}

impl From<rusqlite::Error> for MigrateError {
    fn from(source: rusqlite::Error) -> MigrateError {
        MigrateError::Database(source.into())
    }
}

/// One SQLite database file, open for an upgrade, `uplift hooks test` or a
/// status report.
pub(crate) struct SqliteDatabase {
    conn: Connection,
    path: PathBuf,
    /// The home's other databases, attached under their names (see
    /// [`multi`]), with their files.
    attached: Vec<(String, PathBuf)>,
    /// With databases attached: the home, where [`multi`] records their
    /// journal modes while the transaction is open.
    home: Option<PathBuf>,
    /// The journal modes switched for the open transaction, to restore
    /// when it ends.
    switched: Option<multi::Switched>,
    /// The open transaction's state, from `begin` to its end.
    tx: Option<Transaction>,
    /// Declared after the connection, so dropped after it (see
    /// [`Writeback`]).
    writeback: Option<Writeback>,
}

/// What the SQLite engine keeps while an upgrade's transaction is open.
struct Transaction {
    gate: CommitGate,
    /// The schema when the transaction began, and what it wrote since: the
    /// foreign-key check reads only the tables the upgrade could have
    /// broken.
    schema_before: SchemaRows,
    /// Rows changed on the connection when the transaction began: with the
    /// schema, whether the transaction has written anything yet.
    changes_before: u64,
    written: WrittenTables,
    /// Whether the database already recorded which tables plugins created.
    had_plugin_record: bool,
}

impl SqliteDatabase {
    /// Opens an existing database for an upgrade: read-write, waiting up to
    /// 30 s for another writer, with a 32 MB page cache (SQLite's default is
    /// 2 MB), so that a large upgrade spills changed pages to the file, each
    /// spill syncing the journal first, far less often.
    pub(crate) fn open(path: &Path) -> Result<SqliteDatabase, EngineError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        SqliteDatabase::tuned(conn, path)
    }

    /// Opens a database to read it: read-write when the file allows it (so
    /// that a hot journal can be played back), read-only otherwise.
    pub(crate) fn open_to_read(path: &Path) -> Result<SqliteDatabase, EngineError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_else(|_| {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        })?;
        SqliteDatabase::tuned(conn, path)
    }

    /// Opens the home's main database at `main` for an upgrade (as
    /// [`SqliteDatabase::open`]) with each of `others` attached under its
    /// name: one connection, so that one transaction spans every file.
    /// Each file must exist. `home` is where the journal modes are recorded
    /// while the transaction is open (see [`multi`]).
    pub(crate) fn open_home(
        main: &Path,
        others: &[(String, PathBuf)],
        home: &Path,
    ) -> Result<SqliteDatabase, EngineError> {
        let mut db = SqliteDatabase::open(main)?;
        db.attach(others)?;
        db.home = Some(home.to_path_buf());
        Ok(db)
    }

    /// Opens the home's databases to read them (as
    /// [`SqliteDatabase::open_to_read`]), each of `others` attached under
    /// its name when its file exists.
    pub(crate) fn open_home_to_read(
        main: &Path,
        others: &[(String, PathBuf)],
    ) -> Result<SqliteDatabase, EngineError> {
        let mut db = SqliteDatabase::open_to_read(main)?;
        let existing: Vec<(String, PathBuf)> =
            others.iter().filter(|(_, p)| p.exists()).cloned().collect();
        db.attach(&existing)?;
        Ok(db)
    }

    fn attach(&mut self, others: &[(String, PathBuf)]) -> Result<(), EngineError> {
        for (name, path) in others {
            let file = path.to_str().ok_or_else(|| {
                EngineError::new(std::io::Error::other(format!(
                    "{} is not a UTF-8 path, which SQLite's ATTACH needs",
                    path.display()
                )))
            })?;
            self.conn.execute(
                &format!("ATTACH DATABASE ?1 AS {}", sql::quote_ident(name)),
                [file],
            )?;
            self.conn.execute_batch(&format!(
                "PRAGMA {}.cache_size = -32768",
                sql::quote_ident(name)
            ))?;
            self.attached.push((name.clone(), path.clone()));
        }
        Ok(())
    }

    /// Every database of the connection: `main` (this file), then those
    /// attached.
    fn databases(&self) -> Vec<(String, PathBuf)> {
        let mut all = vec![("main".to_string(), self.path.clone())];
        all.extend(self.attached.iter().cloned());
        all
    }

    /// Whether database `name` is reachable on this connection.
    fn has_database(&self, name: &str) -> bool {
        name == "main" || self.attached.iter().any(|(n, _)| n == name)
    }

    /// Switches the journal modes back after the transaction ended;
    /// returns a warning when that failed (the record stays, and the next
    /// uplift command restores them).
    fn restore_journal_modes(&mut self) -> Option<String> {
        let switched = self.switched.take()?;
        // The transaction is over, and so is its commit gate: leaving WAL
        // mode's header write to the gate would turn it into a rollback.
        self.conn.commit_hook(None::<fn() -> bool>);
        match switched.restore(&self.conn) {
            Ok(()) => None,
            Err(e) => Some(format!(
                "the databases' journal modes could not be switched back yet ({});                  the next uplift command does it",
                crate::errors::chain_text(&e)
            )),
        }
    }

    /// Creates a new database file at `path` (or opens the empty one there).
    pub(crate) fn create(path: &Path) -> Result<SqliteDatabase, EngineError> {
        let conn = Connection::open(path)?;
        Ok(SqliteDatabase {
            conn,
            path: path.to_path_buf(),
            attached: Vec::new(),
            home: None,
            switched: None,
            tx: None,
            writeback: None,
        })
    }

    /// Copies `original` (opened read-only, never written) to `copy` with
    /// SQLite's online backup, and opens the copy.
    pub(crate) fn copy_of(original: &Path, copy: &Path) -> Result<SqliteDatabase, EngineError> {
        let source = Connection::open_with_flags(
            original,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        source.backup(rusqlite::MAIN_DB, copy, None)?;
        drop(source);
        SqliteDatabase::create(copy)
    }

    fn tuned(conn: Connection, path: &Path) -> Result<SqliteDatabase, EngineError> {
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.execute_batch("PRAGMA cache_size = -32768")?;
        Ok(SqliteDatabase {
            conn,
            path: path.to_path_buf(),
            attached: Vec::new(),
            home: None,
            switched: None,
            tx: None,
            writeback: None,
        })
    }

    /// Makes the disk write what the transaction wrote in the background,
    /// after each step (see [`Writeback`]).
    pub(crate) fn with_writeback(mut self) -> SqliteDatabase {
        self.writeback = Some(Writeback::new(&self.path));
        self
    }

    /// Closes the connection, reporting what SQLite reports.
    pub(crate) fn close(mut self) -> Result<(), EngineError> {
        self.rollback();
        let SqliteDatabase {
            conn, writeback, ..
        } = self;
        let closed = conn.close().map_err(|(_, e)| EngineError::new(e));
        drop(writeback);
        closed
    }

    /// Runs `sql` outside any upgrade (a test's fixture).
    #[cfg(test)]
    pub(crate) fn execute_batch(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.execute_batch(sql)
    }

    /// [`Database::begin`] once the journal modes are switched.
    fn begin_transaction(&mut self) -> Result<(), MetaError> {
        let conn = &self.conn;
        // Foreign-key enforcement cannot change inside a transaction, and
        // table rebuilds (SQLite's 12-step procedure) need it off; the check
        // before COMMIT keeps the guarantee it gives.
        conn.pragma_update(None, "foreign_keys", false)?;
        // In rollback-journal mode, COMMIT deletes the journal; EXTRA also
        // syncs the folder after that, so that an upgrade reported done
        // cannot be rolled back by a power cut (the journal's name coming
        // back hot). Every database's: the setting is each one's own.
        for (name, _) in self.databases() {
            conn.pragma_update(Some(name.as_str()), "synchronous", "EXTRA")?;
        }
        let gate = CommitGate::install(conn);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let tx = Transaction {
            gate,
            schema_before: SchemaRows::read(conn)?,
            changes_before: conn.total_changes(),
            written: WrittenTables::new(),
            had_plugin_record: meta::has_plugin_tables(conn)?,
        };
        self.tx = Some(tx);
        meta::ensure_tables(&self.conn)?;
        for (name, _) in self.databases() {
            migration::ensure_history(&self.conn, &name)?;
        }
        Ok(())
    }

    fn request_writeback(&self) {
        if let Some(writeback) = &self.writeback {
            writeback.request();
        }
    }

    fn tx(&self) -> &Transaction {
        self.tx
            .as_ref()
            .expect("a transaction step runs between begin and its end")
    }

    /// [`Database::back_up`], returning the whole [`BackupFile`]. Before the
    /// transaction has changed anything (uplift's tables already existed),
    /// the dump may read with a second connection: the transaction's write
    /// lock keeps every other writer out, so that connection sees exactly
    /// what this one sees.
    fn back_up_file(
        &self,
        dir: &Path,
        options: &BackupOptions,
        progress: &mut dyn Progress,
    ) -> Result<BackupFile, BackupError> {
        let tx = self.tx();
        let read_err = |source: rusqlite::Error| BackupError::Sqlite {
            what: "sqlite_schema".into(),
            source: source.into(),
        };
        let unwritten = self.conn.total_changes() == tx.changes_before
            && SchemaRows::read(&self.conn).map_err(read_err)? == tx.schema_before;
        let open = if unwritten {
            OpenTransaction::Unwritten
        } else {
            OpenTransaction::MayHaveWritten
        };
        backup::dump::write_backup(&self.conn, dir, options, open, progress)
    }
}

impl Database for SqliteDatabase {
    fn location(&self) -> &Path {
        &self.path
    }

    fn data_version(&self) -> Result<Option<Version>, MetaError> {
        meta::data_version(&self.conn)
    }

    fn app_name(&self) -> Result<Option<String>, MetaError> {
        meta::app_name(&self.conn)
    }

    fn plugin_versions(&self) -> Result<Vec<RecordedPlugin>, MetaError> {
        meta::plugin_versions(&self.conn)
    }

    fn applied_migrations(&self, database: &str) -> Result<Vec<AppliedMigration>, EngineError> {
        if !self.has_database(database) {
            return Ok(Vec::new());
        }
        Ok(migration::applied(&self.conn, database)?)
    }

    fn applied_count(&self, database: &str) -> Result<usize, EngineError> {
        if !self.has_database(database) {
            return Ok(0);
        }
        Ok(migration::applied_count(&self.conn, database)?)
    }

    fn has_user_tables(&self) -> Result<bool, EngineError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            [],
            |row| row.get(0),
        )?;
        Ok(n > 0)
    }

    fn schema(&self) -> Result<Schema, EngineError> {
        Ok(schema::read(&self.conn)?)
    }

    fn release_schemas(
        &self,
        release: &Release,
        checkpoints: &[u32],
    ) -> Result<BTreeMap<u32, Schema>, ReleaseError> {
        schema::schemas_after(release, checkpoints)
    }

    fn history(&self) -> Result<Vec<HistoryEntry>, EngineError> {
        Ok(meta::history(&self.conn)?)
    }

    fn check_migrations(&self, _migrations: &[Migration]) -> Result<(), MigrateError> {
        // Every statement runs inside SQLite's transaction; transaction
        // control is refused by the authorizer as the migration runs,
        // before it can take effect (see `migration::apply`).
        Ok(())
    }

    fn refuses_hooks(&self) -> Option<&'static str> {
        None
    }

    /// `BEGIN IMMEDIATE`: no other writer until the transaction ends. With
    /// databases attached, their journal modes are recorded and every WAL
    /// database leaves WAL mode first, so that the commit is atomic across
    /// the files (see [`multi`]); `BEGIN IMMEDIATE` then takes every file's
    /// write lock.
    fn begin(&mut self) -> Result<(), MetaError> {
        if let Some(home) = self.home.as_ref().filter(|_| !self.attached.is_empty()) {
            let switched = multi::switch_to_rollback(&self.conn, home, &self.databases())
                .map_err(EngineError::new)?;
            self.switched = Some(switched);
        }
        let begun = self.begin_transaction();
        if begun.is_err() {
            self.rollback();
        }
        begun
    }

    /// The dump records the journal mode the database had before the
    /// transaction (see [`multi`]): a restore gives it back.
    fn back_up(
        &mut self,
        dir: &Path,
        options: &BackupOptions,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf, BackupError> {
        let mut options = options.clone();
        if let Some(switched) = &self.switched {
            options.journal_mode = switched.mode_of("main").map(str::to_string);
        }
        Ok(self.back_up_file(dir, &options, progress)?.path)
    }

    fn apply_migration(
        &mut self,
        migration: &Migration,
        release: &Version,
        timeout: Duration,
    ) -> Result<Duration, MigrateError> {
        let took = migration::apply(&self.conn, migration, release, &self.tx().written, timeout)?;
        self.request_writeback();
        Ok(took)
    }

    fn had_plugin_record(&self) -> bool {
        self.tx().had_plugin_record
    }

    fn adopt_plugin_tables(
        &mut self,
        owners: &[(String, String)],
        release: &Release,
    ) -> Result<(), UpgradeError> {
        let core = schema::schema_tables(release)?;
        meta::adopt_plugin_tables(&self.conn, owners, &core).map_err(EngineError::from)?;
        Ok(())
    }

    fn run_hook(
        &mut self,
        runner: &mut HookRunner,
        hook: &PlannedHook,
        ctx: &HookContext,
        log: Arc<dyn LogSink>,
    ) -> Result<HookOutcome, HookError> {
        let written = self.tx().written.clone();
        let outcome = hook_run::run_hook(runner, &mut self.conn, Some(&written), hook, ctx, log)?;
        meta::record_plugin_tables(&self.conn, &hook.plugin, &outcome.created, &outcome.dropped)
            .map_err(|source| HookError::Database {
                plugin: hook.plugin.clone(),
                hook: hook.hook.clone(),
                what: "record which tables the plugin created (uplift_plugin_tables)",
                source: source.into(),
            })?;
        self.request_writeback();
        Ok(outcome)
    }

    fn record_history(&mut self, entry: &HistoryEntry) -> Result<(), MetaError> {
        meta::record_history(&self.conn, entry)
    }

    /// `BEGIN IMMEDIATE`, the entry, `COMMIT`: with the upgrade's commit
    /// gate taken down first (it turns back every commit but the
    /// upgrade's own).
    fn record_after_rollback(&mut self, entry: &HistoryEntry) -> Result<(), MetaError> {
        debug_assert!(self.tx.is_none(), "the upgrade's transaction is over");
        self.conn.commit_hook(None::<fn() -> bool>);
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let recorded = meta::record_history(&self.conn, entry)
            .and_then(|()| Ok(self.conn.execute_batch("COMMIT")?));
        if recorded.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        recorded
    }

    fn accept_migration_edits(
        &mut self,
        edits: &[AcceptedEdit],
        release: &Version,
    ) -> Result<(), MetaError> {
        for edit in edits {
            migration::record_checksum(&self.conn, &edit.database, edit.id, &edit.actual)
                .map_err(EngineError::from)?;
            meta::record_history(&self.conn, &HistoryEntry::accepted_edit(edit, release))?;
        }
        Ok(())
    }

    fn record_adoption(
        &mut self,
        app: &str,
        version: &Version,
        migrations: &[Migration],
        entry: &HistoryEntry,
    ) -> Result<(), MetaError> {
        migration::record_adopted(&self.conn, migrations, version).map_err(EngineError::from)?;
        meta::set_app_name(&self.conn, app)?;
        meta::set_data_version(&self.conn, version)?;
        meta::record_history(&self.conn, entry)?;
        self.request_writeback();
        Ok(())
    }

    fn record_versions(
        &mut self,
        app: &str,
        version: &Version,
        plugins: &[(&str, &str)],
    ) -> Result<(), MetaError> {
        for (name, plugin_version) in plugins {
            meta::set_plugin_version(&self.conn, name, plugin_version)?;
        }
        meta::forget_missing_plugin_tables(&self.conn)?;
        meta::set_app_name(&self.conn, app)?;
        meta::set_data_version(&self.conn, version)
    }

    /// SQLite writes the pages its cache still holds to the database file
    /// now (after syncing the journal that protects them, as COMMIT would),
    /// and the disk takes them while the foreign-key check uses the
    /// processor, instead of in COMMIT's sync.
    fn flush(&mut self) -> Result<(), EngineError> {
        self.conn.cache_flush()?;
        self.request_writeback();
        Ok(())
    }

    /// The main database's tables the upgrade could have broken; each
    /// attached database whole (`PRAGMA "name".foreign_key_check`: a
    /// foreign key never crosses databases).
    fn check_foreign_keys(&mut self, limit: usize) -> Result<ForeignKeyCheck, EngineError> {
        let tx = self.tx();
        let mut check =
            foreign_keys::check_foreign_keys(&self.conn, &tx.written, &tx.schema_before, limit)?;
        for (name, _) in &self.attached {
            let (violations, tables) = foreign_keys::check_whole_database(&self.conn, name, limit)?;
            check.tables_checked += tables;
            let room = limit.saturating_sub(check.violations.len());
            check.violations.extend(violations.into_iter().take(room));
        }
        Ok(check)
    }

    fn table_rows(&self, include: &dyn Fn(&str) -> bool) -> Result<TableRows, EngineError> {
        Ok(rows::table_rows(&self.conn, include)?)
    }

    fn commit(&mut self) -> Result<Option<String>, CommitError> {
        let warning = self.tx().gate.commit(&self.conn)?;
        self.tx = None;
        let restored = self.restore_journal_modes();
        Ok(match (warning, restored) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        })
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    fn rollback(&mut self) {
        if self.tx.take().is_none() {
            // A failure between switching the journal modes and the
            // transaction's start.
            if self.switched.is_some() {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                let _ = self.restore_journal_modes();
            }
            return;
        }
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
            // Best effort: a failure leaves the record for the next command.
            let _ = self.restore_journal_modes();
        } else {
            // SQLite ended the transaction by itself after an I/O error or
            // a full disk, and may have left its journal on disk for the
            // next reader to play back: read once, so that it is played back
            // now rather than whenever the application next opens the file.
            for (name, _) in self.databases() {
                let _ = self.conn.query_row(
                    &format!(
                        "SELECT count(*) FROM {}.sqlite_schema",
                        sql::quote_ident(&name)
                    ),
                    [],
                    |r| r.get::<_, i64>(0),
                );
            }
            let _ = self.restore_journal_modes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statement that commits on its own after SQLite ended the
    /// transaction is turned into a rollback, and the commit refused.
    #[test]
    fn nothing_commits_but_the_transactions_own_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut db = SqliteDatabase::create(&path).unwrap();
        db.execute_batch("CREATE TABLE t (x);").unwrap();
        db.begin().unwrap();
        // What SQLite does after a full disk: the transaction is gone.
        db.execute_batch("ROLLBACK").unwrap();
        let carried_on = db.execute_batch("INSERT INTO t VALUES (1)");
        assert!(carried_on.is_err(), "an autocommit write went through");
        assert!(matches!(db.commit(), Err(CommitError::Lost { .. })));
        db.rollback();
        let n: i64 = db
            .conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    /// Until the upgrade's transaction writes, its backup reads with a
    /// second connection (which sees exactly the same data); once it has
    /// written, with the transaction's own alone, which sees its changes.
    #[test]
    fn an_upgrades_backup_reads_with_two_connections_until_the_transaction_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let backups = dir.path().join("backups");
        let options = BackupOptions::new(crate::backup::BackupKind::Automatic);
        let mut db = SqliteDatabase::create(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE a(x); CREATE TABLE b(y);
             INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (3);",
        )
        .unwrap();
        // The first upgrade creates uplift's tables: written.
        db.begin().unwrap();
        let first = db
            .back_up_file(&backups, &options, &mut crate::backup::NoProgress)
            .unwrap();
        assert_eq!(first.connections, 1);
        db.commit().unwrap();

        db.begin().unwrap();
        let unwritten = db
            .back_up_file(&backups, &options, &mut crate::backup::NoProgress)
            .unwrap();
        assert_eq!(unwritten.connections, 2);
        db.execute_batch("INSERT INTO a VALUES (424242)").unwrap();
        let written = db
            .back_up_file(&backups, &options, &mut crate::backup::NoProgress)
            .unwrap();
        assert_eq!(written.connections, 1);
        db.rollback();
        let text = |file: &BackupFile| std::fs::read_to_string(&file.path).unwrap();
        assert!(!text(&unwritten).contains("424242"));
        assert!(
            text(&written).contains("424242"),
            "the transaction's own row"
        );
        assert_eq!(unwritten.rows, first.rows);
    }
}

//! The upgrade transaction: everything an upgrade changes, from `BEGIN` to
//! `COMMIT` or rollback, as one value. [`UpgradeTransaction::begin`] opens
//! it in a [`Mode`]; each step is a method (back up, migrate, run a hook,
//! record the versions, flush, check foreign keys);
//! [`UpgradeTransaction::commit`] ends it, and dropping it uncommitted rolls
//! everything back. `uplift upgrade` and `uplift hooks test` (on a copy,
//! never committed) drive the same steps, so the sequence and its
//! safeguards exist once.
//!
//! Two safeguards belong to the transaction itself. A [`CommitGate`] turns
//! every commit but the transaction's own into a rollback: SQLite ends a
//! transaction by itself after a full disk or an I/O error, and whatever
//! ran after that would commit statement by statement. And a
//! [`Writeback`] starts the disk writing what the transaction wrote while
//! the next step uses the processor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use crate::backup::{self, BackupKind, BackupOptions, Progress};
use crate::hooks::{HookContext, HookOutcome, HookRunner, LogSink, PlannedHook, PluginSet};
use crate::meta;
use crate::migrate;
use crate::release::{Migration, Release};
use crate::upgrade::{MigrationRun, UpgradeError};
use crate::version::Version;
use crate::written::{self, ForeignKeyCheck, SchemaRows, WrittenTables};

/// What the transaction is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// A new (or empty) database brought to a release: every migration, no
    /// hooks, nothing to back up.
    Install,
    /// Data at version `from` upgraded: backed up first, then migrations
    /// and hooks.
    Upgrade { from: &'a Version },
    /// `uplift hooks test` on a copy of data at `from`: migrations and hooks
    /// as in an upgrade (hooks told it is a dry run), never committed.
    Trial { from: &'a Version },
}

impl Mode<'_> {
    fn from(&self) -> Option<&Version> {
        match self {
            Mode::Install => None,
            Mode::Upgrade { from } | Mode::Trial { from } => Some(from),
        }
    }
}

/// One upgrade's transaction on `conn`; see the module's documentation.
pub(crate) struct UpgradeTransaction<'c> {
    conn: &'c mut Connection,
    mode: Mode<'c>,
    gate: CommitGate,
    writeback: Option<&'c Writeback>,
    /// The schema when the transaction began, and what it wrote since: the
    /// foreign-key check reads only the tables the upgrade could have broken.
    schema_before: SchemaRows,
    written: WrittenTables,
    /// Whether the database already recorded which tables plugins created.
    had_plugin_record: bool,
    backup: Option<PathBuf>,
    committed: bool,
}

impl<'c> UpgradeTransaction<'c> {
    /// Begins the transaction (`BEGIN IMMEDIATE`: no other writer until it
    /// ends) and makes sure uplift's own tables exist in it.
    pub(crate) fn begin(
        conn: &'c mut Connection,
        mode: Mode<'c>,
        writeback: Option<&'c Writeback>,
    ) -> Result<UpgradeTransaction<'c>, UpgradeError> {
        // Foreign-key enforcement cannot change inside a transaction, and
        // table rebuilds (SQLite's 12-step procedure) need it off; the check
        // before COMMIT keeps the guarantee it gives.
        conn.pragma_update(None, "foreign_keys", false)?;
        // In rollback-journal mode, COMMIT deletes the journal; EXTRA also
        // syncs the folder after that, so that an upgrade reported done
        // cannot be rolled back by a power cut (the journal's name coming
        // back hot).
        conn.pragma_update(None, "synchronous", "EXTRA")?;
        let gate = CommitGate::install(conn);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut tx = UpgradeTransaction {
            schema_before: SchemaRows::default(),
            written: WrittenTables::new(),
            had_plugin_record: false,
            backup: None,
            committed: false,
            conn,
            mode,
            gate,
            writeback,
        };
        tx.schema_before = SchemaRows::read(tx.conn)?;
        tx.had_plugin_record = meta::has_plugin_tables(tx.conn)?;
        meta::ensure_tables(tx.conn).map_err(|e| tx.meta_error(e))?;
        migrate::ensure_history(tx.conn)?;
        Ok(tx)
    }

    /// The database being upgraded (for messages).
    pub(crate) fn database(&self) -> PathBuf {
        self.conn.path().map(PathBuf::from).unwrap_or_default()
    }

    fn meta_error(&self, source: meta::MetaError) -> UpgradeError {
        UpgradeError::Meta {
            path: self.database(),
            source,
        }
    }

    /// Writes a backup of the database as it is in this transaction (the
    /// state being upgraded, exactly) into `dir`; returns its path.
    pub(crate) fn back_up(
        &mut self,
        dir: &Path,
        compress: bool,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf, UpgradeError> {
        let mut options = BackupOptions::new(BackupKind::Automatic);
        options.compress = compress;
        let file = backup::write_backup(self.conn, dir, &options, progress)?;
        self.backup = Some(file.path.clone());
        Ok(file.path)
    }

    /// The backup made by [`Self::back_up`], if any.
    pub(crate) fn backup(&self) -> Option<&Path> {
        self.backup.as_deref()
    }

    /// Applies `migrations` in order, each recorded with its checksum and
    /// stopped after `timeout`; `applied` hears of each once it is done.
    pub(crate) fn migrate(
        &mut self,
        migrations: &[Migration],
        release: &Release,
        timeout: Duration,
        applied: &mut dyn FnMut(&MigrationRun),
    ) -> Result<Vec<MigrationRun>, UpgradeError> {
        let mut runs = Vec::with_capacity(migrations.len());
        for migration in migrations {
            let took = migrate::apply(
                self.conn,
                migration,
                &release.version,
                &self.written,
                timeout,
            )?;
            if self.conn.is_autocommit() {
                return Err(UpgradeError::TransactionLost {
                    during: format!("migration {}", migration.file_name()),
                    refused: 0,
                });
            }
            let run = MigrationRun {
                file: migration.file_name(),
                ms: took.as_secs_f64() * 1000.0,
            };
            applied(&run);
            runs.push(run);
        }
        self.request_writeback();
        Ok(runs)
    }

    /// On the first upgrade of a database last upgraded by an uplift that
    /// did not record which tables plugins created, takes the tables under
    /// an active plugin's prefix that no migration of the release creates as
    /// that plugin's (see [`meta::adopt_plugin_tables`]), so its hooks keep
    /// owning them. Does nothing otherwise.
    pub(crate) fn adopt_plugin_tables(
        &mut self,
        plugins: &PluginSet,
        release: &Release,
    ) -> Result<(), UpgradeError> {
        if self.had_plugin_record || self.mode.from().is_none() {
            return Ok(());
        }
        let owners: Vec<(String, String)> = plugins
            .plugins()
            .iter()
            .filter(|p| p.active)
            .filter_map(|p| {
                let prefix = p.manifest.capabilities.owns.clone()?;
                Some((p.name().to_string(), prefix))
            })
            .collect();
        if owners.is_empty() {
            return Ok(());
        }
        let core = release.schema_tables()?;
        meta::adopt_plugin_tables(self.conn, &owners, &core)?;
        Ok(())
    }

    /// What hooks are told about this upgrade.
    pub(crate) fn hook_context(&self, app: &str, to: &Version) -> HookContext {
        HookContext {
            app: app.to_string(),
            old_version: self
                .mode
                .from()
                .map(ToString::to_string)
                .unwrap_or_default(),
            new_version: to.to_string(),
            dry_run: matches!(self.mode, Mode::Trial { .. }),
        }
    }

    /// Runs one hook in its own savepoint and sandbox ([`HookRunner::run`]);
    /// what it created is its plugin's from now on (what it dropped no
    /// longer is), committed or rolled back with the rest.
    pub(crate) fn run_hook(
        &mut self,
        runner: &mut HookRunner,
        hook: &PlannedHook,
        ctx: &HookContext,
        log: Arc<dyn LogSink>,
    ) -> Result<HookOutcome, UpgradeError> {
        debug_assert!(
            !matches!(self.mode, Mode::Install),
            "an install runs no hooks"
        );
        runner.record_writes(self.written.clone());
        let outcome = runner.run(self.conn, hook, ctx, log)?;
        meta::record_plugin_tables(self.conn, &hook.plugin, &outcome.created, &outcome.dropped)
            .map_err(|e| self.meta_error(e.into()))?;
        self.request_writeback();
        Ok(outcome)
    }

    /// The connection, for what a caller reads between steps (`hooks test`
    /// compares tables before and after each hook).
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
    }

    /// Records the plugins' versions, forgets the records of tables that are
    /// gone, and records the application and its new data version.
    pub(crate) fn record_versions(
        &mut self,
        release: &Release,
        plugins: &PluginSet,
    ) -> Result<(), UpgradeError> {
        for plugin in plugins.plugins().iter().filter(|p| p.active) {
            meta::set_plugin_version(self.conn, plugin.name(), &plugin.manifest.version)
                .map_err(|e| self.meta_error(e))?;
        }
        meta::forget_missing_plugin_tables(self.conn).map_err(|e| self.meta_error(e.into()))?;
        meta::set_app_name(self.conn, &release.app).map_err(|e| self.meta_error(e))?;
        meta::set_data_version(self.conn, &release.version).map_err(|e| self.meta_error(e))?;
        Ok(())
    }

    /// Every write is done: SQLite writes the pages its cache still holds to
    /// the database file now (after syncing the journal that protects them,
    /// as COMMIT would), and the disk takes them while the foreign-key check
    /// uses the processor, instead of in COMMIT's sync.
    pub(crate) fn flush(&mut self) -> Result<(), UpgradeError> {
        self.conn
            .cache_flush()
            .map_err(|source| UpgradeError::Step {
                what: "write the upgrade's changes to the database file before its commit",
                source,
            })?;
        self.request_writeback();
        Ok(())
    }

    /// The foreign-key check of what the transaction wrote (see
    /// [`crate::written`]): at most `limit` violations are described.
    pub(crate) fn check_foreign_keys(&self, limit: usize) -> Result<ForeignKeyCheck, UpgradeError> {
        Ok(written::check_foreign_keys(
            self.conn,
            &self.written,
            &self.schema_before,
            limit,
        )?)
    }

    /// Commits. Refused in a trial, and when SQLite already ended the
    /// transaction (or turned back a commit: see [`CommitGate`]).
    pub(crate) fn commit(&mut self) -> Result<Option<String>, UpgradeError> {
        assert!(
            !matches!(self.mode, Mode::Trial { .. }),
            "a trial is never committed"
        );
        let warning = self.gate.commit(self.conn)?;
        self.committed = true;
        Ok(warning)
    }

    fn request_writeback(&self) {
        if let Some(writeback) = self.writeback {
            writeback.request();
        }
    }
}

impl Drop for UpgradeTransaction<'_> {
    /// Rolls back whatever was not committed.
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        } else {
            // SQLite ended the transaction by itself after an I/O error or
            // a full disk, and may have left its journal on disk for the
            // next reader to play back: read once, so that it is played back
            // now rather than whenever the application next opens the file.
            let _ = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                    r.get::<_, i64>(0)
                });
        }
    }
}

/// The one COMMIT of an upgrade. SQLite ends a transaction by itself when a
/// statement fails with a full disk, an I/O error or no memory (among
/// others); whoever carries on then runs in autocommit mode, each statement
/// committing alone: half an upgrade. While the gate is installed, SQLite's
/// commit hook turns every commit into a rollback except the one
/// [`CommitGate::commit`] makes, so nothing a migration or a hook does after
/// losing the transaction can reach the file. (Hooks are also stopped at
/// the first call that finds the transaction gone.)
pub(crate) struct CommitGate {
    open: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl CommitGate {
    fn install(conn: &Connection) -> CommitGate {
        let open = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let (is_open, count) = (Arc::clone(&open), Arc::clone(&refused));
        conn.commit_hook(Some(move || {
            if is_open.load(Ordering::SeqCst) {
                return false;
            }
            count.fetch_add(1, Ordering::SeqCst);
            true // roll back instead
        }));
        CommitGate { open, refused }
    }

    /// Commits the upgrade's transaction, which must still be open. Returns
    /// a warning when the commit took effect but could not be made durable.
    fn commit(&self, conn: &Connection) -> Result<Option<String>, UpgradeError> {
        let refused = self.refused.load(Ordering::SeqCst);
        if conn.is_autocommit() || refused > 0 {
            return Err(UpgradeError::TransactionLost {
                during: "the upgrade".to_string(),
                refused,
            });
        }
        self.open.store(true, Ordering::SeqCst);
        let result = conn.execute_batch("COMMIT");
        self.open.store(false, Ordering::SeqCst);
        match result {
            Ok(()) => Ok(None),
            // The journal was deleted (that is the commit) and only the sync
            // of its folder failed: the upgrade is done, but a power cut
            // before the folder is written out could undo it. Saying it was
            // rolled back would be false.
            Err(e)
                if conn.is_autocommit()
                    && matches!(&e, rusqlite::Error::SqliteFailure(f, _)
                        if f.extended_code == rusqlite::ffi::SQLITE_IOERR_DIR_FSYNC) =>
            {
                Ok(Some(format!(
                    "the upgrade is committed, but syncing the database's folder failed ({e}): \
                     until the system writes the folder out, a power cut could undo it (run `sync`)"
                )))
            }
            Err(source) => Err(UpgradeError::Step {
                what: "commit the upgrade",
                source,
            }),
        }
    }
}

/// Writes to disk, in the background, what the upgrade's transaction has
/// written so far to the database and its rollback journal, and makes it
/// durable (`fdatasync`, which also empties the disk's own write cache).
/// SQLite writes database pages only once the journal protecting them is
/// synced, so a database page made durable early is always covered by a
/// durable journal, and a crash still rolls it back: this changes nothing
/// about what a crash can leave. It lets the disk work while the next hook
/// or the foreign-key check uses the processor, so that the syncs SQLite
/// must do (before writing pages out, and in COMMIT) find little left,
/// instead of the disk taking everything at once while the upgrade waits.
/// Requests are carried out by a thread of its own, started at the first
/// one; requests that arrive while one is carried out are served together.
/// Best effort (Linux only): a file that cannot be opened or synced is
/// skipped.
///
/// The thread keeps one descriptor of the database file open until the
/// `Writeback` is dropped. Closing any descriptor of a file drops every
/// POSIX lock the process holds on it, SQLite's own included, so the
/// descriptor is never closed while the transaction runs, and a
/// `Writeback` must be dropped only after the connection using the
/// database is closed (declare it before the connection).
pub(crate) struct Writeback {
    db_path: PathBuf,
    worker: std::sync::Mutex<Option<WritebackWorker>>,
}

/// The thread of a [`Writeback`] and where to send it requests (each with,
/// for tests, where to say it is done).
struct WritebackWorker {
    requests: std::sync::mpsc::Sender<Option<std::sync::mpsc::Sender<()>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Writeback {
    /// Nothing is opened or started until the first request.
    pub(crate) fn new(db_path: &Path) -> Writeback {
        Writeback {
            db_path: db_path.to_path_buf(),
            worker: std::sync::Mutex::new(None),
        }
    }

    /// Starts writing out and syncing what is written so far, without
    /// waiting.
    pub(crate) fn request(&self) {
        self.send(None);
    }

    /// Writes out and syncs what is written so far, and waits until it is
    /// done.
    #[cfg(test)]
    fn request_and_wait(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        self.send(Some(done));
        let _ = wait.recv();
    }

    fn send(&self, done: Option<std::sync::mpsc::Sender<()>>) {
        if !cfg!(target_os = "linux") {
            return;
        }
        let Ok(mut worker) = self.worker.lock() else {
            return;
        };
        if worker.is_none() {
            *worker = self.start();
        }
        if let Some(worker) = worker.as_ref() {
            let _ = worker.requests.send(done);
        }
    }

    fn start(&self) -> Option<WritebackWorker> {
        let database = std::fs::File::open(&self.db_path).ok()?;
        let journal = crate::disk::sibling(&self.db_path, "-journal");
        let (requests, received) =
            std::sync::mpsc::channel::<Option<std::sync::mpsc::Sender<()>>>();
        let thread = std::thread::Builder::new()
            .name("uplift-writeback".into())
            .spawn(move || {
                while let Ok(first) = received.recv() {
                    // Requests that came meanwhile are served by this round.
                    let waiting: Vec<_> = std::iter::once(first)
                        .chain(received.try_iter())
                        .flatten()
                        .collect();
                    // The database's pages start on their way while the
                    // journal is synced. SQLite holds no lock on its
                    // journal: this descriptor may come and go.
                    start_file_writeback(&database);
                    if let Ok(file) = std::fs::File::open(&journal) {
                        let _ = file.sync_data();
                    }
                    let _ = database.sync_data();
                    for done in waiting {
                        let _ = done.send(());
                    }
                }
            })
            .ok()?;
        Some(WritebackWorker { requests, thread })
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        let worker = self.worker.get_mut().ok().and_then(Option::take);
        if let Some(WritebackWorker { requests, thread }) = worker {
            drop(requests);
            let _ = thread.join();
        }
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` of the whole file: starts the
/// writeback of its dirty pages.
fn start_file_writeback(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor stays open for the whole call, and
        // SYNC_FILE_RANGE_WRITE only starts writeback of dirty pages.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether another process can start a write transaction on `db`
    /// right now (the sqlite3 shell, without waiting).
    fn another_process_can_write(db: &Path) -> bool {
        let out = std::process::Command::new("sqlite3")
            .arg(db)
            .arg("BEGIN IMMEDIATE; COMMIT;")
            .output()
            .expect("the sqlite3 shell runs (scripts/setup installs it)");
        out.status.success()
    }

    /// The writeback's own descriptor of the database must not make the
    /// process lose SQLite's locks (closing any descriptor of a file drops
    /// all of the process's POSIX locks on it).
    #[test]
    fn a_writeback_during_a_transaction_keeps_the_database_locked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite3");
        let writeback = Writeback::new(&db);
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        assert!(
            !another_process_can_write(&db),
            "the transaction holds the lock"
        );
        for _ in 0..3 {
            writeback.request_and_wait();
            assert!(
                !another_process_can_write(&db),
                "a writeback request released SQLite's lock"
            );
        }
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        drop(writeback);
        assert!(another_process_can_write(&db));
    }

    /// A statement that commits on its own after SQLite ended the
    /// transaction is turned into a rollback, and the commit refused.
    #[test]
    fn nothing_commits_but_the_transactions_own_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite3");
        let mut conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x);").unwrap();
        {
            let mut tx = UpgradeTransaction::begin(&mut conn, Mode::Install, None).unwrap();
            // What SQLite does after a full disk: the transaction is gone.
            tx.conn.execute_batch("ROLLBACK").unwrap();
            let carried_on = tx.conn.execute("INSERT INTO t VALUES (1)", []);
            assert!(carried_on.is_err(), "an autocommit write went through");
            assert!(matches!(
                tx.commit(),
                Err(UpgradeError::TransactionLost { .. })
            ));
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}

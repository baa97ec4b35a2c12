//! The PostgreSQL engine: [`Database`] on a PostgreSQL database, with the
//! `postgres` client, PostgreSQL's own transactions and `pg_dump`.
//!
//! An upgrade is one transaction, DDL included (PostgreSQL's DDL is
//! transactional). [`Database::begin`] opens it (`READ COMMITTED`, so each
//! statement after the locks sees everything committed before them), then:
//!
//! 1. takes the database's upgrade lock, `pg_try_advisory_xact_lock` on
//!    [`UPGRADE_LOCK`]: another uplift (on any machine) holding it is named
//!    and the upgrade refused at once; the lock ends with the transaction;
//! 2. checks that no other uplift changed the data version or the
//!    migration history since this one read them to plan;
//! 3. locks the application's tables `IN EXCLUSIVE MODE`: its readers
//!    (and `pg_dump`) go on, its writers wait until the upgrade ends; a
//!    writer holding a table longer than [`LOCK_WAIT`] fails the upgrade,
//!    naming the sessions that hold it;
//! 4. creates uplift's bookkeeping ([`meta`]) when it is missing.
//!
//! The backup ([`backup`]) is then taken by `pg_dump` from the snapshot
//! this transaction exports after the locks, so the dump holds exactly the
//! data being upgraded: nothing committed before the locks is lost, and
//! nothing can be committed to those tables after them.
//!
//! Migrations run as whole files; the statements PostgreSQL cannot run in
//! a transaction block are refused before anything starts
//! ([`statements`], [`Database::check_migrations`]). Hooks do not run on
//! PostgreSQL until their sandbox exists there: a plan with hooks is
//! refused ([`Database::refuses_hooks`]), never run unsandboxed.

pub(crate) mod backup;
mod connect;
mod error;
pub(crate) mod meta;
pub(crate) mod restore;
pub(crate) mod statements;

pub(crate) use connect::PgTarget;
pub use error::PgError;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls};

use super::{Database, EngineError, ForeignKeyCheck, MetaError, TableRows};
use crate::backup::{BackupError, BackupOptions, Progress};
use crate::engine::CommitError;
use crate::history::HistoryEntry;
use crate::hooks::RecordedPlugin;
use crate::hooks::{HookContext, HookError, HookOutcome, HookRunner, LogSink, PlannedHook};
use crate::migrations::{AcceptedEdit, AppliedMigration, MigrateError};
use crate::release::{Migration, Release, ReleaseError};
use crate::schema::Schema;
use crate::upgrade::error::UpgradeError;
use crate::version::Version;

/// The advisory lock every uplift takes on a database for an upgrade
/// (`pg_advisory_xact_lock(bigint)`): "uplift" and a 1, so that it shows
/// in `pg_locks` as classid 0x7570_6c69, objid 0x6674_0001.
pub(crate) const UPGRADE_LOCK: i64 = 0x7570_6c69_6674_0001;

/// How long the upgrade waits for the application's writers to let go of
/// its tables.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The migrations folder of PostgreSQL's own files
/// (`migrations/postgres/`).
pub(crate) const MIGRATIONS_FOLDER: &str = "postgres";

/// A PostgreSQL database, connected.
pub(crate) struct PostgresDatabase {
    client: RefCell<Client>,
    target: PgTarget,
    location: PathBuf,
    /// Whether the upgrade's transaction is open.
    in_tx: bool,
    /// The data version and history length this uplift read before it
    /// began (what it planned from), checked again under the lock.
    seen: RefCell<Seen>,
}

#[derive(Default)]
struct Seen {
    version: Option<Option<String>>,
    count: Option<usize>,
}

impl PostgresDatabase {
    /// Connects to `target`.
    pub(crate) fn connect(target: &PgTarget) -> Result<PostgresDatabase, PgError> {
        let mut client = target.connect()?;
        keep_bookkeeping_off_the_search_path(&mut client)?;
        Ok(PostgresDatabase {
            client: RefCell::new(client),
            location: PathBuf::from(target.display()),
            target: target.clone(),
            in_tx: false,
            seen: RefCell::new(Seen::default()),
        })
    }

    fn pg<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, PgError>) -> Result<T, PgError> {
        f(&mut self.client.borrow_mut())
    }

    /// The application's tables (every ordinary and partitioned table
    /// outside PostgreSQL's and uplift's schemas), schema-qualified and
    /// quoted.
    fn application_tables(&self) -> Result<Vec<String>, PgError> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1)
                   AND n.nspname NOT LIKE 'pg\\_%'
                 ORDER BY 1",
                &[&meta::SCHEMA],
            )
            .map_err(PgError::sql("list the application's tables"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Who holds the upgrade lock, as far as `pg_stat_activity` tells.
    fn lock_holder(&self) -> String {
        let row = self.client.borrow_mut().query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
                    coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                       SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid
             LIMIT 1",
            &[&UPGRADE_LOCK],
        );
        match row {
            Ok(Some(r)) => format!(
                "server process {}, {} from {}, since {}",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3)
            ),
            Ok(None) => "its session is not visible to this role".into(),
            Err(e) => format!("its session could not be read: {e}"),
        }
    }

    /// The sessions other than this one holding locks on `tables`.
    fn table_lock_holders(&self, tables: &[String]) -> String {
        let rows = self.client.borrow_mut().query(
            "SELECT DISTINCT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
                    l.relation::regclass::text
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.granted AND l.pid <> pg_backend_pid()
               AND l.relation = ANY (SELECT to_regclass(t)::oid FROM unnest($1::text[]) AS t)
             ORDER BY 1",
            &[&tables],
        );
        match rows {
            Ok(rows) if !rows.is_empty() => rows
                .iter()
                .map(|r| {
                    format!(
                        "server process {} ({}, {}) on {}",
                        r.get::<_, i32>(0),
                        match r.get::<_, String>(1) {
                            name if name.is_empty() => "no application name".to_string(),
                            name => name,
                        },
                        r.get::<_, String>(2),
                        r.get::<_, String>(3)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => "other sessions".into(),
        }
    }

    /// `begin`'s steps after `BEGIN`; any failure is rolled back by the
    /// caller.
    fn lock_and_prepare(&mut self) -> Result<(), PgError> {
        let database = self.target.display().to_string();
        let got: bool = self
            .client
            .get_mut()
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&UPGRADE_LOCK])
            .map_err(PgError::sql("take the upgrade lock"))?
            .get(0);
        if !got {
            let holder = self.lock_holder();
            return Err(PgError::OtherUplift { database, holder });
        }
        let seen = std::mem::take(&mut *self.seen.borrow_mut());
        if let Some(before) = seen.version {
            let now = meta::get(self.client.get_mut(), "data_version")?;
            if now != before {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
                return Err(PgError::ChangedMeanwhile {
                    database,
                    before: show(&before),
                    after: show(&now),
                });
            }
        }
        if let Some(before) = seen.count {
            let now = meta::applied_count(self.client.get_mut())?;
            if now != before {
                return Err(PgError::ChangedMeanwhile {
                    database,
                    before: format!("{before} migrations applied"),
                    after: format!("{now} migrations applied"),
                });
            }
        }
        let tables = self.application_tables()?;
        if !tables.is_empty() {
            let client = self.client.get_mut();
            client
                .batch_execute(&format!(
                    "SET LOCAL lock_timeout = '{}s'",
                    LOCK_WAIT.as_secs()
                ))
                .map_err(PgError::sql("set the lock timeout"))?;
            let lock = format!("LOCK TABLE {} IN EXCLUSIVE MODE", tables.join(", "));
            if let Err(e) = client.batch_execute(&lock) {
                if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                    // The holders are read outside the failed transaction.
                    let _ = client.batch_execute("ROLLBACK");
                    self.in_tx = false;
                    return Err(PgError::TablesBusy {
                        database,
                        seconds: LOCK_WAIT.as_secs(),
                        holders: self.table_lock_holders(&tables),
                    });
                }
                return Err(PgError::sql("lock the application's tables")(e));
            }
            client
                .batch_execute("SET LOCAL lock_timeout = 0")
                .map_err(PgError::sql("reset the lock timeout"))?;
        }
        meta::ensure(self.client.get_mut())
    }

    /// The error of a statement of uplift's own, as the seam carries it.
    fn engine<T>(result: Result<T, PgError>) -> Result<T, EngineError> {
        result.map_err(EngineError::new)
    }
}

impl Database for PostgresDatabase {
    fn location(&self) -> &Path {
        &self.location
    }

    fn data_version(&self) -> Result<Option<Version>, MetaError> {
        let stored = Self::engine(self.pg(|c| meta::get(c, "data_version")))?;
        if !self.in_tx {
            self.seen.borrow_mut().version = Some(stored.clone());
        }
        match stored {
            None => Ok(None),
            Some(stored) => Version::parse(&stored)
                .map(Some)
                .map_err(|source| MetaError::BadVersion { stored, source }),
        }
    }

    fn app_name(&self) -> Result<Option<String>, MetaError> {
        Ok(Self::engine(self.pg(|c| meta::get(c, "app")))?)
    }

    fn plugin_versions(&self) -> Result<Vec<RecordedPlugin>, MetaError> {
        let rows = Self::engine(self.pg(meta::plugin_rows))?;
        rows.into_iter()
            .map(|(name, stored, updated_at)| match Version::parse(&stored) {
                Ok(version) => Ok(RecordedPlugin {
                    name,
                    version,
                    updated_at,
                }),
                Err(source) => Err(MetaError::BadPluginVersion {
                    plugin: name,
                    stored,
                    source: Box::new(source),
                }),
            })
            .collect()
    }

    /// A PostgreSQL home is one database, `main`: another has none.
    fn applied_migrations(&self, database: &str) -> Result<Vec<AppliedMigration>, EngineError> {
        if database != crate::release::MAIN_DATABASE {
            return Ok(Vec::new());
        }
        let applied = Self::engine(self.pg(meta::applied))?;
        if !self.in_tx {
            self.seen.borrow_mut().count = Some(applied.len());
        }
        Ok(applied)
    }

    fn applied_count(&self, database: &str) -> Result<usize, EngineError> {
        if database != crate::release::MAIN_DATABASE {
            return Ok(0);
        }
        let count = Self::engine(self.pg(meta::applied_count))?;
        if !self.in_tx {
            self.seen.borrow_mut().count = Some(count);
        }
        Ok(count)
    }

    fn has_user_tables(&self) -> Result<bool, EngineError> {
        Self::engine(self.pg(|c| {
            let row = c
                .query_one(
                    "SELECT EXISTS (
                         SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                           AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1)
                           AND n.nspname NOT LIKE 'pg\\_%')",
                    &[&meta::SCHEMA],
                )
                .map_err(PgError::sql("look for the application's tables"))?;
            Ok(row.get(0))
        }))
    }

    fn schema(&self) -> Result<Schema, EngineError> {
        Err(EngineError::new(PgError::Unsupported {
            what: "reading a database's schema (`uplift adopt`, the schema comparisons of `uplift status`)",
            instead: "on PostgreSQL, uplift upgrades databases it installed itself",
        }))
    }

    fn release_schemas(
        &self,
        release: &Release,
        _checkpoints: &[u32],
    ) -> Result<BTreeMap<u32, Schema>, ReleaseError> {
        Err(ReleaseError::Schema {
            path: release.dir.clone(),
            cause: EngineError::new(PgError::Unsupported {
                what: "building a release's schema (`uplift adopt`, `uplift verify-paths`)",
                instead: "run them against a SQLite home of the same release",
            }),
        })
    }

    fn history(&self) -> Result<Vec<HistoryEntry>, EngineError> {
        Self::engine(self.pg(meta::history))
    }

    fn check_migrations(&self, migrations: &[Migration]) -> Result<(), MigrateError> {
        for migration in migrations {
            if let Some(refusal) = statements::refusals(&migration.sql).into_iter().next() {
                let file = migration.file_name();
                return Err(match refusal.kind {
                    statements::RefusalKind::TransactionControl => {
                        MigrateError::TransactionControl {
                            file,
                            statement: format!("{} (line {})", refusal.statement, refusal.line),
                        }
                    }
                    statements::RefusalKind::NotInTransaction
                    | statements::RefusalKind::CopyFromStdin => MigrateError::NotTransactional {
                        file,
                        line: refusal.line,
                        statement: refusal.statement,
                        why: match refusal.kind {
                            statements::RefusalKind::CopyFromStdin => {
                                "its rows come from psql, not from the file's SQL: write them as INSERTs"
                            }
                            _ => {
                                "PostgreSQL cannot run it inside a transaction block, and uplift runs \
                                 every migration in the upgrade's one transaction: write the plain form \
                                 (CREATE INDEX without CONCURRENTLY: the upgrade locks the tables anyway), \
                                 or leave it to the operator"
                            }
                        },
                    },
                });
            }
        }
        Ok(())
    }

    fn refuses_hooks(&self) -> Option<&'static str> {
        Some(
            "hooks do not run on PostgreSQL yet: their sandbox there (PostgreSQL roles and grants \
             enforcing each plugin's manifest) is still to come, and uplift never runs a hook \
             unsandboxed",
        )
    }

    fn begin(&mut self) -> Result<(), MetaError> {
        Self::engine(
            self.client
                .get_mut()
                .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                .map_err(PgError::sql("begin the upgrade's transaction")),
        )?;
        self.in_tx = true;
        if let Err(e) = self.lock_and_prepare() {
            self.rollback();
            return Err(EngineError::new(e).into());
        }
        Ok(())
    }

    fn back_up(
        &mut self,
        dir: &Path,
        options: &BackupOptions,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf, BackupError> {
        let snapshot: String = self
            .client
            .get_mut()
            .query_one("SELECT pg_export_snapshot()", &[])
            .map_err(|e| BackupError::Sqlite {
                what: "export the upgrade's snapshot".into(),
                source: EngineError::new(e),
            })?
            .get(0);
        let client = self.client.get_mut();
        backup::write_backup(
            client,
            &self.target,
            Some(&snapshot),
            dir,
            options,
            progress,
        )
        .map(|file| file.path)
    }

    fn apply_migration(
        &mut self,
        migration: &Migration,
        release: &Version,
        timeout: Duration,
    ) -> Result<Duration, MigrateError> {
        let client = self.client.get_mut();
        let cancel = client.cancel_token();
        let (done, wait) = mpsc::channel::<()>();
        let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&timed_out);
        // Stops a runaway migration once its time is up (the server cancels
        // the running statement; the transaction is then rolled back).
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = cancel.cancel_query(NoTls);
            }
        });
        let started = Instant::now();
        let result = client.batch_execute(&migration.sql);
        let elapsed = started.elapsed();
        let _ = done.send(());
        let _ = watchdog.join();
        if let Err(e) = result {
            if timed_out.load(std::sync::atomic::Ordering::SeqCst)
                && e.code() == Some(&SqlState::QUERY_CANCELED)
            {
                return Err(MigrateError::TimedOut {
                    file: migration.file_name(),
                    seconds: timeout.as_secs(),
                });
            }
            return Err(MigrateError::Failed {
                file: migration.file_name(),
                message: describe_failure(&migration.sql, &e),
            });
        }
        meta::record_migration(
            client,
            migration,
            &release.to_string(),
            elapsed.as_millis() as i64,
            false,
        )
        .map_err(|e| MigrateError::Database(EngineError::new(e)))?;
        Ok(elapsed)
    }

    fn had_plugin_record(&self) -> bool {
        // uplift.plugin_tables came with the engine: there is no older
        // bookkeeping to fill it from.
        true
    }

    fn adopt_plugin_tables(
        &mut self,
        _owners: &[(String, String)],
        _release: &Release,
    ) -> Result<(), UpgradeError> {
        // Never called: `had_plugin_record` is always true here.
        Ok(())
    }

    fn run_hook(
        &mut self,
        _runner: &mut HookRunner,
        hook: &PlannedHook,
        _ctx: &HookContext,
        _log: Arc<dyn LogSink>,
    ) -> Result<HookOutcome, HookError> {
        Err(HookError::NoSandbox {
            plugin: hook.plugin.clone(),
            hook: hook.hook.clone(),
            engine: "PostgreSQL",
        })
    }

    fn record_versions(
        &mut self,
        app: &str,
        version: &Version,
        plugins: &[(&str, &str)],
    ) -> Result<(), MetaError> {
        let client = self.client.get_mut();
        Self::engine(meta::set_plugin_versions(client, plugins))?;
        Self::engine(meta::set(client, "app", app))?;
        Self::engine(meta::set(client, "data_version", &version.to_string()))?;
        Ok(())
    }

    fn record_history(&mut self, entry: &HistoryEntry) -> Result<(), MetaError> {
        Ok(Self::engine(meta::record_history(
            self.client.get_mut(),
            entry,
        ))?)
    }

    fn record_after_rollback(&mut self, entry: &HistoryEntry) -> Result<(), MetaError> {
        let client = self.client.get_mut();
        let result = (|| {
            client
                .batch_execute("BEGIN")
                .map_err(PgError::sql("begin recording the failed upgrade"))?;
            meta::ensure(client)?;
            meta::record_history(client, entry)?;
            client
                .batch_execute("COMMIT")
                .map_err(PgError::sql("commit the record of the failed upgrade"))
        })();
        if result.is_err() {
            let _ = client.batch_execute("ROLLBACK");
        }
        Ok(Self::engine(result)?)
    }

    fn accept_migration_edits(
        &mut self,
        edits: &[AcceptedEdit],
        release: &Version,
    ) -> Result<(), MetaError> {
        let client = self.client.get_mut();
        for edit in edits {
            Self::engine(meta::record_checksum(client, edit.id, &edit.actual))?;
            Self::engine(meta::record_history(
                client,
                &HistoryEntry::accepted_edit(edit, release),
            ))?;
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
        let client = self.client.get_mut();
        for migration in migrations {
            Self::engine(meta::record_migration(
                client,
                migration,
                &version.to_string(),
                0,
                true,
            ))?;
        }
        Self::engine(meta::set(client, "app", app))?;
        Self::engine(meta::set(client, "data_version", &version.to_string()))?;
        Self::engine(meta::record_history(client, entry))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), EngineError> {
        // The server writes its WAL at commit; nothing to hand it before.
        Ok(())
    }

    fn check_foreign_keys(&mut self, _limit: usize) -> Result<ForeignKeyCheck, EngineError> {
        // PostgreSQL checks every foreign key as rows are written; the
        // deferred ones are checked now rather than at COMMIT, so that a
        // violation fails this step, named.
        let client = self.client.get_mut();
        Self::engine(
            client
                .batch_execute("SET CONSTRAINTS ALL IMMEDIATE")
                .map_err(PgError::sql("check the deferred foreign keys")),
        )?;
        let tables: i64 = Self::engine(
            client
                .query_one(
                    "SELECT count(DISTINCT conrelid) FROM pg_constraint WHERE contype = 'f'",
                    &[],
                )
                .map_err(PgError::sql("count the tables with foreign keys")),
        )?
        .get(0);
        Ok(ForeignKeyCheck {
            violations: Vec::new(),
            tables_checked: tables.max(0) as usize,
            whole_database: true,
        })
    }

    fn table_rows(&self, _include: &dyn Fn(&str) -> bool) -> Result<TableRows, EngineError> {
        Err(EngineError::new(PgError::Unsupported {
            what: "`uplift hooks test`",
            instead: "test hooks against a SQLite home of the same release",
        }))
    }

    fn commit(&mut self) -> Result<Option<String>, CommitError> {
        let client = self.client.get_mut();
        // A transaction the server aborted turns COMMIT into a silent
        // ROLLBACK: ask first.
        if let Err(e) = client.batch_execute("SELECT 1") {
            let _ = client.batch_execute("ROLLBACK");
            self.in_tx = false;
            return match e.code() {
                Some(code) if *code == SqlState::IN_FAILED_SQL_TRANSACTION => {
                    Err(CommitError::Lost { refused: 0 })
                }
                _ => Err(CommitError::Failed(EngineError::new(e))),
            };
        }
        let result = client.batch_execute("COMMIT");
        self.in_tx = false;
        result
            .map(|()| None)
            .map_err(|e| CommitError::Failed(EngineError::new(e)))
    }

    fn in_transaction(&self) -> bool {
        self.in_tx
    }

    fn rollback(&mut self) {
        if self.in_tx {
            let _ = self.client.get_mut().batch_execute("ROLLBACK");
            self.in_tx = false;
        }
    }
}

/// Takes uplift's schema off this session's `search_path`, so that a
/// migration's unqualified `CREATE TABLE` never lands in it: the default
/// path starts with `"$user"`, which names the schema `uplift` for a role
/// called `uplift`. Every other entry is kept, in its order.
pub(crate) fn keep_bookkeeping_off_the_search_path(client: &mut Client) -> Result<(), PgError> {
    let row = client
        .query_one(
            "SELECT current_setting('search_path'), current_user::text",
            &[],
        )
        .map_err(PgError::sql("read the search path"))?;
    let (path, user): (String, String) = (row.get(0), row.get(1));
    let kept: Vec<&str> = path
        .split(',')
        .map(str::trim)
        .filter(|entry| {
            let name = entry.trim_matches('"');
            let resolved = if name == "$user" { user.as_str() } else { name };
            resolved != meta::SCHEMA && !entry.is_empty()
        })
        .collect();
    if kept.len() == path.split(',').count() {
        return Ok(());
    }
    let setting = if kept.is_empty() {
        "pg_catalog".to_string()
    } else {
        kept.join(", ")
    };
    client
        .query_one("SELECT set_config('search_path', $1, false)", &[&setting])
        .map_err(PgError::sql("set the search path"))?;
    Ok(())
}

/// A failed migration's error, with the line of the file it points at.
fn describe_failure(sql: &str, error: &postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return error.to_string();
    };
    let mut text = db.message().to_string();
    if let Some(postgres::error::ErrorPosition::Original(at)) = db.position() {
        let at = *at as usize;
        let line = 1 + sql
            .chars()
            .take(at.saturating_sub(1))
            .filter(|&c| c == '\n')
            .count();
        text = format!("line {line}: {text}");
    }
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

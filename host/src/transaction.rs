//! The upgrade transaction: everything an upgrade changes, from `BEGIN` to
//! `COMMIT` or rollback, as one value.
//!
//! [`UpgradeTransaction::begin`] opens it on a database in a [`Mode`];
//! [`UpgradeTransaction::run`] takes it through the steps, in the one order
//! they ever run: back up, apply the migrations, adopt plugin tables, run
//! the hooks, record the versions, flush, check foreign keys, commit.
//! Dropping it uncommitted rolls everything back. `uplift upgrade` and
//! `uplift hooks test` (on a copy, never committed) both call `run`, so the
//! sequence and its safeguards exist once. How each step touches the
//! database is the engine's ([`crate::engine::Database`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backup::{BackupKind, BackupOptions, Progress};
use crate::engine::{CommitError, Database, EngineError, ForeignKeyViolation};
use crate::errors::chain_text;
use crate::history::{self, AdoptionDetails, ErrorRecord, HistoryEntry, StepTime, UpgradeDetails};
use crate::hooks::{
    HookContext, HookError, HookOutcome, HookRunner, LogSink, PlannedHook, PluginSet,
};
use crate::migrations::{self, AcceptedEdit, MigrateError};
use crate::release::{Migration, Release};
use crate::upgrade::error::UpgradeError;
use crate::version::Version;

/// What the transaction is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// A new (or empty) database brought to a release: every migration,
    /// then the active plugins' first-activation hooks (plugin hooks only,
    /// told old == new == the release), nothing to back up.
    Install,
    /// Data at version `from` upgraded: backed up into `backups` first
    /// (`compress`ed or not), then migrations and hooks.
    Upgrade {
        from: &'a Version,
        backups: &'a Path,
        compress: bool,
    },
    /// `uplift hooks test` on a copy of data at `from`: migrations and hooks
    /// as in an upgrade (hooks told it is a dry run), a hook's failure and
    /// broken foreign keys reported rather than refused, never committed.
    Trial { from: &'a Version },
    /// A database uplift did not create taken under its management
    /// ([`UpgradeTransaction::adopt`]): backed up into `backups` first, then
    /// only uplift's own records are written.
    Adopt { backups: &'a Path, compress: bool },
}

impl Mode<'_> {
    fn from(&self) -> Option<&Version> {
        match self {
            Mode::Install | Mode::Adopt { .. } => None,
            Mode::Upgrade { from, .. } | Mode::Trial { from } => Some(from),
        }
    }
}

/// What a migration took.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationRun {
    /// Its file name.
    pub file: String,
    /// Milliseconds.
    pub ms: f64,
}

/// What a hook took.
#[derive(Debug, Clone, Serialize)]
pub struct HookRun {
    /// The plugin.
    pub plugin: String,
    /// The hook.
    pub hook: String,
    /// Milliseconds, loading included.
    pub ms: f64,
    /// Of those, the milliseconds the sandbox's set-up took: loading the
    /// plugin's component (compile cache and linking; nothing when an
    /// earlier hook of the same plugin loaded it) and instantiating it.
    pub setup_ms: f64,
    /// The statements the sandbox refused (the hook carried on).
    #[serde(skip)]
    pub refused: Vec<String>,
}

/// The time one phase of the upgrade took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    /// `lock`, `plan`, `backup`, `migrations`, `hooks`, `flush`,
    /// `foreign keys`, `commit`.
    pub phase: &'static str,
    /// Milliseconds, with fractions.
    pub ms: f64,
}

/// Times the phases of one run.
pub(crate) struct Phases {
    pub times: Vec<PhaseTime>,
    started: Instant,
}

impl Phases {
    pub(crate) fn start() -> Self {
        Phases {
            times: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Closes the current phase under `name` and starts the next.
    pub(crate) fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.times.push(PhaseTime {
            phase,
            ms: ms(now - self.started),
        });
        self.started = now;
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the transaction applies: a release's migrations and the plugins'
/// hooks.
pub(crate) struct Steps<'a> {
    /// The application.
    pub app: &'a str,
    /// The version upgraded to.
    pub to: &'a Version,
    /// The release upgraded to, if there is one (`uplift hooks test` may
    /// run on a copy's own schema).
    pub release: Option<&'a Release>,
    /// The migrations to apply, in order.
    pub migrations: &'a [Migration],
    /// Applied migrations edited since, with the release's consent: their
    /// new checksums are recorded, and the edits in the history.
    pub accepted_edits: &'a [AcceptedEdit],
    /// How long one migration may run.
    pub migration_timeout: Duration,
    /// The plugins, whose versions are recorded (and whose tables are
    /// adopted on a first upgrade with the record).
    pub plugins: &'a PluginSet,
    /// The hooks to run, in order.
    pub hooks: &'a [PlannedHook],
}

/// Where the transaction reports as it goes, and what a caller may add
/// around each hook (`uplift hooks test` compares the tables).
pub(crate) trait Observer {
    /// A phase ended (see [`PhaseTime::phase`]).
    fn phase(&mut self, _name: &'static str) {}
    /// A migration was applied.
    fn migrated(&mut self, _run: &MigrationRun) {}
    /// The backup's progress.
    fn progress(&mut self) -> &mut dyn Progress;
    /// Where hooks' log lines go.
    fn log(&self) -> Arc<dyn LogSink>;
    /// The sandbox to run hooks in (made only when there are hooks).
    fn runner(&mut self) -> Result<HookRunner, HookError>;
    /// Before a hook runs.
    fn before_hook(&mut self, _hook: &PlannedHook, _db: &dyn Database) -> Result<(), EngineError> {
        Ok(())
    }
    /// After a hook ran (`result` is its outcome).
    fn after_hook(
        &mut self,
        _hook: &PlannedHook,
        _result: &Result<HookRun, HookError>,
        _db: &dyn Database,
    ) -> Result<(), EngineError> {
        Ok(())
    }
}

/// What the transaction did.
#[derive(Debug, Default)]
pub(crate) struct Done {
    /// The backup made before the first change (an upgrade's).
    pub backup: Option<PathBuf>,
    /// What went wrong after the commit took effect.
    pub warnings: Vec<String>,
    pub migrations: Vec<MigrationRun>,
    pub hooks: Vec<HookRun>,
    /// How many tables' foreign keys were checked.
    pub foreign_key_tables_checked: usize,
    /// In a trial: rows that break foreign keys (an upgrade refuses them).
    pub foreign_key_violations: Vec<ForeignKeyViolation>,
}

/// One upgrade's transaction on a database; see the module's documentation.
pub(crate) struct UpgradeTransaction<'d> {
    db: &'d mut dyn Database,
    mode: Mode<'d>,
    backup: Option<PathBuf>,
    /// When it began, for the history.
    started: jiff::Timestamp,
}

/// The most foreign-key violations a refusal describes.
const VIOLATIONS_SHOWN: usize = 10;

impl<'d> UpgradeTransaction<'d> {
    /// Begins the transaction: no other writer until it ends.
    pub(crate) fn begin(
        db: &'d mut dyn Database,
        mode: Mode<'d>,
    ) -> Result<UpgradeTransaction<'d>, UpgradeError> {
        db.begin().map_err(|source| UpgradeError::Meta {
            path: db.location().to_path_buf(),
            source,
        })?;
        Ok(UpgradeTransaction {
            db,
            mode,
            backup: None,
            started: jiff::Timestamp::now(),
        })
    }

    /// Runs every step in order and commits (a trial is rolled back
    /// instead); an upgrade or install records itself in the history,
    /// inside the transaction. Any failure rolls everything back; the error
    /// then names the database and the backup made before the first change,
    /// and a failed upgrade of existing data is recorded in the history
    /// after the rollback (see [`Database::record_after_rollback`]).
    pub(crate) fn run(
        mut self,
        steps: &Steps<'_>,
        observer: &mut dyn Observer,
    ) -> Result<Done, UpgradeError> {
        let mut done = Done::default();
        match self.steps(steps, observer, &mut done) {
            Ok(()) => Ok(done),
            Err(cause) => {
                let err = self.rolled_back(cause);
                if let Mode::Upgrade { from, .. } = self.mode {
                    let mut details = self.details(&done);
                    details.error = Some(ErrorRecord {
                        code: err.code().into(),
                        message: chain_text(&err),
                    });
                    let entry = HistoryEntry::upgrade(
                        self.started,
                        Some(from),
                        steps.to,
                        history::FAILED,
                        &details,
                    );
                    // Best effort: what failed may fail this too (a full
                    // disk); the home's log of the attempt has it anyway.
                    let _ = self.db.record_after_rollback(&entry);
                }
                Err(err)
            }
        }
    }

    /// What the history keeps of this run so far.
    fn details(&self, done: &Done) -> UpgradeDetails {
        UpgradeDetails {
            backup: self.backup.as_ref().map(|b| b.display().to_string()),
            migrations: done
                .migrations
                .iter()
                .map(|m| StepTime {
                    name: m.file.clone(),
                    ms: m.ms,
                })
                .collect(),
            hooks: done
                .hooks
                .iter()
                .map(|h| StepTime {
                    name: format!("{}/{}", h.plugin, h.hook),
                    ms: h.ms,
                })
                .collect(),
            error: None,
        }
    }

    /// Records a successful upgrade or install in the history, inside the
    /// transaction (so that it commits with what it records).
    fn record_history(&mut self, steps: &Steps<'_>, done: &Done) -> Result<(), UpgradeError> {
        let (from, outcome) = match self.mode {
            Mode::Upgrade { from, .. } => (Some(from), history::UPGRADED),
            Mode::Install => (None, history::INSTALLED),
            Mode::Trial { .. } | Mode::Adopt { .. } => return Ok(()),
        };
        let entry =
            HistoryEntry::upgrade(self.started, from, steps.to, outcome, &self.details(done));
        self.db
            .record_history(&entry)
            .map_err(|source| UpgradeError::Meta {
                path: self.db.location().to_path_buf(),
                source,
            })
    }

    fn steps(
        &mut self,
        steps: &Steps<'_>,
        observer: &mut dyn Observer,
        done: &mut Done,
    ) -> Result<(), UpgradeError> {
        self.back_up_first(observer, done)?;
        if !steps.accepted_edits.is_empty() {
            self.db
                .accept_migration_edits(steps.accepted_edits, steps.to)
                .map_err(|source| UpgradeError::Meta {
                    path: self.db.location().to_path_buf(),
                    source,
                })?;
        }
        self.migrate(steps, observer, &mut done.migrations)?;
        observer.phase("migrations");
        self.adopt_plugin_tables(steps)?;
        if !steps.hooks.is_empty() {
            let finished = self.run_hooks(steps, observer, done)?;
            observer.phase("hooks");
            if !finished {
                return Ok(());
            }
        }
        if let Mode::Trial { .. } = self.mode {
            let check = self.db.check_foreign_keys(VIOLATIONS_SHOWN)?;
            done.foreign_key_tables_checked = check.tables_checked;
            done.foreign_key_violations = check.violations;
            return Ok(());
        }
        self.record_versions(steps)?;
        self.record_history(steps, done)?;
        self.flush()?;
        observer.phase("flush");
        // Last before COMMIT, after every write.
        let check = self.db.check_foreign_keys(VIOLATIONS_SHOWN)?;
        if !check.violations.is_empty() {
            return Err(UpgradeError::ForeignKeys {
                to: steps.to.clone(),
                violations: check.violations.iter().map(ToString::to_string).collect(),
            });
        }
        done.foreign_key_tables_checked = check.tables_checked;
        observer.phase("foreign keys");
        done.warnings.extend(self.commit()?);
        observer.phase("commit");
        Ok(())
    }

    /// Takes a database uplift did not create under its management, in
    /// `Mode::Adopt`: backs it up, records `migrations` as applied (adopted,
    /// never run), the application, the data version `version` and the
    /// history `entry` (whose details gain the backup's name), then
    /// commits. Nothing else is written. Any failure rolls everything
    /// back, as in [`UpgradeTransaction::run`].
    pub(crate) fn adopt(
        mut self,
        app: &str,
        version: &Version,
        migrations: &[Migration],
        details: &mut AdoptionDetails,
        observer: &mut dyn Observer,
    ) -> Result<Done, UpgradeError> {
        let started = jiff::Timestamp::now();
        let mut done = Done::default();
        let result = (|| {
            self.back_up_first(observer, &mut done)?;
            details.backup = done.backup.as_ref().map(|b| b.display().to_string());
            let entry = HistoryEntry::adoption(started, version, details);
            self.db
                .record_adoption(app, version, migrations, &entry)
                .map_err(|source| UpgradeError::Meta {
                    path: self.db.location().to_path_buf(),
                    source,
                })?;
            self.flush()?;
            done.warnings.extend(self.commit()?);
            observer.phase("commit");
            Ok(())
        })();
        match result {
            Ok(()) => Ok(done),
            Err(cause) => Err(self.rolled_back(cause)),
        }
    }

    /// The backup before the first change, in the modes that make one.
    fn back_up_first(
        &mut self,
        observer: &mut dyn Observer,
        done: &mut Done,
    ) -> Result<(), UpgradeError> {
        let (Mode::Upgrade {
            backups, compress, ..
        }
        | Mode::Adopt { backups, compress }) = self.mode
        else {
            return Ok(());
        };
        let mut options = BackupOptions::new(BackupKind::Automatic);
        options.compress = compress;
        let file = self.db.back_up(backups, &options, observer.progress())?;
        self.backup = Some(file.clone());
        done.backup = Some(file);
        observer.phase("backup");
        Ok(())
    }

    /// Applies the migrations in order, each recorded with its checksum and
    /// stopped after the timeout; `runs` gains each as it is applied.
    fn migrate(
        &mut self,
        steps: &Steps<'_>,
        observer: &mut dyn Observer,
        runs: &mut Vec<MigrationRun>,
    ) -> Result<(), UpgradeError> {
        for migration in steps.migrations {
            let took = self
                .db
                .apply_migration(migration, steps.to, steps.migration_timeout)?;
            if !self.db.in_transaction() {
                return Err(UpgradeError::TransactionLost {
                    during: format!("migration {}", migration.file_name()),
                    refused: 0,
                });
            }
            let run = MigrationRun {
                file: migration.file_name(),
                ms: ms(took),
            };
            observer.migrated(&run);
            runs.push(run);
        }
        Ok(())
    }

    /// On the first upgrade of a database last upgraded by an uplift that
    /// did not record which tables plugins created, takes the tables under
    /// an active plugin's prefix that no migration of the release creates as
    /// that plugin's, so its hooks keep owning them. Does nothing otherwise.
    fn adopt_plugin_tables(&mut self, steps: &Steps<'_>) -> Result<(), UpgradeError> {
        if self.db.had_plugin_record() || self.mode.from().is_none() {
            return Ok(());
        }
        let owners: Vec<(String, String)> = steps
            .plugins
            .plugins()
            .iter()
            .filter(|p| p.active)
            .filter_map(|p| {
                let prefix = p.manifest.capabilities.owns.clone()?;
                Some((p.name().to_string(), prefix))
            })
            .collect();
        let Some(release) = steps.release.filter(|_| !owners.is_empty()) else {
            return Ok(());
        };
        self.db.adopt_plugin_tables(&owners, release)?;
        Ok(())
    }

    /// Runs the hooks in order, each in its own savepoint and sandbox; what
    /// a hook created is its plugin's from now on. Returns whether every
    /// hook succeeded (in a trial, a failed hook ends the hooks, reported
    /// to the observer; otherwise it is the error).
    fn run_hooks(
        &mut self,
        steps: &Steps<'_>,
        observer: &mut dyn Observer,
        done: &mut Done,
    ) -> Result<bool, UpgradeError> {
        let mut runner = observer.runner()?;
        let ctx = HookContext {
            app: steps.app.to_string(),
            // An install's hooks are plugins' first activations, with the
            // application's version old == new.
            old_version: self.mode.from().unwrap_or(steps.to).to_string(),
            new_version: steps.to.to_string(),
            dry_run: matches!(self.mode, Mode::Trial { .. }),
        };
        let log = observer.log();
        for hook in steps.hooks {
            observer.before_hook(hook, &*self.db)?;
            let started = Instant::now();
            let result = self
                .db
                .run_hook(&mut runner, hook, &ctx, Arc::clone(&log))
                .map(|outcome: HookOutcome| HookRun {
                    plugin: hook.plugin.clone(),
                    hook: hook.hook.clone(),
                    ms: ms(started.elapsed()),
                    setup_ms: ms(outcome.setup),
                    refused: outcome.refused,
                });
            observer.after_hook(hook, &result, &*self.db)?;
            match result {
                Ok(run) => done.hooks.push(run),
                // The observer has reported it; the trial ends its hooks.
                Err(_) if matches!(self.mode, Mode::Trial { .. }) => return Ok(false),
                Err(err) => return Err(err.into()),
            }
        }
        Ok(true)
    }

    /// Records the plugins' versions, forgets the records of tables that are
    /// gone, and records the application and its new data version.
    fn record_versions(&mut self, steps: &Steps<'_>) -> Result<(), UpgradeError> {
        let plugins: Vec<(&str, &str)> = steps
            .plugins
            .plugins()
            .iter()
            .filter(|p| p.active)
            .map(|p| (p.name(), p.manifest.version.as_str()))
            .collect();
        self.db
            .record_versions(steps.app, steps.to, &plugins)
            .map_err(|source| UpgradeError::Meta {
                path: self.db.location().to_path_buf(),
                source,
            })
    }

    /// Lets the storage take what the transaction wrote before the commit.
    fn flush(&mut self) -> Result<(), UpgradeError> {
        self.db.flush().map_err(|source| UpgradeError::Step {
            what: "write the upgrade's changes to the database file before its commit",
            source,
        })
    }

    /// Commits; returns a warning when the commit took effect but could not
    /// be made durable.
    fn commit(&mut self) -> Result<Option<String>, UpgradeError> {
        self.db.commit().map_err(|err| match err {
            CommitError::Lost { refused } => UpgradeError::TransactionLost {
                during: "the upgrade".to_string(),
                refused,
            },
            CommitError::Failed(source) => UpgradeError::Step {
                what: "commit the upgrade",
                source,
            },
        })
    }

    /// Rolls back and says so, naming the backup made before the first
    /// change (none in an install or a trial: the error is the cause
    /// itself).
    fn rolled_back(&mut self, cause: UpgradeError) -> UpgradeError {
        self.db.rollback();
        match self.backup.take() {
            Some(backup) => UpgradeError::RolledBack {
                cause: Box::new(cause),
                database: self.db.location().to_path_buf(),
                backup,
            },
            None => cause,
        }
    }
}

impl Drop for UpgradeTransaction<'_> {
    /// Rolls back whatever was not committed.
    fn drop(&mut self) {
        self.db.rollback();
    }
}

/// What of the release's migrations (every database's, `main`'s first) an
/// upgrade of `db` applies, and which
/// applied ones it records as edited with the release's consent.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Not yet applied, in order.
    pub migrations: Vec<Migration>,
    /// Applied, then edited in a way the release accepts.
    pub accepted: Vec<AcceptedEdit>,
}

/// The release's migrations not yet applied to `db`, in order, and the
/// edits to applied ones the release accepts; refused when the history has
/// drifted from the release's files.
pub(crate) fn pending_migrations(
    db: &dyn Database,
    release: &Release,
) -> Result<Pending, UpgradeError> {
    let mut pending = Pending::default();
    let mut drift = Vec::new();
    for database in &release.databases {
        let applied = db
            .applied_migrations(&database.name)
            .map_err(MigrateError::from)?;
        let status = migrations::status(applied, release, &database.name)?;
        drift.extend(status.drift);
        pending.migrations.extend(status.pending);
        pending.accepted.extend(status.accepted);
    }
    if !drift.is_empty() {
        return Err(MigrateError::Drift(drift).into());
    }
    Ok(pending)
}

/// Whether every database of `release` records as many migrations as the
/// release holds for it (counted from the folders' listings): with the
/// data version, the no-op path's check.
pub(crate) fn all_migrations_counted(
    db: &dyn Database,
    release: &Release,
) -> Result<bool, EngineError> {
    for database in &release.databases {
        if db.applied_count(&database.name)? != release.migration_count_of(&database.name) {
            return Ok(false);
        }
    }
    Ok(true)
}

//! The upgrade, step by step: lock the home, compare the data version with
//! the release (and each plugin's recorded version with the installed
//! plugin), plan, then back up, migrations, hooks and the new data
//! version in one transaction. Whatever happens, the database ends up fully
//! upgraded or exactly as it was.
//!
//! [`upgrade`] is the whole data flow in one short function; the
//! transaction's own steps are [`crate::transaction::UpgradeTransaction::run`].

mod adopt;
mod attempt_log;
pub(crate) mod error;
mod report;
mod session;
mod status;

use std::path::PathBuf;

use serde::Serialize;

pub use self::adopt::{AdoptError, AdoptOptions, Adopted, SchemaMatch, adopt};
pub use self::error::UpgradeError;
pub use self::report::{
    Application, BackupReport, Build, DatabaseReport, DiskSpace, REPORT_FORMAT, Report, report,
};
pub use self::session::{Reporter, back_up_home, database_name, restore_home};
use self::session::{
    Reporting, open_existing, open_for_transaction, postgres_target, recover_interrupted,
    release_for, remove_created,
};
pub use self::status::{
    AdoptCandidate, Adoptable, Adoption, BackupState, MigrationEntry, MigrationState, PluginState,
    Status, history, is_up_to_date, migration_list, status,
};
use self::status::{check_app, recorded_plugins};
use crate::backup::{self, Progress, ProgressUnit};
use crate::engine::sqlite::{self};
use crate::engine::{Database, MetaError};
use crate::errors::chain_text;
use crate::home::{Home, HomeLock, Settings};
use crate::hooks::{
    CompileRun, HookRunner, PlanScope, PlannedHook, Plugin, PluginChange, PluginChanges, PluginSet,
    RecordedPlugin,
};
use crate::migrations::AcceptedEdit;
use crate::release::{Migration, Release};
use crate::transaction::{
    Done, Mode, Pending, Phases, Steps, UpgradeTransaction, all_migrations_counted,
    pending_migrations,
};
pub use crate::transaction::{HookRun, MigrationRun, PhaseTime};
use crate::version::Version;

/// Brings the home's database to the release's version, and its plugins'
/// data to the installed plugins' versions.
///
/// Steps: lock the home; find where the data stands (newer than the
/// release: refuse, listing the backups this release can restore; no
/// database, or an empty one: install) and where each active plugin stands
/// against the version the data recorded for it (older: refuse, listing the
/// backups made before the data reached the newer plugin); equal to the
/// release, every migration applied and no plugin changed: return at once,
/// having read only the plugins' manifests and compiled nothing. Then plan
/// the migrations and hooks (an application upgrade considers every active
/// plugin; an upgrade where only plugins changed, or an install, only the
/// changed plugins' plugin hooks: see [`PlanScope`]); then, in one
/// transaction ([`UpgradeTransaction::run`]), back up, apply the
/// migrations, run the hooks (each in its own savepoint and sandbox),
/// record the new versions, check the foreign keys the upgrade could have
/// broken and commit. Any failure rolls back the whole transaction. Only
/// once it is committed are old backups pruned.
///
/// Every attempt but the no-op and a plan leaves a log in the home's
/// `logs/` (see [`attempt_log`]), and the database's history records each
/// upgrade, committed or rolled back.
pub fn upgrade(
    home: &Home,
    release: &Release,
    options: &UpgradeOptions,
    reporter: Reporter<'_>,
) -> Result<Outcome, UpgradeError> {
    let started = jiff::Timestamp::now();
    let lines = attempt_log::HookLines::default();
    let reporter = Reporter {
        log: lines.tee(reporter.log),
        progress: reporter.progress,
    };
    let mut result = attempt(home, release, options, reporter);
    let ending = match &result {
        Ok(Outcome::UpToDate { .. } | Outcome::Planned { .. }) => return result,
        Ok(outcome) => attempt_log::Ending::Done {
            what: match outcome {
                Outcome::Installed { .. } => "installed",
                _ => "upgraded",
            },
            json: serde_json::to_string_pretty(outcome).unwrap_or_default(),
        },
        Err(err) => attempt_log::Ending::Failed {
            code: err.code(),
            message: chain_text(err),
        },
    };
    let written = attempt_log::write(home, release, started, &ending, &lines);
    if let (Err(err), Ok(outcome)) = (written, &mut result) {
        outcome.warn(format!(
            "the log of this upgrade could not be kept: {}",
            chain_text(&err)
        ));
    }
    result
}

/// One attempt of [`upgrade`].
fn attempt(
    home: &Home,
    release: &Release,
    options: &UpgradeOptions,
    reporter: Reporter<'_>,
) -> Result<Outcome, UpgradeError> {
    let mut phases = Phases::start();
    let _lock: HomeLock = home.lock(options.wait)?;
    phases.end("lock");
    recover_interrupted(home)?;
    let target = postgres_target(home)?;
    let release = &release_for(release, target.as_ref());
    let mut db = open_existing(home, release, target.as_ref())?;
    let stands = match &db {
        None => Stands::Empty,
        Some(db) => where_data_stands(home, release, db.as_ref())?,
    };
    let plugins = PluginSet::discover(&release.plugins_dir(), &release.core_plugins, home)?;
    let recorded = recorded_plugins(db.as_deref())?;
    let changes = plugins.changes(&recorded)?;
    refuse_plugin_downgrade(home, release, &plugins, &changes, &recorded)?;
    if let Stands::UpToDate(version) = &stands
        && !changes.any_change()
    {
        return Ok(Outcome::UpToDate {
            version: version.clone(),
        });
    }
    let pending = match (&db, &stands) {
        (_, Stands::UpToDate(_)) => Pending::default(),
        (Some(db), Stands::At(_)) => pending_migrations(db.as_ref(), release)?,
        _ => Pending {
            migrations: release.all_migrations()?.into_iter().cloned().collect(),
            accepted: Vec::new(),
        },
    };
    let migrations = pending.migrations;
    let plan = plan(
        home,
        release,
        &stands,
        &plugins,
        &changes,
        &migrations,
        pending.accepted,
    )?;
    if let Some(db) = &db {
        refuse_what_the_engine_cannot_run(db.as_ref(), &migrations, &plan)?;
    }
    phases.end("plan");
    if options.plan_only {
        return Ok(Outcome::Planned { plan });
    }

    home.remove_stale_temporaries()?;
    let settings = home.settings()?;
    let mut observer = Reporting {
        reporter,
        phases,
        home,
        settings: &settings,
        runner: None,
    };
    // A first use's compilation, before the transaction begins.
    let compiled = observer.prepare_hooks(&plugins, &plan.hooks)?;
    let steps = Steps {
        app: &release.app,
        to: &release.version,
        release: Some(release),
        migrations: &migrations,
        accepted_edits: &plan.accepted_edits,
        migration_timeout: settings.migrations.timeout(),
        plugins: &plugins,
        hooks: &plan.hooks,
    };
    let backups = home.backups_dir();
    // A home of several databases: one connection with every database
    // attached (those missing created empty), one transaction over them all.
    let mut created = Vec::new();
    let mut new_files = Vec::new();
    if release.has_several_databases() {
        drop(db.take());
        let opened = open_for_transaction(home, release)?;
        db = Some(opened.db);
        created = opened.warnings;
        new_files = opened.created;
    }
    let ran = (|| -> Result<_, UpgradeError> {
        Ok(match (&mut db, &plan.from) {
            (None, _) => sqlite::install::install_new(&home.db_path(), home.root(), |db| {
                UpgradeTransaction::begin(db, Mode::Install)?.run(&steps, &mut observer)
            })?,
            (Some(db), None) => {
                let tx =
                    UpgradeTransaction::begin(db.as_mut(), Mode::Install).map_err(journal_modes)?;
                (tx.run(&steps, &mut observer)?, Vec::new())
            }
            (Some(db), Some(from)) => {
                let mode = Mode::Upgrade {
                    from,
                    backups: &backups,
                    compress: settings.backups.compress,
                };
                let tx = UpgradeTransaction::begin(db.as_mut(), mode).map_err(journal_modes)?;
                (tx.run(&steps, &mut observer)?, Vec::new())
            }
        })
    })();
    drop(db);
    if ran.is_err() {
        remove_created(home, &new_files);
    }
    let (done, set_aside) = ran?;
    created.extend(set_aside);
    Ok(outcome(
        home,
        &settings,
        plan,
        done,
        compiled,
        created,
        observer.phases,
    ))
}

/// A transaction over several databases that could not begin because their
/// journal modes could not be switched (see `engine::sqlite::multi`) is
/// reported as such (code `journal-modes`), not as unreadable bookkeeping.
fn journal_modes(err: UpgradeError) -> UpgradeError {
    let UpgradeError::Meta {
        path,
        source: MetaError::Database(engine),
    } = err
    else {
        return err;
    };
    match engine.downcast::<sqlite::multi::JournalModeError>() {
        Ok(modes) => UpgradeError::JournalModes(modes),
        Err(engine) => UpgradeError::Meta {
            path,
            source: MetaError::Database(engine),
        },
    }
}

/// What the upgrade will do, from where the data and its plugins stand.
fn plan(
    home: &Home,
    release: &Release,
    stands: &Stands,
    plugins: &PluginSet,
    changes: &PluginChanges,
    migrations: &[Migration],
    accepted_edits: Vec<AcceptedEdit>,
) -> Result<Plan, UpgradeError> {
    let (kind, from, scope) = match stands {
        Stands::Empty => (PlanKind::Install, None, PlanScope::PluginsOnly),
        Stands::UpToDate(v) => (PlanKind::Plugins, Some(v), PlanScope::PluginsOnly),
        Stands::At(v) => (PlanKind::Upgrade, Some(v), PlanScope::Application),
    };
    if from.is_some() {
        plugins.ensure_complete(home)?;
    }
    let to = &release.version;
    let hooks = plugins.plan(from.unwrap_or(to), to, changes, scope);
    Ok(Plan {
        kind,
        skipped: skipped_hooks(plugins, &hooks),
        hooks,
        plugins: changes.changed().cloned().collect(),
        migrations: migrations.iter().map(Migration::file_name).collect(),
        accepted_edits,
        from: from.cloned(),
        to: to.clone(),
    })
}

/// Refuses, before anything starts, what the database's engine cannot run
/// inside the upgrade: a migration's statement that cannot run in a
/// transaction, and hooks where the engine has no sandbox for them.
fn refuse_what_the_engine_cannot_run(
    db: &dyn Database,
    migrations: &[Migration],
    plan: &Plan,
) -> Result<(), UpgradeError> {
    db.check_migrations(migrations)?;
    if let Some(why) = db.refuses_hooks()
        && !plan.hooks.is_empty()
    {
        return Err(UpgradeError::HooksWithoutSandbox {
            database: db.location().display().to_string(),
            hooks: plan
                .hooks
                .iter()
                .map(|h| format!("{}/{}", h.plugin, h.hook))
                .collect(),
            why,
        });
    }
    Ok(())
}

/// Refuses an active plugin older than the version the data was last
/// upgraded with, naming the backups made before the data reached that
/// version that the release can restore.
fn refuse_plugin_downgrade(
    home: &Home,
    release: &Release,
    plugins: &PluginSet,
    changes: &PluginChanges,
    recorded: &[RecordedPlugin],
) -> Result<(), UpgradeError> {
    let Some((down, recorded_version)) = changes.downgrade() else {
        return Ok(());
    };
    let reached = recorded
        .iter()
        .find(|r| r.name == down.plugin)
        .and_then(|r| r.updated_at.parse::<jiff::Timestamp>().ok());
    Err(UpgradeError::PluginDowngrade {
        plugin: down.plugin.clone(),
        recorded: recorded_version.clone(),
        installed: down.to.clone(),
        optional: plugins.get(&down.plugin).is_some_and(|p| !p.core),
        backups: home.backups_dir(),
        restorable: match reached {
            Some(reached) => restorable_backups(home, &release.version, Some(reached)),
            None => Vec::new(),
        },
    })
}

impl Outcome {
    /// Adds a warning to an install's or upgrade's (others have none).
    fn warn(&mut self, warning: String) {
        if let Outcome::Installed { warnings, .. } | Outcome::Upgraded { warnings, .. } = self {
            warnings.push(warning);
        }
    }
}

/// Where the data stands against the release.
enum Stands {
    /// No data version and no tables: an application created the empty
    /// file. Installed into.
    Empty,
    /// At the release's version with every migration applied: nothing to do.
    UpToDate(Version),
    /// At an older version.
    At(Version),
}

/// Reads where the data stands; refuses a database that is not uplift's, is
/// another application's, or is newer than the release.
fn where_data_stands(
    home: &Home,
    release: &Release,
    db: &dyn Database,
) -> Result<Stands, UpgradeError> {
    let path = db.location();
    let version = db.data_version().map_err(|source| UpgradeError::Meta {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(version) = version else {
        if db.has_user_tables()? {
            return Err(UpgradeError::Unmanaged {
                path: path.to_path_buf(),
            });
        }
        return Ok(Stands::Empty);
    };
    check_app(db, release)?;
    // The no-op path: the same version and as many migrations applied as the
    // release holds (counted from the folder's listing; a release that
    // gained a migration without a new version still gets it applied).
    if version == release.version && all_migrations_counted(db, release)? {
        return Ok(Stands::UpToDate(version));
    }
    if version > release.version {
        return Err(UpgradeError::DataNewer {
            restorable: restorable_backups(home, &release.version, None),
            data: version,
            release: release.version.clone(),
        });
    }
    Ok(Stands::At(version))
}

/// What the upgrade did. Only now that it is committed may older backups
/// go, and never the one just made, nor the newest of any data version (see
/// [`backup::prune`]). A failure there does not undo a committed upgrade: it
/// is reported as a warning.
fn outcome(
    home: &Home,
    settings: &Settings,
    plan: Plan,
    done: Done,
    compiled: Vec<CompileRun>,
    set_aside: Vec<String>,
    phases: Phases,
) -> Outcome {
    let mut warnings = set_aside;
    warnings.extend(done.warnings);
    let Some(backup) = done.backup else {
        return Outcome::Installed {
            plan,
            migrations: done.migrations,
            compiled,
            hooks: done.hooks,
            phases: phases.times,
            foreign_key_tables_checked: done.foreign_key_tables_checked,
            warnings,
        };
    };
    let pruned = match backup::prune_automatic(
        &home.backups_dir(),
        settings.backups.keep,
        std::slice::from_ref(&backup),
    ) {
        Ok(pruned) => pruned,
        Err(e) => {
            warnings.push(format!(
                "the upgrade is done, but pruning old backups failed: {}",
                chain_text(&e)
            ));
            Vec::new()
        }
    };
    Outcome::Upgraded {
        plan,
        backup,
        pruned,
        warnings,
        migrations: done.migrations,
        compiled,
        hooks: done.hooks,
        phases: phases.times,
        foreign_key_tables_checked: done.foreign_key_tables_checked,
    }
}

/// Compiles every active plugin of `release` and of `home` into the home's
/// compile cache, so that the next upgrade compiles nothing: `uplift plugin
/// precompile`, for an installer or an operator after installing a release
/// or adding a plugin. `progress` hears of each plugin compiled.
pub fn precompile(
    home: &Home,
    release: &Release,
    progress: &mut dyn Progress,
) -> Result<Vec<CompileRun>, UpgradeError> {
    let plugins = PluginSet::discover(&release.plugins_dir(), &release.core_plugins, home)?;
    let active: Vec<&Plugin> = plugins.plugins().iter().filter(|p| p.active).collect();
    let settings = home.settings()?;
    let mut runner = HookRunner::new(home, &settings.hooks)?;
    let compiled = runner.prepare(&active, &mut |plugin| {
        progress.begin(
            &format!("compiling {} {}", plugin.name(), plugin.manifest.version),
            None,
            ProgressUnit::Rows,
        );
    });
    progress.end();
    Ok(compiled?)
}

/// How to run an upgrade.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// Wait for another uplift holding the home instead of failing at once.
    pub wait: bool,
    /// Compute and return the plan, change nothing.
    pub plan_only: bool,
}

/// What an upgrade will do (or did).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// An install, an application upgrade, or an upgrade of plugins only.
    pub kind: PlanKind,
    /// The data version before; `None` for a fresh install. Equal to `to`
    /// when only plugins change.
    pub from: Option<Version>,
    /// The release version.
    pub to: Version,
    /// The active plugins whose version moves (first activations and
    /// upgrades), by name.
    pub plugins: Vec<PluginChange>,
    /// Migrations to apply, in order (file names).
    pub migrations: Vec<String>,
    /// Applied migrations edited since, whose edits the release accepts:
    /// their new checksums are recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted_edits: Vec<AcceptedEdit>,
    /// Hooks to run after the migrations, in order.
    pub hooks: Vec<PlannedHook>,
    /// The hooks of the plugins that will not run, and why (`uplift -v`
    /// shows them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedHook>,
}

/// A hook an upgrade does not run.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedHook {
    /// The plugin.
    pub plugin: String,
    /// The hook.
    pub hook: String,
    /// Why: `plugin disabled`, or `its ranges do not select it`.
    pub why: &'static str,
}

/// The hooks of `plugins` that `hooks` leaves out, and why.
fn skipped_hooks(plugins: &PluginSet, hooks: &[PlannedHook]) -> Vec<SkippedHook> {
    let mut skipped = Vec::new();
    for plugin in plugins.plugins() {
        for spec in &plugin.manifest.hooks {
            let planned = hooks
                .iter()
                .any(|h| h.plugin == plugin.name() && h.hook == spec.name);
            if !planned {
                skipped.push(SkippedHook {
                    plugin: plugin.name().to_string(),
                    hook: spec.name.clone(),
                    why: if plugin.active {
                        "its ranges do not select it"
                    } else {
                        "plugin disabled"
                    },
                });
            }
        }
    }
    skipped
}

/// What kind of upgrade a [`Plan`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// No data yet: every migration, and the active plugins' first
    /// activation (their plugin hooks only).
    Install,
    /// The application's version moves, or a migration is pending.
    Upgrade,
    /// Only plugins changed (added, enabled or upgraded): their plugin hooks,
    /// with the application's version old == new.
    Plugins,
}

/// The result of [`upgrade`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The data version already equals the release: nothing was done.
    UpToDate {
        /// The data version, which is the release's.
        version: Version,
    },
    /// `plan_only`: what would be done.
    Planned {
        /// What an upgrade would do.
        plan: Plan,
    },
    /// The database was created at the release version.
    Installed {
        /// What the install was to do.
        plan: Plan,
        /// The migrations applied, in order, with their times.
        migrations: Vec<MigrationRun>,
        /// The planned hooks' plugins, made ready before the transaction
        /// began.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        compiled: Vec<CompileRun>,
        /// The plugins' first-activation hooks run, in order, with their
        /// times.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        hooks: Vec<HookRun>,
        /// The time each phase took.
        phases: Vec<PhaseTime>,
        /// How many tables' foreign keys were checked before COMMIT.
        foreign_key_tables_checked: usize,
        /// What the operator should know (leftovers moved aside).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// The database was upgraded.
    Upgraded {
        /// What the upgrade was to do.
        plan: Plan,
        /// The backup of the database as it was before.
        backup: PathBuf,
        /// Older automatic backups removed by retention.
        pruned: Vec<PathBuf>,
        /// The migrations applied, in order, with their times.
        migrations: Vec<MigrationRun>,
        /// The planned hooks' plugins, made ready before the transaction
        /// began: compiled on first use, or read from the compile cache.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        compiled: Vec<CompileRun>,
        /// The hooks run, in order, with their times.
        hooks: Vec<HookRun>,
        /// The time each phase took.
        phases: Vec<PhaseTime>,
        /// How many tables' foreign keys were checked before COMMIT: those
        /// the upgrade wrote or whose parents it wrote (see
        /// [`crate::engine::Database::check_foreign_keys`]).
        foreign_key_tables_checked: usize,
        /// What went wrong after the upgrade was committed (pruning).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
}

/// Backups in the home that `version` can restore (made before
/// `made_before`, when given), newest first (names).
fn restorable_backups(
    home: &Home,
    version: &Version,
    made_before: Option<jiff::Timestamp>,
) -> Vec<String> {
    let Ok(mut entries) = backup::list(&home.backups_dir()) else {
        return Vec::new();
    };
    entries.retain(|e| {
        e.status == backup::BackupStatus::Verified
            && e.data_version()
                .and_then(|v| Version::parse(v).ok())
                .is_some_and(|v| v <= *version)
            && made_before.is_none_or(|before| e.created().is_some_and(|c| c < before))
    });
    entries.reverse();
    entries.into_iter().map(|e| e.file_name).collect()
}

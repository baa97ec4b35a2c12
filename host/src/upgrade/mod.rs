//! The upgrade, step by step: lock the home, compare the data version with
//! the release, plan, then back up, migrations, hooks and the new data
//! version in one transaction. Whatever happens, the database ends up fully
//! upgraded or exactly as it was.
//!
//! [`upgrade`] is the whole data flow in one short function; the
//! transaction's own steps are [`crate::transaction::UpgradeTransaction::run`].

mod adopt;
pub(crate) mod error;
mod session;
mod status;

use std::path::PathBuf;

use serde::Serialize;

pub use self::adopt::{AdoptError, AdoptOptions, Adopted, SchemaMatch, adopt};
pub use self::error::UpgradeError;
pub use self::session::Reporter;
use self::session::{Reporting, open_existing};
use self::status::check_app;
pub use self::status::{
    AdoptCandidate, Adoptable, Adoption, BackupState, MigrationEntry, MigrationState, PluginState,
    Status, history, is_up_to_date, migration_list, status,
};
use crate::backup::{self, Progress, ProgressUnit};
use crate::engine::Database;
use crate::engine::sqlite::{self};
use crate::errors::chain_text;
use crate::home::{Home, HomeLock, Settings};
use crate::hooks::{CompileRun, HookRunner, PlannedHook, Plugin, PluginSet};
use crate::migrations::AcceptedEdit;
use crate::release::{Migration, Release};
use crate::transaction::{
    Done, Mode, Pending, Phases, Steps, UpgradeTransaction, pending_migrations,
};
pub use crate::transaction::{HookRun, MigrationRun, PhaseTime};
use crate::version::Version;

/// Brings the home's database to the release's version.
///
/// Steps: lock the home; find where the data stands (equal to the release:
/// return at once, having read no plugin and compiled nothing; newer:
/// refuse, listing the backups this release can restore; no database, or
/// an empty one: install); plan the migrations and hooks; then, in one
/// transaction ([`UpgradeTransaction::run`]), back up, apply the
/// migrations, run the hooks (each in its own savepoint and sandbox),
/// record the new versions, check the foreign keys the upgrade could have
/// broken and commit. Any failure rolls back the whole transaction. Only
/// once it is committed are old backups pruned.
pub fn upgrade(
    home: &Home,
    release: &Release,
    options: &UpgradeOptions,
    reporter: Reporter<'_>,
) -> Result<Outcome, UpgradeError> {
    let mut phases = Phases::start();
    let _lock: HomeLock = home.lock(options.wait)?;
    phases.end("lock");
    let mut db = open_existing(home)?;
    let from = match &db {
        None => None,
        Some(db) => match where_data_stands(home, release, db.as_ref())? {
            Stands::UpToDate(version) => return Ok(Outcome::UpToDate { version }),
            Stands::Empty => None,
            Stands::At(version) => Some(version),
        },
    };
    let plugins = PluginSet::discover(&release.plugins_dir(), &release.core_plugins, home)?;
    let pending = match (&db, &from) {
        (Some(db), Some(_)) => pending_migrations(db.as_ref(), release)?,
        _ => Pending {
            migrations: release.migrations()?.to_vec(),
            accepted: Vec::new(),
        },
    };
    let migrations = pending.migrations;
    let plan = Plan {
        hooks: match &from {
            Some(from) => {
                plugins.ensure_complete(home)?;
                plugins.plan(from, &release.version)
            }
            None => Vec::new(),
        },
        migrations: migrations.iter().map(Migration::file_name).collect(),
        accepted_edits: pending.accepted,
        from,
        to: release.version.clone(),
    };
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
    let (done, set_aside) = match (&mut db, &plan.from) {
        (None, _) => sqlite::install::install_new(&home.db_path(), home.root(), |db| {
            UpgradeTransaction::begin(db, Mode::Install)?.run(&steps, &mut observer)
        })?,
        (Some(db), None) => {
            let tx = UpgradeTransaction::begin(db.as_mut(), Mode::Install)?;
            (tx.run(&steps, &mut observer)?, Vec::new())
        }
        (Some(db), Some(from)) => {
            let mode = Mode::Upgrade {
                from,
                backups: &backups,
                compress: settings.backups.compress,
            };
            let tx = UpgradeTransaction::begin(db.as_mut(), mode)?;
            (tx.run(&steps, &mut observer)?, Vec::new())
        }
    };
    drop(db);
    Ok(outcome(
        home,
        &settings,
        plan,
        done,
        compiled,
        set_aside,
        observer.phases,
    ))
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
    if version == release.version && db.applied_count()? == release.migration_count() {
        return Ok(Stands::UpToDate(version));
    }
    if version > release.version {
        return Err(UpgradeError::DataNewer {
            restorable: restorable_backups(home, &release.version),
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
    /// The data version before; `None` for a fresh install.
    pub from: Option<Version>,
    /// The release version.
    pub to: Version,
    /// Migrations to apply, in order (file names).
    pub migrations: Vec<String>,
    /// Applied migrations edited since, whose edits the release accepts:
    /// their new checksums are recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted_edits: Vec<AcceptedEdit>,
    /// Hooks to run after the migrations, in order.
    pub hooks: Vec<PlannedHook>,
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

/// Backups in the home that `version` can restore, newest first (names).
fn restorable_backups(home: &Home, version: &Version) -> Vec<String> {
    let Ok(mut entries) = backup::list(&home.backups_dir()) else {
        return Vec::new();
    };
    entries.retain(|e| {
        e.status == backup::BackupStatus::Verified
            && e.data_version()
                .and_then(|v| Version::parse(v).ok())
                .is_some_and(|v| v <= *version)
    });
    entries.reverse();
    entries.into_iter().map(|e| e.file_name).collect()
}

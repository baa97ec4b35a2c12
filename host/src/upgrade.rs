//! The upgrade, step by step: lock the home, compare the data version with
//! the release, plan, back up, then migrations, hooks and the new data version
//! in one transaction. Whatever happens, the database ends up fully upgraded
//! or exactly as it was.
//!
//! [`upgrade`] is the whole data flow in one readable function; the helpers
//! below it each do one step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::backup::{self, BackupError, Progress};
use crate::home::{Home, HomeError, HomeLock, Settings};
use crate::hooks::LogSink;
use crate::hooks::{HookError, HookRunner, PlannedHook, PluginSet};
use crate::meta::{self, MetaError};
use crate::migrate::{self, MigrateError};
use crate::release::{Migration, Release};
use crate::transaction::{Mode, UpgradeTransaction, Writeback};
use crate::version::Version;

/// Why an upgrade did not happen. Every variant leaves the database as it was.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The home could not be locked or read.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The release's migrations could not be read (or, for
    /// [`crate::meta::adopt_plugin_tables`], do not apply to an empty
    /// database).
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
    /// The database could not be opened or read.
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// uplift's bookkeeping in the database is unreadable.
    #[error("database {path}: {source}")]
    Meta {
        path: PathBuf,
        #[source]
        source: MetaError,
    },
    /// The database has tables but was never upgraded by uplift.
    #[error(
        "database {path} has tables but no uplift data version, so uplift cannot tell which release \
         created it: restore a backup made by uplift (`uplift dbrestore FILE`), or move the file away \
         to start with a fresh install"
    )]
    Unmanaged { path: PathBuf },
    /// The database was upgraded by a different application.
    #[error(
        "database {path} belongs to application {found:?}, but the release is {expected:?}: check --home and --release"
    )]
    OtherApp {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// The data is newer than the installed release: a downgrade.
    #[error("{}", describe_newer(.data, .release, .restorable))]
    DataNewer {
        data: Version,
        release: Version,
        /// Backups the installed release can restore, newest first.
        restorable: Vec<String>,
    },
    /// The migration history does not match the release.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// A migration or hook left rows that break foreign keys (in a table it
    /// wrote, or that refers to one it wrote).
    #[error(
        "the upgrade to {to} left rows that break foreign keys ({}); nothing was changed: fix the migrations or hooks that wrote them",
        .violations.join("; ")
    )]
    ForeignKeys {
        to: Version,
        violations: Vec<String>,
    },
    /// SQLite failed while applying the upgrade.
    #[error("database error during the upgrade: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// SQLite failed in one named step of the transaction (flush, commit).
    #[error("could not {what}: {source}")]
    Step {
        what: &'static str,
        source: rusqlite::Error,
    },
    /// Plugins could not be found or read, or a hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The backup before the upgrade could not be made.
    #[error("could not back the database up before upgrading, so nothing was changed: {0}")]
    Backup(#[from] BackupError),
    /// A step failed after the backup was made; everything was rolled back.
    #[error(
        "{cause}; the upgrade of {} was rolled back and the database is exactly as it was \
         (the backup made before it is {})",
        database.display(),
        backup.display()
    )]
    RolledBack {
        cause: Box<UpgradeError>,
        database: PathBuf,
        backup: PathBuf,
    },
    /// A fresh install failed; no database was created.
    #[error("{cause}; the install into {} was abandoned and no database was created", database.display())]
    InstallFailed {
        cause: Box<UpgradeError>,
        database: PathBuf,
    },
    /// SQLite ended the upgrade's transaction by itself (after a full disk,
    /// an I/O error, no memory...); uplift stopped at once.
    #[error(
        "SQLite ended the upgrade's transaction during {during} (after an error such as a full disk or an I/O error); \
         uplift stopped there, and nothing was committed{}",
        if *.refused > 0 { format!(" ({} commits were turned back)", .refused) } else { String::new() }
    )]
    TransactionLost {
        /// The step that was running.
        during: String,
        /// Commits attempted outside uplift's own COMMIT and turned into
        /// rollbacks.
        refused: u64,
    },
    /// Other processes have the database (or files SQLite keeps beside it)
    /// open.
    #[error(
        "{} is in use: {}; stop the application using it and run uplift again; nothing was changed",
        path.display(),
        users.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    InUse {
        path: PathBuf,
        users: Vec<crate::disk::Holder>,
    },
    /// A file-system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn describe_newer(data: &Version, release: &Version, restorable: &[String]) -> String {
    let mut text = format!(
        "the database is at data version {data}, newer than the installed release {release}: \
         this release cannot run it. To downgrade, restore a backup made at {release} or earlier"
    );
    if restorable.is_empty() {
        text.push_str(
            " — but there is none in the home's backups/ folder; install release {data} or newer again",
        );
        text = text.replace("{data}", &data.to_string());
    } else {
        text.push_str(&format!(
            ": `uplift dbrestore --latest` restores {}; all that qualify: {}",
            restorable[0],
            restorable.join(", ")
        ));
    }
    text
}

impl UpgradeError {
    fn open(path: &Path) -> impl FnOnce(rusqlite::Error) -> UpgradeError + '_ {
        move |source| UpgradeError::Open {
            path: path.to_path_buf(),
            source,
        }
    }

    fn meta(path: &Path) -> impl FnOnce(MetaError) -> UpgradeError + '_ {
        move |source| UpgradeError::Meta {
            path: path.to_path_buf(),
            source,
        }
    }
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
    /// Hooks to run after the migrations, in order.
    pub hooks: Vec<PlannedHook>,
}

/// The time one phase of the upgrade took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    /// `lock`, `plan`, `backup`, `migrations`, `hooks`, `foreign keys`,
    /// `commit`.
    pub phase: &'static str,
    /// Milliseconds, with fractions.
    pub ms: f64,
}

/// What a migration took.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationRun {
    /// Its file name.
    pub file: String,
    /// Milliseconds.
    pub ms: f64,
}

/// What a hook took, and what it logged.
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
}

/// The result of [`upgrade`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The data version already equals the release: nothing was done.
    UpToDate { version: Version },
    /// `plan_only`: what would be done.
    Planned { plan: Plan },
    /// The database was created at the release version.
    Installed {
        plan: Plan,
        migrations: Vec<MigrationRun>,
        phases: Vec<PhaseTime>,
        /// How many tables' foreign keys were checked before COMMIT.
        foreign_key_tables_checked: usize,
        /// What the operator should know (leftovers moved aside).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// The database was upgraded.
    Upgraded {
        plan: Plan,
        /// The backup of the database as it was before.
        backup: PathBuf,
        /// Older automatic backups removed by retention.
        pruned: Vec<PathBuf>,
        migrations: Vec<MigrationRun>,
        hooks: Vec<HookRun>,
        phases: Vec<PhaseTime>,
        /// How many tables' foreign keys were checked before COMMIT: those
        /// the upgrade wrote or whose parents it wrote (see
        /// [`crate::written`]).
        foreign_key_tables_checked: usize,
        /// What went wrong after the upgrade was committed (pruning).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
}

/// Times the phases of one run.
struct Phases {
    times: Vec<PhaseTime>,
    started: Instant,
}

impl Phases {
    fn start() -> Self {
        Phases {
            times: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Closes the current phase under `name` and starts the next.
    fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.times.push(PhaseTime {
            phase,
            ms: ms(now - self.started),
        });
        self.started = now;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where an upgrade reports as it goes: backup progress and hooks' log lines.
pub struct Reporter<'a> {
    /// Progress of the backup (the command line draws a bar from it).
    pub progress: &'a mut dyn Progress,
    /// Every line a hook logs, as it is written.
    pub log: Arc<dyn LogSink>,
}

/// Brings the home's database to the release's version.
///
/// Steps: lock the home; compare versions (equal: return at once, having
/// read no plugin and compiled nothing; data newer: refuse, listing the
/// backups this release can restore; no database: fresh install); plan
/// migrations and hooks; then, in one transaction, back up, apply the
/// migrations, run the hooks (each in its own savepoint and sandbox), record
/// the new data version and check the foreign keys of the tables the
/// upgrade wrote and of those that refer to them (see [`crate::written`]).
/// Any failure rolls back the whole transaction.
pub fn upgrade(
    home: &Home,
    release: &Release,
    options: &UpgradeOptions,
    reporter: Reporter<'_>,
) -> Result<Outcome, UpgradeError> {
    let mut phases = Phases::start();
    let _lock: HomeLock = home.lock(options.wait)?;
    phases.end("lock");

    let db_path = home.db_path();
    if !db_path.exists() {
        let plan = fresh_plan(release)?;
        if options.plan_only {
            return Ok(Outcome::Planned { plan });
        }
        home.remove_stale_temporaries()?;
        let plugins = discover_plugins(home, release)?;
        let (done, set_aside) = fresh_install(home, release, &plugins)?;
        phases.end("migrations");
        return Ok(Outcome::Installed {
            plan,
            migrations: done.migrations,
            phases: phases.times,
            foreign_key_tables_checked: done.foreign_key_tables_checked,
            warnings: set_aside_warnings(&set_aside)
                .into_iter()
                .chain(done.warnings)
                .collect(),
        });
    }

    // Declared before the connection, so dropped after it (see Writeback).
    let writeback = Writeback::new(&db_path);
    let mut conn = open_database(&db_path)?;
    let data_version = meta::data_version(&conn).map_err(UpgradeError::meta(&db_path))?;
    let Some(data_version) = data_version else {
        return adopt_empty(home, release, conn, options, phases, &writeback);
    };
    check_app(&conn, &db_path, release)?;
    // The no-op path: the same version and as many migrations applied as the
    // release holds (counted from the folder's listing; a release that
    // gained a migration without a new version still gets it applied).
    if data_version == release.version
        && migrate::applied_count(&conn)? == release.migration_count()
    {
        return Ok(Outcome::UpToDate {
            version: data_version,
        });
    }
    if data_version > release.version {
        return Err(UpgradeError::DataNewer {
            restorable: restorable_backups(home, &release.version),
            data: data_version,
            release: release.version.clone(),
        });
    }

    home.remove_stale_temporaries()?;
    let status = migrate::status(&conn, release)?;
    if !status.drift.is_empty() {
        return Err(MigrateError::Drift(status.drift).into());
    }
    let plugins = discover_plugins(home, release)?;
    plugins.ensure_complete(home)?;
    let plan = Plan {
        from: Some(data_version.clone()),
        to: release.version.clone(),
        migrations: status.pending.iter().map(Migration::file_name).collect(),
        hooks: plugins.plan(&data_version, &release.version),
    };
    phases.end("plan");
    if options.plan_only {
        return Ok(Outcome::Planned { plan });
    }

    let settings = home.settings()?;
    let mut tx = UpgradeTransaction::begin(
        &mut conn,
        Mode::Upgrade {
            from: &data_version,
        },
        Some(&writeback),
    )?;
    let done = match upgrade_steps(
        &mut tx,
        home,
        release,
        &plugins,
        &plan,
        &status.pending,
        &settings,
        reporter,
        &mut phases,
    ) {
        Ok(done) => done,
        Err(cause) => return Err(rolled_back(tx, cause)),
    };
    drop(tx);
    let backup = done.backup.unwrap_or_default();
    // Only now that the upgrade is committed may older backups go, and
    // never the one just made, nor the newest of any data version (see
    // `backup::prune`). A failure here does not undo a committed upgrade:
    // it is reported as a warning.
    let mut warnings = done.warnings;
    let pruned = match backup::prune_automatic(
        &home.backups_dir(),
        settings.backups.keep,
        std::slice::from_ref(&backup),
    ) {
        Ok(pruned) => pruned,
        Err(e) => {
            warnings.push(format!(
                "the upgrade is done, but pruning old backups failed: {e}"
            ));
            Vec::new()
        }
    };
    Ok(Outcome::Upgraded {
        plan,
        backup,
        pruned,
        warnings,
        migrations: done.migrations,
        hooks: done.hooks,
        phases: phases.times,
        foreign_key_tables_checked: done.foreign_key_tables_checked,
    })
}

fn fresh_plan(release: &Release) -> Result<Plan, UpgradeError> {
    Ok(Plan {
        from: None,
        to: release.version.clone(),
        migrations: release
            .migrations()?
            .iter()
            .map(Migration::file_name)
            .collect(),
        hooks: Vec::new(),
    })
}

/// The release's and the home's plugins, from their manifests only.
fn discover_plugins(home: &Home, release: &Release) -> Result<PluginSet, UpgradeError> {
    Ok(PluginSet::discover(
        &release.plugins_dir(),
        &release.core_plugins,
        home,
    )?)
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

/// Opens the application database for the upgrade.
fn open_database(path: &Path) -> Result<Connection, UpgradeError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(UpgradeError::open(path))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(UpgradeError::open(path))?;
    // A 32 MB page cache (SQLite's default is 2 MB): a large upgrade's
    // migrations and hooks then spill changed pages to the file, each spill
    // syncing the journal first, far less often.
    conn.execute_batch("PRAGMA cache_size = -32768")
        .map_err(UpgradeError::open(path))?;
    Ok(conn)
}

/// Refuses a database recorded as belonging to another application.
fn check_app(conn: &Connection, path: &Path, release: &Release) -> Result<(), UpgradeError> {
    match meta::app_name(conn).map_err(UpgradeError::meta(path))? {
        Some(found) if found != release.app => Err(UpgradeError::OtherApp {
            path: path.to_path_buf(),
            found,
            expected: release.app.clone(),
        }),
        _ => Ok(()),
    }
}

/// A database file without a data version: if it holds no tables at all (an
/// application created the empty file), install into it; otherwise refuse.
fn adopt_empty(
    home: &Home,
    release: &Release,
    mut conn: Connection,
    options: &UpgradeOptions,
    mut phases: Phases,
    writeback: &Writeback,
) -> Result<Outcome, UpgradeError> {
    let db_path = home.db_path();
    if has_user_tables(&conn).map_err(UpgradeError::open(&db_path))? {
        return Err(UpgradeError::Unmanaged { path: db_path });
    }
    let plan = fresh_plan(release)?;
    if options.plan_only {
        return Ok(Outcome::Planned { plan });
    }
    let plugins = discover_plugins(home, release)?;
    let settings = home.settings()?;
    let mut tx = UpgradeTransaction::begin(&mut conn, Mode::Install, Some(writeback))?;
    let done = match install_steps(&mut tx, release, &plugins, &settings, &mut phases) {
        Ok(done) => done,
        Err(cause) => return Err(rolled_back(tx, cause)),
    };
    Ok(Outcome::Installed {
        plan,
        migrations: done.migrations,
        phases: phases.times,
        foreign_key_tables_checked: done.foreign_key_tables_checked,
        warnings: done.warnings,
    })
}

/// A fresh install: the whole schema is built in a temporary file next to
/// where the database will be, which is renamed into place only when it is
/// complete — a crash leaves no database rather than half of one.
fn fresh_install(
    home: &Home,
    release: &Release,
    plugins: &PluginSet,
) -> Result<(Done, Vec<crate::disk::SetAside>), UpgradeError> {
    let db_path = home.db_path();
    // The files SQLite kept beside a database that is gone: a process that
    // still has them open (the application, with the database moved away
    // under it) would go on using them beside the new database.
    let users = crate::disk::processes_using(&crate::disk::database_files(&db_path));
    if !users.is_empty() {
        return Err(UpgradeError::InUse {
            path: db_path,
            users,
        });
    }
    let settings = home.settings()?;
    let temp_path = home.root().join("db.sqlite3.installing");
    // A killed install's file and its journal are ours alone (the home is
    // locked): start over.
    for path in crate::disk::database_files(&temp_path) {
        remove_if_exists(&path)?;
    }
    let mut phases = Phases::start();
    // Declared before the connection, so dropped after it (see Writeback).
    let writeback = Writeback::new(&temp_path);
    let built = (|| {
        let mut conn = Connection::open(&temp_path).map_err(UpgradeError::open(&temp_path))?;
        let mut tx = UpgradeTransaction::begin(&mut conn, Mode::Install, Some(&writeback))?;
        let done = match install_steps(&mut tx, release, plugins, &settings, &mut phases) {
            Ok(done) => done,
            Err(cause) => return Err(rolled_back(tx, cause)),
        };
        drop(tx);
        conn.close()
            .map_err(|(_, e)| UpgradeError::open(&temp_path)(e))?;
        Ok(done)
    })();
    let done = match built {
        Ok(done) => done,
        Err(cause) => {
            for path in crate::disk::database_files(&temp_path) {
                let _ = std::fs::remove_file(path);
            }
            return Err(UpgradeError::InstallFailed {
                cause: Box::new(cause),
                database: db_path,
            });
        }
    };
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| UpgradeError::Io { what, path, source }
    };
    // The service user that runs the application must be able to open it,
    // even when root installed it.
    crate::disk::Owner::for_new_file_in(home.root())
        .and_then(|owner| owner.apply(&temp_path))
        .map_err(io("could not give the home's owner", &temp_path))?;
    sync_file(&temp_path)?;
    // SQLite would apply a -wal or hot journal it finds beside the new
    // file to it: leftovers of the database that was there go first.
    let set_aside = crate::disk::clear_leftovers(&db_path).map_err(io(
        "could not move aside the journal files beside",
        &db_path,
    ))?;
    crate::disk::rename_durably(&temp_path, &db_path).map_err(io(
        "could not move the new database into place at",
        &db_path,
    ))?;
    Ok((done, set_aside))
}

/// What an operator should know about files moved aside.
fn set_aside_warnings(set_aside: &[crate::disk::SetAside]) -> Vec<String> {
    set_aside
        .iter()
        .map(|m| {
            format!(
                "{} was left by a database that is no longer there (it may hold that database's last writes); \
                 it was moved to {} and not applied to the new database",
                m.from.display(),
                m.to.display()
            )
        })
        .collect()
}

impl<'a> Reporter<'a> {
    /// Reports nothing.
    pub fn silent(progress: &'a mut backup::NoProgress) -> Reporter<'a> {
        Reporter {
            progress,
            log: Arc::new(|_: &crate::hooks::LogLine| {}),
        }
    }
}

/// What the transaction did.
struct Done {
    backup: Option<PathBuf>,
    /// What went wrong after the commit took effect.
    warnings: Vec<String>,
    migrations: Vec<MigrationRun>,
    hooks: Vec<HookRun>,
    foreign_key_tables_checked: usize,
}

/// An upgrade's steps inside its transaction, in order: back up the data as
/// it is, apply the pending migrations, run the planned hooks, record the
/// new versions, check the foreign keys the upgrade could have broken,
/// commit.
#[allow(clippy::too_many_arguments)]
fn upgrade_steps(
    tx: &mut UpgradeTransaction<'_>,
    home: &Home,
    release: &Release,
    plugins: &PluginSet,
    plan: &Plan,
    pending: &[Migration],
    settings: &Settings,
    reporter: Reporter<'_>,
    phases: &mut Phases,
) -> Result<Done, UpgradeError> {
    let backup = tx.back_up(
        &home.backups_dir(),
        settings.backups.compress,
        reporter.progress,
    )?;
    phases.end("backup");
    let migrations = tx.migrate(pending, release, settings.migrations.timeout(), &mut |_| {})?;
    phases.end("migrations");
    tx.adopt_plugin_tables(plugins, release)?;
    let hooks = run_hooks(tx, home, settings, &plan.hooks, release, &reporter.log)?;
    if !hooks.is_empty() {
        phases.end("hooks");
    }
    let (foreign_key_tables_checked, warning) = finish(tx, release, plugins, phases)?;
    Ok(Done {
        warnings: warning.into_iter().collect(),
        backup: Some(backup),
        migrations,
        hooks,
        foreign_key_tables_checked,
    })
}

/// An install's steps inside its transaction: every migration of the
/// release, the versions, the foreign-key check, commit. No backup (there
/// is nothing to lose) and no hooks.
fn install_steps(
    tx: &mut UpgradeTransaction<'_>,
    release: &Release,
    plugins: &PluginSet,
    settings: &Settings,
    phases: &mut Phases,
) -> Result<Done, UpgradeError> {
    let migrations = tx.migrate(
        release.migrations()?,
        release,
        settings.migrations.timeout(),
        &mut |_| {},
    )?;
    phases.end("migrations");
    let (foreign_key_tables_checked, warning) = finish(tx, release, plugins, phases)?;
    Ok(Done {
        warnings: warning.into_iter().collect(),
        backup: None,
        migrations,
        hooks: Vec::new(),
        foreign_key_tables_checked,
    })
}

/// The steps every transaction ends with: the new versions recorded, the
/// cache flushed, the foreign keys checked (any violation refuses the
/// upgrade), COMMIT. Returns how many tables' foreign keys were checked,
/// and a warning when the commit could not be made durable.
fn finish(
    tx: &mut UpgradeTransaction<'_>,
    release: &Release,
    plugins: &PluginSet,
    phases: &mut Phases,
) -> Result<(usize, Option<String>), UpgradeError> {
    tx.record_versions(release, plugins)?;
    tx.flush()?;
    phases.end("flush");
    // Last before COMMIT, after every write.
    let check = tx.check_foreign_keys(10)?;
    if !check.violations.is_empty() {
        return Err(UpgradeError::ForeignKeys {
            to: release.version.clone(),
            violations: check.violations.iter().map(|v| v.to_string()).collect(),
        });
    }
    phases.end("foreign keys");
    let warning = tx.commit()?;
    phases.end("commit");
    Ok((check.tables_checked, warning))
}

/// Runs the planned hooks in order, each in its own savepoint and sandbox.
fn run_hooks(
    tx: &mut UpgradeTransaction<'_>,
    home: &Home,
    settings: &Settings,
    hooks: &[PlannedHook],
    release: &Release,
    log: &Arc<dyn LogSink>,
) -> Result<Vec<HookRun>, UpgradeError> {
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let mut runner = HookRunner::new(home, &settings.hooks)?;
    let ctx = tx.hook_context(&release.app, &release.version);
    let mut runs = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let started = Instant::now();
        let outcome = tx.run_hook(&mut runner, hook, &ctx, log.clone())?;
        runs.push(HookRun {
            plugin: hook.plugin.clone(),
            hook: hook.hook.clone(),
            ms: ms(started.elapsed()),
            setup_ms: ms(outcome.setup),
        });
    }
    Ok(runs)
}

/// Rolls `tx` back and says so, naming the backup made before it (none in
/// an install: the error is the cause itself).
fn rolled_back(tx: UpgradeTransaction<'_>, cause: UpgradeError) -> UpgradeError {
    let backup = tx.backup().map(Path::to_path_buf);
    let database = tx.database();
    drop(tx);
    match backup {
        Some(backup) => UpgradeError::RolledBack {
            cause: Box::new(cause),
            database,
            backup,
        },
        None => cause,
    }
}

fn remove_if_exists(path: &Path) -> Result<(), UpgradeError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(UpgradeError::Io {
            what: "could not remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn sync_file(path: &Path) -> Result<(), UpgradeError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| UpgradeError::Io {
            what: "could not sync",
            path: path.to_path_buf(),
            source,
        })
}

/// Whether the home's database is at the release's version with every
/// migration of the release applied and recorded by the same application:
/// the check `uplift run` makes on every start, in a few reads (no plugin
/// is read, no migration file opened). No database is not up to date.
pub fn is_up_to_date(home: &Home, release: &Release) -> Result<bool, UpgradeError> {
    let db_path = home.db_path();
    if !db_path.exists() {
        return Ok(false);
    }
    let conn = open_read_only(&db_path)?;
    let Some(version) = meta::data_version(&conn).map_err(UpgradeError::meta(&db_path))? else {
        return Ok(false);
    };
    check_app(&conn, &db_path, release)?;
    Ok(version == release.version && migrate::applied_count(&conn)? == release.migration_count())
}

/// Where a home stands against a release, for `uplift status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Whether the database file exists.
    pub database_exists: bool,
    /// The data version, if any.
    pub data_version: Option<Version>,
    /// The installed release's version.
    pub release_version: Version,
    /// `up to date`, `upgrade needed`, `not installed`, `data newer than release`
    /// or `not managed by uplift`.
    pub state: &'static str,
    /// How many migrations are recorded as applied.
    pub applied: usize,
    /// Pending migrations (file names).
    pub pending: Vec<String>,
    /// Applied migrations that no longer match the release.
    pub drift: Vec<String>,
    /// Hooks the next upgrade would run, in order (empty unless an upgrade is
    /// needed).
    pub hooks: Vec<PlannedHook>,
    /// The release's and the home's plugins.
    pub plugins: Vec<PluginState>,
    /// The newest backups (at most three), newest first.
    pub backups: Vec<BackupState>,
}

/// A plugin, for `uplift status`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginState {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// A core plugin of the release (always active).
    pub core: bool,
    /// Whether its hooks run.
    pub active: bool,
}

/// A backup, for `uplift status` (only its header was read).
#[derive(Debug, Clone, Serialize)]
pub struct BackupState {
    /// The file name.
    pub file: String,
    /// The data version it holds.
    pub data_version: Option<String>,
    /// When it was made (UTC).
    pub created: Option<String>,
    /// `automatic`, `manual` or `pre-restore`.
    pub kind: Option<String>,
}

/// Reads where the home stands, without locking or changing anything
/// (plugins' manifests and backups' headers are read; nothing is compiled or
/// verified end to end).
pub fn status(home: &Home, release: &Release) -> Result<Status, UpgradeError> {
    let db_path = home.db_path();
    let plugins = discover_plugins(home, release)?;
    let backups: Vec<BackupState> = backup::list_headers(&home.backups_dir())?
        .iter()
        .rev()
        .take(3)
        .map(|e| BackupState {
            file: e.file_name.clone(),
            data_version: e.data_version().map(str::to_string),
            created: e.created().map(|t| t.to_string()),
            kind: e.kind().map(|k| k.as_str().to_string()),
        })
        .collect();
    let mut status = Status {
        database_exists: db_path.exists(),
        data_version: None,
        release_version: release.version.clone(),
        state: "not installed",
        applied: 0,
        pending: release
            .migrations()?
            .iter()
            .map(Migration::file_name)
            .collect(),
        drift: Vec::new(),
        hooks: Vec::new(),
        plugins: plugins
            .plugins()
            .iter()
            .map(|p| PluginState {
                name: p.name().to_string(),
                version: p.manifest.version.clone(),
                core: p.core,
                active: p.active,
            })
            .collect(),
        backups,
    };
    if !status.database_exists {
        return Ok(status);
    }
    let conn = open_read_only(&db_path)?;
    status.data_version = meta::data_version(&conn).map_err(UpgradeError::meta(&db_path))?;
    let migrations = migrate::status(&conn, release)?;
    status.applied = migrations.applied.len();
    status.pending = migrations
        .pending
        .iter()
        .map(Migration::file_name)
        .collect();
    status.drift = migrations.drift.iter().map(ToString::to_string).collect();
    status.state = match &status.data_version {
        None => {
            if has_user_tables(&conn).map_err(UpgradeError::open(&db_path))? {
                "not managed by uplift"
            } else {
                "not installed"
            }
        }
        Some(v) if *v == release.version && status.pending.is_empty() => "up to date",
        Some(v) if *v > release.version => "data newer than release",
        Some(v) => {
            status.hooks = plugins.plan(v, &release.version);
            "upgrade needed"
        }
    };
    Ok(status)
}

/// One migration's state, for `uplift migrations list`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationEntry {
    /// File name (`0003_add_email.sql`).
    pub file: String,
    /// Applied, pending or drifted.
    pub state: MigrationState,
    /// When it was applied.
    pub applied_at: Option<String>,
    /// The release that applied it.
    pub release_version: Option<String>,
}

/// Where one migration stands, for `uplift migrations list`: printed and
/// serialized as `applied`, `pending`, `changed` or `missing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationState {
    /// Applied, and its file in the release is unchanged.
    Applied,
    /// In the release, not applied yet.
    Pending,
    /// Applied, but its file in the release has changed since (drift).
    Changed,
    /// Applied, but its file is no longer in the release (drift).
    Missing,
}

impl MigrationState {
    /// The state's name: `applied`, `pending`, `changed` or `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Applied => "applied",
            MigrationState::Pending => "pending",
            MigrationState::Changed => "changed",
            MigrationState::Missing => "missing",
        }
    }

    /// Whether the migration drifted (the release no longer holds what
    /// was applied), which makes an upgrade refuse.
    pub fn is_drift(self) -> bool {
        matches!(self, MigrationState::Changed | MigrationState::Missing)
    }
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Every migration of the release and of the history, in order.
pub fn migration_list(home: &Home, release: &Release) -> Result<Vec<MigrationEntry>, UpgradeError> {
    let db_path = home.db_path();
    let applied = if db_path.exists() {
        migrate::applied(&open_read_only(&db_path)?)?
    } else {
        Vec::new()
    };
    let migrations = release.migrations()?;
    let mut ids: Vec<u32> = migrations.iter().map(|m| m.id).collect();
    ids.extend(applied.iter().map(|a| a.id));
    ids.sort_unstable();
    ids.dedup();
    let entries = ids
        .into_iter()
        .map(|id| {
            let file = migrations.iter().find(|m| m.id == id);
            let record = applied.iter().find(|a| a.id == id);
            let (name, state) = match (file, record) {
                (Some(m), None) => (m.file_name(), MigrationState::Pending),
                (Some(m), Some(a)) if m.checksum != a.checksum => {
                    (m.file_name(), MigrationState::Changed)
                }
                (Some(m), Some(_)) => (m.file_name(), MigrationState::Applied),
                (None, Some(a)) => (
                    format!("{:04}_{}.sql", a.id, a.name),
                    MigrationState::Missing,
                ),
                (None, None) => unreachable!("every id comes from a file or a record"),
            };
            MigrationEntry {
                file: name,
                state,
                applied_at: record.map(|a| a.applied_at.clone()),
                release_version: record.map(|a| a.release_version.clone()),
            }
        })
        .collect();
    Ok(entries)
}

/// Opens the database for reading. Read-write if the file allows it, because
/// a database left with a hot journal by a crash must be rolled back before
/// it can be read (SQLite does that on the first read); read-only otherwise.
fn open_read_only(path: &Path) -> Result<Connection, UpgradeError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .or_else(|_| {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    })
    .map_err(UpgradeError::open(path))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(UpgradeError::open(path))?;
    // A 32 MB page cache (SQLite's default is 2 MB): a large upgrade's
    // migrations and hooks then spill changed pages to the file, each spill
    // syncing the journal first, far less often.
    conn.execute_batch("PRAGMA cache_size = -32768")
        .map_err(UpgradeError::open(path))?;
    Ok(conn)
}

fn has_user_tables(conn: &Connection) -> Result<bool, rusqlite::Error> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        [],
        |row| row.get(0),
    )?;
    Ok(n > 0)
}

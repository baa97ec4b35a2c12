//! What the commands that use the home's database share: which engine the
//! home's settings choose and opening the database on it (for the
//! transaction, or to read), and reporting as the transaction goes
//! (`uplift upgrade` and `uplift adopt`).

use std::path::PathBuf;
use std::sync::Arc;

use super::error::UpgradeError;
use crate::backup::{self, Progress, ProgressUnit};
use crate::disk;
use crate::engine::postgres::{self, PgTarget, PostgresDatabase};
use crate::engine::sqlite::SqliteDatabase;
use crate::engine::{Database, EngineError};
use crate::home::{Home, Settings};
use crate::hooks::{
    CacheOutcome, CompileRun, HookError, HookRunner, LogSink, PlannedHook, Plugin, PluginSet,
};
use crate::release::Release;
use crate::transaction::{Observer, Phases};

/// The PostgreSQL database the home's `uplift.toml` names (`[database]`),
/// if it names one; `None`: the home's SQLite file.
pub(crate) fn postgres_target(home: &Home) -> Result<Option<PgTarget>, UpgradeError> {
    let settings = home.settings()?;
    let Some(database) = &settings.database else {
        return Ok(None);
    };
    Ok(Some(PgTarget::from_settings(
        database,
        &home.settings_path(),
    )?))
}

/// The release as the home's engine sees it: on PostgreSQL, with the files
/// of `migrations/postgres/` in place of the shared ones of their number.
pub(crate) fn release_for(release: &Release, target: Option<&PgTarget>) -> Release {
    match target {
        Some(_) => release.for_engine(postgres::MIGRATIONS_FOLDER),
        None => release.clone(),
    }
}

/// The home's database, when there is one, open for the upgrade: the
/// PostgreSQL database `target` names (which must exist), or the home's
/// SQLite file (with background writeback: see
/// [`SqliteDatabase::with_writeback`]); in a home of several databases,
/// with those that exist attached (to read where each stands;
/// [`open_for_transaction`] opens them all for the transaction).
pub(super) fn open_existing(
    home: &Home,
    release: &Release,
    target: Option<&PgTarget>,
) -> Result<Option<Box<dyn Database>>, UpgradeError> {
    if let Some(target) = target {
        return Ok(Some(Box::new(PostgresDatabase::connect(target)?)));
    }
    let path = home.db_path();
    if !path.exists() {
        return Ok(None);
    }
    let others: Vec<(String, PathBuf)> = other_databases(home, release)
        .into_iter()
        .filter(|(_, p)| p.exists())
        .collect();
    let db = SqliteDatabase::open_home(&path, &others, home.root())
        .map_err(|source| UpgradeError::Open {
            path: path.clone(),
            source,
        })?
        .with_writeback();
    Ok(Some(Box::new(db)))
}

/// How messages name the home's database: the PostgreSQL database
/// `uplift.toml` names (`postgresql://user@host/dbname`, no password), or
/// the home's SQLite file.
pub fn database_name(home: &Home) -> Result<String, UpgradeError> {
    Ok(match postgres_target(home)? {
        Some(target) => target.display().to_string(),
        None => home.db_path().display().to_string(),
    })
}

/// Backs up the home's database into a new file in `dir`: the database
/// `uplift.toml` names (`[database]`: PostgreSQL, with `pg_dump`, from a
/// snapshot of its own while the application goes on), or the home's
/// SQLite file ([`backup::back_up_file`]). `uplift dbbackup`.
pub fn back_up_home(
    home: &Home,
    dir: &std::path::Path,
    options: &backup::BackupOptions,
    progress: &mut dyn Progress,
) -> Result<backup::BackupFile, backup::BackupError> {
    let settings = home.settings().map_err(|e| backup::BackupError::Open {
        path: home.settings_path(),
        source: EngineError::new(e),
    })?;
    match &settings.database {
        Some(database) => postgres::backup::back_up_database(
            database,
            &home.settings_path(),
            dir,
            options,
            progress,
        ),
        None => backup::back_up_file(&home.db_path(), dir, options, progress),
    }
}

/// Restores `file` over the home's database: the PostgreSQL database
/// `uplift.toml` names (built beside it with `psql`, checked, swapped in by
/// renaming: see `engine::postgres::restore`), or the home's SQLite file
/// ([`backup::restore`]). `uplift dbrestore`; the caller holds the home's
/// lock.
pub fn restore_home(
    home: &Home,
    file: &std::path::Path,
    options: &backup::RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<backup::RestoreReport, backup::RestoreError> {
    match &home.settings()?.database {
        Some(database) => postgres::restore::restore(home, database, file, options, progress),
        None => backup::restore(home, file, options, progress),
    }
}

/// The home's database opened to read (`uplift status`, `migrations list`,
/// `history`): the PostgreSQL database `target` names, or the home's
/// SQLite file when it exists, with each of `others` that exists attached
/// (read-write if the file allows it, because a database left with a hot
/// journal by a crash must be rolled back before it can be read; read-only
/// otherwise).
pub(super) fn open_to_read(
    home: &Home,
    others: &[(String, PathBuf)],
    target: Option<&PgTarget>,
) -> Result<Option<Box<dyn Database>>, UpgradeError> {
    if let Some(target) = target {
        return Ok(Some(Box::new(PostgresDatabase::connect(target)?)));
    }
    let path = home.db_path();
    if !path.exists() {
        return Ok(None);
    }
    let others: Vec<(String, PathBuf)> =
        others.iter().filter(|(_, p)| p.exists()).cloned().collect();
    let db = SqliteDatabase::open_home_to_read(&path, &others)
        .map_err(|source| UpgradeError::Open { path, source })?;
    Ok(Some(Box::new(db)))
}

/// Every database of a home of several, open on one connection for the
/// upgrade's transaction: a database the home does not have yet is created
/// (empty: its migrations build it inside the transaction), after moving
/// aside the files SQLite left beside one that is gone (returned as
/// warnings). A home of one database is opened as [`open_existing`] does.
pub(super) fn open_for_transaction(home: &Home, release: &Release) -> Result<Opened, UpgradeError> {
    let mut warnings = Vec::new();
    let main = home.db_path();
    let mut all = vec![(crate::release::MAIN_DATABASE.to_string(), main.clone())];
    all.extend(other_databases(home, release));
    let mut created = Vec::new();
    for (_, path) in &all {
        if path.exists() {
            continue;
        }
        let users = disk::processes_using(&disk::database_files(path));
        if !users.is_empty() {
            return Err(UpgradeError::InUse {
                path: path.clone(),
                users,
            });
        }
        for moved in disk::clear_leftovers(path).map_err(disk::io_err(
            "could not move aside the journal files beside",
            path,
        ))? {
            warnings.push(format!(
                "{} was left by a database that is no longer there (it may hold that database's \
                 last writes); it was moved to {} and not applied to the new database",
                moved.from.display(),
                moved.to.display()
            ));
        }
        std::fs::File::create_new(path).map_err(disk::io_err("could not create", path))?;
        disk::Owner::for_new_file_in(home.root())
            .and_then(|owner| owner.apply(path))
            .map_err(disk::io_err("could not give the home's owner", path))?;
        created.push(path.clone());
    }
    if !created.is_empty() {
        disk::sync_dir(home.root()).map_err(disk::io_err("could not sync", home.root()))?;
    }
    let db = SqliteDatabase::open_home(&main, &all[1..], home.root())
        .map_err(|source| UpgradeError::Open {
            path: main.clone(),
            source,
        })?
        .with_writeback();
    Ok(Opened {
        db: Box::new(db),
        warnings,
        created,
    })
}

/// What [`open_for_transaction`] opened.
pub(super) struct Opened {
    /// Every database, on one connection.
    pub(super) db: Box<dyn Database>,
    /// Leftovers moved aside, for the operator.
    pub(super) warnings: Vec<String>,
    /// The database files it created (empty).
    pub(super) created: Vec<PathBuf>,
}

/// Removes the database files [`open_for_transaction`] created that are
/// still empty once the transaction that was to build them failed (its
/// connection closed): a failed install or upgrade leaves the home as it
/// was.
pub(super) fn remove_created(home: &Home, created: &[PathBuf]) {
    let mut removed = false;
    for path in created {
        if crate::engine::sqlite::multi::is_empty_database(path) {
            removed |= std::fs::remove_file(path).is_ok();
        }
    }
    if removed {
        let _ = disk::sync_dir(home.root());
    }
}

/// The home's databases but `main`, with their files.
pub(super) fn other_databases(home: &Home, release: &Release) -> Vec<(String, PathBuf)> {
    release
        .databases
        .iter()
        .filter(|d| d.name != crate::release::MAIN_DATABASE)
        .map(|d| (d.name.clone(), home.root().join(&d.file)))
        .collect()
}

/// Finishes what an interrupted upgrade of several databases left (see
/// `engine::sqlite::multi`): every database rolled back or committed as a
/// whole, and back in its journal mode. The caller holds the home's lock
/// exclusively.
pub(super) fn recover_interrupted(home: &Home) -> Result<(), UpgradeError> {
    crate::engine::sqlite::multi::recover(home.root())?;
    Ok(())
}

/// [`recover_interrupted`] for a command that does not hold the home's
/// lock: takes it for the recovery when an interrupted upgrade left its
/// record and no other uplift holds the home (one `stat` otherwise).
pub(super) fn recover_unlocked(home: &Home) -> Result<(), UpgradeError> {
    if !crate::engine::sqlite::multi::interrupted(home.root()) {
        return Ok(());
    }
    match home.lock(false) {
        Ok(_lock) => recover_interrupted(home),
        // An uplift holding the home is the one whose record it is (or
        // will recover it).
        Err(_) => Ok(()),
    }
}

/// The upgrade's reports, as the transaction goes.
pub(super) struct Reporting<'r, 'a> {
    pub(super) reporter: Reporter<'r>,
    pub(super) phases: Phases,
    pub(super) home: &'a Home,
    pub(super) settings: &'a Settings,
    /// The sandbox, with the planned hooks' components ready.
    pub(super) runner: Option<HookRunner>,
}

impl Reporting<'_, '_> {
    /// Compiles (or reads from the cache) the component of every plugin
    /// whose hooks are planned, saying so for each one compiled on first
    /// use, before the upgrade's transaction begins.
    pub(super) fn prepare_hooks(
        &mut self,
        plugins: &PluginSet,
        hooks: &[PlannedHook],
    ) -> Result<Vec<CompileRun>, UpgradeError> {
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let planned: Vec<&Plugin> = plugins
            .plugins()
            .iter()
            .filter(|p| hooks.iter().any(|h| h.path == p.path))
            .collect();
        let mut runner = HookRunner::new(self.home, &self.settings.hooks)?;
        let progress = &mut *self.reporter.progress;
        let compiled = runner.prepare(&planned, &mut |plugin| {
            progress.begin(
                &format!(
                    "compiling {} {} (first use)",
                    plugin.name(),
                    plugin.manifest.version
                ),
                None,
                ProgressUnit::Rows,
            );
        });
        progress.end();
        let compiled = compiled?;
        if compiled.iter().any(|c| c.cache != CacheOutcome::Hit) {
            self.phases.end("compile");
        }
        self.runner = Some(runner);
        Ok(compiled)
    }
}

impl Observer for Reporting<'_, '_> {
    fn phase(&mut self, name: &'static str) {
        self.phases.end(name);
    }

    fn progress(&mut self) -> &mut dyn Progress {
        self.reporter.progress
    }

    fn log(&self) -> Arc<dyn LogSink> {
        Arc::clone(&self.reporter.log)
    }

    fn before_hook(&mut self, hook: &PlannedHook, _db: &dyn Database) -> Result<(), EngineError> {
        self.reporter
            .progress
            .step(&format!("hook {}/{}", hook.plugin, hook.hook));
        Ok(())
    }

    fn runner(&mut self) -> Result<HookRunner, HookError> {
        match self.runner.take() {
            Some(runner) => Ok(runner),
            None => HookRunner::new(self.home, &self.settings.hooks),
        }
    }
}

/// Where an upgrade reports as it goes: backup progress and hooks' log lines.
pub struct Reporter<'a> {
    /// Progress of the backup (the command line draws a bar from it).
    pub progress: &'a mut dyn Progress,
    /// Every line a hook logs, as it is written.
    pub log: Arc<dyn LogSink>,
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

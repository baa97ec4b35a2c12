//! `uplift hooks test`: runs a plugin's hooks against a copy of a database,
//! inside the real sandbox, and reports what each hook changed.
//!
//! The original database is opened read-only and copied into a temporary
//! folder; the hooks run there, in the upgrade's own transaction
//! ([`UpgradeTransaction::run`] in [`Mode::Trial`]), which is rolled back,
//! each hook in its own savepoint with `dry_run` set. Given a release, the
//! copy is first brought to the release's schema inside that same
//! transaction, by applying the release's pending migrations exactly as
//! `uplift upgrade` does: a hook written for the new schema then sees it, as
//! it will in the real upgrade.
//! As in the upgrade, the plugin owns the tables the copy's
//! `uplift_plugin_tables` records as its own (none if the copy has no such
//! table) and those its hooks create: each successful hook's new tables are
//! recorded in the copy (creating the record if needed), so its later hooks
//! own them too.
//!
//! Changes are found by reading, before and after each hook, every table the
//! plugin may write or owns, row by row: rows are keyed by `rowid` (by
//! primary key for `WITHOUT ROWID` tables) and compared by content. Those
//! tables are read in full, so this is meant for test databases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::backup::{NoProgress, Progress};
use crate::engine::sqlite::SqliteDatabase;
use crate::engine::{Cell, Database, EngineError, Rows, TableRows};
use crate::errors::chain_text;
use crate::home::{HookLimits, MigrationSettings};
use crate::hooks::CompileCache;
use crate::hooks::manifest::{self, Capabilities};
use crate::hooks::{HookError, HookRunner, LogLine, LogSink, PlanScope, PlannedHook, PluginSet};
use crate::release::Release;
use crate::transaction::{
    HookRun, MigrationRun, Mode, Observer, Steps, UpgradeTransaction, pending_migrations,
};
use crate::upgrade::error::UpgradeError;
use crate::version::Version;

/// Examples kept of each kind of change per table.
const EXAMPLES: usize = 3;

/// What to run.
#[derive(Debug, Clone)]
pub struct TrialOptions {
    /// The plugin component.
    pub plugin: PathBuf,
    /// The database to copy (never written).
    pub db: PathBuf,
    /// The data version before the upgrade; `None`: the version the
    /// database records.
    pub from: Option<Version>,
    /// The release version upgraded to.
    pub to: Version,
    /// Only this hook, whatever its ranges.
    pub hook: Option<String>,
    /// The application's name given to the hooks.
    pub app: String,
    /// The sandbox's limits (the home's `[hooks]` settings, as the upgrade
    /// uses them).
    pub limits: HookLimits,
    /// The release being upgraded to: its pending migrations are applied to
    /// the copy before the hooks run (`None`: the copy's schema is used as
    /// it is).
    pub release: Option<Release>,
    /// Where to cache compiled components (`None`: compile every time).
    pub cache: Option<PathBuf>,
}

/// Why a trial could not run (a hook failing is not one of these: it is in
/// the report). Each message says everything, its causes included: none is
/// returned as a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrialError {
    /// The component could not be read or has no valid manifest.
    #[error("{}", chain_text(.0))]
    Plugin(HookError),
    /// `--hook NAME` names no hook of the plugin.
    #[error("plugin {plugin} has no hook {hook:?}; its hooks are: {known}")]
    UnknownHook {
        /// The plugin's name.
        plugin: String,
        /// The hook name given.
        hook: String,
        /// The plugin's hooks, separated by commas.
        known: String,
    },
    /// No `--from`, and the database records no data version.
    #[error(
        "{path} records no data version (uplift never upgraded it): give the version its data is at with --from V"
    )]
    NoFrom {
        /// The database.
        path: PathBuf,
    },
    /// The database to copy does not exist.
    #[error("could not copy the database {path} to a temporary file: no such file")]
    NoDatabase {
        /// The database to copy.
        path: PathBuf,
    },
    /// The temporary folder for the copy could not be made.
    #[error("could not copy the database {path} to a temporary file: {cause}")]
    Scratch {
        /// The database to copy.
        path: PathBuf,
        /// Why the folder could not be made.
        cause: std::io::Error,
    },
    /// The database could not be opened or copied.
    #[error("could not copy the database {path} to a temporary file: {cause}")]
    Copy {
        /// The database to copy.
        path: PathBuf,
        /// Why it could not be opened or copied.
        cause: EngineError,
    },
    /// Reading the copy's tables or running the transaction failed.
    #[error("on the copy of the database: could not {what}: {cause}")]
    Database {
        /// What was being done, as a verb phrase ("read the tables the
        /// plugin may write").
        what: String,
        /// The database's error.
        cause: EngineError,
    },
    /// The sandbox could not be set up.
    #[error("{}", chain_text(.0))]
    Engine(HookError),
    /// The release's migrations could not be applied to the copy (the
    /// upgrade would fail the same way): a migration failed, or the copy's
    /// migration history does not match the release.
    #[error("could not bring the copy to release {version}'s schema: {}", chain_text(.cause.as_ref()))]
    Migrations {
        /// The release whose schema the copy was to be brought to.
        version: Version,
        /// Why the migrations could not be applied.
        cause: Box<UpgradeError>,
    },
    /// The transaction on the copy could not begin, or its bookkeeping
    /// failed.
    #[error("on the copy of the database: {}", chain_text(.0))]
    Transaction(UpgradeError),
}

impl TrialError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them). Migrations that could not be applied
    /// to the copy have the code the upgrade would fail with.
    pub fn code(&self) -> &'static str {
        match self {
            TrialError::Plugin(err) | TrialError::Engine(err) => err.code(),
            TrialError::UnknownHook { .. } => "unknown-hook",
            TrialError::NoFrom { .. } => "no-data-version",
            TrialError::NoDatabase { .. } => "no-database",
            TrialError::Scratch { .. } => "io",
            TrialError::Copy { .. } => "database-open",
            TrialError::Database { .. } => "database",
            TrialError::Migrations { cause, .. } => cause.code(),
            TrialError::Transaction(err) => err.code(),
        }
    }
}

/// One changed row: its key and its columns before and after (changed
/// columns only, for an update).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowChange {
    /// `rowid=N`, or the primary key's columns.
    pub key: String,
    /// Column → value (SQL literal) before; `None` for an insert.
    pub before: Option<BTreeMap<String, Cell>>,
    /// Column → value (SQL literal) after; `None` for a delete.
    pub after: Option<BTreeMap<String, Cell>>,
}

/// What one hook changed in one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableChanges {
    /// The table's name.
    pub table: String,
    /// How many rows the hook inserted.
    pub inserted: u64,
    /// How many rows it updated.
    pub updated: u64,
    /// How many rows it deleted.
    pub deleted: u64,
    /// Up to three examples of each kind.
    pub examples: Vec<RowChange>,
}

/// One hook's result.
#[derive(Debug, Clone, Serialize)]
pub struct HookResult {
    /// The hook's name.
    pub hook: String,
    /// The hook's `old_version` range.
    pub old_version: String,
    /// The hook's `new_version` range.
    pub new_version: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed or was stopped (the error the upgrade would report).
    pub error: Option<String>,
    /// Statements the sandbox refused (also when the hook succeeded).
    pub refused: Vec<String>,
    /// Milliseconds it took, loading included (0 when it failed).
    pub ms: u64,
    /// Tables it changed (only those with changes); none when it failed
    /// (its savepoint was rolled back).
    pub changes: Vec<TableChanges>,
}

/// Everything a trial did.
#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version, from its manifest.
    pub plugin_version: String,
    /// The data version before the upgrade: as given, or as the database
    /// records it.
    pub from: String,
    /// The release version upgraded to, as given.
    pub to: String,
    /// What the author should know (a `--from` the database disagrees
    /// with).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The release's migrations applied to the copy before the hooks, in
    /// order (empty without a release, or when none was pending).
    pub migrations: Vec<MigrationRun>,
    /// Hooks run, in plan order; the trial stops at the first that fails, as
    /// an upgrade would.
    pub hooks: Vec<HookResult>,
    /// Every log line, in order.
    pub log: Vec<LogLine>,
    /// Rows breaking a foreign key that the upgrade's check before COMMIT
    /// would find once the migrations and every hook succeeded (at most
    /// 10, described): with these, the upgrade would be rolled back.
    pub foreign_key_violations: Vec<String>,
}

impl TrialReport {
    /// Whether every hook run succeeded and the foreign keys hold, so that
    /// an upgrade would commit.
    pub fn ok(&self) -> bool {
        self.hooks.iter().all(|h| h.ok) && self.foreign_key_violations.is_empty()
    }
}

/// The version the trial upgrades from: `opts.from`, or the one the
/// database records; with a warning when both are known and differ.
fn starting_version(
    opts: &TrialOptions,
    db: &SqliteDatabase,
) -> Result<(Version, Vec<String>), TrialError> {
    let recorded = db.data_version().map_err(|source| {
        TrialError::Transaction(UpgradeError::Meta {
            path: opts.db.clone(),
            source,
        })
    })?;
    match (&opts.from, recorded) {
        (Some(given), Some(recorded)) if *given != recorded => Ok((
            given.clone(),
            vec![format!(
                "--from {given}, but {} records data version {recorded}: the hooks run as if \
                 upgrading from {given}; leave --from out to use the database's",
                opts.db.display()
            )],
        )),
        (Some(given), _) => Ok((given.clone(), Vec::new())),
        (None, Some(recorded)) => Ok((recorded, Vec::new())),
        (None, None) => Err(TrialError::NoFrom {
            path: opts.db.clone(),
        }),
    }
}

/// Runs the plugin's hooks whose ranges match `from`→`to` and the plugin's
/// own step from the version the copy records to its manifest's (or only
/// `opts.hook`) on a copy of `opts.db`, sending log lines to `log` as they are
/// written as well as keeping them in the report. With `opts.release`, the
/// release's pending migrations are applied to the copy first, in the same
/// transaction, and each is passed to `migrated` once applied.
///
/// Fails when the plugin cannot be read, `opts.hook` does not exist, the
/// database cannot be copied or read, the release's migrations fail on the
/// copy (or its history does not match them), or the sandbox cannot be set
/// up. A hook that fails is reported, not an error.
pub fn run_trial(
    opts: &TrialOptions,
    log: Arc<dyn LogSink>,
    migrated: &dyn Fn(&MigrationRun),
) -> Result<TrialReport, TrialError> {
    let manifest = manifest::read_manifest_file(&opts.plugin).map_err(TrialError::Plugin)?;
    if let Some(name) = &opts.hook
        && manifest.hook(name).is_none()
    {
        return Err(TrialError::UnknownHook {
            plugin: manifest.name.clone(),
            hook: name.clone(),
            known: manifest
                .hooks
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let capabilities = manifest.capabilities.clone();
    let plugin = PluginSet::of_one(manifest, &opts.plugin);
    let scratch = tempfile::tempdir().map_err(|cause| TrialError::Scratch {
        path: opts.db.clone(),
        cause,
    })?;
    let mut db = copy_database(&opts.db, &scratch.path().join("copy.sqlite3"))?;
    let (from, warnings) = starting_version(opts, &db)?;
    let planned = match &opts.hook {
        Some(name) => plugin.plan_where(|_, spec| &spec.name == name),
        None => {
            // The plugin moves from the version the copy records, as it
            // would in the upgrade.
            let recorded = db.plugin_versions().map_err(|source| {
                TrialError::Transaction(UpgradeError::Meta {
                    path: opts.db.clone(),
                    source,
                })
            })?;
            let changes = plugin.changes(&recorded).map_err(TrialError::Plugin)?;
            plugin.plan(&from, &opts.to, &changes, PlanScope::Application)
        }
    };
    let manifest = &plugin.plugins()[0].manifest;
    let collected = crate::hooks::CollectLog::new();
    let tee: Arc<dyn LogSink> = {
        let collected = collected.clone();
        Arc::new(move |line: &LogLine| {
            collected.line(line);
            log.line(line);
        })
    };
    let mut report = TrialReport {
        plugin: manifest.name.clone(),
        plugin_version: manifest.version.clone(),
        from: from.to_string(),
        to: opts.to.to_string(),
        warnings,
        migrations: Vec::new(),
        hooks: Vec::new(),
        log: Vec::new(),
        foreign_key_violations: Vec::new(),
    };
    if planned.is_empty() && opts.release.is_none() {
        return Ok(report);
    }
    // The copy is of one database, the main one (what hooks reach): in a
    // release of several databases, only the main database's migrations
    // apply to it.
    let migrations = match &opts.release {
        Some(release) => pending_migrations(&db, release)
            .map_err(|cause| TrialError::Migrations {
                version: release.version.clone(),
                cause: Box::new(cause),
            })?
            .migrations
            .into_iter()
            .filter(|m| m.database == crate::release::MAIN_DATABASE)
            .collect(),
        None => Vec::new(),
    };
    let plugins = PluginSet::default();
    let steps = Steps {
        app: &opts.app,
        to: &opts.to,
        release: opts.release.as_ref(),
        migrations: &migrations,
        // A copy: the edits the release accepts need not be recorded.
        accepted_edits: &[],
        // The trial runs on a copy: the default limit of a migration's time
        // applies (the home's own `[migrations]` setting is the upgrade's).
        migration_timeout: MigrationSettings::default().timeout(),
        plugins: &plugins,
        hooks: &planned,
    };
    let mut observer = TrialObserver {
        opts,
        capabilities: &capabilities,
        log: tee,
        migrated,
        progress: NoProgress,
        before: TableRows::new(),
        hooks: Vec::new(),
    };
    let run = UpgradeTransaction::begin(&mut db, Mode::Trial { from: &from })
        .and_then(|tx| tx.run(&steps, &mut observer));
    let done = run.map_err(|err| match err {
        UpgradeError::Migrate(_) | UpgradeError::TransactionLost { .. } => TrialError::Migrations {
            version: opts
                .release
                .as_ref()
                .map_or(&opts.to, |r| &r.version)
                .clone(),
            cause: Box::new(err),
        },
        UpgradeError::Hook(err) => TrialError::Engine(err),
        UpgradeError::Database(cause) => TrialError::Database {
            what: "read the tables the plugin may write".into(),
            cause,
        },
        other => TrialError::Transaction(other),
    })?;
    report.migrations = done.migrations;
    report.hooks = observer.hooks;
    report.foreign_key_violations = done
        .foreign_key_violations
        .iter()
        .map(ToString::to_string)
        .collect();
    // Nothing is kept: the copy was rolled back, and is deleted with
    // `scratch`.
    drop(db);
    report.log = collected.lines();
    Ok(report)
}

/// What a trial adds to the transaction's steps: the tables before and
/// after each hook, compared.
struct TrialObserver<'a> {
    opts: &'a TrialOptions,
    capabilities: &'a Capabilities,
    log: Arc<dyn LogSink>,
    migrated: &'a dyn Fn(&MigrationRun),
    progress: NoProgress,
    /// The tables as they were before the running hook.
    before: TableRows,
    hooks: Vec<HookResult>,
}

impl Observer for TrialObserver<'_> {
    fn migrated(&mut self, run: &MigrationRun) {
        (self.migrated)(run);
    }

    fn progress(&mut self) -> &mut dyn Progress {
        &mut self.progress
    }

    fn log(&self) -> Arc<dyn LogSink> {
        Arc::clone(&self.log)
    }

    fn runner(&mut self) -> Result<HookRunner, HookError> {
        HookRunner::with_cache(
            self.opts.cache.clone().map(CompileCache::new),
            &self.opts.limits,
        )
    }

    fn before_hook(&mut self, _hook: &PlannedHook, db: &dyn Database) -> Result<(), EngineError> {
        self.before = snapshot(db, self.capabilities, None)?;
        Ok(())
    }

    fn after_hook(
        &mut self,
        hook: &PlannedHook,
        result: &Result<HookRun, HookError>,
        db: &dyn Database,
    ) -> Result<(), EngineError> {
        let mut entry = HookResult {
            hook: hook.hook.clone(),
            old_version: hook.old_version.clone(),
            new_version: hook.new_version.clone(),
            ok: result.is_ok(),
            error: None,
            refused: Vec::new(),
            ms: 0,
            changes: Vec::new(),
        };
        match result {
            Ok(run) => {
                let before = std::mem::take(&mut self.before);
                let after = snapshot(db, self.capabilities, Some(&before))?;
                entry.changes = compare(&before, &after);
                entry.refused = run.refused.clone();
                entry.ms = run.ms as u64;
            }
            Err(err) => {
                if let HookError::Failed { refused, .. } = err {
                    entry.refused = refused.clone();
                }
                entry.error = Some(err.to_string());
            }
        }
        self.hooks.push(entry);
        Ok(())
    }
}

/// Copies `original` (opened read-only) to `copy`, and opens the copy.
fn copy_database(original: &Path, copy: &Path) -> Result<SqliteDatabase, TrialError> {
    if !original.is_file() {
        return Err(TrialError::NoDatabase {
            path: original.to_path_buf(),
        });
    }
    SqliteDatabase::copy_of(original, copy).map_err(|cause| TrialError::Copy {
        path: original.to_path_buf(),
        cause,
    })
}

/// The rows of every table the plugin may write or owns (and of every table
/// in `also`, so a table dropped by a hook shows its rows as deleted).
fn snapshot(
    db: &dyn Database,
    caps: &Capabilities,
    also: Option<&TableRows>,
) -> Result<TableRows, EngineError> {
    let mut out =
        db.table_rows(&|table| caps.declares_write(table) || caps.under_owned_prefix(table))?;
    if let Some(also) = also {
        for table in also.keys() {
            out.entry(table.clone()).or_default();
        }
    }
    Ok(out)
}

/// Rows inserted, updated and deleted per table between two snapshots.
fn compare(before: &BTreeMap<String, Rows>, after: &BTreeMap<String, Rows>) -> Vec<TableChanges> {
    let empty = Rows::new();
    let mut tables: Vec<&String> = before.keys().chain(after.keys()).collect();
    tables.sort();
    tables.dedup();
    let mut out = Vec::new();
    for table in tables {
        let old = before.get(table).unwrap_or(&empty);
        let new = after.get(table).unwrap_or(&empty);
        let mut changes = TableChanges {
            table: table.clone(),
            ..TableChanges::default()
        };
        let (mut ins, mut upd, mut del) = (Vec::new(), Vec::new(), Vec::new());
        for (key, row) in new {
            match old.get(key) {
                None => {
                    changes.inserted += 1;
                    if ins.len() < EXAMPLES {
                        ins.push(RowChange {
                            key: key.1.clone(),
                            before: None,
                            after: Some(row.clone()),
                        });
                    }
                }
                Some(was) if was != row => {
                    changes.updated += 1;
                    if upd.len() < EXAMPLES {
                        let changed = |side: &BTreeMap<String, Cell>| {
                            side.iter()
                                .filter(|(c, _)| was.get(*c) != row.get(*c))
                                .map(|(c, v)| (c.clone(), v.clone()))
                                .collect::<BTreeMap<_, _>>()
                        };
                        upd.push(RowChange {
                            key: key.1.clone(),
                            before: Some(changed(was)),
                            after: Some(changed(row)),
                        });
                    }
                }
                Some(_) => {}
            }
        }
        for (key, row) in old {
            if !new.contains_key(key) {
                changes.deleted += 1;
                if del.len() < EXAMPLES {
                    del.push(RowChange {
                        key: key.1.clone(),
                        before: Some(row.clone()),
                        after: None,
                    });
                }
            }
        }
        if changes.inserted + changes.updated + changes.deleted > 0 {
            changes.examples = ins.into_iter().chain(upd).chain(del).collect();
            out.push(changes);
        }
    }
    out
}

/// One change as a line: `inserted rowid=4: a=1, b='x'`,
/// `updated rowid=2: email NULL → 'a@b'`, `deleted rowid=9: ...`; the
/// values are the hook's, so control characters are escaped
/// ([`crate::hooks::escape_untrusted`]).
pub fn describe_change(change: &RowChange) -> String {
    crate::hooks::escape_untrusted(&describe_change_raw(change)).into_owned()
}

fn describe_change_raw(change: &RowChange) -> String {
    let cols = |m: &BTreeMap<String, Cell>| {
        m.iter()
            .map(|(c, v)| format!("{c}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (&change.before, &change.after) {
        (None, Some(after)) => format!("inserted {}: {}", change.key, cols(after)),
        (Some(before), None) => format!("deleted {}: {}", change.key, cols(before)),
        (Some(before), Some(after)) => {
            let parts: Vec<String> = after
                .iter()
                .map(|(c, v)| {
                    let was = before
                        .get(c)
                        .map_or_else(|| "(none)".to_string(), ToString::to_string);
                    format!("{c} {was} → {v}")
                })
                .collect();
            format!("updated {}: {}", change.key, parts.join(", "))
        }
        (None, None) => format!("unchanged {}", change.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path) -> SqliteDatabase {
        let db = SqliteDatabase::create(&dir.join("db.sqlite3")).unwrap();
        db.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE k (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
             INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');
             INSERT INTO k VALUES ('x', 1, 'p'), ('y', 2, 'q');",
        )
        .unwrap();
        db
    }

    #[test]
    fn changes_are_counted_by_rowid_and_by_primary_key_without_rowid() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let caps = Capabilities {
            read: vec![],
            write: vec!["t".into(), "k".into()],
            owns: None,
        };
        let before = snapshot(&db, &caps, None).unwrap();
        db.execute_batch(
            "UPDATE t SET v = 'TWO' WHERE id = 2; DELETE FROM t WHERE id = 3;
             INSERT INTO t VALUES (4, 'four');
             UPDATE k SET v = 'Q' WHERE a = 'y'; DELETE FROM k WHERE a = 'x';",
        )
        .unwrap();
        let after = snapshot(&db, &caps, Some(&before)).unwrap();
        let changes = compare(&before, &after);
        let t = changes.iter().find(|c| c.table == "t").unwrap();
        assert_eq!((t.inserted, t.updated, t.deleted), (1, 1, 1));
        let updated = t.examples.iter().find(|e| e.key == "rowid=2").unwrap();
        assert_eq!(describe_change(updated), "updated rowid=2: v 'two' → 'TWO'");
        let typed = serde_json::to_value(updated).unwrap();
        assert_eq!(
            typed["before"]["v"], "two",
            "JSON values are typed: {typed}"
        );
        let k = changes.iter().find(|c| c.table == "k").unwrap();
        assert_eq!((k.inserted, k.updated, k.deleted), (0, 1, 1));
        assert!(k.examples.iter().any(|e| e.key == "a='y', b=2"));
    }
}

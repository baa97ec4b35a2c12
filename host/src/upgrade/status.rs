//! Where a home stands against a release (its data version, migrations and
//! plugins' versions), read without locking or changing anything: `uplift
//! status`, `uplift migrations list`, and the check `uplift run` makes on
//! every start.

use serde::Serialize;

use super::adopt::compare_schemas;
use super::error::UpgradeError;
use super::session::{
    open_to_read, other_databases, postgres_target, recover_unlocked, release_for,
};
use crate::backup;
use crate::engine::Database;
use crate::history::HistoryEntry;
use crate::home::Home;
use crate::hooks::{PlanScope, PlannedHook, PluginChange, PluginSet, RecordedPlugin};
use crate::migrations::{self, AcceptedEdit, MigrateError};
use crate::release::{Migration, Release};
use crate::transaction::all_migrations_counted;
use crate::version::Version;

/// Whether the home's database is at the release's version with every
/// migration of the release applied, recorded by the same application, and
/// every active plugin at the version the data recorded for it: the check
/// `uplift run` makes on every start, in a few reads (plugins' manifests are
/// read by their section headers, nothing is compiled, no migration file
/// opened). No database is not up to date, nor a home an interrupted
/// upgrade of several databases left for the next upgrade to finish.
pub fn is_up_to_date(home: &Home, release: &Release) -> Result<bool, UpgradeError> {
    // An upgrade of several databases was interrupted: `upgrade` finishes
    // what it left (`uplift run` calls it when this says no).
    if crate::engine::sqlite::multi::interrupted(home.root()) {
        return Ok(false);
    }
    let target = postgres_target(home)?;
    let others = other_databases(home, release);
    let Some(db) = open_to_read(home, &others, target.as_ref())? else {
        return Ok(false);
    };
    let db = db.as_ref();
    let Some(version) = data_version(db)? else {
        return Ok(false);
    };
    check_app(db, release)?;
    if version != release.version || !all_migrations_counted(db, release)? {
        return Ok(false);
    }
    let plugins = PluginSet::discover(&release.plugins_dir(), &release.core_plugins, home)?;
    let recorded = recorded_plugins(Some(db))?;
    Ok(!plugins.changes(&recorded)?.any_change())
}

/// The plugin versions `db` records (none without a database).
pub(super) fn recorded_plugins(
    db: Option<&dyn Database>,
) -> Result<Vec<RecordedPlugin>, UpgradeError> {
    let Some(db) = db else {
        return Ok(Vec::new());
    };
    db.plugin_versions().map_err(|source| UpgradeError::Meta {
        path: db.location().to_path_buf(),
        source,
    })
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
    /// Whether an upgrade is needed, and why not.
    pub state: State,
    /// How many migrations are recorded as applied.
    pub applied: usize,
    /// Pending migrations (file names).
    pub pending: Vec<String>,
    /// Applied migrations that no longer match the release.
    pub drift: Vec<String>,
    /// Applied migrations edited since in a way the release accepts
    /// (`[migrations] accepted`): the next upgrade records them.
    pub accepted_edits: Vec<AcceptedEdit>,
    /// Hooks the next upgrade would run, in order (empty unless an upgrade is
    /// needed).
    pub hooks: Vec<PlannedHook>,
    /// The active plugins whose version the next upgrade moves (first
    /// activations, upgrades; a downgrade, which it refuses).
    pub plugin_changes: Vec<PluginChange>,
    /// The release's and the home's plugins.
    pub plugins: Vec<PluginState>,
    /// The newest backups (at most three), newest first.
    pub backups: Vec<BackupState>,
    /// For a database uplift does not manage: the releases whose schema
    /// it was compared with, and the command that adopts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adoptable: Option<Adoptable>,
    /// For a database uplift adopted: when, at which version, and what
    /// `--force` overrode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted: Option<Adoption>,
}

/// How an unmanaged database compares with the schemas of the releases
/// the installed one knows, for `uplift status`.
#[derive(Debug, Clone, Serialize)]
pub struct Adoptable {
    /// The newest release whose schema the database has exactly, if any.
    pub matches: Option<Version>,
    /// The command that adopts it: at the release it matches, or else at
    /// the closest one (fewest differing facts; the newest of equals),
    /// which then lists the differences and refuses.
    pub command: Option<String>,
    /// Each release tried, newest first, with how many differences.
    pub tried: Vec<AdoptCandidate>,
}

/// One release an unmanaged database was compared with.
#[derive(Debug, Clone, Serialize)]
pub struct AdoptCandidate {
    /// The release.
    pub version: Version,
    /// How many differences (0: its schema exactly).
    pub differences: usize,
}

/// A database's adoption, as its history records it.
#[derive(Debug, Clone, Serialize)]
pub struct Adoption {
    /// When (UTC).
    pub at: String,
    /// The data version it was adopted at.
    pub version: String,
    /// The differences `--force` overrode (empty: the schema matched).
    pub differences: Vec<String>,
}

/// Where the data stands against the release, for `uplift status`: printed
/// and serialized as `up to date`, `upgrade needed`, `not installed`,
/// `data newer than release`, `not managed by uplift` or `blocked by
/// drift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum State {
    /// At the release's version, every migration applied.
    #[serde(rename = "up to date")]
    UpToDate,
    /// Older than the release, or a migration is pending.
    #[serde(rename = "upgrade needed")]
    UpgradeNeeded,
    /// No database, or an empty one.
    #[serde(rename = "not installed")]
    NotInstalled,
    /// Newer than the release: a downgrade needs a restore.
    #[serde(rename = "data newer than release")]
    DataNewer,
    /// Tables, but no uplift data version.
    #[serde(rename = "not managed by uplift")]
    Unmanaged,
    /// An upgrade is needed, but applied migrations no longer match the
    /// release's files (see [`Status::drift`]): it would be refused.
    #[serde(rename = "blocked by drift")]
    BlockedByDrift,
    /// An active plugin is older than the version the data was last
    /// upgraded with: a plugin downgrade, which an upgrade refuses.
    #[serde(rename = "plugin older than data")]
    PluginOlder,
}

impl State {
    /// The state in words.
    pub fn as_str(self) -> &'static str {
        match self {
            State::UpToDate => "up to date",
            State::UpgradeNeeded => "upgrade needed",
            State::NotInstalled => "not installed",
            State::DataNewer => "data newer than release",
            State::Unmanaged => "not managed by uplift",
            State::BlockedByDrift => "blocked by drift",
            State::PluginOlder => "plugin older than data",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
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
    /// The version the data was last upgraded with, if it records one (a
    /// disabled plugin keeps its record, and continues from it).
    pub recorded_version: Option<Version>,
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
    recover_unlocked(home)?;
    let target = postgres_target(home)?;
    let release = &release_for(release, target.as_ref());
    let plugins = PluginSet::discover(&release.plugins_dir(), &release.core_plugins, home)?;
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
    let db = open_to_read(home, &other_databases(home, release), target.as_ref())?;
    let recorded = recorded_plugins(db.as_deref())?;
    let changes = plugins.changes(&recorded)?;
    let mut status = Status {
        database_exists: db.is_some(),
        data_version: None,
        release_version: release.version.clone(),
        state: State::NotInstalled,
        applied: 0,
        pending: release
            .all_migrations()?
            .into_iter()
            .map(Migration::file_name)
            .collect(),
        drift: Vec::new(),
        accepted_edits: Vec::new(),
        hooks: Vec::new(),
        plugin_changes: changes.changed().cloned().collect(),
        plugins: plugins
            .plugins()
            .iter()
            .map(|p| PluginState {
                name: p.name().to_string(),
                version: p.manifest.version.clone(),
                core: p.core,
                active: p.active,
                recorded_version: recorded
                    .iter()
                    .find(|r| r.name == p.name())
                    .map(|r| r.version.clone()),
            })
            .collect(),
        backups,
        adoptable: None,
        adopted: None,
    };
    let Some(db) = db else {
        return Ok(status);
    };
    let db = db.as_ref();
    status.data_version = data_version(db)?;
    status.pending.clear();
    for database in &release.databases {
        let applied = db
            .applied_migrations(&database.name)
            .map_err(MigrateError::from)?;
        let migrations = migrations::status(applied, release, &database.name)?;
        status.applied += migrations.applied.len();
        status
            .pending
            .extend(migrations.pending.iter().map(Migration::file_name));
        status
            .drift
            .extend(migrations.drift.iter().map(ToString::to_string));
        status.accepted_edits.extend(migrations.accepted);
    }
    status.adopted = adoption(db)?;
    let to = &release.version;
    status.state = match &status.data_version {
        None => {
            if db.has_user_tables()? {
                status.adoptable = Some(adoptable(db, release, &plugins)?);
                State::Unmanaged
            } else {
                State::NotInstalled
            }
        }
        Some(v) if *v > *to => State::DataNewer,
        Some(_) if changes.downgrade().is_some() => State::PluginOlder,
        Some(v) if *v == *to && status.pending.is_empty() => {
            status.hooks = plugins.plan(v, to, &changes, PlanScope::PluginsOnly);
            match changes.any_change() {
                true => State::UpgradeNeeded,
                false => State::UpToDate,
            }
        }
        Some(_) if !status.drift.is_empty() => State::BlockedByDrift,
        Some(v) => {
            status.hooks = plugins.plan(v, to, &changes, PlanScope::Application);
            State::UpgradeNeeded
        }
    };
    Ok(status)
}

/// Compares an unmanaged database with each release it could be adopted
/// at, newest first.
fn adoptable(
    db: &dyn Database,
    release: &Release,
    plugins: &PluginSet,
) -> Result<Adoptable, UpgradeError> {
    let candidates = release.adoptable_versions()?;
    let found = compare_schemas(db, release, plugins, &candidates)?;
    let matches = found
        .iter()
        .find(|m| m.differences.is_empty())
        .map(|m| m.version.clone());
    let closest = found
        .iter()
        .min_by_key(|m| m.distance)
        .map(|m| m.version.clone());
    Ok(Adoptable {
        command: matches
            .as_ref()
            .or(closest.as_ref())
            .map(|v| format!("uplift adopt --as {v}")),
        matches,
        tried: found
            .iter()
            .map(|m| AdoptCandidate {
                version: m.version.clone(),
                differences: m.differences.len(),
            })
            .collect(),
    })
}

/// The newest adoption the database's history records.
fn adoption(db: &dyn Database) -> Result<Option<Adoption>, UpgradeError> {
    let history = db.history()?;
    Ok(history.iter().rev().find_map(|entry| {
        entry.adoption_details().map(|details| Adoption {
            at: entry.ended_at.clone(),
            version: entry.to_version.clone(),
            differences: details.differences,
        })
    }))
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
    /// The release that applied it (for an adopted one: the release the
    /// database was adopted at).
    pub release_version: Option<String>,
    /// Recorded by `uplift adopt` (found in place, never run by uplift).
    pub adopted: bool,
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
    recover_unlocked(home)?;
    let target = postgres_target(home)?;
    let release = &release_for(release, target.as_ref());
    let db = open_to_read(home, &other_databases(home, release), target.as_ref())?;
    let mut entries = Vec::new();
    for database in &release.databases {
        let applied = match &db {
            Some(db) => db
                .applied_migrations(&database.name)
                .map_err(MigrateError::from)?,
            None => Vec::new(),
        };
        let folder = match release.declares_databases {
            true => format!("{}/", database.name),
            false => String::new(),
        };
        entries.extend(database_migrations(
            release.migrations_of(&database.name)?,
            &applied,
            &folder,
        ));
    }
    Ok(entries)
}

/// One database's migrations, of the release and of its history, in
/// order; `folder` prefixes a migration the release no longer has.
fn database_migrations(
    migrations: &[Migration],
    applied: &[crate::migrations::AppliedMigration],
    folder: &str,
) -> Vec<MigrationEntry> {
    let mut ids: Vec<u32> = migrations.iter().map(|m| m.id).collect();
    ids.extend(applied.iter().map(|a| a.id));
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
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
                    format!("{folder}{:04}_{}.sql", a.id, a.name),
                    MigrationState::Missing,
                ),
                (None, None) => unreachable!("every id comes from a file or a record"),
            };
            MigrationEntry {
                file: name,
                state,
                applied_at: record.map(|a| a.applied_at.clone()),
                release_version: record.map(|a| a.release_version.clone()),
                adopted: record.is_some_and(|a| a.adopted),
            }
        })
        .collect()
}

fn data_version(db: &dyn Database) -> Result<Option<Version>, UpgradeError> {
    db.data_version().map_err(|source| UpgradeError::Meta {
        path: db.location().to_path_buf(),
        source,
    })
}

/// Refuses a database recorded as belonging to another application.
pub(super) fn check_app(db: &dyn Database, release: &Release) -> Result<(), UpgradeError> {
    let path = db.location();
    let app = db.app_name().map_err(|source| UpgradeError::Meta {
        path: path.to_path_buf(),
        source,
    })?;
    match app {
        Some(found) if found != release.app => Err(UpgradeError::OtherApp {
            path: path.to_path_buf(),
            found,
            expected: release.app.clone(),
        }),
        _ => Ok(()),
    }
}

/// What uplift did to the home's database, oldest first (empty without a
/// database, or before uplift kept a history): `uplift history`.
pub fn history(home: &Home) -> Result<Vec<HistoryEntry>, UpgradeError> {
    recover_unlocked(home)?;
    let target = postgres_target(home)?;
    match open_to_read(home, &[], target.as_ref())? {
        Some(db) => Ok(db.history()?),
        None => Ok(Vec::new()),
    }
}

//! `uplift adopt`: taking a database uplift did not create under its
//! management, after checking that its schema is exactly what a release's
//! migrations build.
//!
//! A site created by the application's own scripts, Django, sqlx or by hand
//! has tables and no uplift data version. Adopting it at a version `V`
//! compares its schema, structurally ([`crate::schema`]), with the schema
//! the release's migrations up to `V`'s last one build on an empty
//! database; if they are the same, a backup is made and, in one
//! transaction, those migrations are recorded as applied (marked as
//! adopted, with their checksums), the data version becomes `V`, and the
//! history records the adoption. No row of the application's is touched.
//!
//! Left out of the comparison: tables the release says are not the
//! application's (`[adopt] ignore` in `release.toml`, globs), and tables
//! the database has beyond the release's under a prefix an active plugin
//! owns (plugins make their tables in hooks, not migrations). Any other
//! difference refuses, each listed; `--force` adopts anyway and records
//! them in the history, and `uplift status` says so from then on.

use std::path::PathBuf;

use serde::Serialize;

use super::error::UpgradeError;
use super::session::{Reporter, Reporting, open_existing, postgres_target, release_for};
use crate::engine::Database;
use crate::history::AdoptionDetails;
use crate::home::Home;
use crate::hooks::PluginSet;
use crate::release::Release;
use crate::schema::SchemaDifference;
use crate::transaction::{Mode, PhaseTime, Phases, UpgradeTransaction};
use crate::version::Version;

/// How to adopt.
#[derive(Debug, Clone)]
pub struct AdoptOptions {
    /// The release whose schema the database has.
    pub version: Version,
    /// Adopt despite differences, recording them.
    pub force: bool,
    /// Wait for another uplift holding the home instead of failing at once.
    pub wait: bool,
}

/// What an adoption did.
#[derive(Debug, Clone, Serialize)]
pub struct Adopted {
    /// The data version recorded.
    pub version: Version,
    /// The migrations recorded as applied (file names).
    pub migrations: Vec<String>,
    /// The backup of the database as it was before.
    pub backup: PathBuf,
    /// The differences `--force` overrode, in words (empty when the schema
    /// matched).
    pub differences: Vec<String>,
    /// Tables left alone because the release ignores them.
    pub ignored: Vec<String>,
    /// Tables left to the plugins that own their prefix.
    pub plugin_tables: Vec<String>,
    /// The time each phase took.
    pub phases: Vec<PhaseTime>,
    /// What went wrong after the adoption was committed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// How a database's schema compares with the schema of one release it
/// could be adopted at.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaMatch {
    /// The release.
    pub version: Version,
    /// The last of the installed release's migrations that its schema has
    /// (0: none).
    pub last_migration: u32,
    /// What differs; empty when the database has exactly that schema.
    pub differences: Vec<SchemaDifference>,
    /// How far the database's schema is from it ([`crate::schema::Schema::distance`]).
    pub distance: usize,
    /// Objects left out because the release ignores their tables
    /// (`table django_migrations`).
    pub ignored: Vec<String>,
    /// Objects left to the plugins that own their prefix.
    pub plugin_tables: Vec<String>,
}

impl SchemaMatch {
    /// The differences in words, the release against this database.
    pub fn described(&self) -> Vec<String> {
        let release = format!("release {}", self.version);
        self.differences
            .iter()
            .map(|d| d.describe(&release, "this database"))
            .collect()
    }
}

/// Why a database was not adopted. Every variant leaves it as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdoptError {
    /// The home has no database.
    #[error(
        "there is no database at {path}, so nothing to adopt: `uplift upgrade` installs the release into a new one"
    )]
    NoDatabase {
        /// Where the database was looked for.
        path: PathBuf,
    },
    /// The release names several databases: adopting compares and records
    /// the main database's schema alone, which would leave the others
    /// without their history.
    #[error(
        "release {release} names several databases ([databases] in release.toml), and `uplift adopt` \
         adopts a home of the main database alone: adopt with a release of that one database, \
         then upgrade"
    )]
    SeveralDatabases {
        /// The release's version.
        release: Version,
    },
    /// The database has no tables.
    #[error(
        "database {path} has no tables, so nothing to adopt: `uplift upgrade` installs the release into it"
    )]
    Empty {
        /// The database file.
        path: PathBuf,
    },
    /// uplift already manages the database.
    #[error(
        "database {path} is already managed by uplift (data version {version}), so nothing to adopt: \
         `uplift status` shows where it stands"
    )]
    AlreadyManaged {
        /// The database file.
        path: PathBuf,
        /// Its data version.
        version: Version,
    },
    /// The installed release does not know the schema of that version.
    #[error(
        "release {release} does not know the schema of {version}, so it cannot adopt a database at it: \
         adopt it at one it knows ({}) — `uplift status` tells which one the database matches — \
         or have {version} listed under [adopt] releases in the release's release.toml",
        known.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    UnknownVersion {
        /// The version asked for.
        version: Version,
        /// The installed release.
        release: Version,
        /// The versions it can adopt at, newest first.
        known: Vec<Version>,
    },
    /// The database's schema is not the release's.
    #[error("{}", describe_differs(path, version, differences))]
    Differs {
        /// The database file.
        path: PathBuf,
        /// The version asked for.
        version: Version,
        /// Each difference, in words.
        differences: Vec<String>,
    },
    /// Locking, reading, backing up or writing failed.
    #[error(transparent)]
    Upgrade(UpgradeError),
}

impl AdoptError {
    /// What kind of failure this is, as a stable word for machines (see
    /// [`UpgradeError::code`]; `docs/errors.md` lists them).
    pub fn code(&self) -> &'static str {
        match self {
            AdoptError::NoDatabase { .. } => "no-database",
            AdoptError::SeveralDatabases { .. } => "several-databases",
            AdoptError::Empty { .. } => "empty-database",
            AdoptError::AlreadyManaged { .. } => "already-managed",
            AdoptError::UnknownVersion { .. } => "unknown-version",
            AdoptError::Differs { .. } => "schema-differs",
            AdoptError::Upgrade(err) => err.code(),
        }
    }
}

impl<E: Into<UpgradeError>> From<E> for AdoptError {
    fn from(err: E) -> Self {
        AdoptError::Upgrade(err.into())
    }
}

fn describe_differs(path: &std::path::Path, version: &Version, differences: &[String]) -> String {
    let mut text = format!(
        "database {} does not have the schema of release {version} ({} difference{}), so it was not \
         adopted and nothing was changed:",
        path.display(),
        differences.len(),
        if differences.len() == 1 { "" } else { "s" }
    );
    for difference in differences {
        text.push_str("\n  - ");
        text.push_str(difference);
    }
    text.push_str(&format!(
        "\nAdopt it at the release whose schema it has (`uplift status` tries each one the release knows); \
         have tables that are not the application's listed under [adopt] ignore in release.toml; \
         or, if the application runs correctly with these differences, \
         `uplift adopt --as {version} --force` adopts it anyway and records them in its history"
    ));
    text
}

/// Adopts the home's database at `options.version`; see the module's
/// documentation. Locks the home for the whole of it.
pub fn adopt(
    home: &Home,
    release: &Release,
    options: &AdoptOptions,
    reporter: Reporter<'_>,
) -> Result<Adopted, AdoptError> {
    let mut phases = Phases::start();
    if release.has_several_databases() {
        return Err(AdoptError::SeveralDatabases {
            release: release.version.clone(),
        });
    }
    let _lock = home.lock(options.wait)?;
    phases.end("lock");
    let path = home.db_path();
    let target = postgres_target(home)?;
    let release = &release_for(release, target.as_ref());
    let mut db = open_existing(home, release, target.as_ref())?
        .ok_or(AdoptError::NoDatabase { path: path.clone() })?;
    unmanaged(db.as_ref())?;
    let known = release.adoptable_versions()?;
    let Some(&(_, last)) = known.iter().find(|(v, _)| *v == options.version) else {
        return Err(AdoptError::UnknownVersion {
            version: options.version.clone(),
            release: release.version.clone(),
            known: known.into_iter().map(|(v, _)| v).collect(),
        });
    };
    let plugins = PluginSet::discover(&release.plugins_dir(), &release.core_plugins, home)?;
    let found = compare_schemas(
        db.as_ref(),
        release,
        &plugins,
        &[(options.version.clone(), last)],
    )?
    .remove(0);
    let differences = found.described();
    if !differences.is_empty() && !options.force {
        return Err(AdoptError::Differs {
            path,
            version: options.version.clone(),
            differences,
        });
    }
    phases.end("compare");
    let migrations: Vec<_> = release
        .migrations()?
        .iter()
        .filter(|m| m.id <= last)
        .cloned()
        .collect();
    let settings = home.settings()?;
    let mut details = AdoptionDetails {
        migrations: migrations.iter().map(|m| m.id).collect(),
        ignored: found.ignored,
        plugin_tables: found.plugin_tables,
        differences,
        backup: None,
    };
    let mut observer = Reporting {
        reporter,
        phases,
        home,
        settings: &settings,
        runner: None,
    };
    let backups = home.backups_dir();
    let mode = Mode::Adopt {
        backups: &backups,
        compress: settings.backups.compress,
    };
    let done = UpgradeTransaction::begin(db.as_mut(), mode)?.adopt(
        &release.app,
        &options.version,
        &migrations,
        &mut details,
        &mut observer,
    )?;
    Ok(Adopted {
        version: options.version.clone(),
        migrations: migrations.iter().map(|m| m.file_name()).collect(),
        backup: done.backup.unwrap_or_default(),
        differences: details.differences,
        ignored: details.ignored,
        plugin_tables: details.plugin_tables,
        phases: observer.phases.times,
        warnings: done.warnings,
    })
}

/// Refuses a database that uplift manages already, or that has no tables.
fn unmanaged(db: &dyn Database) -> Result<(), AdoptError> {
    let path = db.location().to_path_buf();
    let version = db.data_version().map_err(|source| UpgradeError::Meta {
        path: path.clone(),
        source,
    })?;
    if let Some(version) = version {
        return Err(AdoptError::AlreadyManaged { path, version });
    }
    if !db.has_user_tables()? {
        return Err(AdoptError::Empty { path });
    }
    Ok(())
}

/// Compares the database's schema with the schema of each of `candidates`
/// (a version and the last migration its schema has), in their order. The
/// release's migrations run once, in memory.
pub(super) fn compare_schemas(
    db: &dyn Database,
    release: &Release,
    plugins: &PluginSet,
    candidates: &[(Version, u32)],
) -> Result<Vec<SchemaMatch>, UpgradeError> {
    let ignores = |name: &str| release.adopt.ignores(name);
    let whole = db.schema()?;
    let ignored = whole.clone().without(|name| !ignores(name)).names();
    let actual = whole.without(ignores);
    let checkpoints: Vec<u32> = candidates.iter().map(|(_, last)| *last).collect();
    let schemas = db.release_schemas(release, &checkpoints)?;
    let owned: Vec<_> = plugins
        .plugins()
        .iter()
        .filter(|p| p.active)
        .map(|p| &p.manifest.capabilities)
        .collect();
    let mut matches = Vec::with_capacity(candidates.len());
    for (version, last) in candidates {
        let expected = schemas
            .get(last)
            .cloned()
            .unwrap_or_default()
            .without(ignores);
        let mut actual = actual.clone();
        let plugin_tables = expected.take_extras(&mut actual, |name| {
            owned.iter().any(|c| c.under_owned_prefix(name))
        });
        matches.push(SchemaMatch {
            version: version.clone(),
            last_migration: *last,
            differences: expected.compare(&actual),
            distance: expected.distance(&actual),
            ignored: ignored.clone(),
            plugin_tables,
        });
    }
    Ok(matches)
}

//! Upgrade-path verification: for every pair of an application's releases
//! i < j, data created at i and upgraded directly to j must end up with the
//! same schema as a fresh install of j. This is `uplift verify-paths`, the
//! check an application's CI runs before it ships a release. Each path also
//! reports how its upgrade moved the releases' core plugins (a first
//! activation, a plugin upgrade), and fails when a release ships a plugin
//! older than an earlier release's (a plugin downgrade, which the upgrade
//! refuses).
//!
//! The schema is compared structurally (columns, types, constraints, keys,
//! indexes, views, triggers) rather than by the text of `CREATE` statements,
//! because `ALTER TABLE ADD COLUMN` and a table rebuild legitimately leave
//! different text for the same table. uplift's own tables and tables owned by
//! plugins (which hooks create on some paths only) are left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backup::NoProgress;
use crate::engine::EngineError;
use crate::engine::sqlite::schema;
use crate::errors::chain_text;
use crate::home::Home;
use crate::hooks::{PluginChange, PluginSet};
use crate::release::{Release, ReleaseError};
use crate::schema::Schema;
use crate::upgrade::error::UpgradeError;
use crate::upgrade::{self, Outcome, Reporter, UpgradeOptions};
use crate::version::Version;

/// Why `verify-paths` could not verify the upgrade paths (as opposed to
/// finding that a path leads to a different schema).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathsError {
    /// A release folder is invalid.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// Two folders hold the same release version.
    #[error("{first} and {second} are both release {version}: give each release once")]
    DuplicateVersion {
        /// The version both hold.
        version: Version,
        /// One of the two folders.
        first: PathBuf,
        /// The other folder.
        second: PathBuf,
    },
    /// Two releases belong to different applications.
    #[error(
        "{path} is release of {found:?}, the others are of {expected:?}: give one application's releases"
    )]
    MixedApps {
        /// The release folder whose application differs.
        path: PathBuf,
        /// Its application.
        found: String,
        /// The other releases' application.
        expected: String,
    },
    /// `uplift testdb` would overwrite a file.
    #[error("{path} already exists: give a path that does not, or remove it first")]
    Exists {
        /// The file that exists.
        path: PathBuf,
    },
    /// The fresh install a test database starts from failed.
    #[error("the fresh install of {version} failed")]
    Install {
        /// The release.
        version: Version,
        /// Why.
        #[source]
        cause: Box<UpgradeError>,
    },
    /// The test database could not be put in place.
    #[error("could not write {path}")]
    Keep {
        /// Where it was to go.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Fewer than two releases.
    #[error("verify-paths needs at least two release folders, got {0}")]
    TooFew(usize),
    /// Scratch space could not be made.
    #[error("could not create a scratch folder")]
    Scratch(#[source] std::io::Error),
    /// A release's plugins could not be read.
    #[error(transparent)]
    Plugins(#[from] crate::hooks::HookError),
    /// A fixture file could not be read.
    #[error("fixture {path} failed")]
    FixtureUnreadable {
        /// The fixture file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A fixture file's SQL failed.
    #[error("fixture {path} failed: {cause}")]
    Fixture {
        /// The fixture file.
        path: PathBuf,
        /// The database's error (shown in the message).
        cause: EngineError,
    },
}

impl PathsError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them). A fresh install that failed has its
    /// cause's code.
    pub fn code(&self) -> &'static str {
        match self {
            PathsError::Release(err) => err.code(),
            PathsError::DuplicateVersion { .. } => "duplicate-release",
            PathsError::MixedApps { .. } => "mixed-applications",
            PathsError::Exists { .. } => "file-exists",
            PathsError::Install { cause, .. } => cause.code(),
            PathsError::Keep { .. } | PathsError::Scratch(_) => "io",
            PathsError::TooFew(_) => "too-few-releases",
            PathsError::Plugins(err) => err.code(),
            PathsError::FixtureUnreadable { .. } | PathsError::Fixture { .. } => "fixture",
        }
    }
}

/// The result of one upgrade path.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    /// The release the data was created at.
    pub from: Version,
    /// The release it was upgraded to.
    pub to: Version,
    /// `ok`, `schema differs` or `upgrade failed`.
    pub result: &'static str,
    /// What differs from a fresh install, or why the upgrade failed.
    pub problems: Vec<String>,
    /// The plugins whose version the path's upgrade moved (first
    /// activations, upgrades), by name; empty when it failed.
    pub plugins: Vec<PluginChange>,
}

impl PathReport {
    /// Whether the path is sound.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies every upgrade path between `release_dirs` (in any order).
/// Each path runs in its own scratch home: nothing outside it is touched.
/// `progress` is told about each path as it finishes.
pub fn verify_paths(
    release_dirs: &[PathBuf],
    progress: &mut dyn FnMut(&PathReport),
) -> Result<Vec<PathReport>, PathsError> {
    let releases = load_releases(release_dirs)?;
    let scratch = tempfile::tempdir().map_err(PathsError::Scratch)?;
    let owned = owned_prefixes(&releases, &Home::new(scratch.path().join("plugins")))?;
    let mut reports = Vec::new();
    let mut fresh: BTreeMap<usize, Result<Schemas, String>> = BTreeMap::new();
    for j in 1..releases.len() {
        let target = &releases[j];
        let fresh_schema = fresh.entry(j).or_insert_with(|| {
            let home = Home::new(scratch.path().join(format!("fresh-{j}")));
            install(&home, target)
                .map_err(|e| chain_text(&e))
                .and_then(|()| home_schemas(&home, target))
                .map(|schemas| without_prefixes(schemas, &owned))
        });
        for (i, origin) in releases.iter().enumerate().take(j) {
            let home = Home::new(scratch.path().join(format!("path-{i}-{j}")));
            let upgraded = upgrade_path(&home, origin, target)
                .map(|(schemas, plugins)| (without_prefixes(schemas, &owned), plugins));
            let failed = |problem: String| PathReport {
                from: origin.version.clone(),
                to: target.version.clone(),
                result: "upgrade failed",
                problems: vec![problem],
                plugins: Vec::new(),
            };
            let report = match (&*fresh_schema, upgraded) {
                (Err(e), _) => failed(format!("fresh install of {} failed: {e}", target.version)),
                (_, Err(e)) => failed(e),
                (Ok(expected), Ok((actual, plugins))) => {
                    let problems = schema_differences(expected, &actual);
                    PathReport {
                        from: origin.version.clone(),
                        to: target.version.clone(),
                        result: if problems.is_empty() {
                            "ok"
                        } else {
                            "schema differs"
                        },
                        problems,
                        plugins,
                    }
                }
            };
            progress(&report);
            reports.push(report);
            let _ = std::fs::remove_dir_all(home.root());
        }
    }
    Ok(reports)
}

/// Each database's schema, by name (`main` alone in a home of one).
type Schemas = BTreeMap<String, Schema>;

/// The schema of each of `release`'s databases in `home`.
fn home_schemas(home: &Home, release: &Release) -> Result<Schemas, String> {
    let mut schemas = Schemas::new();
    for database in &release.databases {
        let path = home.root().join(&database.file);
        let schema = schema::read_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        schemas.insert(database.name.clone(), schema);
    }
    Ok(schemas)
}

fn without_prefixes(schemas: Schemas, owned: &[String]) -> Schemas {
    schemas
        .into_iter()
        .map(|(name, schema)| (name, schema.without_prefixes(owned)))
        .collect()
}

/// The differences of each database's schema, those of a database other
/// than `main` prefixed with its name.
fn schema_differences(expected: &Schemas, actual: &Schemas) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = Schema::default();
    for (name, schema) in expected {
        let differences = schema.differences(actual.get(name).unwrap_or(&empty));
        problems.extend(differences.into_iter().map(|d| match name.as_str() {
            crate::release::MAIN_DATABASE => d,
            _ => format!("database {name}: {d}"),
        }));
    }
    problems
}

/// The table prefixes plugins of any of the releases own: their tables are
/// created by hooks, which run on upgrades only, so they are not compared.
fn owned_prefixes(releases: &[Release], scratch: &Home) -> Result<Vec<String>, PathsError> {
    let mut prefixes = Vec::new();
    for release in releases {
        let plugins = PluginSet::discover(&release.plugins_dir(), &release.core_plugins, scratch)?;
        for plugin in plugins.plugins() {
            if let Some(prefix) = &plugin.manifest.capabilities.owns {
                prefixes.push(prefix.clone());
            }
        }
    }
    prefixes.sort();
    prefixes.dedup();
    Ok(prefixes)
}

fn load_releases(dirs: &[PathBuf]) -> Result<Vec<Release>, PathsError> {
    if dirs.len() < 2 {
        return Err(PathsError::TooFew(dirs.len()));
    }
    let mut releases = dirs
        .iter()
        .map(|d| Release::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    for pair in releases.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(PathsError::DuplicateVersion {
                version: pair[1].version.clone(),
                first: pair[0].dir.clone(),
                second: pair[1].dir.clone(),
            });
        }
        if pair[0].app != pair[1].app {
            return Err(PathsError::MixedApps {
                path: pair[1].dir.clone(),
                found: pair[1].app.clone(),
                expected: pair[0].app.clone(),
            });
        }
    }
    Ok(releases)
}

fn install(home: &Home, release: &Release) -> Result<(), UpgradeError> {
    upgrade::upgrade(
        home,
        release,
        &UpgradeOptions::default(),
        Reporter::silent(&mut NoProgress),
    )
    .map(|_| ())
}

/// Fresh install at `origin`, its fixtures, then a direct upgrade to
/// `target`; returns the resulting schema and the plugins whose version the
/// upgrade moved.
fn upgrade_path(
    home: &Home,
    origin: &Release,
    target: &Release,
) -> Result<(Schemas, Vec<PluginChange>), String> {
    install(home, origin)
        .map_err(|e| format!("install of {} failed: {}", origin.version, chain_text(&e)))?;
    load_home_fixtures(home, origin).map_err(|e| chain_text(&e))?;
    let outcome = upgrade::upgrade(
        home,
        target,
        &UpgradeOptions::default(),
        Reporter::silent(&mut NoProgress),
    )
    .map_err(|e| {
        format!(
            "upgrade {} -> {} failed: {}",
            origin.version,
            target.version,
            chain_text(&e)
        )
    })?;
    let plugins = match outcome {
        Outcome::Upgraded { plan, .. } => plan.plugins,
        _ => Vec::new(),
    };
    let schemas = home_schemas(home, target)?;
    for database in &target.databases {
        let path = home.root().join(&database.file);
        let integrity = schema::integrity_check(&path).map_err(|e| e.to_string())?;
        if integrity != "ok" {
            return Err(format!(
                "integrity_check of {} after the upgrade: {integrity}",
                database.file
            ));
        }
    }
    Ok((schemas, plugins))
}

/// Loads `release`'s fixtures into the databases of `home`: `fixtures/*.sql`
/// into `main`, and in a release declaring `[databases]`,
/// `fixtures/<name>/*.sql` into database `name`. Returns how many files
/// were loaded.
pub fn load_home_fixtures(home: &Home, release: &Release) -> Result<usize, PathsError> {
    let mut loaded = load_fixtures(&home.db_path(), release)?;
    if release.declares_databases {
        for database in &release.databases {
            let dir = release.dir.join("fixtures").join(&database.name);
            loaded += load_fixture_dir(&dir, &home.root().join(&database.file))?;
        }
    }
    Ok(loaded)
}

/// Runs `<release>/fixtures/*.sql` in name order: the sample data an
/// application ships so that paths are tested with rows in the tables.
pub fn load_fixtures(db: &Path, release: &Release) -> Result<usize, PathsError> {
    load_fixture_dir(&release.dir.join("fixtures"), db)
}

/// Runs `dir/*.sql` in name order on the database `db`.
fn load_fixture_dir(dir: &Path, db: &Path) -> Result<usize, PathsError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect(),
        Err(_) => return Ok(0),
    };
    files.sort();
    for path in &files {
        let sql =
            std::fs::read_to_string(path).map_err(|source| PathsError::FixtureUnreadable {
                path: path.clone(),
                source,
            })?;
        schema::execute_script(db, &sql).map_err(|cause| PathsError::Fixture {
            path: path.clone(),
            cause,
        })?;
    }
    Ok(files.len())
}

/// Builds at `out` a database at `release` with its fixtures loaded: where
/// `verify-paths` starts each path, kept for `uplift hooks test` and for
/// development (`uplift testdb`). It is built in a scratch home beside
/// `out` and moved there whole, so `out` never holds half a database.
/// `out` must not exist. For a release of several databases `out` is made a
/// folder holding each database's file. Returns how many fixture files
/// were loaded.
pub fn build_test_database(release: &Release, out: &Path) -> Result<usize, PathsError> {
    if out.exists() {
        return Err(PathsError::Exists {
            path: out.to_path_buf(),
        });
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let scratch = tempfile::Builder::new()
        .prefix(".uplift-testdb-")
        .tempdir_in(parent)
        .map_err(PathsError::Scratch)?;
    let home = Home::new(scratch.path().join("home"));
    install(&home, release).map_err(|cause| PathsError::Install {
        version: release.version.clone(),
        cause: Box::new(cause),
    })?;
    let loaded = load_home_fixtures(&home, release)?;
    let keep = |source| PathsError::Keep {
        path: out.to_path_buf(),
        source,
    };
    if release.has_several_databases() {
        // The databases in a folder beside `out`, renamed to it whole
        // (refused when `out` was created meanwhile: a rename onto an
        // existing non-empty folder fails, and onto a file too).
        let folder = scratch.path().join("databases");
        std::fs::create_dir(&folder).map_err(keep)?;
        for database in &release.databases {
            std::fs::rename(
                home.root().join(&database.file),
                folder.join(&database.file),
            )
            .map_err(keep)?;
        }
        if out.exists() {
            return Err(PathsError::Exists {
                path: out.to_path_buf(),
            });
        }
        std::fs::rename(&folder, out).map_err(keep)?;
        return Ok(loaded);
    }
    // Refuses to replace a file created meanwhile (link(2), unlike rename,
    // fails when the name exists).
    std::fs::hard_link(home.db_path(), out).map_err(keep)?;
    Ok(loaded)
}

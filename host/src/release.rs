//! The installed release: a folder holding `release.toml` (application name,
//! version, core plugins), `migrations/NNNN_name.sql` and `plugins/*.wasm`.
//!
//! ```toml
//! app = "learnhub"
//! version = "1.0.0"
//! core_plugins = ["big-leap", "email-backfill"]
//!
//! # For sites whose database uplift did not create (`uplift adopt`).
//! [adopt]
//! # Tables that are not the application's: left alone, never differences.
//! ignore = ["django_migrations", "cache_*"]
//! # Earlier releases a site can be adopted at: the last migration of this
//! # release that each one's schema includes.
//! releases = { "0.6.4" = 3, "0.2.0" = 2 }
//!
//! # A migration edited after sites applied it (a harmless fix): the
//! # checksums of its earlier files, accepted as applied.
//! [migrations]
//! accepted = { "0003_learner_email.sql" = ["9f86d08188...(64 hex digits)"] }
//! ```
//!
//! A home of several databases names them, each by a name (how SQL and
//! messages call it) and its file in the home; `main` is required and is
//! the home's `db.sqlite3`, where the data version is recorded. Each
//! database's migrations are then in `migrations/<name>/NNNN_name.sql`
//! (see [`DatabaseSpec`]). A release without `[databases]` has the one
//! database `main` and its migrations directly in `migrations/`.
//!
//! ```toml
//! [databases]
//! main = "db.sqlite3"
//! jobs = "job_storage.sqlite3"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::disk::{IoError, io_err};
use crate::engine::EngineError;
use crate::version::{Version, VersionError};

/// Problems with a release folder. Each names the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// No release was given.
    #[error(
        "no release given: pass --release DIR or set UPLIFT_RELEASE to the installed release's folder"
    )]
    NotGiven,
    /// The folder or its `release.toml` is missing.
    #[error(
        "{path} not found: is this the installed release's folder? (it must hold release.toml)"
    )]
    Missing {
        /// The `release.toml` that was not found.
        path: PathBuf,
    },
    /// A file or folder could not be read.
    #[error(transparent)]
    Read(#[from] IoError),
    /// `release.toml` is not valid TOML or lacks a field.
    #[error("invalid {path}: {message}")]
    Manifest {
        /// The file that is not valid: `release.toml`, or a migration that
        /// is not UTF-8.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The `version` field does not parse.
    #[error("invalid {path}: field `version`")]
    Version {
        /// The `release.toml` file.
        path: PathBuf,
        /// Why the version does not parse.
        #[source]
        source: VersionError,
    },
    /// A file in `migrations/` is not named `NNNN_name.sql`.
    #[error(
        "migration file {path} is not named NNNN_name.sql (digits, an underscore, a name, .sql): rename it"
    )]
    MigrationName {
        /// The misnamed file.
        path: PathBuf,
    },
    /// Two migrations share a number.
    #[error("migrations {first} and {second} have the same number {id}: renumber one of them")]
    DuplicateMigration {
        /// The number they share.
        id: u32,
        /// One of the two files.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
    },
    /// `[databases]` names a database or a file that cannot be one.
    #[error("invalid {path}: `databases.{name}`: {problem}")]
    Database {
        /// The `release.toml` file.
        path: PathBuf,
        /// The database's name as written.
        name: String,
        /// What is wrong, and what to do.
        problem: String,
    },
    /// A release that declares `[databases]` has a migration directly in
    /// `migrations/`, which belongs to no database.
    #[error(
        "migration file {path} is directly in migrations/, but release.toml declares [databases]: \
         move it into migrations/<database>/ (migrations/main/ for the main database)"
    )]
    MigrationOutsideDatabase {
        /// The file.
        path: PathBuf,
    },
    /// A folder in `migrations/` names no database of `[databases]`.
    #[error(
        "{path} is not the migrations of any database in release.toml's [databases] ({known}): \
         rename it after one, or add the database"
    )]
    UnknownDatabaseFolder {
        /// The folder.
        path: PathBuf,
        /// The databases declared, comma-separated.
        known: String,
    },
    /// A migration does not apply to an empty database (or SQLite could not
    /// open one in memory), so the release's schema is unknown.
    #[error("migration {path} does not apply to an empty database: {cause}")]
    Schema {
        /// The migration that does not apply (the release folder when
        /// SQLite failed outside any one migration).
        path: PathBuf,
        /// The database's error (shown in the message).
        cause: EngineError,
    },
}

impl ReleaseError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them): `no-release` when none was given,
    /// else `release`, as in [`crate::UpgradeError::code`].
    pub fn code(&self) -> &'static str {
        match self {
            ReleaseError::NotGiven => "no-release",
            _ => "release",
        }
    }
}

/// `release.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseToml {
    app: String,
    version: String,
    #[serde(default)]
    core_plugins: Vec<String>,
    #[serde(default)]
    adopt: AdoptToml,
    #[serde(default)]
    migrations: MigrationsToml,
    databases: Option<BTreeMap<String, String>>,
}

/// The `[migrations]` table of `release.toml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationsToml {
    #[serde(default)]
    accepted: BTreeMap<String, Vec<String>>,
}

/// The `[adopt]` table of `release.toml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdoptToml {
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    releases: BTreeMap<String, u32>,
}

/// What a release says about adopting a database it did not create.
#[derive(Debug, Clone, Default)]
pub struct Adoptable {
    /// Tables (globs, case-insensitive) that are not the application's.
    pub ignore: Vec<glob::Pattern>,
    /// Earlier releases a database can be adopted at: version → the
    /// number of the last of this release's migrations its schema has.
    pub releases: BTreeMap<Version, u32>,
}

impl Adoptable {
    /// Whether `table` is one the application left out of adoption.
    pub fn ignores(&self, table: &str) -> bool {
        let options = glob::MatchOptions {
            case_sensitive: false,
            ..glob::MatchOptions::new()
        };
        self.ignore.iter().any(|p| p.matches_with(table, options))
    }
}

/// An installed release, loaded from its folder.
#[derive(Debug, Clone)]
pub struct Release {
    /// The release folder.
    pub dir: PathBuf,
    /// The application's name.
    pub app: String,
    /// The release version: what the data version becomes after an upgrade.
    pub version: Version,
    /// Plugins that are always active with this release.
    pub core_plugins: Vec<String>,
    /// Which databases it can adopt, and which tables adopting ignores.
    pub adopt: Adoptable,
    /// Migrations edited after sites applied them, by file name: the
    /// checksums of the earlier files the release accepts as applied
    /// (`[migrations] accepted`), so that a harmless edit is not drift.
    pub accepted_edits: BTreeMap<String, Vec<String>>,
    /// The home's databases, `main` first; without `[databases]` in
    /// `release.toml`, `main` (`db.sqlite3`) alone.
    pub databases: Vec<DatabaseSpec>,
    /// Whether `release.toml` declares `[databases]`: each database's
    /// migrations are then in `migrations/<name>/`.
    pub declares_databases: bool,
    /// The release's migrations by database, read on first use (see
    /// [`Release::migrations_of`]).
    migrations: OnceLock<BTreeMap<String, Vec<Migration>>>,
    /// The engine folder under `migrations/` whose files replace the
    /// shared ones of the same number (`postgres`), if any: see
    /// [`Release::for_engine`].
    engine_folder: Option<&'static str>,
}

/// One database of the home, as `release.toml`'s `[databases]` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSpec {
    /// Its name: `main`, or how SQL reaches it (`jobs.queue`) and messages
    /// call it. Lowercase letters, digits and underscores, starting with a
    /// letter.
    pub name: String,
    /// Its file in the home: a plain file name.
    pub file: String,
}

/// The name of the database that records the data version: the home's
/// `db.sqlite3`.
pub const MAIN_DATABASE: &str = "main";

/// The main database's file in the home.
pub const MAIN_FILE: &str = "db.sqlite3";

/// The folders under a release's `migrations/` that hold one engine's own
/// files (`migrations/postgres/0004_progress.sql` replaces
/// `migrations/0004_progress.sql` on PostgreSQL). Their names are reserved:
/// no other use of `migrations/` may take them.
pub const ENGINE_FOLDERS: &[&str] = &["postgres"];

/// One schema migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The database it changes (`main`, or a name of `[databases]`).
    pub database: String,
    /// Whether it is in `migrations/<database>/` (a release declaring
    /// `[databases]`), rather than directly in `migrations/`.
    pub in_database_folder: bool,
    /// The number in the file name (`0003` → 3); migrations run in this order.
    pub id: u32,
    /// The part of the file name after the number (`0003_add_email.sql` →
    /// `add_email`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The SQL text.
    pub sql: String,
    /// SHA-256 of the file's bytes, in hex.
    pub checksum: String,
}

impl Migration {
    /// The file name, e.g. `0003_add_email.sql`, prefixed with its
    /// database's folder in a release declaring `[databases]`
    /// (`jobs/0001_queue.sql`): how messages and `[migrations] accepted`
    /// name it.
    pub fn file_name(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{:04}_{}.sql", self.id, self.name));
        if self.in_database_folder {
            format!("{}/{file}", self.database)
        } else {
            file
        }
    }
}

impl Release {
    /// The release folder given on the command line (or by
    /// `UPLIFT_RELEASE`), loaded.
    pub fn resolve(given: Option<&Path>) -> Result<Release, ReleaseError> {
        Release::load(given.ok_or(ReleaseError::NotGiven)?)
    }

    /// Loads `release.toml` of the release at `dir` (its migrations are read
    /// when first needed: [`Release::migrations`]).
    pub fn load(dir: &Path) -> Result<Release, ReleaseError> {
        let text = read_to_string(&dir.join("release.toml"))?;
        Release::from_toml(dir, &text)
    }

    /// The release at `dir` whose `release.toml` holds `text`: what
    /// [`Release::load`] makes of the file, without reading it.
    pub(crate) fn from_toml(dir: &Path, text: &str) -> Result<Release, ReleaseError> {
        let toml_path = dir.join("release.toml");
        let (parsed, version) = parse_release_toml(&toml_path, text)?;
        if parsed.app.trim().is_empty() {
            return Err(ReleaseError::Manifest {
                path: toml_path,
                message: "field `app` is empty: give the application's name".into(),
            });
        }
        let adopt = adoptable(&toml_path, parsed.adopt)?;
        let accepted_edits = accepted_edits(&toml_path, parsed.migrations)?;
        let declares_databases = parsed.databases.is_some();
        let databases = match parsed.databases {
            Some(written) => databases(&toml_path, written)?,
            None => vec![DatabaseSpec {
                name: MAIN_DATABASE.into(),
                file: MAIN_FILE.into(),
            }],
        };
        Ok(Release {
            dir: dir.to_path_buf(),
            app: parsed.app,
            version,
            core_plugins: parsed.core_plugins,
            adopt,
            accepted_edits,
            databases,
            declares_databases,
            migrations: OnceLock::new(),
            engine_folder: None,
        })
    }

    /// This release as an engine sees it: its migrations are the shared
    /// ones with each file of `migrations/<folder>/` (one of
    /// [`ENGINE_FOLDERS`]) in place of the shared one of the same number.
    /// An engine file without a shared one of its number is refused when
    /// the migrations are read, so that every engine numbers them alike.
    pub fn for_engine(&self, folder: &'static str) -> Release {
        debug_assert!(ENGINE_FOLDERS.contains(&folder));
        Release {
            migrations: OnceLock::new(),
            engine_folder: Some(folder),
            ..self.clone()
        }
    }

    /// Whether the home holds more than the main database: its upgrade is
    /// one transaction over all of them (see `engine::sqlite::multi`).
    pub fn has_several_databases(&self) -> bool {
        self.databases.len() > 1
    }

    /// Where database `name`'s migrations are.
    fn migrations_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join("migrations");
        if self.declares_databases {
            dir.join(name)
        } else {
            dir
        }
    }

    /// How many migrations the main database has in the release, counted
    /// from the folder's listing without reading any (see
    /// [`count_migration_files`]).
    pub fn migration_count(&self) -> usize {
        self.migration_count_of(MAIN_DATABASE)
    }

    /// How many migrations database `name` has in the release, counted
    /// from the folder's listing without reading any.
    pub fn migration_count_of(&self, name: &str) -> usize {
        match self.migrations.get() {
            Some(migrations) => migrations.get(name).map_or(0, Vec::len),
            None => count_migration_files(&self.migrations_dir(name)),
        }
    }

    /// The main database's migrations, in order of their numbers (see
    /// [`Release::migrations_of`]).
    pub fn migrations(&self) -> Result<&[Migration], ReleaseError> {
        self.migrations_of(MAIN_DATABASE)
    }

    /// Database `name`'s migrations, in order of their numbers: read,
    /// checked and hashed (every database's at once) the first time they
    /// are asked for, so that the no-op upgrade (`uplift run` on every
    /// start) never reads them. A name the release does not declare has
    /// none.
    ///
    /// Fails when a file in `migrations/` is misnamed, unreadable or not
    /// UTF-8, or two share a number; in a release declaring `[databases]`,
    /// also when a migration is directly in `migrations/` or a folder there
    /// names no database.
    pub fn migrations_of(&self, name: &str) -> Result<&[Migration], ReleaseError> {
        let all = match self.migrations.get() {
            Some(all) => all,
            None => {
                let loaded = self.load_all_migrations()?;
                self.migrations.get_or_init(|| loaded)
            }
        };
        Ok(all.get(name).map_or(&[], Vec::as_slice))
    }

    /// Every database's migrations, `main`'s first.
    pub fn all_migrations(&self) -> Result<Vec<&Migration>, ReleaseError> {
        let mut all = Vec::new();
        for db in &self.databases {
            all.extend(self.migrations_of(&db.name)?);
        }
        Ok(all)
    }

    fn load_all_migrations(&self) -> Result<BTreeMap<String, Vec<Migration>>, ReleaseError> {
        let mut all = BTreeMap::new();
        if !self.declares_databases {
            let dir = self.migrations_dir(MAIN_DATABASE);
            let mut main = load_migrations(&dir, MAIN_DATABASE, false)?;
            if let Some(folder) = self.engine_folder {
                replace_with_engine_files(&mut main, &dir.join(folder))?;
            }
            all.insert(MAIN_DATABASE.to_string(), main);
            return Ok(all);
        }
        self.check_migrations_folder()?;
        for db in &self.databases {
            let loaded = load_migrations(&self.migrations_dir(&db.name), &db.name, true)?;
            all.insert(db.name.clone(), loaded);
        }
        Ok(all)
    }

    /// In a release declaring `[databases]`: `migrations/` holds only a
    /// folder per database (and files that are no migration, a README).
    fn check_migrations_folder(&self) -> Result<(), ReleaseError> {
        let dir = self.dir.join("migrations");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io_err("could not read", &dir)(source).into()),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("could not read", &dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !self.databases.iter().any(|d| d.name == name) {
                    let known: Vec<&str> = self.databases.iter().map(|d| d.name.as_str()).collect();
                    return Err(ReleaseError::UnknownDatabaseFolder {
                        path,
                        known: known.join(", "),
                    });
                }
            } else if migration_stem(&name, &path)?.is_some() {
                return Err(ReleaseError::MigrationOutsideDatabase { path });
            }
        }
        Ok(())
    }

    /// The versions a database this release did not create can be adopted
    /// at, newest first, each with the last of this release's migrations
    /// its schema has: this release itself (all of them) and those listed
    /// under `[adopt] releases`. Fails when the migrations cannot be read,
    /// or a listed version is not older than this release or names a
    /// migration it does not have.
    pub fn adoptable_versions(&self) -> Result<Vec<(Version, u32)>, ReleaseError> {
        let migrations = self.migrations()?;
        let invalid = |message: String| ReleaseError::Manifest {
            path: self.dir.join("release.toml"),
            message,
        };
        let mut versions = vec![(self.version.clone(), migrations.last().map_or(0, |m| m.id))];
        for (version, last) in &self.adopt.releases {
            if *version >= self.version {
                return Err(invalid(format!(
                    "`adopt.releases` lists {version}, which is not older than this release ({}): \
                     list only earlier releases",
                    self.version
                )));
            }
            if *last != 0 && !migrations.iter().any(|m| m.id == *last) {
                return Err(invalid(format!(
                    "`adopt.releases` says {version}'s schema ends with migration {last:04}, \
                     but migrations/ has no migration numbered {last:04}"
                )));
            }
            versions.push((version.clone(), *last));
        }
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(versions)
    }

    /// Where the release's bundled plugin components are.
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.join("plugins")
    }

    /// Reads only the version from `release.toml`: the cheap check that the
    /// no-op upgrade path makes before deciding anything else is needed.
    pub fn read_version(dir: &Path) -> Result<Version, ReleaseError> {
        Ok(read_release_toml(dir)?.2)
    }
}

/// Checks `[databases]`: `main` is there and is the home's `db.sqlite3`;
/// every name is a plain identifier SQL can use unquoted (and not one
/// SQLite keeps for itself); every file is a plain file name in the home,
/// none named twice, none one of SQLite's or uplift's own files. Returns
/// the databases, `main` first.
fn databases(
    toml_path: &Path,
    written: BTreeMap<String, String>,
) -> Result<Vec<DatabaseSpec>, ReleaseError> {
    let invalid = |name: &str, problem: String| ReleaseError::Database {
        path: toml_path.to_path_buf(),
        name: name.to_string(),
        problem,
    };
    if !written.contains_key(MAIN_DATABASE) {
        return Err(ReleaseError::Manifest {
            path: toml_path.to_path_buf(),
            message: format!(
                "[databases] has no `main`: add `main = \"{MAIN_FILE}\"` (the database that \
                 records the data version)"
            ),
        });
    }
    let mut specs: Vec<DatabaseSpec> = Vec::new();
    for (name, file) in written {
        let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && name.len() <= 64;
        if !valid_name {
            return Err(invalid(
                &name,
                "a database's name is lowercase letters, digits and underscores, starting with \
                 a letter (at most 64): rename it"
                    .into(),
            ));
        }
        if name == "temp"
            || name.starts_with("sqlite_")
            || name.starts_with("uplift")
            || ENGINE_FOLDERS.contains(&name.as_str())
        {
            return Err(invalid(
                &name,
                "`temp`, `sqlite_*`, `uplift*` and `postgres` are SQLite's and uplift's own \
                 names (`migrations/postgres/` holds PostgreSQL's own migrations): rename it"
                    .into(),
            ));
        }
        if name == MAIN_DATABASE && file != MAIN_FILE {
            return Err(invalid(
                &name,
                format!(
                    "the main database is the home's {MAIN_FILE:?} (every command reads the data \
                     version there): write `main = \"{MAIN_FILE}\"`"
                ),
            ));
        }
        let plain = !file.is_empty()
            && !file.contains(['/', '\\', '\0'])
            && !file.starts_with('.')
            && file != "..";
        if !plain {
            return Err(invalid(
                &name,
                format!(
                    "{file:?} is not a plain file name: a database is a file directly in the home \
                     (no folders, not hidden), such as \"{name}.sqlite3\""
                ),
            ));
        }
        let reserved = ["-journal", "-wal", "-shm"]
            .iter()
            .any(|s| file.ends_with(s))
            || file.contains("-mj")
            || file.ends_with(".tmp")
            || ["uplift.toml", "uplift.lock", "plugins.toml"].contains(&file.as_str())
            || file.starts_with("uplift-");
        if reserved && file != MAIN_FILE {
            return Err(invalid(
                &name,
                format!(
                    "{file:?} is the name of one of SQLite's or uplift's own files: name the \
                     database's file otherwise, such as \"{name}.sqlite3\""
                ),
            ));
        }
        if let Some(other) = specs.iter().find(|s| s.file.eq_ignore_ascii_case(&file)) {
            return Err(invalid(
                &name,
                format!(
                    "its file {file:?} is also database `{}`'s: give each database its own file",
                    other.name
                ),
            ));
        }
        specs.push(DatabaseSpec { name, file });
    }
    specs.sort_by_key(|s| s.name != MAIN_DATABASE);
    Ok(specs)
}

/// Checks `[migrations] accepted`: each checksum is a SHA-256 in hex, as
/// `uplift migrations list --json` and the drift message show them.
fn accepted_edits(
    toml_path: &Path,
    written: MigrationsToml,
) -> Result<BTreeMap<String, Vec<String>>, ReleaseError> {
    for (file, checksums) in &written.accepted {
        if let Some(bad) = checksums
            .iter()
            .find(|c| c.len() != 64 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ReleaseError::Manifest {
                path: toml_path.to_path_buf(),
                message: format!(
                    "`migrations.accepted` for {file:?} lists {bad:?}, which is not a SHA-256 checksum \
                     (64 hexadecimal digits): copy the recorded checksum the drift message shows"
                ),
            });
        }
    }
    Ok(written
        .accepted
        .into_iter()
        .map(|(file, sums)| {
            (
                file,
                sums.into_iter().map(|c| c.to_ascii_lowercase()).collect(),
            )
        })
        .collect())
}

/// Checks the `[adopt]` table: each glob compiles and each version parses.
fn adoptable(toml_path: &Path, written: AdoptToml) -> Result<Adoptable, ReleaseError> {
    let invalid = |message: String| ReleaseError::Manifest {
        path: toml_path.to_path_buf(),
        message,
    };
    let ignore = written
        .ignore
        .iter()
        .map(|pattern| {
            glob::Pattern::new(pattern).map_err(|e| {
                invalid(format!(
                    "`adopt.ignore` pattern {pattern:?} is not a valid glob ({}): use * and ? for any characters",
                    e.msg
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let releases = written
        .releases
        .into_iter()
        .map(|(version, last)| match Version::parse(&version) {
            Ok(parsed) => Ok((parsed, last)),
            Err(e) => Err(invalid(format!(
                "`adopt.releases` key {version:?} is not a version ({e}): write one such as \"0.6.4\""
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Adoptable { ignore, releases })
}

/// Reads and parses `dir/release.toml`: its path, its fields, its version.
fn read_release_toml(dir: &Path) -> Result<(PathBuf, ReleaseToml, Version), ReleaseError> {
    let toml_path = dir.join("release.toml");
    let text = read_to_string(&toml_path)?;
    let (parsed, version) = parse_release_toml(&toml_path, &text)?;
    Ok((toml_path, parsed, version))
}

/// Parses `text`, the contents of `toml_path`: its fields, its version.
fn parse_release_toml(
    toml_path: &Path,
    text: &str,
) -> Result<(ReleaseToml, Version), ReleaseError> {
    let parsed: ReleaseToml = toml::from_str(text).map_err(|e| ReleaseError::Manifest {
        path: toml_path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let version = Version::parse(&parsed.version).map_err(|source| ReleaseError::Version {
        path: toml_path.to_path_buf(),
        source,
    })?;
    Ok((parsed, version))
}

fn read_to_string(path: &Path) -> Result<String, ReleaseError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ReleaseError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            ReleaseError::Read(io_err("could not read", path)(source))
        }
    })
}

/// Reads `dir/NNNN_name.sql` files in order, database `database`'s
/// migrations (`in_database_folder`: `dir` is `migrations/<database>/`). A
/// missing folder means no migrations; files not ending in `.sql` are
/// ignored (a README, say), and so are folders in a release without
/// `[databases]`.
fn load_migrations(
    dir: &Path,
    database: &str,
    in_database_folder: bool,
) -> Result<Vec<Migration>, ReleaseError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_err("could not read", dir)(source).into()),
    };
    let mut by_id: BTreeMap<u32, Migration> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(io_err("could not read", dir))?;
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !in_database_folder && path.is_dir() {
            continue;
        }
        let Some(stem) = migration_stem(&file_name, &path)? else {
            continue;
        };
        let (id, name) = parse_migration_name(stem)
            .ok_or_else(|| ReleaseError::MigrationName { path: path.clone() })?;
        let bytes = std::fs::read(&path).map_err(io_err("could not read", &path))?;
        let sql = String::from_utf8(bytes.clone()).map_err(|_| ReleaseError::Manifest {
            path: path.clone(),
            message: "not UTF-8 text".into(),
        })?;
        let migration = Migration {
            database: database.to_string(),
            in_database_folder,
            id,
            name: name.to_string(),
            path: path.clone(),
            sql,
            checksum: sha256_hex(&bytes),
        };
        if let Some(first) = by_id.insert(id, migration) {
            return Err(ReleaseError::DuplicateMigration {
                id,
                first: first.path,
                second: path,
            });
        }
    }
    Ok(by_id.into_values().collect())
}

/// Puts each migration of the engine folder `dir` in place of the shared
/// one of its number; refuses one that has none.
fn replace_with_engine_files(migrations: &mut [Migration], dir: &Path) -> Result<(), ReleaseError> {
    for own in load_migrations(dir, MAIN_DATABASE, false)? {
        let Some(shared) = migrations.iter_mut().find(|m| m.id == own.id) else {
            return Err(ReleaseError::Manifest {
                message: format!(
                    "it has no shared migration numbered {:04} to replace: every engine's \
                     migrations are numbered alike (add migrations/{:04}_{}.sql, even one \
                     holding only a comment)",
                    own.id, own.id, own.name
                ),
                path: own.path,
            });
        };
        *shared = own;
    }
    Ok(())
}

/// `0003_add_email` → (3, "add_email").
/// The stem of a migration file's name (`0003_add_email` of
/// `0003_add_email.sql`), or `None` for a file that is no migration (hidden
/// files, notes). A file that looks meant to be one but would be passed
/// over (`0008_x.SQL`, `0008_x.sql.txt`) is an error rather than silently
/// not applied.
fn migration_stem<'a>(file_name: &'a str, path: &Path) -> Result<Option<&'a str>, ReleaseError> {
    if let Some(stem) = file_name.strip_suffix(".sql") {
        return Ok(Some(stem));
    }
    let looks_like_one = file_name.starts_with(|c: char| c.is_ascii_digit())
        || file_name.to_ascii_lowercase().ends_with(".sql");
    if looks_like_one {
        return Err(ReleaseError::MigrationName {
            path: path.to_path_buf(),
        });
    }
    Ok(None)
}

/// How many migrations the release's `migrations/` holds, from the folder's
/// listing alone (nothing is read): the no-op path compares it with the
/// history's count.
pub(crate) fn count_migration_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".sql"))
                .is_some_and(|stem| parse_migration_name(stem).is_some())
        })
        .count()
}

fn parse_migration_name(stem: &str) -> Option<(u32, &str)> {
    let (digits, name) = stem.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some((digits.parse().ok()?, name))
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::{Release, ReleaseError, parse_migration_name};

    fn write(dir: &std::path::Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Each database's migrations come from its folder, named with it; a
    /// database without a folder has none; `main` comes first.
    #[test]
    fn a_release_of_several_databases_reads_each_ones_folder() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "release.toml",
            "app = \"a\"\nversion = \"1.0\"\n[databases]\njobs = \"jobs.sqlite3\"\n\
             main = \"db.sqlite3\"\nlogs = \"logs.sqlite3\"\n",
        );
        write(
            dir.path(),
            "migrations/main/0001_a.sql",
            "CREATE TABLE a (x);",
        );
        write(
            dir.path(),
            "migrations/jobs/0001_q.sql",
            "CREATE TABLE jobs.q (x);",
        );
        write(
            dir.path(),
            "migrations/jobs/0002_r.sql",
            "CREATE TABLE jobs.r (x);",
        );
        write(dir.path(), "migrations/README.md", "notes");
        let release = Release::load(dir.path()).unwrap();
        let names: Vec<&str> = release.databases.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["main", "jobs", "logs"]);
        assert_eq!(release.migration_count_of("jobs"), 2);
        let jobs: Vec<String> = release
            .migrations_of("jobs")
            .unwrap()
            .iter()
            .map(|m| m.file_name())
            .collect();
        assert_eq!(jobs, ["jobs/0001_q.sql", "jobs/0002_r.sql"]);
        assert_eq!(
            release.migrations().unwrap()[0].file_name(),
            "main/0001_a.sql"
        );
        assert!(release.migrations_of("logs").unwrap().is_empty());
        assert_eq!(release.all_migrations().unwrap().len(), 3);
    }

    /// A release without `[databases]` is the one database `main`, its
    /// migrations directly in `migrations/`, named as before.
    #[test]
    fn a_release_without_databases_keeps_the_single_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "release.toml",
            "app = \"a\"\nversion = \"1.0\"\n",
        );
        write(dir.path(), "migrations/0001_a.sql", "CREATE TABLE a (x);");
        write(
            dir.path(),
            "migrations/old/0009_z.sql",
            "CREATE TABLE z (x);",
        );
        let release = Release::load(dir.path()).unwrap();
        assert!(!release.has_several_databases());
        let files: Vec<String> = release
            .migrations()
            .unwrap()
            .iter()
            .map(|m| m.file_name())
            .collect();
        assert_eq!(files, ["0001_a.sql"]);
    }

    /// A migration left directly in `migrations/` of a release declaring
    /// `[databases]` is refused by name.
    #[test]
    fn a_migration_outside_any_database_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "release.toml",
            "app = \"a\"\nversion = \"1.0\"\n[databases]\nmain = \"db.sqlite3\"\n",
        );
        write(dir.path(), "migrations/0001_a.sql", "CREATE TABLE a (x);");
        let release = Release::load(dir.path()).unwrap();
        let err = release.migrations().unwrap_err();
        assert!(
            matches!(&err, ReleaseError::MigrationOutsideDatabase { path } if path.ends_with("0001_a.sql")),
            "{err}"
        );
    }

    #[test]
    fn migration_names_need_a_number_and_a_name() {
        assert_eq!(
            parse_migration_name("0003_add_email"),
            Some((3, "add_email"))
        );
        assert_eq!(parse_migration_name("12_x_y"), Some((12, "x_y")));
        assert_eq!(parse_migration_name("add_email"), None);
        assert_eq!(parse_migration_name("0003"), None);
        assert_eq!(parse_migration_name("0003_"), None);
        assert_eq!(parse_migration_name("00a3_x"), None);
    }

    fn release_with(files: &[(&str, &str)]) -> (tempfile::TempDir, super::Release) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("migrations/postgres")).unwrap();
        for (file, sql) in files {
            std::fs::write(dir.path().join("migrations").join(file), sql).unwrap();
        }
        let release =
            super::Release::from_toml(dir.path(), "app = \"a\"\nversion = \"1.0.0\"\n").unwrap();
        (dir, release)
    }

    #[test]
    fn an_engines_file_replaces_the_shared_one_of_its_number_for_that_engine_only() {
        let (_dir, release) = release_with(&[
            ("0001_a.sql", "shared 1"),
            ("0002_b.sql", "shared 2"),
            ("postgres/0002_b.sql", "postgres 2"),
        ]);
        let shared: Vec<&str> = release
            .migrations()
            .unwrap()
            .iter()
            .map(|m| m.sql.as_str())
            .collect();
        assert_eq!(shared, ["shared 1", "shared 2"]);
        let postgres = release.for_engine("postgres");
        let own: Vec<&str> = postgres
            .migrations()
            .unwrap()
            .iter()
            .map(|m| m.sql.as_str())
            .collect();
        assert_eq!(own, ["shared 1", "postgres 2"]);
        assert_eq!(postgres.migration_count(), 2);
    }

    #[test]
    fn an_engines_file_without_a_shared_one_is_refused() {
        let (_dir, release) = release_with(&[("0001_a.sql", "x"), ("postgres/0002_b.sql", "y")]);
        let err = release
            .for_engine("postgres")
            .migrations()
            .unwrap_err()
            .to_string();
        assert!(err.contains("0002_b.sql"), "{err}");
        assert!(err.contains("no shared migration numbered 0002"), "{err}");
    }
}

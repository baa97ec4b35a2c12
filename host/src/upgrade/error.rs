//! Why an upgrade did not happen.

use std::path::PathBuf;

use crate::backup::BackupError;
use crate::disk::IoError;
use crate::engine::{EngineError, MetaError};
use crate::errors::chain_text;
use crate::home::HomeError;
use crate::hooks::HookError;
use crate::migrations::MigrateError;
use crate::version::Version;

/// Why an upgrade did not happen. Every variant leaves the database as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The home could not be locked or read.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The release's migrations could not be read (or, for
    /// [`crate::engine::Database::adopt_plugin_tables`], do not apply to an empty
    /// database).
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
    /// The database could not be opened or read.
    #[error("database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The database's error.
        #[source]
        source: EngineError,
    },
    /// uplift's bookkeeping in the database is unreadable.
    #[error("database {path}")]
    Meta {
        /// The database file.
        path: PathBuf,
        /// What could not be read.
        #[source]
        source: MetaError,
    },
    /// The database has tables but was never upgraded by uplift.
    #[error(
        "database {path} has tables but no uplift data version, so uplift cannot tell which release \
         created it: if the application made it before it used uplift, `uplift status` tells which \
         release's schema it has and `uplift adopt --as VERSION` adopts it; or restore a backup made \
         by uplift (`uplift dbrestore FILE`)"
    )]
    Unmanaged {
        /// The database file.
        path: PathBuf,
    },
    /// The database was upgraded by a different application.
    #[error(
        "database {path} belongs to application {found:?}, but the release is {expected:?}: check --home and --release"
    )]
    OtherApp {
        /// The database file.
        path: PathBuf,
        /// The application recorded in the database.
        found: String,
        /// The release's application.
        expected: String,
    },
    /// The data is newer than the installed release: a downgrade.
    #[error("{}", describe_newer(.data, .release, .restorable))]
    DataNewer {
        /// The database's data version.
        data: Version,
        /// The installed release's version.
        release: Version,
        /// Backups the installed release can restore, newest first.
        restorable: Vec<String>,
    },
    /// An installed plugin is older than the version the data was last
    /// upgraded with: a plugin downgrade.
    #[error(
        "{}",
        describe_plugin_downgrade(.plugin, .recorded, .installed, *.optional, .backups, .restorable)
    )]
    PluginDowngrade {
        /// The plugin.
        plugin: String,
        /// The version the data records.
        recorded: Version,
        /// The installed plugin's version.
        installed: Version,
        /// Whether it is an optional plugin (which can be disabled).
        optional: bool,
        /// The home's backups folder.
        backups: PathBuf,
        /// Verified backups made before the data reached `recorded`, which
        /// the installed release can restore, newest first (names).
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
        /// The release version upgraded to.
        to: Version,
        /// The rows that break them, described (at most 10).
        violations: Vec<String>,
    },
    /// The database failed while applying the upgrade.
    #[error("database error during the upgrade")]
    Database(#[from] EngineError),
    /// The database failed in one named step of the transaction (flush,
    /// commit).
    #[error("could not {what}")]
    Step {
        /// The step, as a verb phrase ("commit the upgrade").
        what: &'static str,
        /// The database's error.
        #[source]
        source: EngineError,
    },
    /// Plugins could not be found or read, or a hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The backup before the upgrade could not be made.
    #[error("could not back the database up before upgrading, so nothing was changed")]
    Backup(#[from] BackupError),
    /// A step failed after the backup was made; everything was rolled back.
    #[error(
        "{}; the upgrade of {} was rolled back and the database is exactly as it was \
         (the backup made before it is {})",
        chain_text(cause),
        database.display(),
        backup.display()
    )]
    RolledBack {
        /// Why the step failed.
        cause: Box<UpgradeError>,
        /// The database file.
        database: PathBuf,
        /// The backup made before the upgrade.
        backup: PathBuf,
    },
    /// A fresh install failed; no database was created.
    #[error(
        "{}; the install into {} was abandoned and no database was created",
        chain_text(cause),
        database.display()
    )]
    InstallFailed {
        /// Why the install failed.
        cause: Box<UpgradeError>,
        /// The database file that was to be created.
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
        /// The database file.
        path: PathBuf,
        /// The processes that have it, or SQLite's files beside it, open.
        users: Vec<crate::disk::Holder>,
    },
    /// The plan runs hooks, and the database's engine has no sandbox for
    /// them yet.
    #[error(
        "{database}: the upgrade would run {} ({}); {why}. Nothing was changed: install a release \
         whose plugins have no hook for this upgrade, or disable the optional plugins \
         (`uplift plugin disable NAME`)",
        if hooks.len() == 1 { "a hook" } else { "hooks" },
        hooks.join(", ")
    )]
    HooksWithoutSandbox {
        /// The database.
        database: String,
        /// The hooks planned (`plugin/hook`).
        hooks: Vec<String>,
        /// Why the engine cannot run them.
        why: &'static str,
    },
    /// The PostgreSQL database could not be reached, opened or locked, or
    /// `[database]` in `uplift.toml` is not valid.
    #[error(transparent)]
    Postgres(#[from] crate::engine::postgres::PgError),
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The journal modes of a home of several databases could not be
    /// recorded, switched or restored (see `engine::sqlite::multi`).
    #[error(transparent)]
    JournalModes(#[from] crate::engine::sqlite::multi::JournalModeError),
}

impl UpgradeError {
    /// What kind of failure this is, as a stable word for machines (the
    /// `code` of `uplift upgrade --json` on failure; `docs/errors.md` lists
    /// them). A failure that was rolled back, or an abandoned install,
    /// has its cause's code.
    pub fn code(&self) -> &'static str {
        match self {
            UpgradeError::Home(_) => "home",
            UpgradeError::Release(_) => "release",
            UpgradeError::Open { .. } => "database-open",
            UpgradeError::Meta { .. } => "bookkeeping",
            UpgradeError::Unmanaged { .. } => "unmanaged-database",
            UpgradeError::OtherApp { .. } => "other-application",
            UpgradeError::DataNewer { .. } => "data-newer",
            UpgradeError::PluginDowngrade { .. } => "plugin-downgrade",
            UpgradeError::Migrate(err) => err.code(),
            UpgradeError::ForeignKeys { .. } => "foreign-keys",
            UpgradeError::Database(_) | UpgradeError::Step { .. } => "database",
            UpgradeError::Hook(_) => "hook",
            UpgradeError::Backup(_) => "backup",
            UpgradeError::RolledBack { cause, .. } | UpgradeError::InstallFailed { cause, .. } => {
                cause.code()
            }
            UpgradeError::TransactionLost { .. } => "transaction-lost",
            UpgradeError::InUse { .. } => "in-use",
            UpgradeError::HooksWithoutSandbox { .. } => "hooks-without-sandbox",
            UpgradeError::Postgres(e) => e.code(),
            UpgradeError::Io(_) => "io",
            UpgradeError::JournalModes(_) => "journal-modes",
        }
    }
}

fn describe_plugin_downgrade(
    plugin: &str,
    recorded: &Version,
    installed: &Version,
    optional: bool,
    backups: &std::path::Path,
    restorable: &[String],
) -> String {
    let mut text = format!(
        "plugin {plugin} {installed} is older than the data, which was upgraded with {plugin} \
         {recorded}: an older plugin cannot run on what a newer one left, and nothing was changed. \
         Install {plugin} {recorded} or newer again"
    );
    if optional {
        text.push_str(&format!(
            ", or disable it (`uplift plugin disable {plugin}`: its tables are kept, and it \
             continues from {recorded} when enabled again)"
        ));
    }
    match restorable.first() {
        None => text.push_str(&format!(
            "; no backup in {} was made before the data reached {plugin} {recorded}",
            backups.display()
        )),
        Some(newest) => text.push_str(&format!(
            "; or restore a backup made before the data reached {plugin} {recorded}: \
             `uplift dbrestore {}`; all that qualify: {}",
            backups.join(newest).display(),
            restorable.join(", ")
        )),
    }
    text
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

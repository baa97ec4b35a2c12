//! `uplift report`: one object an operator collects from every site of a
//! fleet, with stable field names (`docs/report.md`): uplift's build, the
//! application, where the data and its plugins stand, the last upgrade and
//! how it ended, the backups with their sizes and whether they verify, the
//! disk, and drift. It only reads.

use std::path::PathBuf;

use serde::Serialize;

use super::error::UpgradeError;
use super::status::{self, Adoption, PluginState, State};
use crate::backup::{self, BackupStatus};
pub use crate::disk::DiskSpace;
use crate::history::HistoryEntry;
use crate::home::Home;
use crate::release::Release;
use crate::version::Version;

/// The version of the report's shape: raised when a field changes meaning
/// or goes; fields are only ever added otherwise.
pub const REPORT_FORMAT: u32 = 1;

/// What `uplift report` says of a site.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`REPORT_FORMAT`].
    pub format: u32,
    /// When the report was made (UTC).
    pub generated_at: String,
    /// The uplift that made it.
    pub uplift: Build,
    /// The home folder.
    pub home: PathBuf,
    /// The application and its installed release.
    pub application: Application,
    /// The database and where its data stands.
    pub database: DatabaseReport,
    /// The release's and the home's plugins, with the versions the data
    /// recorded for them.
    pub plugins: Vec<PluginState>,
    /// The newest upgrade or install the database's history records, if
    /// any, committed or failed.
    pub last_upgrade: Option<HistoryEntry>,
    /// Every backup in the home, oldest first, each read through and
    /// checked.
    pub backups: Vec<BackupReport>,
    /// The file system holding the home; `None` when it cannot be asked.
    pub disk: Option<DiskSpace>,
}

/// The build of uplift.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    /// uplift's version.
    pub version: String,
    /// The SQLite it is built with.
    pub sqlite: String,
    /// The processor and system it is built for (`x86_64-linux`).
    pub target: String,
}

/// The application and its installed release.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    /// Its name.
    pub name: String,
    /// The installed release's version.
    pub release: Version,
    /// The installed release's folder.
    pub release_dir: PathBuf,
}

/// The database, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseReport {
    /// The file.
    pub path: PathBuf,
    /// Whether it exists.
    pub exists: bool,
    /// Its size in bytes (0 when it does not exist).
    pub size: u64,
    /// Its data version, if uplift manages it.
    pub data_version: Option<Version>,
    /// Where it stands against the installed release (as `uplift status`
    /// says it).
    pub state: State,
    /// Migrations pending (file names).
    pub pending: Vec<String>,
    /// Applied migrations that no longer match the release, in words.
    pub drift: Vec<String>,
    /// Its adoption, if uplift adopted it.
    pub adopted: Option<Adoption>,
}

/// One backup, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The file name.
    pub file: String,
    /// Its size on disk in bytes.
    pub size: u64,
    /// The data version it holds, if its header says.
    pub data_version: Option<String>,
    /// When it was made (UTC), if its header says.
    pub created: Option<String>,
    /// `automatic`, `manual` or `pre-restore`, if its header says.
    pub kind: Option<String>,
    /// Whether it was read through and its checksum matched.
    pub verified: bool,
    /// Why it does not verify, when it does not.
    pub problem: Option<String>,
}

/// Reads everything the report says of the home against `release`.
/// Reading every backup through is the slow part (it proves each one).
pub fn report(home: &Home, release: &Release) -> Result<Report, UpgradeError> {
    let status = status::status(home, release)?;
    let history = status::history(home)?;
    let db_path = home.db_path();
    let backups = backup::list(&home.backups_dir())?
        .into_iter()
        .map(|entry| BackupReport {
            data_version: entry.data_version().map(str::to_string),
            created: entry.created().map(|t| t.to_string()),
            kind: entry.kind().map(|k| k.as_str().to_string()),
            verified: entry.status == BackupStatus::Verified,
            problem: match &entry.status {
                BackupStatus::Verified => None,
                BackupStatus::Unverified => {
                    Some("no uplift header or checksum: restorable, not proven complete".into())
                }
                BackupStatus::Corrupt(why) => Some(why.clone()),
                BackupStatus::NotChecked => Some("not checked".into()),
            },
            file: entry.file_name,
            size: entry.size,
        })
        .collect();
    Ok(Report {
        format: REPORT_FORMAT,
        generated_at: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        uplift: Build {
            version: env!("CARGO_PKG_VERSION").into(),
            sqlite: crate::engine::sqlite::version().into(),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        },
        home: home.root().to_path_buf(),
        application: Application {
            name: release.app.clone(),
            release: release.version.clone(),
            release_dir: release.dir.clone(),
        },
        database: DatabaseReport {
            size: std::fs::metadata(&db_path).map_or(0, |m| m.len()),
            path: db_path,
            exists: status.database_exists,
            data_version: status.data_version,
            state: status.state,
            pending: status.pending,
            drift: status.drift,
            adopted: status.adopted,
        },
        plugins: status.plugins,
        last_upgrade: history
            .into_iter()
            .rev()
            .find(|e| e.event == crate::history::UPGRADE || e.event == crate::history::INSTALL),
        backups,
        disk: crate::disk::space(home.root()),
    })
}

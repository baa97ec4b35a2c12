//! The home: where an installation's data lives — the database, its backups,
//! the operator's plugins and their activation list, the compile cache, the
//! settings file and the lock that lets one uplift at a time work on it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors about the home folder itself.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// No `--home`, no `UPLIFT_HOME` and no home directory to default to.
    #[error("no home folder given and $HOME is not set: pass --home DIR or set UPLIFT_HOME")]
    NoDefault,
    /// Another process holds the lock.
    #[error(
        "another uplift ({holder}) holds this home ({path}): wait for it to finish, or pass --wait",
        holder = holder_text(.pid)
    )]
    Locked { path: PathBuf, pid: Option<u32> },
    /// `uplift.toml` exists but is not valid.
    #[error("invalid settings file {path}: {message}; fix or remove it")]
    Settings { path: PathBuf, message: String },
    /// A file-system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The file SQLite keeps beside `database` with `suffix` appended to its
/// name (`-journal`, `-wal`, `-shm`).
pub(crate) fn sibling_file(database: &Path, suffix: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn holder_text(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> HomeError + 'a {
    move |source| HomeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// An installation's data folder. Creating the value touches nothing on disk.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// The home given on the command line (or by `UPLIFT_HOME`, which clap
    /// folds into the same option), else `~/.uplift`.
    pub fn resolve(given: Option<PathBuf>) -> Result<Self, HomeError> {
        if let Some(root) = given {
            return Ok(Home::new(root));
        }
        let home = std::env::var_os("HOME").ok_or(HomeError::NoDefault)?;
        Ok(Home::new(PathBuf::from(home).join(".uplift")))
    }

    /// The home folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The application database.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("db.sqlite3")
    }

    /// Where backups go by default.
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// Plugins the operator added (beside the release's own).
    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// Which plugins are active.
    pub fn plugins_toml(&self) -> PathBuf {
        self.root.join("plugins.toml")
    }

    /// Compiled components.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Optional settings.
    pub fn settings_path(&self) -> PathBuf {
        self.root.join("uplift.toml")
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("uplift.lock")
    }

    /// Creates the home folder if it does not exist yet.
    pub fn create(&self) -> Result<(), HomeError> {
        std::fs::create_dir_all(&self.root)
            .map_err(io_error("could not create home folder", &self.root))
    }

    /// Reads `uplift.toml`; defaults when it does not exist.
    pub fn settings(&self) -> Result<Settings, HomeError> {
        let path = self.settings_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| HomeError::Settings {
                path,
                message: e.message().to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(io_error("could not read", &path)(e)),
        }
    }

    /// Takes the home's lock: one uplift at a time. With `wait`, blocks until
    /// the holder is done; without, fails at once naming the holder's pid.
    /// The lock is released when the returned value is dropped (or the
    /// process dies: the operating system releases it).
    pub fn lock(&self, wait: bool) -> Result<HomeLock, HomeError> {
        self.create()?;
        let path = self.lock_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("could not open lock file", &path))?;
        if wait {
            file.lock().map_err(io_error("could not lock", &path))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(HomeError::Locked {
                        path: self.root.clone(),
                        pid: text.trim().parse().ok(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_error("could not lock", &path)(e)),
            }
        }
        // Record who holds it, for the message a second runner gets.
        let pid = std::process::id();
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{pid}")
        };
        write_pid(&mut file).map_err(io_error("could not write", &path))?;
        Ok(HomeLock { _file: file })
    }
}

/// Proof that this process holds the home's lock; released on drop.
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
}

/// The home's `uplift.toml`. Every field has a default; unknown keys are
/// refused so that a typo does not silently do nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Backup retention and format.
    pub backups: BackupSettings,
    /// Sandbox limits for hooks.
    pub hooks: HookLimits,
}

/// `[backups]` in `uplift.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// How many automatic (pre-upgrade) backups to keep.
    pub keep: usize,
    /// Compress automatic backups with zstd.
    pub compress: bool,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            keep: 3,
            compress: false,
        }
    }
}

/// `[hooks]` in `uplift.toml`: the sandbox's limits for one hook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HookLimits {
    /// Wall-clock time one hook may run, in seconds.
    pub timeout_seconds: u64,
    /// Linear memory one hook may grow to, in MiB.
    pub memory_mib: u64,
    /// Bytes one database call may return to the guest, in MiB.
    pub max_reply_mib: u64,
    /// Bytes of log (including stdout and stderr) one hook may write, in KiB.
    pub max_log_kib: u64,
}

impl Default for HookLimits {
    fn default() -> Self {
        HookLimits {
            timeout_seconds: 300,
            memory_mib: 256,
            max_reply_mib: 64,
            max_log_kib: 1024,
        }
    }
}

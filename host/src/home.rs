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

    /// Reads `uplift.toml`; defaults when it does not exist. Fails when it
    /// is not valid TOML, has an unknown key, or a `[hooks]` limit is out
    /// of its range ([`HookLimits::RANGES`]).
    pub fn settings(&self) -> Result<Settings, HomeError> {
        let path = self.settings_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let settings: Settings =
                    toml::from_str(&text).map_err(|e| HomeError::Settings {
                        path: path.clone(),
                        message: e.message().to_string(),
                    })?;
                settings.hooks.validate().map_err(|e| HomeError::Settings {
                    path,
                    message: e.to_string(),
                })?;
                Ok(settings)
            }
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

/// `[hooks]` in `uplift.toml`: the sandbox's limits for one hook. Every
/// resource a hook can make uplift use has one (see the plugin guide's
/// limits table and `docs/limits.md` for how each is enforced); each key has
/// the range [`HookLimits::RANGES`] gives, checked by [`Home::settings`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HookLimits {
    /// Wall-clock time one hook may run, in seconds.
    pub timeout_seconds: u64,
    /// Linear memory one hook may grow to, in MiB.
    pub memory_mib: u64,
    /// Bytes one database call may return to the guest, in MiB (also the
    /// largest single value a hook's SQL may make).
    pub max_reply_mib: u64,
    /// Bytes of log (including stdout and stderr) one hook may write, in KiB.
    pub max_log_kib: u64,
    /// Memory SQLite may use for one hook's statements (rows being read,
    /// bound values, sorts, temporary tables) beyond what it held when the
    /// hook started, in MiB.
    pub database_memory_mib: u64,
    /// How much one hook may make uplift's files grow (the database, its
    /// journal and SQLite's temporary files), in MiB.
    pub disk_mib: u64,
    /// Wall-clock time compiling one plugin's component may take, in
    /// seconds (a cached component is not compiled again).
    pub compile_seconds: u64,
}

impl Default for HookLimits {
    fn default() -> Self {
        HookLimits {
            timeout_seconds: 300,
            memory_mib: 256,
            max_reply_mib: 64,
            max_log_kib: 1024,
            database_memory_mib: 256,
            disk_mib: 4096,
            compile_seconds: 120,
        }
    }
}

/// The allowed range of one `[hooks]` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRange {
    /// The key in `[hooks]`.
    pub key: &'static str,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
    /// What the number counts.
    pub unit: &'static str,
}

/// A `[hooks]` value outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "[hooks] {key} = {value} is out of range: it must be between {min} and {max} ({unit})",
    key = .range.key, min = .range.min, max = .range.max, unit = .range.unit
)]
pub struct InvalidLimit {
    /// The value given.
    pub value: u64,
    /// The range it must be in.
    pub range: LimitRange,
}

impl HookLimits {
    /// The range of every key. The upper bounds keep every derived figure
    /// representable (a deadline of `now + timeout`, a byte count in `i64`,
    /// SQLite's page count) and stop a typo from disabling a limit: a day
    /// for one hook, 4 GiB of linear memory (the most a 32-bit WebAssembly
    /// memory can address), 1 GiB per reply (SQLite's largest value is just
    /// under 2 GiB), 1 GiB of log, 64 GiB of SQLite memory, 16 TiB of disk.
    pub const RANGES: [LimitRange; 7] = [
        LimitRange {
            key: "timeout_seconds",
            min: 1,
            max: 86_400,
            unit: "seconds",
        },
        LimitRange {
            key: "memory_mib",
            min: 1,
            max: 4_096,
            unit: "MiB",
        },
        LimitRange {
            key: "max_reply_mib",
            min: 1,
            max: 1_024,
            unit: "MiB",
        },
        LimitRange {
            key: "max_log_kib",
            min: 1,
            max: 1_048_576,
            unit: "KiB",
        },
        LimitRange {
            key: "database_memory_mib",
            min: 4,
            max: 65_536,
            unit: "MiB",
        },
        LimitRange {
            key: "disk_mib",
            min: 1,
            max: 16_777_216,
            unit: "MiB",
        },
        LimitRange {
            key: "compile_seconds",
            min: 1,
            max: 3_600,
            unit: "seconds",
        },
    ];

    fn values(&self) -> [u64; 7] {
        [
            self.timeout_seconds,
            self.memory_mib,
            self.max_reply_mib,
            self.max_log_kib,
            self.database_memory_mib,
            self.disk_mib,
            self.compile_seconds,
        ]
    }

    /// Checks every key against [`HookLimits::RANGES`]; the first value out
    /// of range is the error.
    pub fn validate(&self) -> Result<(), InvalidLimit> {
        for (value, range) in self.values().into_iter().zip(Self::RANGES) {
            if !(range.min..=range.max).contains(&value) {
                return Err(InvalidLimit { value, range });
            }
        }
        Ok(())
    }

    /// The most a hook may make uplift's resident memory grow, in MiB: the
    /// limits that bound each pool precisely added up (its linear memory,
    /// once more for the arguments of a call being copied out of it, SQLite's
    /// memory, one reply) plus 256 MiB for the runtime itself. uplift ends a
    /// hook whose process memory grows past it (see `docs/limits.md`): it
    /// catches what no precise limit sees.
    pub fn process_memory_mib(&self) -> u64 {
        self.memory_mib
            .saturating_mul(2)
            .saturating_add(self.database_memory_mib)
            .saturating_add(self.max_reply_mib)
            .saturating_add(256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_from(text: &str) -> Result<Settings, HomeError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("uplift.toml"), text).unwrap();
        Home::new(dir.path()).settings()
    }

    #[test]
    fn the_default_limits_are_valid() {
        assert_eq!(HookLimits::default().validate(), Ok(()));
        assert_eq!(settings_from("").unwrap(), Settings::default());
    }

    #[test]
    fn a_zero_timeout_is_refused_naming_the_file_the_key_and_the_range() {
        let err = settings_from("[hooks]\ntimeout_seconds = 0\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("uplift.toml"), "{text}");
        assert!(
            text.contains("[hooks] timeout_seconds = 0 is out of range: it must be between 1 and 86400 (seconds)"),
            "{text}"
        );
    }

    #[test]
    fn a_timeout_too_large_to_add_to_the_clock_is_refused() {
        let err = settings_from("[hooks]\ntimeout_seconds = 18446744073709551615\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("timeout_seconds = 18446744073709551615 is out of range"),
            "{err}"
        );
    }

    #[test]
    fn memory_beyond_what_webassembly_can_address_is_refused() {
        let err = settings_from("[hooks]\nmemory_mib = 1000000000000\n").unwrap_err();
        assert!(
            err.to_string().contains(
                "memory_mib = 1000000000000 is out of range: it must be between 1 and 4096 (MiB)"
            ),
            "{err}"
        );
    }

    #[test]
    fn every_key_is_checked_at_both_ends_of_its_range() {
        for (index, range) in HookLimits::RANGES.iter().enumerate() {
            for (value, ok) in [
                (range.min, true),
                (range.max, true),
                (range.min - 1, false),
                (range.max + 1, false),
            ] {
                let toml = format!("[hooks]\n{} = {value}\n", range.key);
                let parsed: Settings = toml::from_str(&toml).unwrap();
                assert_eq!(parsed.hooks.values()[index], value, "{}", range.key);
                assert_eq!(
                    parsed.hooks.validate().is_ok(),
                    ok,
                    "{} = {value}",
                    range.key
                );
            }
        }
    }
}

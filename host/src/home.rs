//! The home: where an installation's data lives — the database, its backups,
//! the operator's plugins and their activation list, the compile cache, the
//! settings file and the lock that lets one uplift at a time work on it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::disk::{IoError, io_err};

/// Errors about the home folder itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// No `--home`, no `UPLIFT_HOME` and no home directory to default to.
    #[error("no home folder given and $HOME is not set: pass --home DIR or set UPLIFT_HOME")]
    NoDefault,
    /// Another uplift holds the lock.
    #[error(
        "another uplift ({holder}) holds this home ({path}): wait for it to finish, or pass --wait",
        holder = holder_text(.pid)
    )]
    Locked {
        /// The home folder.
        path: PathBuf,
        /// The process id of the uplift holding it, when it could be found.
        pid: Option<u32>,
    },
    /// The application (started by `uplift run`, which keeps a shared hold
    /// on the home for the application's life) or a backup is running.
    #[error(
        "this home ({path}) is in use by {}: stop the application before upgrading or restoring, or pass --wait to start when it exits",
        users_text(.users)
    )]
    InUse {
        /// The home folder.
        path: PathBuf,
        /// The processes holding it (pid and command), where they can be seen.
        users: Vec<(u32, String)>,
    },
    /// `uplift.toml` exists but is not valid.
    #[error("invalid settings file {path}: {message}; fix or remove it")]
    Settings {
        /// The settings file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A `[hooks]` limit in `uplift.toml` is out of its range.
    #[error("invalid settings file {path}: {limit}; fix or remove it")]
    Limit {
        /// The settings file.
        path: PathBuf,
        /// The key, the value given and the range it must be in.
        limit: InvalidLimit,
    },
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl HomeError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them): `no-home` when none was given,
    /// else `home`, as in [`crate::UpgradeError::code`].
    pub fn code(&self) -> &'static str {
        match self {
            HomeError::NoDefault => "no-home",
            _ => "home",
        }
    }
}

fn holder_text(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

fn users_text(users: &[(u32, String)]) -> String {
    if users.is_empty() {
        return "the application started with `uplift run`, or `uplift dbbackup`".to_string();
    }
    let list: Vec<String> = users
        .iter()
        .map(|(pid, command)| format!("pid {pid} ({command})"))
        .collect();
    list.join(", ")
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HomeError {
    let to_io = io_err(what, path);
    move |source| HomeError::Io(to_io(source))
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

    /// Creates the home folder if it does not exist yet (durably: its name
    /// survives a power cut once this returns).
    pub fn create(&self) -> Result<(), HomeError> {
        crate::disk::create_dir_durably(&self.root)
            .map(|_| ())
            .map_err(io_error("could not create home folder", &self.root))
    }

    /// Removes what a killed uplift left in this home: the temporary files
    /// of a backup (`backups/.uplift-backup-*.tmp`), of a restore
    /// (`.db.sqlite3.restoring-*`) and of a fresh install
    /// (`db.sqlite3.installing`), with the journal files SQLite kept beside
    /// them. Call it only while holding the home's lock exclusively: then
    /// no other uplift is writing them. Returns what was removed.
    pub fn remove_stale_temporaries(&self) -> Result<Vec<PathBuf>, HomeError> {
        let mut removed = Vec::new();
        type IsStale<'a> = &'a dyn Fn(&str) -> bool;
        let places: [(PathBuf, IsStale<'_>); 2] = [
            (self.root.clone(), &|name: &str| {
                name.starts_with(".db.sqlite3.restoring-")
                    || name.starts_with("db.sqlite3.installing")
            }),
            (self.backups_dir(), &|name: &str| {
                name.starts_with(".uplift-backup-") && name.ends_with(".tmp")
            }),
        ];
        for (dir, stale) in places {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("could not list", &dir)(e)),
            };
            let before = removed.len();
            for entry in entries {
                let entry = entry.map_err(io_error("could not list", &dir))?;
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if is_file && entry.file_name().to_str().is_some_and(stale) {
                    let path = entry.path();
                    std::fs::remove_file(&path).map_err(io_error("could not remove", &path))?;
                    removed.push(path);
                }
            }
            if removed.len() > before {
                crate::disk::sync_dir(&dir).map_err(io_error("could not sync", &dir))?;
            }
        }
        Ok(removed)
    }

    /// Reads `uplift.toml`; defaults when it does not exist. Fails when it
    /// is not valid TOML, has an unknown key, or a `[hooks]` limit is out
    /// of its range ([`HookLimits::RANGES`]).
    pub fn settings(&self) -> Result<Settings, HomeError> {
        let path = self.settings_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Settings::from_toml(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(io_error("could not read", &path)(e)),
        }
    }

    /// Takes the home's lock for a change (upgrade, restore): no other
    /// uplift, and no application started by `uplift run`, may hold it. With
    /// `wait`, blocks until they are done; without, fails at once naming
    /// them. The lock is released when the returned value is dropped (or the
    /// process dies: the operating system releases it).
    pub fn lock(&self, wait: bool) -> Result<HomeLock, HomeError> {
        let (mut file, path) = self.open_lock_file()?;
        if wait {
            file.lock().map_err(io_error("could not lock", &path))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Err(self.held_error(&mut file)),
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
        Ok(HomeLock { file })
    }

    /// Takes the home's lock shared: any number of holders (the application
    /// started by `uplift run`, a manual backup) may share it, and none of
    /// them runs while an upgrade or a restore holds it. With `wait`,
    /// blocks until such a change is done; without, fails at once.
    pub fn lock_shared(&self, wait: bool) -> Result<HomeLock, HomeError> {
        let (mut file, path) = self.open_lock_file()?;
        if wait {
            file.lock_shared()
                .map_err(io_error("could not lock", &path))?;
        } else {
            match file.try_lock_shared() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Err(self.held_error(&mut file)),
                Err(TryLockError::Error(e)) => return Err(io_error("could not lock", &path)(e)),
            }
        }
        Ok(HomeLock { file })
    }

    fn open_lock_file(&self) -> Result<(File, PathBuf), HomeError> {
        self.create()?;
        let path = self.lock_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("could not open lock file", &path))?;
        // One `sudo uplift ...` must not leave a lock file the service user
        // cannot open.
        crate::disk::hand_to_home_owner(&self.root, &path)
            .map_err(io_error("could not give the home's owner", &path))?;
        Ok((file, path))
    }

    /// Who holds the lock we could not take: an uplift holding it
    /// exclusively (its pid is in the file), or processes sharing it.
    fn held_error(&self, file: &mut File) -> HomeError {
        let holders = lock_holders(file);
        if holders.iter().any(|h| h.exclusive) || holders.is_empty() {
            let mut text = String::new();
            let _ = file.seek(SeekFrom::Start(0));
            let _ = file.read_to_string(&mut text);
            let pid = text
                .trim()
                .parse()
                .ok()
                .or_else(|| holders.iter().find(|h| h.exclusive).map(|h| h.pid));
            return HomeError::Locked {
                path: self.root.clone(),
                pid,
            };
        }
        HomeError::InUse {
            path: self.root.clone(),
            users: holders
                .iter()
                .map(|h| {
                    let command = std::fs::read_to_string(format!("/proc/{}/comm", h.pid))
                        .map(|c| c.trim().to_string())
                        .unwrap_or_else(|_| "?".to_string());
                    (h.pid, command)
                })
                .collect(),
        }
    }
}

/// A process holding a `flock` on a file, as `/proc/locks` lists it.
struct LockHolder {
    pid: u32,
    exclusive: bool,
}

/// The processes holding `flock` locks on `file` (Linux's `/proc/locks`;
/// empty elsewhere or when it cannot be read). The pid is that of the
/// process that took the lock, which an `exec` keeps: the application
/// started by `uplift run`.
fn lock_holders(file: &File) -> Vec<LockHolder> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let mut holders = Vec::new();
    for line in locks.lines() {
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have a
        // "->" before FLOCK and hold nothing.
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || fields[1] != "FLOCK" || fields[5] != id {
            continue;
        }
        if let Ok(pid) = fields[4].parse::<u32>() {
            holders.push(LockHolder {
                pid,
                exclusive: fields[3] == "WRITE",
            });
        }
    }
    holders
}

/// Proof that this process holds the home's lock; released on drop.
#[derive(Debug)]
pub struct HomeLock {
    file: File,
}

impl HomeLock {
    /// Keeps the lock held by the program this process `exec`s into (the
    /// application started by `uplift run`), and by that program's
    /// children, until the last of them exits: the descriptor is left open
    /// across `exec`. Upgrades and restores then refuse (or wait) while the
    /// application runs.
    pub fn keep_across_exec(self) -> Result<(), HomeError> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        // SAFETY: fd is an open descriptor owned by self.file; F_GETFD and
        // F_SETFD only read and set its close-on-exec flag.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == 0
        };
        if !ok {
            return Err(HomeError::Io(IoError {
                what: "could not keep the home's lock for the application",
                path: PathBuf::new(),
                source: std::io::Error::last_os_error(),
            }));
        }
        // The descriptor must stay open for the program that replaces this
        // process.
        std::mem::forget(self);
        Ok(())
    }
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
    /// Limits for the release's migrations.
    pub migrations: MigrationSettings,
    /// The database, when it is not the home's SQLite file: a PostgreSQL
    /// database (`[database]`; see [`DatabaseSettings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSettings>,
}

/// `[database]` in `uplift.toml`: the PostgreSQL database the home's
/// application uses, instead of `db.sqlite3`. Either `url`
/// (`postgresql://user@host:port/dbname`, `?host=/run/postgresql` for a
/// unix socket) or `host`, `port`, `dbname` and `user`, not both. A
/// password is never written here: it comes from `PGPASSWORD` in the
/// environment, or from `password_file` (its first line).
///
/// ```toml
/// [database]
/// url = "postgresql://learnhub@db.example.org/learnhub"
/// password_file = "/etc/learnhub/db-password"
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// A `postgresql://` URL, without a password.
    pub url: Option<String>,
    /// The server's host name, or the folder of its unix socket.
    pub host: Option<String>,
    /// The server's port (5432 when not given).
    pub port: Option<u16>,
    /// The database's name.
    pub dbname: Option<String>,
    /// The role to connect as.
    pub user: Option<String>,
    /// A file whose first line is the role's password.
    pub password_file: Option<PathBuf>,
}

impl Settings {
    /// Parses `text`, the contents of the settings file `path`, and checks
    /// every limit: what [`Home::settings`] makes of the file.
    pub(crate) fn from_toml(path: &Path, text: &str) -> Result<Settings, HomeError> {
        let settings: Settings = toml::from_str(text).map_err(|e| HomeError::Settings {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        settings
            .migrations
            .check()
            .map_err(|message| HomeError::Settings {
                path: path.to_path_buf(),
                message,
            })?;
        settings
            .hooks
            .validate()
            .map_err(|limit| HomeError::Limit {
                path: path.to_path_buf(),
                limit,
            })?;
        Ok(settings)
    }
}

/// `[migrations]` in `uplift.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationSettings {
    /// Wall-clock time one migration may run, in seconds (1 to 604800, a
    /// week): a runaway statement is stopped and the upgrade rolled back.
    pub timeout_seconds: u64,
}

impl MigrationSettings {
    /// The longest `timeout_seconds` accepted.
    pub const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

    fn check(&self) -> Result<(), String> {
        if !(1..=Self::MAX_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            return Err(format!(
                "[migrations] timeout_seconds = {} is out of range: give 1 to {} (seconds)",
                self.timeout_seconds,
                Self::MAX_TIMEOUT_SECONDS
            ));
        }
        Ok(())
    }

    /// The time limit as a duration.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_seconds)
    }
}

impl Default for MigrationSettings {
    fn default() -> Self {
        MigrationSettings {
            // An hour: far beyond what a migration of a large site takes,
            // short enough that a runaway one does not hold the home forever.
            timeout_seconds: 3600,
        }
    }
}

/// `[backups]` in `uplift.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// How many automatic (pre-upgrade) backups to keep. Retention never
    /// removes the newest backup of each data version (what a downgrade to
    /// that version restores), so 0 means "only those".
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

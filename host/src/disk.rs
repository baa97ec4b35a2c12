//! What uplift does to files beyond reading and writing them: renames and
//! new folders made durable (their folder synced, so a power cut cannot
//! undo them), new files given the owner and mode of what they replace,
//! SQLite's leftovers beside a database moved aside before a new database
//! takes its name, and the processes that still have a database open.
//! Also the error every module reports a failed file-system operation with
//! ([`IoError`]).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file-system operation that failed on a named path. It displays what
/// was being done and the path ("could not read /srv/app/uplift.toml") and
/// returns the operating system's error as its source, which the command
/// line prints after it (": permission denied").
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct IoError {
    /// What was being done, as the start of a sentence ("could not read").
    pub what: &'static str,
    /// The file or folder concerned.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

/// Turns an [`io::Error`] into an [`IoError`] about `path`, for `map_err`:
/// `std::fs::read(p).map_err(io_err("could not read", p))`.
pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IoError + use<> {
    let path = path.to_path_buf();
    move |source| IoError { what, path, source }
}

/// Syncs a folder, so that the names created, renamed or removed in it
/// survive a power cut (a file's own sync does not cover its name).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The folder holding `path` (`.` for a bare file name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Renames `from` to `to` and syncs the folder(s) holding them.
pub(crate) fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_dir(parent_of(to))?;
    if parent_of(from) != parent_of(to) {
        sync_dir(parent_of(from))?;
    }
    Ok(())
}

/// Creates `dir` and any missing parents, syncing the folder above each one
/// created, so that a power cut cannot leave a file written inside a
/// folder whose own name was lost. Returns whether `dir` was created.
pub(crate) fn create_dir_durably(dir: &Path) -> io::Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(false),
        Err(e) => return Err(e),
    }
    sync_dir(parent_of(dir))?;
    Ok(true)
}

/// Who owns a file, and its permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
}

impl Owner {
    /// The owner and mode of `path`.
    pub(crate) fn of(path: &Path) -> io::Result<Owner> {
        let meta = std::fs::metadata(path)?;
        Ok(Owner {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        })
    }

    /// The owner a new file in `dir` should have, and the mode a new
    /// database there gets: the folder's owner and group; readable by all
    /// (as SQLite creates files) and writable by the owner, and by the group
    /// when the folder is group-writable (a home shared with the service
    /// user's group). Never writable by others, even in a folder that is
    /// (such as a tmpfs mount point).
    pub(crate) fn for_new_file_in(dir: &Path) -> io::Result<Owner> {
        let folder = Owner::of(dir)?;
        let group_write = if folder.mode & 0o020 != 0 && folder.mode & 0o1000 == 0 {
            0o020
        } else {
            0
        };
        Ok(Owner {
            mode: 0o644 | group_write,
            ..folder
        })
    }

    /// Gives `path` this owner (only when running as root: nobody else may
    /// give a file away) and this mode.
    pub(crate) fn apply(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.apply_owner(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.mode))
    }

    /// Gives `path` this owner and group, leaving its mode, when running as
    /// root and they differ; otherwise does nothing.
    pub(crate) fn apply_owner(&self, path: &Path) -> io::Result<()> {
        if !running_as_root() {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(path)?;
        if meta.uid() == self.uid && meta.gid() == self.gid {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
    }
}

/// Whether this process runs as root (and so must hand what it creates in a
/// service user's home back to that user).
pub(crate) fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Gives what uplift created under `root` (a home) to the home's owner when
/// uplift runs as root in a home that belongs to someone else: one
/// `sudo uplift upgrade` must not leave files the service user cannot open.
/// Does nothing otherwise.
pub(crate) fn hand_to_home_owner(root: &Path, path: &Path) -> io::Result<()> {
    if !running_as_root() {
        return Ok(());
    }
    let home = Owner::of(root)?;
    home.apply_owner(path)
}

/// A file SQLite left beside a database that may hold data: moved aside
/// rather than deleted, so that the operator can still recover it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetAside {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
}

/// The first bytes of a rollback journal that SQLite would play back.
const HOT_JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// Clears the way for a new database file at `database`: SQLite applies a
/// `-wal` or a hot `-journal` it finds beside a database to that database,
/// whatever file it is, so leftovers of another database must never sit
/// next to one uplift builds. A `-wal` that holds frames or a journal that
/// SQLite would play back may hold data the operator wants: each is moved
/// aside (renamed with a `.set-aside-TIME` suffix) and returned; an empty
/// `-wal`, a cold journal and the `-shm` index (rebuilt from the `-wal`,
/// never data) are removed. The folder is synced, so the new database
/// never meets them again, even after a power cut.
pub(crate) fn clear_leftovers(database: &Path) -> io::Result<Vec<SetAside>> {
    let mut set_aside = Vec::new();
    let mut changed = false;
    let stamp = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H-%M-%SZ")
        .to_string();
    for suffix in ["-wal", "-journal", "-shm"] {
        let path = sibling(database, suffix);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let holds_data = match suffix {
            "-wal" => meta.len() > 0,
            "-journal" => journal_is_hot(&path)?,
            _ => false,
        };
        if holds_data {
            let mut to = sibling(&path, &format!(".set-aside-{stamp}"));
            let mut n = 1;
            while to.exists() {
                n += 1;
                to = sibling(&path, &format!(".set-aside-{stamp}-{n}"));
            }
            std::fs::rename(&path, &to)?;
            set_aside.push(SetAside { from: path, to });
        } else {
            std::fs::remove_file(&path)?;
        }
        changed = true;
    }
    if changed {
        sync_dir(parent_of(database))?;
    }
    Ok(set_aside)
}

/// Whether the rollback journal at `path` is one SQLite would play back (it
/// starts with the journal header's magic; a committed journal in
/// `PERSIST` mode has a zeroed header, a truncated one is empty).
fn journal_is_hot(path: &Path) -> io::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(path)?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..])? {
            0 => return Ok(false),
            n => read += n,
        }
    }
    Ok(head == HOT_JOURNAL_MAGIC)
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A process that has a file open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`), if readable.
    pub command: String,
    /// The file it has open.
    pub file: PathBuf,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}) has {} open",
            self.pid,
            if self.command.is_empty() {
                "?"
            } else {
                &self.command
            },
            self.file.display()
        )
    }
}

/// The other processes that have any of `files` open, as the kernel sees
/// them (`/proc/*/fd`, Linux). SQLite's own locks cannot tell: a connection
/// in rollback-journal mode holds no lock between transactions, and one in
/// WAL mode that has only read leaves nothing on disk; yet each would go on
/// writing to a file renamed away under it. Processes this one may not
/// inspect (another user's, without root) are not seen; missing files are
/// skipped. Empty on other systems.
pub(crate) fn processes_using(files: &[PathBuf]) -> Vec<Holder> {
    let wanted: Vec<((u64, u64), &PathBuf)> = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok().map(|m| ((m.dev(), m.ino()), f)))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut holders: Vec<Holder> = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // metadata() follows the descriptor's link to the open file,
            // even one already unlinked.
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let key = (meta.dev(), meta.ino());
            let Some((_, file)) = wanted.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            if holders.iter().any(|h| h.pid == pid && &h.file == *file) {
                continue;
            }
            let command = std::fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            holders.push(Holder {
                pid,
                command,
                file: (*file).clone(),
            });
        }
    }
    holders
}

/// The files of a SQLite database: the database itself and the `-wal`,
/// `-shm` and `-journal` files SQLite keeps beside it.
pub(crate) fn database_files(database: &Path) -> Vec<PathBuf> {
    let mut files = vec![database.to_path_buf()];
    files.extend(["-wal", "-shm", "-journal"].map(|s| sibling(database, s)));
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::chain_text;

    #[test]
    fn an_io_error_says_what_and_where_and_returns_why() {
        let denied = io::Error::new(io::ErrorKind::PermissionDenied, "permission denied");
        let err = io_err("could not read", Path::new("/srv/uplift.toml"))(denied);
        assert_eq!(err.to_string(), "could not read /srv/uplift.toml");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("permission denied"));
        assert_eq!(
            chain_text(&err),
            "could not read /srv/uplift.toml: permission denied"
        );
    }

    #[test]
    fn leftovers_that_may_hold_data_are_set_aside_and_the_rest_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite3");
        std::fs::write(sibling(&db, "-wal"), b"frames").unwrap();
        std::fs::write(sibling(&db, "-shm"), b"index").unwrap();
        let mut journal = HOT_JOURNAL_MAGIC.to_vec();
        journal.extend_from_slice(&[0; 100]);
        std::fs::write(sibling(&db, "-journal"), &journal).unwrap();

        let moved = clear_leftovers(&db).unwrap();
        assert_eq!(moved.len(), 2, "{moved:?}");
        for m in &moved {
            assert!(!m.from.exists());
            assert!(m.to.exists());
        }
        assert!(!sibling(&db, "-shm").exists());
        assert_eq!(std::fs::read(&moved[0].to).unwrap(), b"frames");
    }

    #[test]
    fn empty_and_cold_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite3");
        std::fs::write(sibling(&db, "-wal"), b"").unwrap();
        std::fs::write(sibling(&db, "-journal"), [0u8; 512]).unwrap();
        assert!(clear_leftovers(&db).unwrap().is_empty());
        assert!(!sibling(&db, "-wal").exists());
        assert!(!sibling(&db, "-journal").exists());
        assert!(clear_leftovers(&db).unwrap().is_empty());
    }

    #[test]
    fn a_process_holding_a_file_open_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("held");
        std::fs::write(&file, b"x").unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$1\"; read _")
            .arg("sh")
            .arg(&file)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the shell has opened it.
        let mut found = Vec::new();
        for _ in 0..200 {
            found = processes_using(std::slice::from_ref(&file));
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(child.stdin.take());
        let _ = child.wait();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, child.id());
        assert!(processes_using(std::slice::from_ref(&file)).is_empty());
    }

    #[test]
    fn new_files_in_a_folder_take_its_owner_and_its_write_permission() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
        let owner = Owner::for_new_file_in(dir.path()).unwrap();
        assert_eq!(owner.mode, 0o664);
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        owner.apply(&file).unwrap();
        assert_eq!(Owner::of(&file).unwrap(), owner);
    }
}

/// The size of a file system and the space free on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiskSpace {
    /// Bytes free for an unprivileged writer.
    pub free: u64,
    /// Bytes in all.
    pub total: u64,
}

/// The file system holding `dir`: its size and the space free on it;
/// `None` when it cannot be asked.
pub(crate) fn space(dir: &Path) -> Option<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` is written by statvfs
    // before it is read (only when it returns 0).
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    let unit = stat.f_frsize as u64;
    Some(DiskSpace {
        free: (stat.f_bavail as u64).saturating_mul(unit),
        total: (stat.f_blocks as u64).saturating_mul(unit),
    })
}

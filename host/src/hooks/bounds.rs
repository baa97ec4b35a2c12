//! The bounds on what a hook can make uplift use, outside the hook's own
//! WebAssembly memory and instructions (which wasmtime's memory limiter and
//! epoch deadline bound): SQLite's limits and memory, the growth of the
//! database and of SQLite's temporary files, the WASI clock, and a watchdog
//! that stops, and as a last resort ends, what runs past its limit inside a
//! call that nothing else interrupts (one SQL function call, a compilation).
//!
//! Two layers (`docs/limits.md` has the whole table):
//!
//! - precise, in-process limits that give the hook an ordinary "stopped"
//!   error: the engine's (for SQLite, `engine::sqlite::limits`: `sqlite3_limit`, SQLite's memory through a
//!   counting allocator, `max_page_count` of the main and temp databases)
//!   and [`super::clocks::DeadlineClocks`]
//!   (a WASI sleep past the deadline is a time-limit trap at once);
//! - the [`Watchdog`], a thread that samples, every 10 ms while a hook or a
//!   compilation runs, the wall clock, the process's resident memory and the
//!   size of every file it has open (deleted temporary files included). When
//!   one passes its limit it interrupts SQLite and makes the hook's next
//!   check trap with that limit; if the hook is still inside the same call
//!   [`GRACE`] later (SQLite does not check for interrupts inside one
//!   function call such as `instr()`, nor wasmtime inside a compilation),
//!   the uplift command ends its own process after printing which plugin,
//!   hook and limit. That is safe: the upgrade's transaction is not
//!   committed, and SQLite rolls a transaction of a process that died back
//!   from its journal the next time the database is opened (the crash tests
//!   kill uplift at every phase to prove it). Only the `uplift` binary
//!   enables that last step and the samples of memory and files, which are
//!   the whole process's ([`supervise_whole_process`]); in a library user's
//!   process the watchdog watches the time only, and interrupts.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::hooks::Limit;

/// How long the watchdog waits, once it stopped a hook, for the hook to
/// return before it ends the process.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// How often the watchdog samples time, memory and files.
const SAMPLE: Duration = Duration::from_millis(10);

/// The most memory compiling one component may add to the process, in MiB:
/// the largest plugin uplift compiles (a Python one, ~40 MB) needs well under
/// a gigabyte; a hostile one is stopped here or by `compile_seconds`.
pub(crate) const COMPILE_MEMORY_MIB: u64 = 2048;

/// Whether the process is uplift's own (see [`supervise_whole_process`]).
static WHOLE_PROCESS: AtomicBool = AtomicBool::new(false);

/// Declares that this process does nothing but uplift's command, so that
/// the watchdog counts the whole process's resident memory and open files
/// against a running hook's limits, and ends the process when a hook or a
/// compilation does not return within [`GRACE`] of being stopped. Called
/// by the `uplift` binary; never by a library user's process, where other
/// work would count against the hook (and tests run many hooks at once).
pub fn supervise_whole_process() {
    WHOLE_PROCESS.store(true, Ordering::Relaxed);
}

/// The limit that stopped a hook, set by whichever check saw it first (the
/// watchdog, the epoch callback, the progress handler) and read by the
/// others, so that every path reports the same limit.
#[derive(Debug, Default)]
pub(crate) struct Trip(Mutex<Option<Limit>>);

impl Trip {
    /// Records `limit` unless one was recorded already.
    pub(crate) fn set(&self, limit: Limit) {
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(limit);
        }
    }

    /// The limit that stopped the hook, if one did.
    pub(crate) fn get(&self) -> Option<Limit> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

/// What one armed watch watches.
pub(crate) struct Watch {
    /// What is watched, for the message: `hook P/H` or `plugin P`.
    pub subject: String,
    /// When the time limit is reached, and the limit.
    pub deadline: Instant,
    pub time_limit: Limit,
    /// Growth of the process's resident memory allowed, in bytes, and the
    /// limit to report.
    pub memory: Option<(u64, Limit)>,
    /// Growth of the files the process has open allowed, in bytes, and the
    /// limit to report.
    pub disk: Option<(u64, Limit)>,
    /// Interrupts the hook's SQLite connection.
    pub interrupt: Option<Box<dyn Fn() + Send + Sync>>,
    /// What the process is doing, for the message when it must end.
    pub after: &'static str,
}

struct Armed {
    watch: Watch,
    trip: Arc<Trip>,
    memory_base: u64,
    files_base: HashMap<(u64, u64), u64>,
    tripped_at: Option<Instant>,
}

struct Shared {
    watches: Mutex<HashMap<u64, Armed>>,
    wake: Condvar,
    stop: AtomicBool,
}

/// The watchdog thread (see the module's documentation), shared by every
/// runner and validator of the process; it sleeps while nothing is armed.
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    next: AtomicU64,
    _thread: Option<JoinHandle<()>>,
}

/// Disarms its watch when dropped.
pub(crate) struct WatchGuard {
    shared: Arc<Shared>,
    id: u64,
    trip: Arc<Trip>,
}

impl WatchGuard {
    /// The limit the watchdog stopped the work for, if it did.
    pub(crate) fn trip(&self) -> &Arc<Trip> {
        &self.trip
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        // Taking the lock also waits for a watchdog that is ending the
        // process: the hook cannot go on to release its savepoint meanwhile.
        if let Ok(mut watches) = self.shared.watches.lock() {
            watches.remove(&self.id);
        }
    }
}

impl Watchdog {
    /// The process's watchdog, started on first use.
    pub(crate) fn get() -> &'static Watchdog {
        static DOG: OnceLock<Watchdog> = OnceLock::new();
        DOG.get_or_init(|| {
            let shared = Arc::new(Shared {
                watches: Mutex::new(HashMap::new()),
                wake: Condvar::new(),
                stop: AtomicBool::new(false),
            });
            let for_thread = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name("uplift-watchdog".into())
                .spawn(move || watch_loop(&for_thread))
                .ok();
            Watchdog {
                shared,
                next: AtomicU64::new(0),
                _thread: thread,
            }
        })
    }

    /// Starts watching; stops when the guard is dropped.
    pub(crate) fn arm(&self, watch: Watch, trip: Arc<Trip>) -> WatchGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut watch = watch;
        if !WHOLE_PROCESS.load(Ordering::Relaxed) {
            watch.memory = None;
            watch.disk = None;
        }
        let armed = Armed {
            memory_base: if watch.memory.is_some() {
                resident_bytes().unwrap_or(0)
            } else {
                0
            },
            files_base: if watch.disk.is_some() {
                open_file_sizes()
            } else {
                HashMap::new()
            },
            watch,
            trip: Arc::clone(&trip),
            tripped_at: None,
        };
        if let Ok(mut watches) = self.shared.watches.lock() {
            watches.insert(id, armed);
        }
        self.shared.wake.notify_all();
        WatchGuard {
            shared: Arc::clone(&self.shared),
            id,
            trip,
        }
    }
}

fn watch_loop(shared: &Shared) {
    let Ok(mut watches) = shared.watches.lock() else {
        return;
    };
    while !shared.stop.load(Ordering::Relaxed) {
        if watches.is_empty() {
            watches = match shared.wake.wait(watches) {
                Ok(w) => w,
                Err(_) => return,
            };
            continue;
        }
        let now = Instant::now();
        let need_memory = watches.values().any(|a| a.watch.memory.is_some());
        let need_files = watches.values().any(|a| a.watch.disk.is_some());
        let memory = need_memory.then(resident_bytes).flatten();
        let files = need_files.then(open_file_sizes);
        for armed in watches.values_mut() {
            check(armed, now, memory, files.as_ref());
        }
        watches = match shared.wake.wait_timeout(watches, SAMPLE) {
            Ok((w, _)) => w,
            Err(_) => return,
        };
    }
}

fn check(armed: &mut Armed, now: Instant, memory: Option<u64>, files: Option<&FileSizes>) {
    if armed.tripped_at.is_none() {
        let watch = &armed.watch;
        let hit = if now >= watch.deadline {
            Some(watch.time_limit.clone())
        } else if let (Some((max, limit)), Some(resident)) = (&watch.memory, memory)
            && resident.saturating_sub(armed.memory_base) > *max
        {
            Some(limit.clone())
        } else if let (Some((max, limit)), Some(files)) = (&watch.disk, files)
            && growth(&armed.files_base, files) > *max
        {
            Some(limit.clone())
        } else {
            None
        };
        if let Some(limit) = hit {
            armed.trip.set(limit);
            armed.tripped_at = Some(now);
            if let Some(interrupt) = &armed.watch.interrupt {
                interrupt();
            }
        }
    }
    if let Some(at) = armed.tripped_at
        && now >= at + GRACE
        && WHOLE_PROCESS.load(Ordering::Relaxed)
    {
        end_process(armed);
    }
}

/// Ends the process, saying why: the watched work did not return within
/// [`GRACE`] of being stopped. Called with the watches locked, so that no
/// hook finishes (and no transaction commits) meanwhile.
fn end_process(armed: &Armed) -> ! {
    let limit = armed
        .trip
        .get()
        .unwrap_or_else(|| armed.watch.time_limit.clone());
    let message = format!(
        "error: {} was stopped: {limit}; it was still inside one call that cannot be \
         interrupted {} s later, so uplift ended itself (exit code 1). {}\n",
        armed.watch.subject,
        GRACE.as_secs(),
        armed.watch.after,
    );
    let _ = std::io::stderr().write_all(message.as_bytes());
    // SAFETY: `_exit` ends the process at once, without running destructors
    // or exit handlers that could touch state the stuck thread holds; the
    // operating system releases the home's lock and SQLite's locks, and the
    // next opener of the database rolls the unfinished transaction back.
    unsafe { libc::_exit(1) }
}

/// Sizes on disk of the regular files the process has open, by (device,
/// inode).
type FileSizes = HashMap<(u64, u64), u64>;

/// Bytes the files in `now` grew by since `base` (a file not in `base` grew
/// from nothing; one that shrank or closed counts nothing).
fn growth(base: &FileSizes, now: &FileSizes) -> u64 {
    now.iter()
        .map(|(key, size)| size.saturating_sub(base.get(key).copied().unwrap_or(0)))
        .fold(0u64, u64::saturating_add)
}

/// The process's resident memory in bytes (Linux: `/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages.saturating_mul(u64::try_from(page).ok()?))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The regular files the process has open and the bytes each takes on disk
/// (Linux: `/proc/self/fd`, which also reaches deleted files still open,
/// such as SQLite's temporary files).
fn open_file_sizes() -> FileSizes {
    let mut sizes = HashMap::new();
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
            return sizes;
        };
        for entry in entries.flatten() {
            if let Ok(meta) = std::fs::metadata(entry.path())
                && meta.is_file()
            {
                sizes.insert((meta.dev(), meta.ino()), meta.blocks().saturating_mul(512));
            }
        }
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_counts_new_and_grown_files_and_ignores_shrunk_or_closed_ones() {
        let base: FileSizes = [((1, 1), 100), ((1, 2), 500), ((1, 3), 70)].into();
        let now: FileSizes = [((1, 1), 150), ((1, 2), 400), ((1, 4), 1000)].into();
        assert_eq!(growth(&base, &now), 50 + 1000);
    }

    #[test]
    fn a_file_written_while_watched_shows_as_growth() {
        let base = open_file_sizes();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        file.sync_all().unwrap();
        let grown = growth(&base, &open_file_sizes());
        assert!(grown >= 1 << 20, "grew by {grown}");
    }
}

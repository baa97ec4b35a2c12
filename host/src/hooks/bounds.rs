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
//!   error: [`SqliteBounds`] (`sqlite3_limit`, SQLite's memory through a
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

use rusqlite::limits::Limit as SqliteLimit;
use rusqlite::{Connection, InterruptHandle, ffi};

use crate::home::HookLimits;
use crate::hooks::Limit;

/// How long the watchdog waits, once it stopped a hook, for the hook to
/// return before it ends the process.
pub(super) const GRACE: Duration = Duration::from_secs(2);

/// How often the watchdog samples time, memory and files.
const SAMPLE: Duration = Duration::from_millis(10);

/// The most memory compiling one component may add to the process, in MiB:
/// the largest plugin uplift compiles (a Python one, ~40 MB) needs well under
/// a gigabyte; a hostile one is stopped here or by `compile_seconds`.
pub(super) const COMPILE_MEMORY_MIB: u64 = 2048;

/// The longest SQL text a hook may prepare (SQLite's default is 1 GB):
/// values belong in parameters, and the compiler's time and memory grow
/// with the text.
const MAX_SQL_LENGTH: i32 = 1_000_000;

/// The longest `LIKE`/`GLOB` pattern (SQLite's default is 50,000): matching
/// costs up to the pattern's length times the text's, in one function call
/// that nothing interrupts.
const MAX_LIKE_PATTERN: i32 = 1_000;

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
    pub(super) fn set(&self, limit: Limit) {
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(limit);
        }
    }

    /// The limit that stopped the hook, if one did.
    pub(super) fn get(&self) -> Option<Limit> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

/// SQLite's memory, bounded while hooks run: uplift's SQLite is built
/// without memory statistics (`SQLITE_DEFAULT_MEMSTATUS=0`, see
/// `.cargo/config.toml`: they cost a mutex on every allocation), so its heap
/// limit does nothing. Instead uplift gives SQLite an allocator
/// ([`install_sqlite_allocator`]) that, while a hook runs (armed), counts
/// the bytes SQLite allocates less those it frees and refuses an allocation
/// past the budget; SQLite answers the statement with `SQLITE_NOMEM`, which
/// stops the hook with [`Limit::DatabaseMemory`]. Disarmed, it costs one
/// relaxed atomic load per allocation. A free of memory allocated before the
/// hook lowers the count, which can only give the hook back memory SQLite
/// already held.
mod sqlite_memory {
    use std::ffi::{c_int, c_void};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    use rusqlite::ffi;

    static ARMED: AtomicBool = AtomicBool::new(false);
    /// Bytes allocated less bytes freed while armed.
    static USED: AtomicI64 = AtomicI64::new(0);
    /// The budget while armed.
    static LIMIT: AtomicI64 = AtomicI64::new(i64::MAX);
    /// How many hooks are armed (more than one only in tests, which run
    /// runners on several threads): their budgets add up.
    static ACTIVE: Mutex<usize> = Mutex::new(0);

    fn usable(p: *mut c_void) -> i64 {
        // SAFETY: `p` is null or a block from libc's malloc/realloc below.
        let size = unsafe { libc::malloc_usable_size(p) };
        i64::try_from(size).unwrap_or(i64::MAX)
    }

    fn allowed(more: i64) -> bool {
        USED.load(Ordering::Relaxed).saturating_add(more) <= LIMIT.load(Ordering::Relaxed)
    }

    unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
        let n = n.max(1);
        let armed = ARMED.load(Ordering::Relaxed);
        if armed && !allowed(i64::from(n)) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain libc allocation of a positive size.
        let p = unsafe { libc::malloc(n as usize) };
        if armed && !p.is_null() {
            USED.fetch_add(usable(p), Ordering::Relaxed);
        }
        p
    }

    unsafe extern "C" fn x_free(p: *mut c_void) {
        if ARMED.load(Ordering::Relaxed) && !p.is_null() {
            USED.fetch_sub(usable(p), Ordering::Relaxed);
        }
        // SAFETY: SQLite frees only what this allocator gave it.
        unsafe { libc::free(p) }
    }

    unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        let n = n.max(1);
        let armed = ARMED.load(Ordering::Relaxed);
        let old = if armed { usable(p) } else { 0 };
        if armed && !allowed(i64::from(n).saturating_sub(old)) {
            return std::ptr::null_mut();
        }
        // SAFETY: `p` came from this allocator; on failure it stays valid.
        let q = unsafe { libc::realloc(p, n as usize) };
        if armed && !q.is_null() {
            USED.fetch_add(usable(q).saturating_sub(old), Ordering::Relaxed);
        }
        q
    }

    unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
        c_int::try_from(usable(p)).unwrap_or(c_int::MAX)
    }

    unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
        n.saturating_add(7) & !7
    }

    unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
        ffi::SQLITE_OK
    }

    unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

    /// Gives SQLite the counting allocator. Must run before SQLite is first
    /// used in the process (SQLite refuses a new allocator afterwards:
    /// then nothing changes and the limit is not enforced, which
    /// [`installed`] tells).
    pub(super) fn install() {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to the methods, which
        // SQLite copies before returning; each method is a thin wrapper of
        // libc's allocator, safe to call from any thread.
        // A failure (SQLite already initialised) leaves SQLite's own
        // allocator: the watchdog's process memory limit still holds.
        let _ = unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &methods as *const ffi::sqlite3_mem_methods,
            )
        };
    }

    /// Starts counting against `budget` more bytes.
    pub(super) fn arm(budget: i64) {
        let Ok(mut active) = ACTIVE.lock() else {
            return;
        };
        if *active == 0 {
            USED.store(0, Ordering::Relaxed);
            LIMIT.store(budget, Ordering::Relaxed);
        } else {
            let limit = LIMIT.load(Ordering::Relaxed).saturating_add(budget);
            LIMIT.store(limit, Ordering::Relaxed);
        }
        *active += 1;
        ARMED.store(true, Ordering::Relaxed);
    }

    /// Stops counting `budget`; the last disarm stops counting altogether.
    pub(super) fn disarm(budget: i64) {
        let Ok(mut active) = ACTIVE.lock() else {
            return;
        };
        *active = active.saturating_sub(1);
        if *active == 0 {
            ARMED.store(false, Ordering::Relaxed);
            LIMIT.store(i64::MAX, Ordering::Relaxed);
        } else {
            let limit = LIMIT.load(Ordering::Relaxed).saturating_sub(budget);
            LIMIT.store(limit, Ordering::Relaxed);
        }
    }
}

/// Gives SQLite uplift's counting allocator, which enforces
/// `[hooks] database_memory_mib` while a hook runs. Call it before anything
/// in the process uses SQLite (the `uplift` binary does, first thing); if
/// SQLite is already in use, it does nothing and that limit is not enforced
/// (the watchdog's process memory limit still is).
pub fn install_sqlite_allocator() {
    #[cfg(target_os = "linux")]
    sqlite_memory::install();
}

fn heap_arm(budget: i64) {
    #[cfg(target_os = "linux")]
    sqlite_memory::arm(budget);
}

fn heap_disarm(budget: i64) {
    #[cfg(target_os = "linux")]
    sqlite_memory::disarm(budget);
}

/// SQLite's limits while a hook runs on a connection, put back by
/// [`SqliteBounds::restore`]: values no longer than a reply
/// (`SQLITE_LIMIT_LENGTH`), no `ATTACH`, SQL text and `LIKE` patterns of
/// bounded length, no sorter threads, SQLite's memory within
/// `database_memory_mib` of what it used at the start (when
/// [`install_sqlite_allocator`] ran), and the main and
/// temp databases within `disk_mib` of their size at the start
/// (`max_page_count`: a write past it fails with `SQLITE_FULL`).
pub(crate) struct SqliteBounds {
    old: Vec<(SqliteLimit, i32)>,
    heap_budget: i64,
    /// (schema, the `max_page_count` it had before the hook).
    page_counts: Vec<(&'static str, i64)>,
    disk_mib: u64,
    memory_mib: u64,
}

impl SqliteBounds {
    /// Applies the bounds to `conn`; called before the hook's authorizer is
    /// installed (it runs PRAGMAs).
    pub(super) fn apply(conn: &Connection, limits: &HookLimits) -> SqliteBounds {
        let max_value =
            i32::try_from(limits.max_reply_mib.saturating_mul(1 << 20)).unwrap_or(i32::MAX);
        let mut old = Vec::new();
        for (limit, value) in [
            (SqliteLimit::SQLITE_LIMIT_LENGTH, max_value),
            (SqliteLimit::SQLITE_LIMIT_ATTACHED, 0),
            (SqliteLimit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_LENGTH),
            (
                SqliteLimit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
                MAX_LIKE_PATTERN,
            ),
            (SqliteLimit::SQLITE_LIMIT_WORKER_THREADS, 0),
        ] {
            if let Ok(was) = conn.limit(limit) {
                let _ = conn.set_limit(limit, was.min(value));
                old.push((limit, was));
            }
        }
        let heap_budget =
            i64::try_from(limits.database_memory_mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        heap_arm(heap_budget);
        let disk = i64::try_from(limits.disk_mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        let mut page_counts = Vec::new();
        for schema in ["main", "temp"] {
            if let Some(was) = bound_page_count(conn, schema, disk) {
                page_counts.push((schema, was));
            }
        }
        SqliteBounds {
            old,
            heap_budget,
            page_counts,
            disk_mib: limits.disk_mib,
            memory_mib: limits.database_memory_mib,
        }
    }

    /// The limit a failed SQLite call hit, if it was one of these bounds:
    /// `SQLITE_NOMEM` is SQLite's memory limit; `SQLITE_FULL` is the disk
    /// limit (the page count set for the hook) unless the disk itself is
    /// full, then it is an ordinary error. The page count cannot tell: SQLite
    /// may already have rolled the transaction back, and the file shrunk.
    pub(super) fn limit_for(&self, conn: &Connection, code: i32) -> Option<Limit> {
        match code {
            ffi::SQLITE_NOMEM => Some(Limit::DatabaseMemory {
                mib: self.memory_mib,
            }),
            ffi::SQLITE_FULL => {
                let database = conn
                    .path()
                    .filter(|p| !p.is_empty())
                    .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()));
                let disks = database.into_iter().chain([std::env::temp_dir()]);
                let room = disks
                    .filter_map(|dir| free_bytes(&dir))
                    .all(|free| free >= DISK_FULL_MARGIN);
                room.then_some(Limit::Disk { mib: self.disk_mib })
            }
            _ => None,
        }
    }

    /// Puts back what [`SqliteBounds::apply`] changed; called after the
    /// hook's authorizer is removed, before its savepoint is released or
    /// rolled back (a rollback may need the memory the hook was denied).
    pub(super) fn restore(self, conn: &Connection) {
        heap_disarm(self.heap_budget);
        for (limit, was) in self.old {
            let _ = conn.set_limit(limit, was);
        }
        for (schema, was) in self.page_counts {
            let _ = conn.execute_batch(&format!("PRAGMA {schema}.max_page_count = {was}"));
        }
    }
}

/// Free space below which a file system counts as full: SQLite's
/// `SQLITE_FULL` is then the disk's, not the hook's disk limit.
const DISK_FULL_MARGIN: u64 = 16 << 20;

/// Bytes free for an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
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
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Sets `schema`'s `max_page_count` to its page count plus `bytes`' worth
/// of pages; the value it had.
fn bound_page_count(conn: &Connection, schema: &str, bytes: i64) -> Option<i64> {
    let read = |pragma: &str| -> Option<i64> {
        conn.query_row(&format!("PRAGMA {schema}.{pragma}"), [], |r| r.get(0))
            .ok()
    };
    let was = read("max_page_count")?;
    let pages = read("page_count")?;
    let page_size = read("page_size")?.max(512);
    let set = pages.saturating_add(bytes / page_size).min(was);
    conn.execute_batch(&format!("PRAGMA {schema}.max_page_count = {set}"))
        .ok()?;
    Some(was)
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
    pub interrupt: Option<InterruptHandle>,
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
    pub(super) fn trip(&self) -> &Arc<Trip> {
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
    pub(super) fn get() -> &'static Watchdog {
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
    pub(super) fn arm(&self, watch: Watch, trip: Arc<Trip>) -> WatchGuard {
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
                interrupt.interrupt();
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

    /// What the bounds change on a connection.
    fn state(conn: &Connection) -> Vec<i64> {
        let mut state: Vec<i64> = [
            SqliteLimit::SQLITE_LIMIT_LENGTH,
            SqliteLimit::SQLITE_LIMIT_ATTACHED,
            SqliteLimit::SQLITE_LIMIT_SQL_LENGTH,
            SqliteLimit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
            SqliteLimit::SQLITE_LIMIT_WORKER_THREADS,
        ]
        .into_iter()
        .map(|l| i64::from(conn.limit(l).unwrap()))
        .collect();
        for schema in ["main", "temp"] {
            state.push(
                conn.query_row(&format!("PRAGMA {schema}.max_page_count"), [], |r| r.get(0))
                    .unwrap(),
            );
        }
        state
    }

    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("db.sqlite3")).unwrap();
        conn.execute_batch("CREATE TABLE t(b BLOB); BEGIN IMMEDIATE;")
            .unwrap();
        (dir, conn)
    }

    #[test]
    fn the_bounds_hold_while_the_hook_runs_and_are_put_back_after() {
        let (_dir, conn) = database();
        let before = state(&conn);
        let limits = HookLimits {
            max_reply_mib: 1,
            disk_mib: 1,
            ..HookLimits::default()
        };
        let bounds = SqliteBounds::apply(&conn, &limits);
        let during = state(&conn);
        assert_eq!(&during[..5], &[1 << 20, 0, 1_000_000, 1_000, 0]);
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(during[5], pages + (1 << 20) / page_size);
        bounds.restore(&conn);
        assert_eq!(state(&conn), before);
    }

    #[test]
    fn writing_past_the_disk_limit_fails_as_the_disk_limit() {
        let (_dir, conn) = database();
        let limits = HookLimits {
            disk_mib: 1,
            ..HookLimits::default()
        };
        let bounds = SqliteBounds::apply(&conn, &limits);
        let err = (0..4)
            .map(|_| conn.execute("INSERT INTO t VALUES (randomblob(400000))", []))
            .find_map(Result::err)
            .expect("the fourth 400 kB row does not fit in 1 MiB");
        let code = match &err {
            rusqlite::Error::SqliteFailure(e, _) => e.extended_code & 0xff,
            other => panic!("{other}"),
        };
        assert_eq!(code, ffi::SQLITE_FULL, "{err}");
        assert_eq!(
            bounds.limit_for(&conn, ffi::SQLITE_FULL),
            Some(Limit::Disk { mib: 1 })
        );
        bounds.restore(&conn);
    }

    #[test]
    fn a_trip_keeps_the_first_limit() {
        let trip = Trip::default();
        trip.set(Limit::Disk { mib: 1 });
        trip.set(Limit::Time { seconds: 1 });
        assert_eq!(trip.get(), Some(Limit::Disk { mib: 1 }));
    }
}

//! SQLite's part of the bounds on a hook (see [`crate::hooks::bounds`] for
//! the whole design): `sqlite3_limit`, SQLite's memory through a counting
//! allocator, and `max_page_count` of the main and temp databases, so that
//! a hook hitting one gets an ordinary "stopped" error.

use rusqlite::limits::Limit as SqliteLimit;
use rusqlite::{Connection, ffi};

use crate::home::HookLimits;
use crate::hooks::Limit;

/// The longest SQL text a hook may prepare (SQLite's default is 1 GB):
/// values belong in parameters, and the compiler's time and memory grow
/// with the text.
const MAX_SQL_LENGTH: i32 = 1_000_000;

/// The longest `LIKE`/`GLOB` pattern (SQLite's default is 50,000): matching
/// costs up to the pattern's length times the text's, in one function call
/// that nothing interrupts.
const MAX_LIKE_PATTERN: i32 = 1_000;

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
    pub(crate) fn install() {
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
    pub(crate) fn arm(budget: i64) {
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
    pub(crate) fn disarm(budget: i64) {
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
    pub(crate) fn apply(conn: &Connection, limits: &HookLimits) -> SqliteBounds {
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
    pub(crate) fn limit_for(&self, conn: &Connection, code: i32) -> Option<Limit> {
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
    pub(crate) fn restore(self, conn: &Connection) {
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
    crate::disk::space(dir).map(|space| space.free)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::bounds::Trip;

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

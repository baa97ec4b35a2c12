//! The dump's read snapshot: a read transaction on the dump's connection
//! ([`Snapshot`]), and a second connection that reads the very same
//! snapshot ([`second_reader`]), so that two threads can dump one database
//! as it was at one instant.

use std::ffi::CStr;

use rusqlite::{Connection, OpenFlags, ffi};

use super::sql_err;
use crate::backup::error::BackupError;

/// A read transaction opened (or not) for the dump.
pub(super) struct Snapshot {
    opened: bool,
}

impl Snapshot {
    /// Fixes the snapshot `conn` reads: opens a read transaction when
    /// `conn` is outside one, and reads once (the first read fixes it).
    pub(super) fn begin(conn: &Connection) -> Result<Snapshot, BackupError> {
        let opened = conn.is_autocommit();
        if opened {
            conn.execute_batch("BEGIN DEFERRED")
                .map_err(sql_err("begin a read transaction"))?;
        }
        conn.query_row("SELECT count(*) FROM main.sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(sql_err("sqlite_schema"))?;
        Ok(Snapshot { opened })
    }

    /// Whether the transaction is the dump's own (so it has changed
    /// nothing), rather than a caller's.
    pub(super) fn is_own(&self) -> bool {
        self.opened
    }

    /// Ends the read transaction if this opened it; returns `result`, or
    /// the error of ending it.
    pub(super) fn end<T>(
        self,
        conn: &Connection,
        result: Result<T, BackupError>,
    ) -> Result<T, BackupError> {
        if self.opened {
            let ended = conn
                .execute_batch("ROLLBACK")
                .map_err(sql_err("end the read transaction"));
            let value = result?;
            ended?;
            Ok(value)
        } else {
            result
        }
    }
}

const MAIN: &CStr = c"main";

/// How the dump's connection holds the snapshot it reads, when a second
/// connection may read it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// A read transaction of the dump's own ([`Snapshot::begin`]).
    Read,
    /// A caller's transaction holding the write lock, which has changed
    /// nothing yet.
    UnwrittenWrite,
}

/// Opens a second connection to the database of `conn` reading the same
/// snapshot, `conn` holding it as `hold` says; `None` when that cannot be
/// had, and the dump reads with `conn` alone.
///
/// In a rollback-journal mode, `conn`'s transaction holds a shared lock on
/// the file from its first read to its end, and no connection can commit
/// while any lock of another is held: a read transaction begun meanwhile
/// sees exactly what `conn` sees (as long as `conn` has written nothing).
/// Beginning one fails (and gives `None`) when a writer already waits for
/// the lock.
///
/// In WAL mode, a writer can commit at any time, unless `conn` holds the
/// write lock: then a new read transaction sees the latest commit, which is
/// the one `conn` began on. Otherwise the second connection opens `conn`'s
/// snapshot itself (`sqlite3_snapshot_get` and `sqlite3_snapshot_open`).
/// SQLite gives no snapshot of a WAL file that nothing was written to since
/// it was created (a database no one has written since it was last
/// opened): then `None`.
pub(super) fn second_reader(
    conn: &Connection,
    journal_mode: &str,
    hold: Hold,
) -> Option<Connection> {
    let path = conn.path().filter(|p| !p.is_empty())?;
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    // Never wait for a lock: a writer waiting for one waits on `conn`.
    reader.busy_timeout(std::time::Duration::ZERO).ok()?;
    let joined = if journal_mode.eq_ignore_ascii_case("wal") && hold == Hold::Read {
        open_same_snapshot(conn, &reader)
    } else {
        reader.execute_batch("BEGIN DEFERRED").is_ok()
    };
    // Reading fixes the snapshot; and a second look at what both
    // connections see (a file replaced under the name since `conn` opened
    // it would differ).
    let same = joined && shape(&reader).is_some_and(|seen| Some(seen) == shape(conn));
    same.then_some(reader)
}

/// What a connection sees of the file: its schema's version, its pages,
/// its free pages.
fn shape(conn: &Connection) -> Option<(i64, i64, i64)> {
    conn.query_row(
        "SELECT (SELECT schema_version FROM pragma_schema_version),
                (SELECT page_count FROM pragma_page_count),
                (SELECT freelist_count FROM pragma_freelist_count)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

/// A snapshot handle that SQLite allocated, freed on drop.
struct SnapshotHandle(*mut ffi::sqlite3_snapshot);

impl Drop for SnapshotHandle {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful sqlite3_snapshot_get
        // and is freed only here, once.
        unsafe { ffi::sqlite3_snapshot_free(self.0) }
    }
}

/// Begins a read transaction on `reader` on the snapshot `conn` reads (a
/// WAL database); whether it could.
fn open_same_snapshot(conn: &Connection, reader: &Connection) -> bool {
    let mut handle = std::ptr::null_mut();
    // SAFETY: `conn` is open and in a read transaction on this thread for
    // the whole call; the schema name is a NUL-terminated string; SQLite
    // writes a snapshot it allocated (or nothing) into `handle`.
    let got = unsafe { ffi::sqlite3_snapshot_get(conn.handle(), MAIN.as_ptr(), &mut handle) };
    if got != ffi::SQLITE_OK || handle.is_null() {
        return false;
    }
    let snapshot = SnapshotHandle(handle);
    // A new connection knows the file is in WAL mode only once it has read
    // it; then the snapshot is opened as the first thing its transaction
    // does.
    if reader
        .query_row("PRAGMA main.application_id", [], |r| r.get::<_, i64>(0))
        .is_err()
        || reader.execute_batch("BEGIN DEFERRED").is_err()
    {
        return false;
    }
    // SAFETY: `reader` is open, out of autocommit mode and reads nothing
    // yet; the snapshot is alive until `snapshot` drops, after the call.
    let opened = unsafe { ffi::sqlite3_snapshot_open(reader.handle(), MAIN.as_ptr(), snapshot.0) };
    opened == ffi::SQLITE_OK
}

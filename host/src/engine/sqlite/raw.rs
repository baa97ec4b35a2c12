//! Prepared SQLite statements that live across host calls: the guest's
//! `statement` and `cursor` resources.
//!
//! rusqlite's `Statement` borrows its `Connection`, but the connection lives
//! in the hook's store data (which must be `'static`) next to the resource
//! table that holds the statements, so a borrowing type cannot be stored
//! there. This module therefore drives `sqlite3_stmt` through rusqlite's raw
//! FFI, and is the only place in uplift with `unsafe` code.
//!
//! SAFETY (the one invariant every `unsafe` block below relies on): a
//! [`RawStatement`] is created from an open connection and finalized in its
//! `Drop`; the runner drops every `RawStatement` (the store's resource table)
//! before it gives the connection back, ends the hook's savepoint or lets the
//! connection close (see `runtime::HookRunner::run` and the field order of
//! `sandbox::HostState`). So the database handle is open for the whole life
//! of each statement, and each statement pointer is valid from a successful
//! prepare until its drop. Everything runs on the one thread that owns the
//! store; SQLite's default threading mode (serialized) makes moving the
//! handle between threads with the store sound.

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;

use rusqlite::Connection;
use rusqlite::ffi;

/// A value read from or bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A value to bind, borrowed from the guest's parameters (no copy).
#[derive(Debug, Clone, Copy)]
pub(crate) enum BindValue<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// An error from SQLite: primary and extended code, and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlError {
    pub code: i32,
    pub extended_code: i32,
    pub message: String,
}

impl SqlError {
    pub(crate) fn new(extended_code: i32, message: impl Into<String>) -> SqlError {
        SqlError {
            code: extended_code & 0xff,
            extended_code,
            message: message.into(),
        }
    }
}

/// One prepared statement, finalized on drop.
pub(crate) struct RawStatement {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    columns: Vec<String>,
    params: usize,
    /// Stepped since the last reset.
    dirty: bool,
}

// SAFETY: see the module comment; the statement moves between threads only
// together with the store that owns its connection, and is never used by two
// threads at once.
unsafe impl Send for RawStatement {}
// SAFETY: as for Send: the store that owns the statement is used by one
// thread at a time, so no two threads ever reach the statement at once.
unsafe impl Sync for RawStatement {}

fn db_error(db: NonNull<ffi::sqlite3>) -> SqlError {
    // SAFETY: `db` is an open handle (module comment).
    unsafe {
        let extended = ffi::sqlite3_extended_errcode(db.as_ptr());
        let msg = ffi::sqlite3_errmsg(db.as_ptr());
        let message = if msg.is_null() {
            String::from("unknown error")
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        };
        SqlError::new(extended, message)
    }
}

impl RawStatement {
    /// Prepares the first statement of `sql`. Returns the statement (`None`
    /// when that part holds only whitespace or comments) and the byte offset
    /// where the rest of `sql` starts.
    pub(crate) fn prepare(
        conn: &Connection,
        sql: &str,
    ) -> Result<(Option<RawStatement>, usize), SqlError> {
        let len = c_int::try_from(sql.len())
            .map_err(|_| SqlError::new(ffi::SQLITE_TOOBIG, "the SQL text is too long"))?;
        // SAFETY: `handle` is the connection's open database handle, used only
        // while `conn` is borrowed; `sql` outlives the call and its length is
        // given, so SQLite reads no further; `tail` points into `sql`.
        unsafe {
            let db = NonNull::new(conn.handle())
                .ok_or_else(|| SqlError::new(ffi::SQLITE_MISUSE, "the connection is closed"))?;
            let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
            let mut tail: *const c_char = std::ptr::null();
            let rc = ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast::<c_char>(),
                len,
                &mut stmt,
                &mut tail,
            );
            let rest = if tail.is_null() {
                sql.len()
            } else {
                (tail as usize)
                    .saturating_sub(sql.as_ptr() as usize)
                    .min(sql.len())
            };
            if rc != ffi::SQLITE_OK {
                if !stmt.is_null() {
                    ffi::sqlite3_finalize(stmt);
                }
                return Err(db_error(db));
            }
            let Some(stmt) = NonNull::new(stmt) else {
                return Ok((None, rest));
            };
            let count = ffi::sqlite3_column_count(stmt.as_ptr());
            let mut columns = Vec::with_capacity(count.max(0) as usize);
            for i in 0..count {
                let name = ffi::sqlite3_column_name(stmt.as_ptr(), i);
                columns.push(if name.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                });
            }
            let params = ffi::sqlite3_bind_parameter_count(stmt.as_ptr()).max(0) as usize;
            Ok((
                Some(RawStatement {
                    stmt,
                    db,
                    columns,
                    params,
                    dirty: false,
                }),
                rest,
            ))
        }
    }

    /// How many parameters the statement takes.
    pub(crate) fn parameter_count(&self) -> usize {
        self.params
    }

    /// The statement's column names.
    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Resets the statement if it ran, and binds `params` to its
    /// parameters in order.
    pub(crate) fn bind<'a>(
        &mut self,
        params: impl ExactSizeIterator<Item = BindValue<'a>>,
    ) -> Result<(), SqlError> {
        if self.dirty {
            self.reset();
        }
        if params.len() != self.params {
            return Err(SqlError::new(
                ffi::SQLITE_RANGE,
                format!(
                    "the statement has {} parameter(s) but {} value(s) were given",
                    self.params,
                    params.len()
                ),
            ));
        }
        for (i, value) in params.enumerate() {
            let index = (i + 1) as c_int;
            let stmt = self.stmt.as_ptr();
            // SAFETY: `stmt` is valid (module comment); text and blob bytes
            // are copied by SQLite (SQLITE_TRANSIENT) before the call returns.
            let rc = unsafe {
                match value {
                    BindValue::Null => ffi::sqlite3_bind_null(stmt, index),
                    BindValue::Integer(v) => ffi::sqlite3_bind_int64(stmt, index, v),
                    BindValue::Real(v) => ffi::sqlite3_bind_double(stmt, index, v),
                    BindValue::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        index,
                        s.as_ptr().cast::<c_char>(),
                        s.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    BindValue::Blob(b) => ffi::sqlite3_bind_blob64(
                        stmt,
                        index,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(db_error(self.db));
            }
        }
        Ok(())
    }

    /// Steps once: `true` when a row is ready, `false` when done.
    pub(crate) fn step(&mut self) -> Result<bool, SqlError> {
        self.dirty = true;
        // SAFETY: `stmt` is valid (module comment).
        let rc = unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) };
        match rc {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            _ => {
                let err = db_error(self.db);
                self.reset();
                Err(err)
            }
        }
    }

    /// The reply size of the current row's column `i`, without copying it.
    pub(crate) fn column_size(&self, i: usize) -> usize {
        let stmt = self.stmt.as_ptr();
        let i = i as c_int;
        // SAFETY: `stmt` is valid and positioned on a row (callers call this
        // only after `step` returned `true`). `sqlite3_column_bytes` does not
        // materialise zeroblobs.
        unsafe {
            match ffi::sqlite3_column_type(stmt, i) {
                ffi::SQLITE_TEXT | ffi::SQLITE_BLOB => {
                    9 + ffi::sqlite3_column_bytes(stmt, i).max(0) as usize
                }
                ffi::SQLITE_NULL => 1,
                _ => 9,
            }
        }
    }

    /// Copies the current row's column `i`.
    pub(crate) fn column(&self, i: usize) -> SqlValue {
        let stmt = self.stmt.as_ptr();
        let i = i as c_int;
        // SAFETY: `stmt` is valid and positioned on a row; the pointers SQLite
        // returns stay valid until the next step/reset, and are copied at once
        // (text first asked for as text, then its length, as SQLite advises).
        unsafe {
            match ffi::sqlite3_column_type(stmt, i) {
                ffi::SQLITE_INTEGER => SqlValue::Integer(ffi::sqlite3_column_int64(stmt, i)),
                ffi::SQLITE_FLOAT => SqlValue::Real(ffi::sqlite3_column_double(stmt, i)),
                ffi::SQLITE_TEXT => {
                    let p = ffi::sqlite3_column_text(stmt, i);
                    let n = ffi::sqlite3_column_bytes(stmt, i).max(0) as usize;
                    if p.is_null() || n == 0 {
                        SqlValue::Text(String::new())
                    } else {
                        let bytes = std::slice::from_raw_parts(p, n);
                        SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                }
                ffi::SQLITE_BLOB => {
                    let p = ffi::sqlite3_column_blob(stmt, i);
                    let n = ffi::sqlite3_column_bytes(stmt, i).max(0) as usize;
                    if p.is_null() || n == 0 {
                        SqlValue::Blob(Vec::new())
                    } else {
                        SqlValue::Blob(std::slice::from_raw_parts(p.cast::<u8>(), n).to_vec())
                    }
                }
                _ => SqlValue::Null,
            }
        }
    }

    /// Whether the statement only reads.
    pub(crate) fn readonly(&self) -> bool {
        // SAFETY: `stmt` is valid (module comment).
        unsafe { ffi::sqlite3_stmt_readonly(self.stmt.as_ptr()) != 0 }
    }

    /// Rows changed by the most recent INSERT, UPDATE or DELETE on the
    /// connection.
    pub(crate) fn changes(&self) -> u64 {
        // SAFETY: `db` is open (module comment).
        unsafe { ffi::sqlite3_changes64(self.db.as_ptr()).max(0) as u64 }
    }

    /// Resets the statement so it can run again (bindings are kept).
    pub(crate) fn reset(&mut self) {
        self.dirty = false;
        // SAFETY: `stmt` is valid; the result repeats the last step's error,
        // which `step` already reported.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
        }
    }
}

impl Drop for RawStatement {
    fn drop(&mut self) {
        // SAFETY: `stmt` is valid and finalized exactly once, here.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

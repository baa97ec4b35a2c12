//! A hook's database capability: what the WIT `database` interface reaches.
//! An engine implements [`Capability`] on its own connection, with its own
//! way of keeping the hook to what its manifest declares (the SQLite engine:
//! an authorizer, limits, a progress handler); the host side of the
//! interface ([`super::database`]) only hands calls to it, so the hook
//! runtime runs a component against any engine's capability.

use std::any::Any;

use crate::hooks::bindings::uplift::hooks::types::{DbError, Row, Rows, Value};
pub(crate) use crate::hooks::handles::Handle;
use crate::hooks::log::SharedLog;
use crate::hooks::{Limit, LimitHit, LogLevel};

/// A call's answer: `Ok(Err(db_error))` for an error the hook sees and
/// handles, `Err(trap)` for a limit or a lost transaction, which stop it.
pub(crate) type Reply<T> = wasmtime::Result<Result<T, DbError>>;

/// What a capability may use of the hook's store while it serves a call:
/// the hook's log (for the sandbox's notes, counted against its cap) and
/// the record of the limit that stopped it.
pub(crate) struct Calls<'a> {
    pub(crate) log: &'a SharedLog,
    pub(crate) limit_hit: &'a mut Option<Limit>,
}

impl Calls<'_> {
    /// Records that `limit` was hit; the error traps the hook.
    pub(crate) fn hit(&mut self, limit: Limit) -> wasmtime::Error {
        *self.limit_hit = Some(limit.clone());
        wasmtime::Error::new(LimitHit(limit))
    }

    /// Writes a note of the sandbox's to the hook's log (a refused
    /// statement); traps when the log is over its cap.
    pub(crate) fn note(&mut self, level: LogLevel, message: &str) -> wasmtime::Result<()> {
        let written = self
            .log
            .lock()
            .map(|mut log| log.sandbox(level, message))
            .unwrap_or(Ok(()));
        written.map_err(|limit| self.hit(limit))
    }
}

/// A hook's database capability; see the module's documentation. Each
/// method serves the WIT function of the same name.
pub(crate) trait Capability: Send {
    /// Runs one statement; the rows it changed.
    fn execute(&mut self, calls: &mut Calls<'_>, sql: &str, params: &[Value]) -> Reply<u64>;
    /// Runs every statement of `sql`.
    fn execute_batch(&mut self, calls: &mut Calls<'_>, sql: &str) -> Reply<()>;
    /// Runs one query; every row.
    fn query(&mut self, calls: &mut Calls<'_>, sql: &str, params: &[Value]) -> Reply<Rows>;
    /// Runs one query, its rows read a batch at a time.
    fn open_cursor(&mut self, calls: &mut Calls<'_>, sql: &str, params: &[Value]) -> Reply<Handle>;
    /// Prepares one statement, to run many times.
    fn prepare(&mut self, calls: &mut Calls<'_>, sql: &str) -> Reply<Handle>;
    /// Runs a prepared statement with `params`; the rows it changed.
    fn statement_execute(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &mut Handle,
        params: &[Value],
    ) -> Reply<u64>;
    /// Runs a prepared statement once per list of parameters in `params`.
    fn statement_execute_many(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &mut Handle,
        params: &[Value],
    ) -> Reply<u64>;
    /// Runs a prepared query with `params`; every row.
    fn statement_query(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &mut Handle,
        params: &[Value],
    ) -> Reply<Rows>;
    /// Runs a prepared query with `params` as a cursor of its own.
    fn statement_cursor(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &Handle,
        params: &[Value],
    ) -> Reply<Handle>;
    /// The next rows of a cursor, at most `max_rows`.
    fn cursor_next(
        &mut self,
        calls: &mut Calls<'_>,
        cursor: &mut Handle,
        max_rows: usize,
    ) -> Reply<Vec<Row>>;
    /// The column names of a statement or cursor.
    fn columns(&self, handle: &Handle) -> wasmtime::Result<Vec<String>>;
    /// The rowid of the last row inserted.
    fn last_insert_rowid(&mut self) -> i64;
    /// The statements refused since the last call, each with the reason,
    /// for the operator.
    fn take_refused(&mut self) -> Vec<String>;
    /// The capability itself, for the engine to take back after the hook.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// A handle `capability` did not make: a bug of uplift's, which stops the
/// hook.
pub(crate) fn foreign_handle() -> wasmtime::Error {
    wasmtime::Error::msg("a database handle of another engine")
}

/// The capability of a store that runs no hook (a component instantiated to
/// measure what that costs): every call is refused.
pub(crate) struct NoDatabase;

impl NoDatabase {
    fn refuse<T>() -> Reply<T> {
        // SQLITE_MISUSE, as the interface reports a call made wrongly.
        Ok(Err(DbError {
            code: 21,
            extended_code: 21,
            message: "no database in this store".into(),
        }))
    }
}

impl Capability for NoDatabase {
    fn execute(&mut self, _: &mut Calls<'_>, _: &str, _: &[Value]) -> Reply<u64> {
        Self::refuse()
    }
    fn execute_batch(&mut self, _: &mut Calls<'_>, _: &str) -> Reply<()> {
        Self::refuse()
    }
    fn query(&mut self, _: &mut Calls<'_>, _: &str, _: &[Value]) -> Reply<Rows> {
        Self::refuse()
    }
    fn open_cursor(&mut self, _: &mut Calls<'_>, _: &str, _: &[Value]) -> Reply<Handle> {
        Self::refuse()
    }
    fn prepare(&mut self, _: &mut Calls<'_>, _: &str) -> Reply<Handle> {
        Self::refuse()
    }
    fn statement_execute(&mut self, _: &mut Calls<'_>, _: &mut Handle, _: &[Value]) -> Reply<u64> {
        Err(foreign_handle())
    }
    fn statement_execute_many(
        &mut self,
        _: &mut Calls<'_>,
        _: &mut Handle,
        _: &[Value],
    ) -> Reply<u64> {
        Err(foreign_handle())
    }
    fn statement_query(&mut self, _: &mut Calls<'_>, _: &mut Handle, _: &[Value]) -> Reply<Rows> {
        Err(foreign_handle())
    }
    fn statement_cursor(&mut self, _: &mut Calls<'_>, _: &Handle, _: &[Value]) -> Reply<Handle> {
        Err(foreign_handle())
    }
    fn cursor_next(&mut self, _: &mut Calls<'_>, _: &mut Handle, _: usize) -> Reply<Vec<Row>> {
        Err(foreign_handle())
    }
    fn columns(&self, _: &Handle) -> wasmtime::Result<Vec<String>> {
        Err(foreign_handle())
    }
    fn last_insert_rowid(&mut self) -> i64 {
        0
    }
    fn take_refused(&mut self) -> Vec<String> {
        Vec::new()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

//! The host side of the `database` and `log` interfaces: each call handed
//! to the hook's [`Capability`], the statements and cursors the hook holds
//! kept in its store (at most [`MAX_HANDLES`]), and log lines into its log.

use wasmtime::component::{Resource, ResourceTable};

use crate::hooks::bindings::uplift::hooks::database::{self, HostCursor, HostStatement};
use crate::hooks::bindings::uplift::hooks::log;
use crate::hooks::bindings::uplift::hooks::types::{self, Row, Rows, Value};
use crate::hooks::capability::{Calls, Capability, Handle, Reply};
use crate::hooks::handles::{CursorEntry, StatementEntry};
use crate::hooks::sandbox::HostState;
use crate::hooks::{Limit, LogLevel, LogSource};

/// The most prepared statements and cursors a hook may hold open at once:
/// they live in uplift's memory, outside the hook's memory limit, so a hook
/// leaking them must be stopped (a hook rarely needs more than a few).
pub(crate) const MAX_HANDLES: usize = 10_000;

impl HostState {
    /// The capability and what it may use of the store, borrowed apart from
    /// the resource table, so that a statement can run while it stays in
    /// the table.
    fn split(&mut self) -> (&mut ResourceTable, &mut dyn Capability, Calls<'_>) {
        (
            &mut self.table,
            &mut *self.db,
            Calls {
                log: &self.log,
                limit_hit: &mut self.limit_hit,
            },
        )
    }

    /// Puts a statement or cursor in the resource table for the guest,
    /// within [`MAX_HANDLES`].
    fn hold<T: Send + 'static>(
        &mut self,
        made: Result<Handle, types::DbError>,
        wrap: impl FnOnce(Handle) -> T,
    ) -> Reply<Resource<T>> {
        let handle = match made {
            Ok(handle) => handle,
            Err(e) => return Ok(Err(e)),
        };
        if self.handles >= MAX_HANDLES {
            return Err(self.hit(Limit::Handles { max: MAX_HANDLES }));
        }
        let resource = self.table.push(wrap(handle))?;
        self.handles += 1;
        Ok(Ok(resource))
    }
}

impl types::Host for HostState {}

impl database::Host for HostState {
    fn execute(&mut self, sql: String, params: Vec<Value>) -> Reply<u64> {
        let (_, db, mut calls) = self.split();
        db.execute(&mut calls, &sql, &params)
    }

    fn execute_batch(&mut self, sql: String) -> Reply<()> {
        let (_, db, mut calls) = self.split();
        db.execute_batch(&mut calls, &sql)
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> Reply<Rows> {
        let (_, db, mut calls) = self.split();
        db.query(&mut calls, &sql, &params)
    }

    fn open_cursor(&mut self, sql: String, params: Vec<Value>) -> Reply<Resource<CursorEntry>> {
        let (_, db, mut calls) = self.split();
        let made = db.open_cursor(&mut calls, &sql, &params)?;
        self.hold(made, CursorEntry)
    }

    fn prepare(&mut self, sql: String) -> Reply<Resource<StatementEntry>> {
        let (_, db, mut calls) = self.split();
        let made = db.prepare(&mut calls, &sql)?;
        self.hold(made, StatementEntry)
    }

    fn last_insert_rowid(&mut self) -> wasmtime::Result<i64> {
        Ok(self.db.last_insert_rowid())
    }
}

impl HostStatement for HostState {
    fn execute(&mut self, this: Resource<StatementEntry>, params: Vec<Value>) -> Reply<u64> {
        let (table, db, mut calls) = self.split();
        let entry = table.get_mut(&this)?;
        db.statement_execute(&mut calls, &mut entry.0, &params)
    }

    fn execute_many(&mut self, this: Resource<StatementEntry>, params: Vec<Value>) -> Reply<u64> {
        let (table, db, mut calls) = self.split();
        let entry = table.get_mut(&this)?;
        db.statement_execute_many(&mut calls, &mut entry.0, &params)
    }

    fn query(&mut self, this: Resource<StatementEntry>, params: Vec<Value>) -> Reply<Rows> {
        let (table, db, mut calls) = self.split();
        let entry = table.get_mut(&this)?;
        db.statement_query(&mut calls, &mut entry.0, &params)
    }

    fn cursor(
        &mut self,
        this: Resource<StatementEntry>,
        params: Vec<Value>,
    ) -> Reply<Resource<CursorEntry>> {
        let (table, db, mut calls) = self.split();
        let entry = table.get(&this)?;
        let made = db.statement_cursor(&mut calls, &entry.0, &params)?;
        self.hold(made, CursorEntry)
    }

    fn columns(&mut self, this: Resource<StatementEntry>) -> wasmtime::Result<Vec<String>> {
        self.db.columns(&self.table.get(&this)?.0)
    }

    fn drop(&mut self, this: Resource<StatementEntry>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.handles = self.handles.saturating_sub(1);
        Ok(())
    }
}

impl HostCursor for HostState {
    fn columns(&mut self, this: Resource<CursorEntry>) -> wasmtime::Result<Vec<String>> {
        self.db.columns(&self.table.get(&this)?.0)
    }

    fn next(&mut self, this: Resource<CursorEntry>, max_rows: u32) -> Reply<Vec<Row>> {
        let (table, db, mut calls) = self.split();
        let entry = table.get_mut(&this)?;
        db.cursor_next(&mut calls, &mut entry.0, max_rows.max(1) as usize)
    }

    fn drop(&mut self, this: Resource<CursorEntry>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.handles = self.handles.saturating_sub(1);
        Ok(())
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        let written = match self.log.lock() {
            Ok(mut log) => log.write(level, LogSource::Hook, &message),
            Err(_) => Ok(()),
        };
        written.map_err(|limit| self.hit(limit))
    }
}

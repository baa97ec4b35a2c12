//! The host side of the `database` and `log` interfaces: SQL on the upgrade's
//! connection, checked by the authorizer, with replies capped and runaway
//! queries stopped at the hook's deadline.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rusqlite::ffi;
use wasmtime::component::Resource;

use crate::hooks::bindings::uplift::hooks::database::{self, HostCursor, HostStatement};
use crate::hooks::bindings::uplift::hooks::log;
use crate::hooks::bindings::uplift::hooks::types::{self, DbError, Row, Rows, Value};
use crate::hooks::handles::{CursorEntry, StatementEntry};
use crate::hooks::raw::{BindValue, RawStatement, SqlError, SqlValue};
use crate::hooks::sandbox::{DbState, HostState, SharedLog};
use crate::hooks::{Limit, LimitHit, LogLevel, LogSource, TransactionEnded, escape_untrusted};

/// Bytes a reply holds per value beyond the value's own bytes, and per row
/// (the host's `Value` and row vector): a reply of millions of NULLs or
/// empty strings costs memory although its values are empty.
const VALUE_OVERHEAD: usize = std::mem::size_of::<Value>();
const ROW_OVERHEAD: usize = std::mem::size_of::<Row>();

/// The most prepared statements and cursors a hook may hold open at once:
/// they live in uplift's memory, outside the hook's memory limit, so a hook
/// leaking them must be stopped (a hook rarely needs more than a few).
pub(crate) const MAX_HANDLES: usize = 10_000;

/// Host calls return `Ok(Err(db_error))` for errors the guest sees and
/// `Err(trap)` for limits that stop the hook.
type HostResult<T> = wasmtime::Result<Result<T, DbError>>;

fn to_bind(value: &Value) -> BindValue<'_> {
    match value {
        Value::Null => BindValue::Null,
        Value::Integer(v) => BindValue::Integer(*v),
        Value::Real(v) => BindValue::Real(*v),
        Value::Text(v) => BindValue::Text(v),
        Value::Blob(v) => BindValue::Blob(v),
    }
}

fn from_sql(value: SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(v) => Value::Integer(v),
        SqlValue::Real(v) => Value::Real(v),
        SqlValue::Text(v) => Value::Text(v),
        SqlValue::Blob(v) => Value::Blob(v),
    }
}

fn db_error(e: SqlError) -> DbError {
    DbError {
        code: e.code,
        extended_code: e.extended_code,
        message: e.message,
    }
}

fn short(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        let cut: String = one_line.chars().take(200).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// The parts of the store data that running SQL needs, borrowed apart from
/// the resource table so that a statement can run while it stays in the
/// table.
pub(crate) struct Sql<'a> {
    db: &'a mut DbState,
    log: &'a SharedLog,
    limit_hit: &'a mut Option<Limit>,
}

impl HostState {
    fn sql(&mut self) -> Sql<'_> {
        Sql {
            db: &mut self.db,
            log: &self.log,
            limit_hit: &mut self.limit_hit,
        }
    }
}

impl Sql<'_> {
    fn hit(&mut self, limit: Limit) -> wasmtime::Error {
        *self.limit_hit = Some(limit.clone());
        wasmtime::Error::new(LimitHit(limit))
    }

    /// Turns an SQLite error into what the guest sees, or into a trap when
    /// it means a limit was hit. A refusal by the authorizer is logged and
    /// recorded.
    fn failure(&mut self, sql: &str, mut err: SqlError) -> wasmtime::Result<DbError> {
        // A limit first: when SQLite rolled the transaction back because the
        // hook ran out of its memory or disk (or was interrupted), the limit
        // is what the operator needs to hear; the hook stops either way.
        if err.code == ffi::SQLITE_INTERRUPT {
            if let Some(limit) = self.db.trip.get() {
                return Err(self.hit(limit));
            }
            if Instant::now() >= self.db.deadline {
                return Err(self.hit(Limit::Time {
                    seconds: self.db.timeout_seconds,
                }));
            }
        }
        if let Some(limit) = self.bound_hit(err.code) {
            return Err(self.hit(limit));
        }
        // SQLite answers some errors (a full disk, an I/O error, no memory)
        // by rolling the whole transaction back: the hook must not get a
        // catchable error and carry on in autocommit mode.
        if self.db.conn.is_autocommit() {
            return Err(wasmtime::Error::new(TransactionEnded(err.message)));
        }
        if err.code == ffi::SQLITE_TOOBIG {
            // SQLite's length limit (set to the reply cap for the hook): a
            // string or blob built by SQL grew too long, whatever the reply.
            return Err(self.hit(Limit::Length {
                mib: self.db.reply_mib,
            }));
        }
        // An error about a name would tell the hook whether a table exists:
        // it is told what it is told of a refusal (see the authorizer).
        let name_error = err.code == ffi::SQLITE_ERROR
            && self
                .db
                .policy
                .lock()
                .is_ok_and(|mut p| p.hide_name_error(&err.message));
        if name_error {
            err.code = ffi::SQLITE_AUTH;
        }
        if err.code == ffi::SQLITE_AUTH {
            let (reason, shown) = match self
                .db
                .policy
                .lock()
                .ok()
                .and_then(|mut p| p.take_refusal_details())
            {
                Some(refusal) => (refusal.reason.clone(), refusal.for_hook().to_string()),
                None => (err.message.clone(), err.message.clone()),
            };
            let statement = short(sql);
            // Shown to the operator (the upgrade's error, `hooks test`): the
            // statement and the names in the reason are the plugin's text.
            self.db
                .refused
                .push(escape_untrusted(&format!("{reason} (in: {statement})")).into_owned());
            let note = format!("refused: {reason}; statement: {statement}");
            let logged = self
                .log
                .lock()
                .map(|mut log| log.sandbox(LogLevel::Warn, &note))
                .unwrap_or(Ok(()));
            if let Err(limit) = logged {
                return Err(self.hit(limit));
            }
            return Ok(DbError {
                code: ffi::SQLITE_AUTH,
                extended_code: ffi::SQLITE_AUTH,
                message: format!("not authorized by the sandbox: {shown}"),
            });
        }
        Ok(db_error(err))
    }

    /// The limit of [`SqliteBounds`] an error with `code` means, if any.
    fn bound_hit(&self, code: i32) -> Option<Limit> {
        let bounds = self.db.bounds.as_ref()?;
        if code != ffi::SQLITE_NOMEM && code != ffi::SQLITE_FULL {
            return None;
        }
        bounds.limit_for(&self.db.conn, code)
    }

    /// Binds `params` to `stmt`; SQLite copies each value, so a failure to
    /// allocate is the hook's database memory limit.
    fn bind(&mut self, stmt: &mut RawStatement, params: &[Value], sql: &str) -> HostResult<()> {
        match stmt.bind(params.iter().map(to_bind)) {
            Ok(()) => Ok(Ok(())),
            Err(e) => Ok(Err(self.failure(sql, e)?)),
        }
    }

    fn start_statement(&self) {
        self.db.new_statement.store(true, Ordering::Relaxed);
    }

    /// Prepares the first statement of `sql` (see [`RawStatement::prepare`]),
    /// then lets the policy judge what the authorizer did not see of it (see
    /// [`crate::hooks::authorizer::Policy::check_text`]).
    fn prepare_first(&mut self, sql: &str) -> Result<(Option<RawStatement>, usize), SqlError> {
        self.start_statement();
        let (stmt, rest) = RawStatement::prepare(&self.db.conn, sql)?;
        if stmt.is_some() {
            let refused = match self.db.policy.lock() {
                Ok(mut policy) => policy.check_text(&sql[..rest]).is_err(),
                Err(_) => true,
            };
            if refused {
                return Err(SqlError::new(ffi::SQLITE_AUTH, "not authorized"));
            }
        }
        Ok((stmt, rest))
    }

    /// Prepares exactly one statement.
    fn prepare_one(&mut self, sql: &str) -> HostResult<RawStatement> {
        let (stmt, rest) = match self.prepare_first(sql) {
            Ok(ok) => ok,
            Err(e) => return Ok(Err(self.failure(sql, e)?)),
        };
        let Some(stmt) = stmt else {
            return Ok(Err(misuse("no SQL statement given")));
        };
        let tail = &sql[rest..];
        if !tail.trim().is_empty() {
            self.start_statement();
            match RawStatement::prepare(&self.db.conn, tail) {
                Ok((None, _)) => {}
                Ok((Some(_), _)) | Err(_) => {
                    return Ok(Err(misuse(
                        "more than one statement given: use execute-batch for several",
                    )));
                }
            }
        }
        Ok(Ok(stmt))
    }

    /// Steps `stmt` once, authorizing a recompilation if SQLite does one.
    fn step(&mut self, stmt: &mut RawStatement, sql: &str) -> HostResult<bool> {
        self.start_statement();
        match stmt.step() {
            Ok(row) => Ok(Ok(row)),
            Err(e) => Ok(Err(self.failure(sql, e)?)),
        }
    }

    /// Runs `stmt` to completion; the rows it changed.
    fn run_to_end(&mut self, stmt: &mut RawStatement, sql: &str) -> HostResult<u64> {
        loop {
            match self.step(stmt, sql)? {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => return Ok(Err(e)),
            }
        }
        let changes = if stmt.readonly() { 0 } else { stmt.changes() };
        stmt.reset();
        Ok(Ok(changes))
    }

    /// Reads rows from `stmt`: at most `max_rows`, and no more than fit in
    /// one reply (`None` for a query, whose reply must hold every row).
    /// `row_ready` says whether `stmt` already sits on an unread row; on
    /// return it says whether a row was left unread.
    fn read_rows(
        &mut self,
        stmt: &mut RawStatement,
        sql: &str,
        max_rows: Option<usize>,
        row_ready: &mut bool,
        done: &mut bool,
    ) -> HostResult<Vec<Row>> {
        let columns = stmt.columns().len();
        let mut budget: usize = stmt.columns().iter().map(|c| c.len() + 8).sum();
        let mut rows = Vec::new();
        while max_rows.is_none_or(|max| rows.len() < max) && !*done {
            if !*row_ready {
                match self.step(stmt, sql)? {
                    Ok(true) => *row_ready = true,
                    Ok(false) => {
                        *done = true;
                        break;
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            let size: usize = (0..columns)
                .map(|i| stmt.column_size(i).saturating_add(VALUE_OVERHEAD))
                .fold(ROW_OVERHEAD, usize::saturating_add);
            if budget.saturating_add(size) > self.db.max_reply {
                if rows.is_empty() || max_rows.is_none() {
                    return Err(self.hit(Limit::Reply {
                        mib: self.db.reply_mib,
                    }));
                }
                break; // the row waits for the next batch
            }
            budget += size;
            rows.push((0..columns).map(|i| from_sql(stmt.column(i))).collect());
            *row_ready = false;
        }
        Ok(Ok(rows))
    }

    fn query_all(&mut self, stmt: &mut RawStatement, sql: &str) -> HostResult<Rows> {
        let (mut ready, mut done) = (false, false);
        let rows = match self.read_rows(stmt, sql, None, &mut ready, &mut done)? {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e)),
        };
        stmt.reset();
        Ok(Ok(Rows {
            columns: stmt.columns().to_vec(),
            rows,
        }))
    }
}

fn misuse(message: &str) -> DbError {
    DbError {
        code: ffi::SQLITE_MISUSE,
        extended_code: ffi::SQLITE_MISUSE,
        message: message.into(),
    }
}

impl HostState {
    fn new_cursor(
        &mut self,
        mut stmt: RawStatement,
        params: Vec<Value>,
        sql: &str,
    ) -> HostResult<Resource<CursorEntry>> {
        if let Err(e) = self.sql().bind(&mut stmt, &params, sql)? {
            return Ok(Err(e));
        }
        let entry = CursorEntry {
            stmt,
            row_ready: false,
            done: false,
        };
        self.hold(entry)
    }

    /// Puts a statement or cursor in the resource table for the guest,
    /// within [`MAX_HANDLES`].
    fn hold<T: Send + 'static>(&mut self, entry: T) -> HostResult<Resource<T>> {
        if self.db.handles >= MAX_HANDLES {
            return Err(self.sql().hit(Limit::Handles { max: MAX_HANDLES }));
        }
        let resource = self.table.push(entry)?;
        self.db.handles += 1;
        Ok(Ok(resource))
    }

    /// Prepares `sql` (exactly one statement), binds `params` and runs
    /// `then` on the statement.
    fn run_sql<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        then: impl FnOnce(&mut Sql<'_>, &mut RawStatement, &str) -> HostResult<T>,
    ) -> HostResult<T> {
        let mut ctx = self.sql();
        let mut stmt = match ctx.prepare_one(sql)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = ctx.bind(&mut stmt, params, sql)? {
            return Ok(Err(e));
        }
        then(&mut ctx, &mut stmt, sql)
    }

    /// Binds `params` to the guest's prepared statement `this` and runs
    /// `then` on it.
    fn run_statement<T>(
        &mut self,
        this: &Resource<StatementEntry>,
        params: &[Value],
        then: impl FnOnce(&mut Sql<'_>, &mut RawStatement, &str) -> HostResult<T>,
    ) -> HostResult<T> {
        let (table, mut ctx) = self.split();
        let entry = table.get_mut(this)?;
        if let Err(e) = ctx.bind(&mut entry.stmt, params, &entry.sql)? {
            return Ok(Err(e));
        }
        then(&mut ctx, &mut entry.stmt, &entry.sql)
    }

    /// The parts for running SQL, and the resource table, borrowed apart.
    fn split(&mut self) -> (&mut wasmtime::component::ResourceTable, Sql<'_>) {
        (
            &mut self.table,
            Sql {
                db: &mut self.db,
                log: &self.log,
                limit_hit: &mut self.limit_hit,
            },
        )
    }
}

impl types::Host for HostState {}

impl database::Host for HostState {
    fn execute(&mut self, sql: String, params: Vec<Value>) -> HostResult<u64> {
        self.run_sql(&sql, &params, |ctx, stmt, sql| ctx.run_to_end(stmt, sql))
    }

    fn execute_batch(&mut self, sql: String) -> HostResult<()> {
        let mut ctx = self.sql();
        let mut offset = 0;
        while offset < sql.len() {
            let part = &sql[offset..];
            let (stmt, rest) = match ctx.prepare_first(part) {
                Ok(ok) => ok,
                Err(e) => return Ok(Err(ctx.failure(part, e)?)),
            };
            let Some(mut stmt) = stmt else {
                break;
            };
            if let Err(e) = ctx.run_to_end(&mut stmt, &part[..rest])? {
                return Ok(Err(e));
            }
            if rest == 0 {
                break;
            }
            offset += rest;
        }
        Ok(Ok(()))
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> HostResult<Rows> {
        self.run_sql(&sql, &params, |ctx, stmt, sql| ctx.query_all(stmt, sql))
    }

    fn open_cursor(
        &mut self,
        sql: String,
        params: Vec<Value>,
    ) -> HostResult<Resource<CursorEntry>> {
        let stmt = match self.sql().prepare_one(&sql)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        self.new_cursor(stmt, params, &sql)
    }

    fn prepare(&mut self, sql: String) -> HostResult<Resource<StatementEntry>> {
        let stmt = match self.sql().prepare_one(&sql)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        self.hold(StatementEntry { stmt, sql })
    }

    fn last_insert_rowid(&mut self) -> wasmtime::Result<i64> {
        Ok(self.db.conn.last_insert_rowid())
    }
}

impl HostStatement for HostState {
    fn execute(&mut self, this: Resource<StatementEntry>, params: Vec<Value>) -> HostResult<u64> {
        self.run_statement(&this, &params, |ctx, stmt, sql| ctx.run_to_end(stmt, sql))
    }

    fn execute_many(
        &mut self,
        this: Resource<StatementEntry>,
        params: Vec<Value>,
    ) -> HostResult<u64> {
        let (table, mut ctx) = self.split();
        let entry = table.get_mut(&this)?;
        let width = entry.stmt.parameter_count();
        if width == 0 || !params.len().is_multiple_of(width) {
            return Ok(Err(DbError {
                code: ffi::SQLITE_RANGE,
                extended_code: ffi::SQLITE_RANGE,
                message: format!(
                    "execute-many takes parameter lists of {width} value(s), one after the \
                     other, but {} value(s) were given{}",
                    params.len(),
                    if width == 0 {
                        ": use execute for a statement without parameters"
                    } else {
                        ""
                    }
                ),
            }));
        }
        let mut changed = 0u64;
        for (index, list) in params.chunks_exact(width).enumerate() {
            let ran = match ctx.bind(&mut entry.stmt, list, &entry.sql)? {
                Ok(()) => ctx.run_to_end(&mut entry.stmt, &entry.sql)?,
                Err(e) => Err(e),
            };
            match ran {
                Ok(n) => changed = changed.saturating_add(n),
                Err(mut e) => {
                    e.message = format!("parameter list {index}: {}", e.message);
                    return Ok(Err(e));
                }
            }
        }
        Ok(Ok(changed))
    }

    fn query(&mut self, this: Resource<StatementEntry>, params: Vec<Value>) -> HostResult<Rows> {
        self.run_statement(&this, &params, |ctx, stmt, sql| ctx.query_all(stmt, sql))
    }

    fn cursor(
        &mut self,
        this: Resource<StatementEntry>,
        params: Vec<Value>,
    ) -> HostResult<Resource<CursorEntry>> {
        // A cursor runs on its own copy of the statement, so the statement
        // can run again while the cursor is open.
        let sql = self.table.get(&this)?.sql.clone();
        let stmt = match self.sql().prepare_one(&sql)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        self.new_cursor(stmt, params, &sql)
    }

    fn columns(&mut self, this: Resource<StatementEntry>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&this)?.stmt.columns().to_vec())
    }

    fn drop(&mut self, this: Resource<StatementEntry>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.db.handles = self.db.handles.saturating_sub(1);
        Ok(())
    }
}

impl HostCursor for HostState {
    fn columns(&mut self, this: Resource<CursorEntry>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&this)?.stmt.columns().to_vec())
    }

    fn next(&mut self, this: Resource<CursorEntry>, max_rows: u32) -> HostResult<Vec<Row>> {
        let (table, mut ctx) = self.split();
        let entry = table.get_mut(&this)?;
        let max = max_rows.max(1) as usize;
        let CursorEntry {
            stmt,
            row_ready,
            done,
        } = entry;
        ctx.read_rows(stmt, "(cursor)", Some(max), row_ready, done)
    }

    fn drop(&mut self, this: Resource<CursorEntry>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.db.handles = self.db.handles.saturating_sub(1);
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

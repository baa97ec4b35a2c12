//! The SQLite engine's capability for a hook ([`Capability`]): SQL on the
//! upgrade's connection, checked by the authorizer, with replies capped and
//! runaway queries stopped at the hook's deadline. SQLite's errors that mean
//! a limit was hit, or that the transaction is gone, trap the hook.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rusqlite::{Connection, ffi};

use crate::engine::sqlite::authorizer::SharedPolicy;
use crate::engine::sqlite::limits::SqliteBounds;
use crate::engine::sqlite::raw::{BindValue, RawStatement, SqlError, SqlValue};
use crate::hooks::bindings::uplift::hooks::types::{DbError, Row, Rows, Value};
use crate::hooks::bounds::Trip;
use crate::hooks::capability::{Calls, Capability, Handle, Reply, foreign_handle};
use crate::hooks::{Limit, LogLevel, TransactionEnded, escape_untrusted};

/// A hook's capability on a SQLite connection.
pub(crate) struct SqliteCapability {
    pub(crate) conn: Connection,
    pub(crate) policy: SharedPolicy,
    /// Tells the authorizer a new statement is being compiled (see
    /// [`crate::engine::sqlite::authorizer::Policy::statement_flag`]); set before
    /// every prepare and step, without taking the policy's lock.
    pub(crate) new_statement: Arc<AtomicBool>,
    pub(crate) max_reply: usize,
    pub(crate) reply_mib: u64,
    pub(crate) deadline: Instant,
    pub(crate) timeout_seconds: u64,
    /// Statements refused during the hook, with the reason.
    pub(crate) refused: Vec<String>,
    /// The limit the watchdog stopped the hook for, if it did.
    pub(crate) trip: Arc<Trip>,
    /// SQLite's limits for the hook (none in a throwaway store), which tell
    /// whether a failure was one of them.
    pub(crate) bounds: Option<SqliteBounds>,
}

/// A prepared statement the guest holds.
struct Statement {
    stmt: RawStatement,
    sql: String,
}

/// A cursor the guest holds: a running statement.
struct Cursor {
    stmt: RawStatement,
    /// The statement is positioned on a row not yet returned.
    row_ready: bool,
    done: bool,
}

/// Bytes a reply holds per value beyond the value's own bytes, and per row
/// (the host's `Value` and row vector): a reply of millions of NULLs or
/// empty strings costs memory although its values are empty.
const VALUE_OVERHEAD: usize = std::mem::size_of::<Value>();
const ROW_OVERHEAD: usize = std::mem::size_of::<Row>();

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

/// The capability with what it may use of the store, for one call.
struct Sql<'a, 'c> {
    db: &'a mut SqliteCapability,
    calls: &'a mut Calls<'c>,
}

impl Sql<'_, '_> {
    fn hit(&mut self, limit: Limit) -> wasmtime::Error {
        self.calls.hit(limit)
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
            self.calls.note(LogLevel::Warn, &note)?;
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
    fn bind(&mut self, stmt: &mut RawStatement, params: &[Value], sql: &str) -> Reply<()> {
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
    /// [`crate::engine::sqlite::authorizer::Policy::check_text`]).
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
    fn prepare_one(&mut self, sql: &str) -> Reply<RawStatement> {
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
    fn step(&mut self, stmt: &mut RawStatement, sql: &str) -> Reply<bool> {
        self.start_statement();
        match stmt.step() {
            Ok(row) => Ok(Ok(row)),
            Err(e) => Ok(Err(self.failure(sql, e)?)),
        }
    }

    /// Runs `stmt` to completion; the rows it changed.
    fn run_to_end(&mut self, stmt: &mut RawStatement, sql: &str) -> Reply<u64> {
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
    ) -> Reply<Vec<Row>> {
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

    fn query_all(&mut self, stmt: &mut RawStatement, sql: &str) -> Reply<Rows> {
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

impl SqliteCapability {
    fn sql<'a, 'c>(&'a mut self, calls: &'a mut Calls<'c>) -> Sql<'a, 'c> {
        Sql { db: self, calls }
    }

    /// Binds `params` to a new statement for `sql` as a cursor.
    fn new_cursor(
        &mut self,
        calls: &mut Calls<'_>,
        mut stmt: RawStatement,
        params: &[Value],
        sql: &str,
    ) -> Reply<Handle> {
        if let Err(e) = self.sql(calls).bind(&mut stmt, params, sql)? {
            return Ok(Err(e));
        }
        Ok(Ok(Box::new(Cursor {
            stmt,
            row_ready: false,
            done: false,
        })))
    }

    /// Prepares `sql` (exactly one statement), binds `params` and runs
    /// `then` on the statement.
    fn run_sql<T>(
        &mut self,
        calls: &mut Calls<'_>,
        sql: &str,
        params: &[Value],
        then: impl FnOnce(&mut Sql<'_, '_>, &mut RawStatement, &str) -> Reply<T>,
    ) -> Reply<T> {
        let mut ctx = self.sql(calls);
        let mut stmt = match ctx.prepare_one(sql)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = ctx.bind(&mut stmt, params, sql)? {
            return Ok(Err(e));
        }
        then(&mut ctx, &mut stmt, sql)
    }

    /// Binds `params` to the prepared statement `statement` and runs `then`
    /// on it.
    fn run_statement<T>(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &mut Handle,
        params: &[Value],
        then: impl FnOnce(&mut Sql<'_, '_>, &mut RawStatement, &str) -> Reply<T>,
    ) -> Reply<T> {
        let entry = statement
            .downcast_mut::<Statement>()
            .ok_or_else(foreign_handle)?;
        let mut ctx = self.sql(calls);
        if let Err(e) = ctx.bind(&mut entry.stmt, params, &entry.sql)? {
            return Ok(Err(e));
        }
        then(&mut ctx, &mut entry.stmt, &entry.sql)
    }
}

impl Capability for SqliteCapability {
    fn execute(&mut self, calls: &mut Calls<'_>, sql: &str, params: &[Value]) -> Reply<u64> {
        self.run_sql(calls, sql, params, |ctx, stmt, sql| {
            ctx.run_to_end(stmt, sql)
        })
    }

    fn execute_batch(&mut self, calls: &mut Calls<'_>, sql: &str) -> Reply<()> {
        let mut ctx = self.sql(calls);
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

    fn query(&mut self, calls: &mut Calls<'_>, sql: &str, params: &[Value]) -> Reply<Rows> {
        self.run_sql(calls, sql, params, |ctx, stmt, sql| {
            ctx.query_all(stmt, sql)
        })
    }

    fn open_cursor(&mut self, calls: &mut Calls<'_>, sql: &str, params: &[Value]) -> Reply<Handle> {
        let stmt = match self.sql(calls).prepare_one(sql)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        self.new_cursor(calls, stmt, params, sql)
    }

    fn prepare(&mut self, calls: &mut Calls<'_>, sql: &str) -> Reply<Handle> {
        let stmt = match self.sql(calls).prepare_one(sql)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(Box::new(Statement {
            stmt,
            sql: sql.to_string(),
        })))
    }

    fn statement_execute(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &mut Handle,
        params: &[Value],
    ) -> Reply<u64> {
        self.run_statement(calls, statement, params, |ctx, stmt, sql| {
            ctx.run_to_end(stmt, sql)
        })
    }

    fn statement_execute_many(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &mut Handle,
        params: &[Value],
    ) -> Reply<u64> {
        let entry = statement
            .downcast_mut::<Statement>()
            .ok_or_else(foreign_handle)?;
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
        let mut ctx = self.sql(calls);
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

    fn statement_query(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &mut Handle,
        params: &[Value],
    ) -> Reply<Rows> {
        self.run_statement(calls, statement, params, |ctx, stmt, sql| {
            ctx.query_all(stmt, sql)
        })
    }

    fn statement_cursor(
        &mut self,
        calls: &mut Calls<'_>,
        statement: &Handle,
        params: &[Value],
    ) -> Reply<Handle> {
        // A cursor runs on its own copy of the statement, so the statement
        // can run again while the cursor is open.
        let sql = statement
            .downcast_ref::<Statement>()
            .ok_or_else(foreign_handle)?
            .sql
            .clone();
        let stmt = match self.sql(calls).prepare_one(&sql)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        self.new_cursor(calls, stmt, params, &sql)
    }

    fn cursor_next(
        &mut self,
        calls: &mut Calls<'_>,
        cursor: &mut Handle,
        max_rows: usize,
    ) -> Reply<Vec<Row>> {
        let Cursor {
            stmt,
            row_ready,
            done,
        } = cursor.downcast_mut::<Cursor>().ok_or_else(foreign_handle)?;
        self.sql(calls)
            .read_rows(stmt, "(cursor)", Some(max_rows), row_ready, done)
    }

    fn columns(&self, handle: &Handle) -> wasmtime::Result<Vec<String>> {
        if let Some(statement) = handle.downcast_ref::<Statement>() {
            return Ok(statement.stmt.columns().to_vec());
        }
        let cursor = handle.downcast_ref::<Cursor>().ok_or_else(foreign_handle)?;
        Ok(cursor.stmt.columns().to_vec())
    }

    fn last_insert_rowid(&mut self) -> i64 {
        self.conn.last_insert_rowid()
    }

    fn take_refused(&mut self) -> Vec<String> {
        std::mem::take(&mut self.refused)
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

//! SQL inside the upgrade's transaction, through the `uplift:hooks/database`
//! interface: [`Database`], prepared [`Statement`]s and streaming
//! [`Cursor`]s.
//!
//! Every statement is checked by the host against the plugin's manifest; a
//! refused statement fails with a [`DbError`](crate::DbError) whose code is
//! 23 (`SQLITE_AUTH`).

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::bindings::uplift::hooks::database as wit;
use crate::bindings::uplift::hooks::types::Rows;
use crate::error::{DbError, Error, Result};
use crate::row::{FromRow, Row, Value};

/// How many rows a [`Cursor`] asks the host for at a time, unless told
/// otherwise with [`Cursor::batch_size`].
pub const DEFAULT_BATCH: u32 = 256;

/// The application's database, as the plugin's manifest allows it to be
/// seen. Get it from [`Context::db`](crate::Context::db).
///
/// Parameters are bound to `?`, `?NNN`, `:name`, `@name` or `$name`
/// placeholders in order of their index: build them with
/// [`params!`](crate::params).
#[derive(Debug)]
pub struct Database {
    _not_send: PhantomData<*const ()>,
}

impl Database {
    pub(crate) const fn new() -> Database {
        Database {
            _not_send: PhantomData,
        }
    }

    /// Runs one statement and returns the number of rows it inserted,
    /// updated or deleted.
    ///
    /// Fails with SQLite's code and message, or code 23 when the sandbox
    /// refuses it.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        wit::execute(sql, params).map_err(|e| DbError::from_wit(e, sql).into())
    }

    /// Runs zero or more statements separated by `;`, without parameters:
    /// for creating or changing the tables the plugin owns.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        wit::execute_batch(sql).map_err(|e| DbError::from_wit(e, sql).into())
    }

    /// Runs a query and reads every row into `T`: a tuple, a
    /// `#[derive(FromRow)]` struct or [`Row`]. The host caps the size of one
    /// reply: use [`Database::cursor`] for large results.
    pub fn query<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Vec<T>> {
        let rows = wit::query(sql, params).map_err(|e| DbError::from_wit(e, sql))?;
        convert_all(rows)
    }

    /// Runs a query and reads every row with `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows: Vec<Row> = self.query(sql, params)?;
        rows.iter().map(f).collect()
    }

    /// Runs a query and reads its first row into `T`, or `None` when it
    /// returns no row.
    pub fn query_opt<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Option<T>> {
        let mut cursor = self.cursor(sql, params)?.batch_size(1);
        match cursor.next() {
            Some(row) => Ok(Some(T::from_row(&row?)?)),
            None => Ok(None),
        }
    }

    /// Runs a query and reads its first row into `T`; fails when it returns
    /// no row.
    pub fn query_one<T: FromRow>(&self, sql: &str, params: &[Value]) -> Result<T> {
        self.query_opt(sql, params)?
            .ok_or_else(|| Error::msg(format!("the query returned no row: {sql}")))
    }

    /// Opens a cursor that streams the rows of a query in batches: the way to
    /// walk a large table without holding it in memory.
    ///
    /// ```ignore
    /// for row in ctx.db().cursor("SELECT id, username FROM learner", params![])?.rows::<(i64, String)>() {
    ///     let (id, username) = row?;
    /// }
    /// ```
    pub fn cursor(&self, sql: &str, params: &[Value]) -> Result<Cursor> {
        let handle = wit::open_cursor(sql, params).map_err(|e| DbError::from_wit(e, sql))?;
        Ok(Cursor::new(handle, sql))
    }

    /// Prepares a statement to run many times with new parameters: the cheap
    /// way to change many rows.
    pub fn prepare(&self, sql: &str) -> Result<Statement> {
        let handle = wit::prepare(sql).map_err(|e| DbError::from_wit(e, sql))?;
        Ok(Statement {
            handle,
            sql: sql.to_string(),
        })
    }

    /// The rowid of the most recent successful `INSERT`.
    pub fn last_insert_rowid(&self) -> i64 {
        wit::last_insert_rowid()
    }
}

fn convert_all<T: FromRow>(rows: Rows) -> Result<Vec<T>> {
    let columns: Rc<[String]> = rows.columns.into();
    rows.rows
        .into_iter()
        .map(|values| T::from_row(&Row::new(columns.clone(), values)))
        .collect()
}

/// A statement prepared once and run many times. Dropping it finalizes it.
#[derive(Debug)]
pub struct Statement {
    handle: wit::Statement,
    sql: String,
}

impl Statement {
    /// Runs the statement with `params`; returns the number of rows changed.
    pub fn execute(&self, params: &[Value]) -> Result<u64> {
        self.handle
            .execute(params)
            .map_err(|e| DbError::from_wit(e, &self.sql).into())
    }

    /// Runs the statement many times in one call to the host: the fast way
    /// to change many rows one at a time. `params` holds the parameter
    /// lists one after the other, as many values each as the statement has
    /// parameters; the statement runs once per list, in order, as that many
    /// calls of [`Statement::execute`] would. Pass a few hundred to a few
    /// thousand lists per call. Returns the rows changed by all the runs.
    ///
    /// On an error, the runs before the failing one stay applied (as with a
    /// loop of `execute`), and the message starts with `parameter list N:`,
    /// counting from 0. A length that is not a multiple of the statement's
    /// parameter count is an error, and nothing runs.
    ///
    /// ```no_run
    /// # use uplift_hooks_sdk::{Database, Result, ToSql, Value};
    /// # fn f(db: &Database) -> Result<()> {
    /// let update = db.prepare("UPDATE users SET score = ? WHERE id = ?")?;
    /// let scores: Vec<(i64, i64)> = db.query("SELECT score * 2, id FROM users", &[])?;
    /// for chunk in scores.chunks(500) {
    ///     let params: Vec<Value> = chunk
    ///         .iter()
    ///         .flat_map(|(score, id)| [score.to_value(), id.to_value()])
    ///         .collect();
    ///     update.execute_many(&params)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn execute_many(&self, params: &[Value]) -> Result<u64> {
        self.handle
            .execute_many(params)
            .map_err(|e| DbError::from_wit(e, &self.sql).into())
    }

    /// Runs the statement as a query and reads every row into `T` (capped
    /// by the host like [`Database::query`]).
    pub fn query<T: FromRow>(&self, params: &[Value]) -> Result<Vec<T>> {
        let rows = self
            .handle
            .query(params)
            .map_err(|e| DbError::from_wit(e, &self.sql))?;
        convert_all(rows)
    }

    /// Runs the statement as a query and streams its rows.
    pub fn cursor(&self, params: &[Value]) -> Result<Cursor> {
        let handle = self
            .handle
            .cursor(params)
            .map_err(|e| DbError::from_wit(e, &self.sql))?;
        Ok(Cursor::new(handle, &self.sql))
    }

    /// The names of the columns the statement returns (none for statements
    /// that return no rows).
    pub fn columns(&self) -> Vec<String> {
        self.handle.columns()
    }

    /// The statement's SQL.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// The rows of one query, fetched from the host a batch at a time. It is an
/// iterator of `Result<Row>`; [`Cursor::rows`] reads each row into a type.
#[derive(Debug)]
pub struct Cursor {
    handle: wit::Cursor,
    sql: String,
    columns: Rc<[String]>,
    buffered: VecDeque<Vec<Value>>,
    batch: u32,
    finished: bool,
}

impl Cursor {
    fn new(handle: wit::Cursor, sql: &str) -> Cursor {
        let columns: Rc<[String]> = handle.columns().into();
        Cursor {
            handle,
            sql: sql.to_string(),
            columns,
            buffered: VecDeque::new(),
            batch: DEFAULT_BATCH,
            finished: false,
        }
    }

    /// Asks the host for at most `rows` rows at a time (at least 1).
    pub fn batch_size(mut self, rows: u32) -> Cursor {
        self.batch = rows.max(1);
        self
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Reads each row into `T` (a tuple, a `#[derive(FromRow)]` struct, ...).
    pub fn rows<T: FromRow>(self) -> TypedRows<T> {
        TypedRows {
            cursor: self,
            _row: PhantomData,
        }
    }
}

impl Iterator for Cursor {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        if self.buffered.is_empty() && !self.finished {
            match self.handle.next(self.batch) {
                Ok(rows) if rows.is_empty() => self.finished = true,
                Ok(rows) => self.buffered.extend(rows),
                Err(e) => {
                    self.finished = true;
                    return Some(Err(DbError::from_wit(e, &self.sql).into()));
                }
            }
        }
        let values = self.buffered.pop_front()?;
        Some(Ok(Row::new(self.columns.clone(), values)))
    }
}

/// A [`Cursor`] whose rows are read into `T`; made by [`Cursor::rows`].
#[derive(Debug)]
pub struct TypedRows<T> {
    cursor: Cursor,
    _row: PhantomData<fn() -> T>,
}

impl<T: FromRow> Iterator for TypedRows<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        Some(self.cursor.next()?.and_then(|row| T::from_row(&row)))
    }
}

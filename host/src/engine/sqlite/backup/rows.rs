//! A table's rows as SQL: how to read them ([`TablePlan`]) and how they are
//! written ([`dump_rows`]), as multi-row `INSERT` statements of at most
//! [`STATEMENT_BYTES`] (a single larger row gets a statement of its own),
//! which the `sqlite3` shell runs as they are and the restore binds row by
//! row.
//!
//! A rowid table without an `INTEGER PRIMARY KEY` keeps its rowids: a row
//! whose rowid is one more than the previous row's (every row of a table
//! that never lost one) is written without it, in a statement whose rows
//! all take the rowid SQLite gives an inserted row (one more than the
//! largest, 1 in an empty table); any other row is written with its rowid,
//! in a statement that names the `rowid` column.

use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

use super::literal::push_value;
use super::writer::Out;
use super::{sql_err, sql_err_with};
use crate::backup::Progress;
use crate::backup::error::BackupError;
use crate::engine::sqlite::sql::quote_ident;

/// Bytes of SQL text after which a statement takes no more rows: large
/// enough that the statements' own text costs little, small enough that
/// the shell (which compiles each statement whole) and the restore keep
/// little in memory.
pub(super) const STATEMENT_BYTES: usize = 64 * 1024;

/// How often (in rows) progress is reported.
const PROGRESS_EVERY: u64 = 8192;

/// How to read one table's rows and write them back.
pub(super) struct TablePlan {
    /// The table's name.
    pub(super) name: String,
    /// The `SELECT` that reads the rows, in rowid order where there is one
    /// (so that the restore appends to its b-tree).
    select: String,
    /// `INSERT INTO "t"[(columns)] VALUES`: the start of a statement whose
    /// rows carry every selected value.
    explicit_head: Vec<u8>,
    /// The start of a statement whose rows leave their rowid out (SQLite
    /// gives the next one); `None` when the rowid is not selected apart.
    implicit_head: Option<Vec<u8>>,
    /// Values selected a row (the rowid first, when selected apart).
    columns: usize,
}

impl TablePlan {
    /// One of SQLite's own tables, whose rows the dump restores
    /// (statistics, AUTOINCREMENT counters): `columns` in order.
    pub(super) fn internal(name: &str, columns: &[&str]) -> TablePlan {
        TablePlan {
            name: name.into(),
            select: format!("SELECT {} FROM main.{name}", columns.join(", ")),
            explicit_head: format!("INSERT INTO {name} VALUES").into_bytes(),
            implicit_head: None,
            columns: columns.len(),
        }
    }

    /// Works out how to read and write the rows of table `name`: which
    /// columns (generated ones are left out), and whether the rowid must be
    /// kept apart (a rowid table without an `INTEGER PRIMARY KEY` alias).
    pub(super) fn read(conn: &Connection, name: &str) -> Result<TablePlan, BackupError> {
        let qname = quote_ident(name);
        let (columns, pk_columns, generated) = stored_columns(conn, name, &qname)?;
        let without_rowid: bool = conn
            .query_row(
                "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql_err(format!("kind of table {name}")))?
            != 0;
        let aliased = !without_rowid
            && pk_columns.len() == 1
            && is_rowid_alias(conn, &qname, &pk_columns[0])?;
        let rowid_name = if without_rowid || aliased {
            None
        } else {
            ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|r| !columns.iter().any(|c| c.eq_ignore_ascii_case(r)))
        };
        let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let mut selected = Vec::with_capacity(quoted.len() + 1);
        selected.extend(rowid_name.map(str::to_string));
        selected.extend(quoted.iter().cloned());
        let order = match (rowid_name, aliased) {
            (Some(r), _) => format!(" ORDER BY {r}"),
            (None, true) => format!(" ORDER BY {}", quote_ident(&pk_columns[0])),
            (None, false) => String::new(),
        };
        let select = format!("SELECT {} FROM main.{qname}{order}", selected.join(","));
        let head = |list: Option<&[String]>| {
            let mut head = format!("INSERT INTO {qname}");
            if let Some(list) = list {
                head.push('(');
                head.push_str(&list.join(","));
                head.push(')');
            }
            head.push_str(" VALUES");
            head.into_bytes()
        };
        let named = rowid_name.is_some() || generated;
        Ok(TablePlan {
            name: name.to_string(),
            select,
            explicit_head: head(named.then_some(&selected[..])),
            implicit_head: rowid_name.map(|_| head(generated.then_some(&quoted[..]))),
            columns: selected.len(),
        })
    }

    /// How many values each row has (the rowid included when it is kept
    /// apart).
    pub(super) fn values_per_row(&self) -> usize {
        self.columns
    }
}

/// The table's stored columns in order (generated ones left out), its
/// primary key's columns, and whether it has generated columns.
fn stored_columns(
    conn: &Connection,
    name: &str,
    qname: &str,
) -> Result<(Vec<String>, Vec<String>, bool), BackupError> {
    let what = || format!("columns of table {name}");
    let mut columns = Vec::new();
    let mut pk_columns = Vec::new();
    let mut generated = false;
    let mut stmt = conn
        .prepare(&format!("PRAGMA main.table_xinfo({qname})"))
        .map_err(sql_err_with(&what))?;
    let mut rows = stmt.query([]).map_err(sql_err_with(&what))?;
    while let Some(row) = rows.next().map_err(sql_err_with(&what))? {
        let column: String = row.get(1).map_err(sql_err_with(&what))?;
        let pk: i64 = row.get(5).map_err(sql_err_with(&what))?;
        let hidden: i64 = row.get(6).map_err(sql_err_with(&what))?;
        if hidden == 2 || hidden == 3 {
            generated = true;
            continue;
        }
        if pk > 0 {
            pk_columns.push(column.clone());
        }
        columns.push(column);
    }
    Ok((columns, pk_columns, generated))
}

/// Whether `column` of table `qname` is an alias of the rowid. Declared type
/// rules have exceptions (`INTEGER PRIMARY KEY DESC` is not an alias), so ask
/// SQLite: reading an alias compiles to the `Rowid` opcode.
fn is_rowid_alias(conn: &Connection, qname: &str, column: &str) -> Result<bool, BackupError> {
    let sql = format!("EXPLAIN SELECT {} FROM main.{qname}", quote_ident(column));
    let what = || format!("plan for {qname}");
    let mut stmt = conn.prepare(&sql).map_err(sql_err_with(&what))?;
    let mut rows = stmt.query([]).map_err(sql_err_with(&what))?;
    while let Some(row) = rows.next().map_err(sql_err_with(&what))? {
        let opcode: String = row.get(1).map_err(sql_err_with(&what))?;
        if opcode == "Rowid" || opcode == "IdxRowid" {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Rows written so far by every connection, and, for one of them, the
/// progress to report them to.
pub(super) struct Tally<'a> {
    rows: &'a AtomicU64,
    progress: Option<&'a mut dyn Progress>,
    unreported: u64,
}

impl<'a> Tally<'a> {
    /// Counts into `rows`; reports to `progress` when given.
    pub(super) fn new(rows: &'a AtomicU64, progress: Option<&'a mut dyn Progress>) -> Self {
        Tally {
            rows,
            progress,
            unreported: 0,
        }
    }

    #[inline]
    fn add_row(&mut self) {
        self.unreported += 1;
        if self.unreported == PROGRESS_EVERY {
            self.report();
        }
    }

    /// Adds the rows not yet counted, and reports the total.
    pub(super) fn report(&mut self) {
        let total = self.rows.fetch_add(self.unreported, Ordering::Relaxed) + self.unreported;
        self.unreported = 0;
        if let Some(progress) = self.progress.as_deref_mut() {
            progress.update(total, total);
        }
    }
}

/// Writes every row of the table `plan` describes into `out`.
pub(super) fn dump_rows(
    conn: &Connection,
    plan: &TablePlan,
    out: &mut Out,
    tally: &mut Tally<'_>,
) -> Result<(), BackupError> {
    let what = || format!("rows of table {}", plan.name);
    let mut stmt = conn.prepare(&plan.select).map_err(sql_err_with(&what))?;
    let mut rows = stmt.query([]).map_err(sql_err_with(&what))?;
    let mut statements = Statements::new(plan);
    while let Some(row) = rows.next().map_err(sql_err_with(&what))? {
        statements.push_row(out, row).map_err(|e| match e {
            RowError::Sqlite(source) => sql_err_with(&what)(source),
            RowError::Output(e) => e,
        })?;
        tally.add_row();
    }
    statements.close(out)?;
    tally.report();
    Ok(())
}

/// Which kind of statement is open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    /// None: the next row starts one.
    Nothing,
    /// One whose rows carry every selected value.
    Explicit,
    /// One whose rows leave their rowid out.
    Implicit,
}

/// The statements of one table being written.
struct Statements<'p> {
    plan: &'p TablePlan,
    open: Open,
    /// Where the open statement starts in the output buffer.
    start: usize,
    /// The rowid SQLite gives the next row inserted without one: one more
    /// than the last row's (1 in an empty table); `None` past the largest.
    next_rowid: Option<i64>,
}

enum RowError {
    Sqlite(rusqlite::Error),
    Output(BackupError),
}

impl<'p> Statements<'p> {
    fn new(plan: &'p TablePlan) -> Self {
        Statements {
            plan,
            open: Open::Nothing,
            start: 0,
            next_rowid: Some(1),
        }
    }

    /// Appends one row, in the open statement when it fits there.
    fn push_row(&mut self, out: &mut Out, row: &Row<'_>) -> Result<(), RowError> {
        let rowid = match self.plan.implicit_head {
            Some(_) => match row.get_ref(0).map_err(RowError::Sqlite)? {
                ValueRef::Integer(r) => Some(r),
                _ => None,
            },
            None => None,
        };
        let follows = rowid.is_some() && rowid == self.next_rowid;
        if self.open == Open::Implicit && !follows {
            self.close(out).map_err(RowError::Output)?;
        }
        if self.open == Open::Nothing {
            let (open, head) = match &self.plan.implicit_head {
                Some(head) if follows => (Open::Implicit, head),
                _ => (Open::Explicit, &self.plan.explicit_head),
            };
            self.open = open;
            self.start = out.buf.len();
            out.buf.extend_from_slice(head);
            out.buf.push(b'(');
        } else {
            out.buf.extend_from_slice(b",\n(");
        }
        let first = usize::from(self.open == Open::Implicit);
        for i in first..self.plan.columns {
            if i > first {
                out.buf.push(b',');
            }
            push_value(&mut out.buf, row.get_ref(i).map_err(RowError::Sqlite)?);
        }
        out.buf.push(b')');
        self.next_rowid = rowid.and_then(|r| r.checked_add(1));
        if out.buf.len() - self.start >= STATEMENT_BYTES {
            self.close(out).map_err(RowError::Output)?;
        }
        Ok(())
    }

    /// Ends the open statement, if any.
    fn close(&mut self, out: &mut Out) -> Result<(), BackupError> {
        if self.open == Open::Nothing {
            return Ok(());
        }
        out.buf.extend_from_slice(b";\n");
        self.open = Open::Nothing;
        out.statement_done()
    }
}

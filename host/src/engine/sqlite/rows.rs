//! Every row of some tables, for `uplift hooks test` to compare before and
//! after each hook. The tables are read in full: this is meant for test
//! databases.

use std::collections::BTreeMap;

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::sql::quote_ident;
use crate::backup::files::hex;
use crate::engine::{Cell, Rows, TableRows};

/// The rows of every table of the main schema (SQLite's own excepted) that
/// `include` accepts.
pub(super) fn table_rows(
    conn: &Connection,
    include: &dyn Fn(&str) -> bool,
) -> rusqlite::Result<TableRows> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let tables: Vec<String> = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = TableRows::new();
    for table in tables.into_iter().filter(|t| include(t)) {
        let rows = rows_of(conn, &table)?;
        out.insert(table, rows);
    }
    Ok(out)
}

/// Every row of `table`, keyed by rowid or, for a `WITHOUT ROWID` table, by
/// primary key.
fn rows_of(conn: &Connection, table: &str) -> rusqlite::Result<Rows> {
    let quoted = quote_ident(table);
    let has_rowid = conn
        .prepare(&format!("SELECT rowid FROM {quoted} LIMIT 0"))
        .is_ok();
    let key_columns: Vec<String> = if has_rowid {
        Vec::new()
    } else {
        let mut stmt =
            conn.prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?;
        stmt.query_map([table], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let sql = if has_rowid {
        format!("SELECT rowid, * FROM {quoted}")
    } else {
        format!("SELECT * FROM {quoted}")
    };
    let mut stmt = conn.prepare(&sql)?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([])?;
    let mut out = Rows::new();
    while let Some(row) = rows.next()? {
        let mut columns = BTreeMap::new();
        let mut key = String::new();
        let mut rowid = 0;
        let first = usize::from(has_rowid);
        if has_rowid {
            rowid = row.get::<_, i64>(0)?;
            key = format!("rowid={rowid}");
        }
        for (i, name) in names.iter().enumerate().skip(first) {
            let value = cell(row.get_ref(i)?);
            if key_columns.contains(name) {
                if !key.is_empty() {
                    key.push_str(", ");
                }
                key.push_str(&format!("{name}={value}"));
            }
            columns.insert(name.clone(), value);
        }
        out.insert((rowid, key), columns);
    }
    Ok(out)
}

/// A value as a [`Cell`]; long text and blobs are shortened.
fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Integer(i),
        ValueRef::Real(r) => Cell::Real(r),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            let short: String = text.chars().take(80).collect();
            Cell::Text {
                truncated: short.len() < text.len(),
                text: short,
            }
        }
        ValueRef::Blob(b) => Cell::Blob {
            hex: hex(&b[..b.len().min(16)]),
            bytes: b.len(),
        },
    }
}

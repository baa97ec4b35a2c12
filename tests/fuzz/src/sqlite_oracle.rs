//! SQLite's own reading of SQL text: the oracle of the dump targets, which
//! compare uplift's hand-written dump reader with it.
//!
//! - [`complete`]: SQLite's `sqlite3_complete()`, the rule uplift's
//!   statement splitter implements;
//! - [`split`]: a text cut into statements by that rule alone;
//! - [`values`]: what SQLite makes of the literal values of an `INSERT`;
//! - [`contents`]: a database's schema and rows, in an order that does not
//!   depend on how they were written.

use std::ffi::CString;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

/// A value as SQLite holds it, compared exactly: floats by their bits (so
/// that `-0.0` is not `0.0`), text by its bytes (which may not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    /// `NULL`.
    Null,
    /// An integer.
    Integer(i64),
    /// A float, by its bits.
    Real(u64),
    /// Text, by its bytes.
    Text(Vec<u8>),
    /// A blob.
    Blob(Vec<u8>),
}

impl From<ValueRef<'_>> for Cell {
    fn from(value: ValueRef<'_>) -> Cell {
        match value {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(n) => Cell::Integer(n),
            ValueRef::Real(f) => Cell::Real(f.to_bits()),
            ValueRef::Text(t) => Cell::Text(t.to_vec()),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        }
    }
}

/// The first `n` columns of `row`.
fn cells(row: &Row<'_>, n: usize) -> rusqlite::Result<Vec<Cell>> {
    (0..n).map(|i| row.get_ref(i).map(Cell::from)).collect()
}

/// Whether SQLite considers `text` one or more complete statements
/// (`sqlite3_complete`); `None` when it holds a NUL byte, where SQLite's
/// C string would end.
pub fn complete(text: &[u8]) -> Option<bool> {
    let text = CString::new(text).ok()?;
    // SAFETY: `text` is a NUL-terminated string that lives across the call;
    // sqlite3_complete only reads it.
    Some(unsafe { rusqlite::ffi::sqlite3_complete(text.as_ptr()) } != 0)
}

/// `text` without the whitespace and comments it starts with, as SQLite's
/// completeness rule reads them (`complete.c`: space, tab, newline, carriage
/// return and form feed; `--` to the end of the line; `/*` to `*/`). A `/*`
/// never closed is kept: for `sqlite3_complete()`, a text ending inside
/// one is never complete.
pub fn strip_leading(mut text: &[u8]) -> &[u8] {
    loop {
        match text {
            [b' ' | b'\t' | b'\n' | b'\r' | b'\x0c', rest @ ..] => text = rest,
            [b'-', b'-', rest @ ..] => {
                text = match rest.iter().position(|&c| c == b'\n') {
                    Some(i) => &rest[i + 1..],
                    None => &[],
                }
            }
            [b'/', b'*', rest @ ..] => match rest.windows(2).position(|w| w == b"*/") {
                Some(i) => text = &rest[i + 2..],
                None => return text,
            },
            _ => return text,
        }
    }
}

/// `text` cut into statements by SQLite's completeness rule: each ends at
/// the first `;` where the text since the previous one is complete, and is
/// given without its leading whitespace and comments; empty statements
/// (a lone `;`) are left out. The last item is what follows the last
/// statement, also stripped (empty when nothing does). `None` when the text
/// holds a NUL byte.
pub fn split(text: &[u8]) -> Option<(Vec<&[u8]>, &[u8])> {
    if text.contains(&0) {
        return None;
    }
    let mut statements = Vec::new();
    let mut start = 0;
    for (i, _) in text.iter().enumerate().filter(|(_, c)| **c == b';') {
        if complete(&text[start..=i])? {
            let statement = strip_leading(&text[start..=i]);
            if statement != b";" {
                statements.push(statement);
            }
            start = i + 1;
        }
    }
    Some((statements, strip_leading(&text[start..])))
}

/// The values SQLite makes of `values`, the text of a `VALUES(...)` list
/// of one row or several (`VALUES(1,'a'),(2,'b')`, as a multi-row
/// `INSERT` writes them): every row's, in order, as one list; `None` when
/// SQLite refuses it.
pub fn values(conn: &Connection, values: &str) -> Option<Vec<Cell>> {
    let mut stmt = conn.prepare(values).ok()?;
    let n = stmt.column_count();
    let mut rows = stmt.query([]).ok()?;
    let mut all = Vec::new();
    while let Some(row) = rows.next().ok()? {
        all.extend(cells(row, n).ok()?);
    }
    Some(all)
}

/// A database's contents: for each table, its name and sorted rows.
pub type Contents = Vec<(String, Vec<Vec<Cell>>)>;

/// The contents of the database `conn`: its schema rows (type, name,
/// table, SQL) by name, then each ordinary table's rows, sorted. Two
/// databases holding the same data give the same contents. `sqlite_stat4`
/// is left out: whether `ANALYZE` makes it depends on how SQLite was built,
/// and dumps do not carry it.
pub fn contents(conn: &Connection) -> rusqlite::Result<Contents> {
    let mut out = Vec::new();
    let mut schema = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema
         WHERE name <> 'sqlite_stat4' ORDER BY type, name",
    )?;
    let rows: Vec<Vec<Cell>> = schema
        .query_map([], |r| cells(r, 4))?
        .collect::<rusqlite::Result<_>>()?;
    let tables: Vec<String> = rows
        .iter()
        .filter_map(|row| match (&row[0], &row[1], &row[3]) {
            (Cell::Text(kind), Cell::Text(name), Cell::Text(sql))
                if kind == b"table" && !sql.to_ascii_uppercase().starts_with(b"CREATE VIRTUAL") =>
            {
                Some(String::from_utf8_lossy(name).into_owned())
            }
            _ => None,
        })
        .collect();
    out.push(("sqlite_schema".to_string(), rows));
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let mut stmt = conn.prepare(&format!("SELECT * FROM {quoted}"))?;
        let n = stmt.column_count();
        let mut rows: Vec<Vec<Cell>> = stmt
            .query_map([], |r| cells(r, n))?
            .collect::<rusqlite::Result<_>>()?;
        rows.sort();
        out.push((table, rows));
    }
    Ok(out)
}

/// The first difference between two databases' contents, in words (text
/// shown as text), or `None` when they are the same.
pub fn difference(ours: &Contents, theirs: &Contents) -> Option<String> {
    let show = |rows: Option<&Vec<Vec<Cell>>>| -> String {
        let Some(rows) = rows else {
            return "no such table".to_string();
        };
        let rows: Vec<String> = rows
            .iter()
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .map(|cell| match cell {
                        Cell::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                        Cell::Real(bits) => format!("{:?}", f64::from_bits(*bits)),
                        other => format!("{other:?}"),
                    })
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        rows.join(" ")
    };
    fn find<'c>(contents: &'c Contents, name: &str) -> Option<&'c Vec<Vec<Cell>>> {
        contents
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, rows)| rows)
    }
    for (name, _) in ours.iter().chain(theirs) {
        let (a, b) = (find(ours, name), find(theirs, name));
        if a != b {
            return Some(format!(
                "{name}: uplift has {}; sqlite3 has {}",
                show(a),
                show(b)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_where_sqlite_says_they_are_complete() {
        let text = b"-- head\nCREATE TABLE t(a);; INSERT INTO t VALUES('x;y');\n\
                     CREATE TRIGGER r AFTER INSERT ON t BEGIN SELECT 1; END; /* tail */ SELECT";
        let (statements, rest) = split(text).unwrap();
        assert_eq!(
            statements,
            [
                &b"CREATE TABLE t(a);"[..],
                b"INSERT INTO t VALUES('x;y');",
                b"CREATE TRIGGER r AFTER INSERT ON t BEGIN SELECT 1; END;"
            ]
        );
        assert_eq!(rest, b"SELECT");
        assert_eq!(split(b"a\0;"), None);
        // A comment never closed is not nothing: SQLite's text is unfinished.
        let (statements, rest) = split(b"SELECT 1; /* closed */ /* open; SELECT 2;").unwrap();
        assert_eq!(statements, [&b"SELECT 1;"[..]]);
        assert_eq!(rest, b"/* open; SELECT 2;");
        assert_eq!(complete(b"SELECT 1; /* open"), Some(false));
    }

    #[test]
    fn values_are_what_sqlite_computes() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(
            values(&conn, "VALUES(1, -2.5, 'a'||char(10), X'00', NULL);"),
            Some(vec![
                Cell::Integer(1),
                Cell::Real((-2.5f64).to_bits()),
                Cell::Text(b"a\n".to_vec()),
                Cell::Blob(vec![0]),
                Cell::Null
            ])
        );
        assert_eq!(values(&conn, "VALUES(nonsense);"), None);
    }

    #[test]
    fn values_of_several_rows_are_every_row_in_order() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(
            values(&conn, "VALUES(1.5e10),(2);"),
            Some(vec![Cell::Real(1.5e10f64.to_bits()), Cell::Integer(2)])
        );
        // Rows of different widths: SQLite refuses them.
        assert_eq!(values(&conn, "VALUES(1),(2,3);"), None);
    }
}

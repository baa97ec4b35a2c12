//! Small SQLite helpers the engine's modules share.

use rusqlite::Connection;

/// Quotes an SQL identifier: `"name"` with inner quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Whether the main schema has a table called exactly `name`.
pub(crate) fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM main.sqlite_schema WHERE type = 'table' AND name = ?1",
        [name],
        |row| row.get(0),
    )
}

/// Whether database `schema` of the connection (`main`, or an attached
/// one) has a table called exactly `name`.
pub(crate) fn table_exists_in(
    conn: &Connection,
    schema: &str,
    name: &str,
) -> rusqlite::Result<bool> {
    conn.query_row(
        &format!(
            "SELECT count(*) > 0 FROM {}.sqlite_schema WHERE type = 'table' AND name = ?1",
            quote_ident(schema)
        ),
        [name],
        |row| row.get(0),
    )
}

/// Whether `name` is one of the names of SQLite's schema table.
pub(crate) fn is_schema_table(name: &str) -> bool {
    [
        "sqlite_schema",
        "sqlite_master",
        "sqlite_temp_schema",
        "sqlite_temp_master",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(name))
}

/// Whether `err` is SQLite's bare result code, the source of a
/// [`rusqlite::Error`] that only repeats its message as a number.
pub(crate) fn is_result_code(err: &(dyn std::error::Error + 'static)) -> bool {
    err.is::<rusqlite::ffi::Error>()
}

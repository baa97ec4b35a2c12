//! A release's schema as its migrations build it, on SQLite.

use std::path::Path;

use crate::release::{Release, ReleaseError};

/// The names of the tables and views the release's migrations create,
/// found by applying them all, in order, to an empty in-memory database:
/// the application's own tables (plugins' tables are made by hooks).
/// Fails when the migrations cannot be read ([`Release::migrations`]),
/// or with [`ReleaseError::Schema`] naming the migration that does not
/// apply.
pub(crate) fn schema_tables(release: &Release) -> Result<Vec<String>, ReleaseError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |cause: rusqlite::Error| ReleaseError::Schema {
            path,
            cause: cause.into(),
        }
    };
    let conn = rusqlite::Connection::open_in_memory().map_err(failed(&release.dir))?;
    for migration in release.migrations()? {
        conn.execute_batch(&migration.sql)
            .map_err(failed(&migration.path))?;
    }
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')")
        .map_err(failed(&release.dir))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(failed(&release.dir))?;
    Ok(names)
}

//! Schemas on SQLite: the tables a release's migrations create, and a
//! database's schema as facts to compare (`uplift verify-paths`).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;

use crate::engine::EngineError;

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

/// Runs `sql` (a script of statements) on the database at `db`.
pub(crate) fn execute_script(db: &Path, sql: &str) -> Result<(), EngineError> {
    Connection::open(db)?.execute_batch(sql)?;
    Ok(())
}

/// `PRAGMA integrity_check` of the database at `db`: `ok`, or what is wrong.
pub(crate) fn integrity_check(db: &Path) -> Result<String, EngineError> {
    let conn = Connection::open(db)?;
    Ok(conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
}

/// A database's schema, normalised for comparison: one entry per object,
/// each a list of facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schema {
    objects: BTreeMap<String, Vec<String>>,
}

impl Schema {
    /// Reads the schema of the database at `path`, leaving out SQLite's and
    /// uplift's own tables.
    pub(crate) fn read(path: &Path) -> Result<Schema, rusqlite::Error> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut objects = BTreeMap::new();
        let mut stmt = conn.prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema
             WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'uplift\\_%' ESCAPE '\\'
             ORDER BY name",
        )?;
        let rows: Vec<(String, String, String, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        for (kind, name, table, sql) in rows {
            let facts = match kind.as_str() {
                "table" => table_facts(&conn, &name)?,
                "index" => index_facts(&conn, &name, &table, sql.as_deref())?,
                _ => vec![format!(
                    "{kind} on {table}: {}",
                    normalise_sql(sql.as_deref().unwrap_or(""))
                )],
            };
            objects.insert(format!("{kind} {name}"), facts);
        }
        Ok(Schema { objects })
    }

    /// What `actual` lacks, has extra, or has differently, compared with
    /// this (expected) schema.
    pub(crate) fn differences(&self, actual: &Schema) -> Vec<String> {
        let mut out = Vec::new();
        for (name, facts) in &self.objects {
            match actual.objects.get(name) {
                None => out.push(format!("{name} is missing (a fresh install has it)")),
                Some(other) if other != facts => {
                    let missing: Vec<&String> =
                        facts.iter().filter(|f| !other.contains(f)).collect();
                    let extra: Vec<&String> = other.iter().filter(|f| !facts.contains(f)).collect();
                    let mut text = format!("{name} differs:");
                    for f in missing {
                        text.push_str(&format!(" fresh install has [{f}];"));
                    }
                    for f in extra {
                        text.push_str(&format!(" upgraded has [{f}];"));
                    }
                    out.push(text.trim_end_matches(';').to_string());
                }
                Some(_) => {}
            }
        }
        for name in actual.objects.keys() {
            if !self.objects.contains_key(name) {
                out.push(format!(
                    "{name} exists only after the upgrade (a fresh install lacks it)"
                ));
            }
        }
        out
    }

    /// Removes objects whose names start with any of `prefixes` (tables that
    /// plugins own and create on some upgrade paths only).
    pub(crate) fn without_prefixes(mut self, prefixes: &[String]) -> Schema {
        self.objects.retain(|key, _| {
            let name = key.split_once(' ').map(|(_, n)| n).unwrap_or(key);
            !prefixes.iter().any(|p| name.starts_with(p.as_str()))
        });
        self
    }
}

fn table_facts(conn: &Connection, table: &str) -> Result<Vec<String>, rusqlite::Error> {
    let mut facts = Vec::new();
    let mut info =
        conn.prepare("SELECT type, wr, strict FROM pragma_table_list WHERE name = ?1")?;
    let shape: Option<(String, i64, i64)> = info
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .next()
        .transpose()?;
    if let Some((kind, without_rowid, strict)) = shape {
        facts.push(format!(
            "kind {kind} without_rowid={without_rowid} strict={strict}"
        ));
    }
    let mut columns = conn.prepare(
        "SELECT cid, name, upper(type), \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
    )?;
    for fact in columns.query_map([table], |r| {
        Ok(format!(
            "column {} {} {} notnull={} default={} pk={} hidden={}",
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<String>>(4)?
                .unwrap_or_else(|| "none".into()),
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })? {
        facts.push(fact?);
    }
    let mut keys = conn.prepare(
        "SELECT \"table\", \"from\", \"to\", on_update, on_delete, \"match\" FROM pragma_foreign_key_list(?1)
         ORDER BY \"table\", \"from\"",
    )?;
    for fact in keys.query_map([table], |r| {
        Ok(format!(
            "foreign key {} -> {}({}) on update {} on delete {} match {}",
            r.get::<_, String>(1)?,
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })? {
        facts.push(fact?);
    }
    // CHECK constraints live only in the CREATE text; compare their presence
    // through the normalised text of each CHECK clause.
    let sql: Option<String> = conn.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    for check in check_clauses(sql.as_deref().unwrap_or("")) {
        facts.push(format!("check {check}"));
    }
    Ok(facts)
}

fn index_facts(
    conn: &Connection,
    index: &str,
    table: &str,
    sql: Option<&str>,
) -> Result<Vec<String>, rusqlite::Error> {
    let mut facts = vec![format!("on {table}")];
    let mut cols = conn.prepare(
        "SELECT seqno, name, \"desc\", coll, key FROM pragma_index_xinfo(?1) WHERE key = 1",
    )?;
    for fact in cols.query_map([index], |r| {
        Ok(format!(
            "key {} {} desc={} collate {}",
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?
                .unwrap_or_else(|| "<expression>".into()),
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })? {
        facts.push(fact?);
    }
    if let Some(sql) = sql {
        facts.push(format!("sql {}", normalise_sql(sql)));
    }
    Ok(facts)
}

/// Collapses whitespace and drops `IF NOT EXISTS`, so that formatting does
/// not count as a difference.
fn normalise_sql(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .replace("IF NOT EXISTS ", "")
        .replace("if not exists ", "")
}

/// The `CHECK (...)` clauses of a CREATE TABLE statement, normalised.
fn check_clauses(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let upper = sql.to_ascii_uppercase();
    let mut from = 0;
    while let Some(pos) = upper[from..].find("CHECK") {
        let start = from + pos;
        let Some(open) = sql[start..].find('(').map(|p| start + p) else {
            break;
        };
        let mut depth = 0usize;
        let mut end = open;
        for (i, c) in sql[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push(normalise_sql(&sql[open..=end]));
        from = end + 1;
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::{check_clauses, normalise_sql};

    #[test]
    fn check_clauses_are_found_with_nested_parentheses() {
        let sql =
            "CREATE TABLE t (a REAL CHECK (a IS NULL OR (a BETWEEN 0 AND 100)), b, CHECK(b > 0))";
        assert_eq!(
            check_clauses(sql),
            vec![
                "(a IS NULL OR (a BETWEEN 0 AND 100))".to_string(),
                "(b > 0)".to_string()
            ]
        );
    }

    #[test]
    fn formatting_is_not_a_difference() {
        assert_eq!(
            normalise_sql("CREATE  INDEX IF NOT EXISTS x\n  ON t (a)"),
            normalise_sql("CREATE INDEX x ON t (a)")
        );
    }
}

//! Upgrade-path verification: for every pair of an application's releases
//! i < j, data created at i and upgraded directly to j must end up with the
//! same schema as a fresh install of j. This is `uplift verify-paths`, the
//! check an application's CI runs before it ships a release.
//!
//! The schema is compared structurally (columns, types, constraints, keys,
//! indexes, views, triggers) rather than by the text of `CREATE` statements,
//! because `ALTER TABLE ADD COLUMN` and a table rebuild legitimately leave
//! different text for the same table. uplift's own tables and tables owned by
//! plugins (which hooks create on some paths only) are left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use crate::backup::NoProgress;
use crate::errors::chain_text;
use crate::home::Home;
use crate::hooks::PluginSet;
use crate::release::{Release, ReleaseError};
use crate::upgrade::error::UpgradeError;
use crate::upgrade::{self, Reporter, UpgradeOptions};
use crate::version::Version;

/// Why `verify-paths` could not verify the upgrade paths (as opposed to
/// finding that a path leads to a different schema).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathsError {
    /// A release folder is invalid.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// Two folders hold the same release version.
    #[error("{first} and {second} are both release {version}: give each release once")]
    DuplicateVersion {
        version: Version,
        first: PathBuf,
        second: PathBuf,
    },
    /// Two releases belong to different applications.
    #[error(
        "{path} is release of {found:?}, the others are of {expected:?}: give one application's releases"
    )]
    MixedApps {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// Fewer than two releases.
    #[error("verify-paths needs at least two release folders, got {0}")]
    TooFew(usize),
    /// Scratch space could not be made.
    #[error("could not create a scratch folder")]
    Scratch(#[source] std::io::Error),
    /// A release's plugins could not be read.
    #[error(transparent)]
    Plugins(#[from] crate::hooks::HookError),
    /// A fixture file could not be read.
    #[error("fixture {path} failed")]
    FixtureUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A fixture file's SQL failed.
    #[error("fixture {path} failed: {cause}")]
    Fixture {
        path: PathBuf,
        /// SQLite's error (shown in the message).
        cause: rusqlite::Error,
    },
    /// SQLite failed while reading a schema.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
}

/// The result of one upgrade path.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    /// The release the data was created at.
    pub from: Version,
    /// The release it was upgraded to.
    pub to: Version,
    /// `ok`, `schema differs` or `upgrade failed`.
    pub result: &'static str,
    /// What differs from a fresh install, or why the upgrade failed.
    pub problems: Vec<String>,
}

impl PathReport {
    /// Whether the path is sound.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies every upgrade path between `release_dirs` (in any order).
/// Each path runs in its own scratch home: nothing outside it is touched.
/// `progress` is told about each path as it finishes.
pub fn verify_paths(
    release_dirs: &[PathBuf],
    progress: &mut dyn FnMut(&PathReport),
) -> Result<Vec<PathReport>, PathsError> {
    let releases = load_releases(release_dirs)?;
    let scratch = tempfile::tempdir().map_err(PathsError::Scratch)?;
    let owned = owned_prefixes(&releases, &Home::new(scratch.path().join("plugins")))?;
    let mut reports = Vec::new();
    let mut fresh: BTreeMap<usize, Result<Schema, String>> = BTreeMap::new();
    for j in 1..releases.len() {
        let target = &releases[j];
        let fresh_schema = fresh.entry(j).or_insert_with(|| {
            let home = Home::new(scratch.path().join(format!("fresh-{j}")));
            install(&home, target)
                .map_err(|e| chain_text(&e))
                .and_then(|()| Schema::read(&home.db_path()).map_err(|e| e.to_string()))
                .map(|schema| schema.without_prefixes(&owned))
        });
        for (i, origin) in releases.iter().enumerate().take(j) {
            let home = Home::new(scratch.path().join(format!("path-{i}-{j}")));
            let upgraded = upgrade_path(&home, origin, target).map(|s| s.without_prefixes(&owned));
            let report = match (&*fresh_schema, upgraded) {
                (Err(e), _) => PathReport {
                    from: origin.version.clone(),
                    to: target.version.clone(),
                    result: "upgrade failed",
                    problems: vec![format!("fresh install of {} failed: {e}", target.version)],
                },
                (_, Err(e)) => PathReport {
                    from: origin.version.clone(),
                    to: target.version.clone(),
                    result: "upgrade failed",
                    problems: vec![e],
                },
                (Ok(expected), Ok(actual)) => {
                    let problems = expected.differences(&actual);
                    PathReport {
                        from: origin.version.clone(),
                        to: target.version.clone(),
                        result: if problems.is_empty() {
                            "ok"
                        } else {
                            "schema differs"
                        },
                        problems,
                    }
                }
            };
            progress(&report);
            reports.push(report);
            let _ = std::fs::remove_dir_all(home.root());
        }
    }
    Ok(reports)
}

/// The table prefixes plugins of any of the releases own: their tables are
/// created by hooks, which run on upgrades only, so they are not compared.
fn owned_prefixes(releases: &[Release], scratch: &Home) -> Result<Vec<String>, PathsError> {
    let mut prefixes = Vec::new();
    for release in releases {
        let plugins = PluginSet::discover(&release.plugins_dir(), &release.core_plugins, scratch)?;
        for plugin in plugins.plugins() {
            if let Some(prefix) = &plugin.manifest.capabilities.owns {
                prefixes.push(prefix.clone());
            }
        }
    }
    prefixes.sort();
    prefixes.dedup();
    Ok(prefixes)
}

fn load_releases(dirs: &[PathBuf]) -> Result<Vec<Release>, PathsError> {
    if dirs.len() < 2 {
        return Err(PathsError::TooFew(dirs.len()));
    }
    let mut releases = dirs
        .iter()
        .map(|d| Release::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    for pair in releases.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(PathsError::DuplicateVersion {
                version: pair[1].version.clone(),
                first: pair[0].dir.clone(),
                second: pair[1].dir.clone(),
            });
        }
        if pair[0].app != pair[1].app {
            return Err(PathsError::MixedApps {
                path: pair[1].dir.clone(),
                found: pair[1].app.clone(),
                expected: pair[0].app.clone(),
            });
        }
    }
    Ok(releases)
}

fn install(home: &Home, release: &Release) -> Result<(), UpgradeError> {
    upgrade::upgrade(
        home,
        release,
        &UpgradeOptions::default(),
        Reporter::silent(&mut NoProgress),
    )
    .map(|_| ())
}

/// Fresh install at `origin`, its fixtures, then a direct upgrade to
/// `target`; returns the resulting schema.
fn upgrade_path(home: &Home, origin: &Release, target: &Release) -> Result<Schema, String> {
    install(home, origin)
        .map_err(|e| format!("install of {} failed: {}", origin.version, chain_text(&e)))?;
    load_fixtures(&home.db_path(), origin).map_err(|e| chain_text(&e))?;
    upgrade::upgrade(
        home,
        target,
        &UpgradeOptions::default(),
        Reporter::silent(&mut NoProgress),
    )
    .map_err(|e| {
        format!(
            "upgrade {} -> {} failed: {}",
            origin.version,
            target.version,
            chain_text(&e)
        )
    })?;
    let schema = Schema::read(&home.db_path()).map_err(|e| e.to_string())?;
    let conn = Connection::open(home.db_path()).map_err(|e| e.to_string())?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if integrity != "ok" {
        return Err(format!("integrity_check after the upgrade: {integrity}"));
    }
    Ok(schema)
}

/// Runs `<release>/fixtures/*.sql` in name order: the sample data an
/// application ships so that paths are tested with rows in the tables.
pub fn load_fixtures(db: &Path, release: &Release) -> Result<usize, PathsError> {
    let dir = release.dir.join("fixtures");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect(),
        Err(_) => return Ok(0),
    };
    files.sort();
    let conn = Connection::open(db)?;
    for path in &files {
        let sql =
            std::fs::read_to_string(path).map_err(|source| PathsError::FixtureUnreadable {
                path: path.clone(),
                source,
            })?;
        conn.execute_batch(&sql)
            .map_err(|cause| PathsError::Fixture {
                path: path.clone(),
                cause,
            })?;
    }
    Ok(files.len())
}

/// A database's schema, normalised for comparison: one entry per object,
/// each a list of facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    objects: BTreeMap<String, Vec<String>>,
}

impl Schema {
    /// Reads the schema of the database at `path`, leaving out SQLite's and
    /// uplift's own tables.
    pub fn read(path: &Path) -> Result<Schema, rusqlite::Error> {
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
    pub fn differences(&self, actual: &Schema) -> Vec<String> {
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
    pub fn without_prefixes(mut self, prefixes: &[String]) -> Schema {
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

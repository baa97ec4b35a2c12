//! Schemas on SQLite: the tables a release's migrations create, and a
//! database's schema read as facts to compare ([`crate::schema`]): what
//! `uplift verify-paths` and `uplift adopt` check.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;

use crate::engine::EngineError;
use crate::release::{Release, ReleaseError};
use crate::schema::{Schema, SchemaObject};

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

/// Reads the schema of the database at `path` (see [`read`]).
pub(crate) fn read_file(path: &Path) -> Result<Schema, rusqlite::Error> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    read(&conn)
}

/// The schemas the release's migrations build on an empty database after
/// each migration in `checkpoints` (by number, in any order): the migrations
/// run once, in order, in memory, and the schema is read at each
/// checkpoint. Fails like [`schema_tables`].
pub(crate) fn schemas_after(
    release: &Release,
    checkpoints: &[u32],
) -> Result<BTreeMap<u32, Schema>, ReleaseError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |cause: rusqlite::Error| ReleaseError::Schema {
            path,
            cause: cause.into(),
        }
    };
    let conn = Connection::open_in_memory().map_err(failed(&release.dir))?;
    let mut out = BTreeMap::new();
    if checkpoints.contains(&0) {
        out.insert(0, read(&conn).map_err(failed(&release.dir))?);
    }
    for migration in release.migrations()? {
        if out.len() == checkpoints.len() {
            break;
        }
        conn.execute_batch(&migration.sql)
            .map_err(failed(&migration.path))?;
        if checkpoints.contains(&migration.id) {
            out.insert(migration.id, read(&conn).map_err(failed(&migration.path))?);
        }
    }
    Ok(out)
}

/// Reads a database's schema, leaving out SQLite's and uplift's own
/// objects. Names are compared as SQLite does, without regard to case.
pub(crate) fn read(conn: &Connection) -> Result<Schema, rusqlite::Error> {
    let mut schema = Schema::default();
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM main.sqlite_schema
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'uplift\\_%' ESCAPE '\\'
         ORDER BY name",
    )?;
    let rows: Vec<(String, String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name, table, sql) in rows {
        let sql = sql.unwrap_or_default();
        let facts = match kind.as_str() {
            "table" => table_facts(conn, &name, &sql)?,
            "index" => index_facts(conn, &name, &table, &sql)?,
            _ => BTreeMap::from([("definition".to_string(), normalise_sql(&sql))]),
        };
        let object = SchemaObject {
            table: table.to_lowercase(),
            facts,
        };
        schema.insert(&kind, &name.to_lowercase(), object);
    }
    Ok(schema)
}

type Facts = BTreeMap<String, String>;

fn table_facts(conn: &Connection, table: &str, sql: &str) -> Result<Facts, rusqlite::Error> {
    let mut facts = Facts::new();
    let shape: Option<(String, bool, bool)> = conn
        .prepare(
            "SELECT type, wr, strict FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
        )?
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .next()
        .transpose()?;
    if let Some((kind, without_rowid, strict)) = shape {
        if kind == "virtual" {
            facts.insert("definition".into(), normalise_sql(sql));
            return Ok(facts);
        }
        if without_rowid {
            facts.insert("WITHOUT ROWID".into(), String::new());
        }
        if strict {
            facts.insert("STRICT".into(), String::new());
        }
    }
    column_facts(conn, table, &mut facts)?;
    foreign_key_facts(conn, table, &mut facts)?;
    // CHECK constraints live only in the CREATE text; UNIQUE constraints in
    // the indexes SQLite makes for them.
    for check in check_clauses(sql) {
        facts.insert(format!("check {check}"), String::new());
    }
    let uniques: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list(?1) WHERE origin = 'u' ORDER BY name")?
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for index in uniques {
        facts.insert(
            format!("unique ({})", index_columns(conn, &index)?),
            String::new(),
        );
    }
    Ok(facts)
}

/// Each column's declaration, and their order.
fn column_facts(conn: &Connection, table: &str, facts: &mut Facts) -> Result<(), rusqlite::Error> {
    struct Column {
        name: String,
        kind: String,
        not_null: bool,
        default: Option<String>,
        pk: i64,
        hidden: i64,
    }
    let columns: Vec<Column> = conn
        .prepare(
            "SELECT name, type, \"notnull\", dflt_value, pk, hidden
             FROM pragma_table_xinfo(?1) ORDER BY cid",
        )?
        .query_map([table], |r| {
            Ok(Column {
                name: r.get(0)?,
                kind: r.get(1)?,
                not_null: r.get(2)?,
                default: r.get(3)?,
                pk: r.get(4)?,
                hidden: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let key_parts = columns.iter().filter(|c| c.pk > 0).count();
    for column in &columns {
        let mut words = vec![match column.kind.split_whitespace().collect::<Vec<_>>() {
            kind if kind.is_empty() => "no type".to_string(),
            kind => kind.join(" ").to_uppercase(),
        }];
        if column.not_null {
            words.push("NOT NULL".into());
        }
        if let Some(default) = &column.default {
            words.push(format!("DEFAULT {}", normalise_sql(default)));
        }
        // Collation and AUTOINCREMENT are only in the CREATE text; SQLite
        // parses them for us (a hidden column of a virtual table has none).
        if let Ok((_, collation, _, _, autoincrement)) =
            conn.column_metadata(Some("main"), table, column.name.as_str())
        {
            if let Some(collation) = collation.map(|c| c.to_string_lossy().to_uppercase())
                && collation != "BINARY"
            {
                words.push(format!("COLLATE {collation}"));
            }
            if autoincrement {
                words.push("AUTOINCREMENT".into());
            }
        }
        match (column.pk, key_parts) {
            (0, _) => {}
            (_, 1) => words.push("PRIMARY KEY".into()),
            (part, _) => words.push(format!("PRIMARY KEY part {part}")),
        }
        match column.hidden {
            2 => words.push("GENERATED VIRTUAL".into()),
            3 => words.push("GENERATED STORED".into()),
            1 => words.push("HIDDEN".into()),
            _ => {}
        }
        facts.insert(
            format!("column {}", column.name.to_lowercase()),
            words.join(" "),
        );
    }
    let order: Vec<String> = columns.iter().map(|c| c.name.to_lowercase()).collect();
    facts.insert("column order".into(), order.join(", "));
    Ok(())
}

/// Each foreign key, by the columns it constrains.
fn foreign_key_facts(
    conn: &Connection,
    table: &str,
    facts: &mut Facts,
) -> Result<(), rusqlite::Error> {
    let mut keys: BTreeMap<i64, (Vec<String>, String, Vec<String>, String)> = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT id, \"from\", \"table\", \"to\", on_update, on_delete, \"match\"
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )?;
    let mut rows = stmt.query([table])?;
    while let Some(r) = rows.next()? {
        let key = keys.entry(r.get(0)?).or_default();
        key.0.push(r.get::<_, String>(1)?.to_lowercase());
        key.1 = r.get::<_, String>(2)?.to_lowercase();
        if let Some(to) = r.get::<_, Option<String>>(3)? {
            key.2.push(to.to_lowercase());
        }
        let mut actions = Vec::new();
        for (what, action) in [
            ("ON UPDATE", r.get::<_, String>(4)?),
            ("ON DELETE", r.get(5)?),
        ] {
            if action != "NO ACTION" {
                actions.push(format!("{what} {action}"));
            }
        }
        let matching: String = r.get(6)?;
        if matching != "NONE" {
            actions.push(format!("MATCH {matching}"));
        }
        key.3 = actions.join(" ");
    }
    for (from, parent, to, actions) in keys.into_values() {
        let mut detail = format!("REFERENCES {parent}({})", to.join(", "));
        if !actions.is_empty() {
            detail = format!("{detail} {actions}");
        }
        facts.insert(format!("foreign key ({})", from.join(", ")), detail);
    }
    Ok(())
}

fn index_facts(
    conn: &Connection,
    index: &str,
    table: &str,
    sql: &str,
) -> Result<Facts, rusqlite::Error> {
    let mut facts = Facts::new();
    facts.insert("on".into(), table.to_lowercase());
    let (unique, partial): (bool, bool) = conn
        .prepare("SELECT \"unique\", partial FROM pragma_index_list(?1) WHERE name = ?2")?
        .query_row([table, index], |r| Ok((r.get(0)?, r.get(1)?)))?;
    facts.insert("unique".into(), if unique { "yes" } else { "no" }.into());
    let columns = index_columns(conn, index)?;
    facts.insert("columns".into(), columns.clone());
    // What the pragmas cannot say (an expression, a WHERE clause) is in
    // the CREATE text.
    if partial || columns.contains("<expression>") {
        facts.insert("definition".into(), normalise_sql(sql));
    }
    Ok(facts)
}

/// An index's key columns, with their order and collation when not the
/// default: `email COLLATE NOCASE, created DESC`.
fn index_columns(conn: &Connection, index: &str) -> Result<String, rusqlite::Error> {
    let columns: Vec<String> = conn
        .prepare(
            "SELECT name, \"desc\", coll FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno",
        )?
        .query_map([index], |r| {
            let mut words = vec![
                r.get::<_, Option<String>>(0)?
                    .map_or_else(|| "<expression>".to_string(), |n| n.to_lowercase()),
            ];
            let collation: String = r.get(2)?;
            if !collation.eq_ignore_ascii_case("BINARY") {
                words.push(format!("COLLATE {}", collation.to_uppercase()));
            }
            if r.get::<_, bool>(1)? {
                words.push("DESC".into());
            }
            Ok(words.join(" "))
        })?
        .collect::<Result<_, _>>()?;
    Ok(columns.join(", "))
}

/// SQL text with formatting left out, so that only meaning counts: case
/// (outside string literals), whitespace, identifier quotes around plain
/// names, and `IF NOT EXISTS`. `CREATE INDEX "x" ON "t" ("a")` and
/// `create index x on t(a)` are the same.
fn normalise_sql(sql: &str) -> String {
    let mut tokens: Vec<String> = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '\'' => tokens.push(quoted(&mut chars, '\'', '\'', true)),
            '"' | '`' => tokens.push(identifier(quoted(&mut chars, c, c, false))),
            '[' => tokens.push(identifier(quoted(&mut chars, '[', ']', false))),
            c if is_word(c) => {
                let mut word = c.to_lowercase().collect::<String>();
                while let Some(&next) = chars.peek().filter(|n| is_word(**n)) {
                    word.extend(next.to_lowercase());
                    chars.next();
                }
                tokens.push(word);
            }
            c => tokens.push(c.to_string()),
        }
    }
    let mut out = String::new();
    let mut previous_word = false;
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i..].starts_with(&["if".into(), "not".into(), "exists".into()]) {
            i += 3;
            continue;
        }
        let word = tokens[i]
            .chars()
            .next()
            .is_some_and(|c| is_word(c) || c == '"' || c == '\'');
        if word && previous_word {
            out.push(' ');
        }
        out.push_str(&tokens[i]);
        previous_word = word;
        i += 1;
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Reads up to the closing quote (a doubled closing quote is one
/// character); keeps the quotes when `keep` (string literals).
fn quoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    open: char,
    close: char,
    keep: bool,
) -> String {
    let mut text = String::new();
    if keep {
        text.push(open);
    }
    while let Some(c) = chars.next() {
        if c == close {
            if open == close && chars.peek() == Some(&close) {
                chars.next();
                text.push(c);
                if keep {
                    text.push(c);
                }
                continue;
            }
            break;
        }
        text.push(c);
    }
    if keep {
        text.push(close);
    }
    text
}

/// A quoted identifier: bare and lower-cased when it is a plain name,
/// in double quotes otherwise.
fn identifier(name: String) -> String {
    if !name.is_empty()
        && name.chars().all(is_word)
        && !name.starts_with(|c: char| c.is_ascii_digit())
    {
        name.to_lowercase()
    } else {
        format!("\"{}\"", name.replace('"', "\"\"").to_lowercase())
    }
}

/// The `CHECK (...)` clauses of a CREATE TABLE statement, normalised (the
/// word CHECK alone, followed by a parenthesis: not a column `checked_at`).
fn check_clauses(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let upper = sql.to_ascii_uppercase();
    let mut from = 0;
    while let Some(pos) = upper[from..].find("CHECK") {
        let start = from + pos;
        from = start + "CHECK".len();
        let alone = !upper[..start].ends_with(|c: char| is_word(c) || c == '"')
            && upper[from..].trim_start().starts_with('(');
        if !alone {
            continue;
        }
        let open = from + (upper[from..].len() - upper[from..].trim_start().len());
        let mut depth = 0usize;
        let mut end = sql.len() - 1;
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
    use super::{check_clauses, normalise_sql, read};

    #[test]
    fn check_clauses_are_found_with_nested_parentheses_and_not_in_names() {
        let sql = "CREATE TABLE t (a REAL CHECK (a IS NULL OR (a BETWEEN 0 AND 100)), b, \
                   checked_at TEXT, \"check\" INT, CHECK(b > 0))";
        assert_eq!(
            check_clauses(sql),
            vec![
                normalise_sql("(a IS NULL OR (a BETWEEN 0 AND 100))"),
                normalise_sql("(b > 0)")
            ]
        );
    }

    #[test]
    fn formatting_and_quoting_are_not_a_difference() {
        assert_eq!(
            normalise_sql("CREATE  INDEX IF NOT EXISTS \"x\"\n  ON [T] (`a`) WHERE b = 'It''s'"),
            normalise_sql("create index x on t(a) where b='It''s'")
        );
        assert_ne!(
            normalise_sql("SELECT 'A'"),
            normalise_sql("SELECT 'a'"),
            "string literals keep their case"
        );
        assert_ne!(
            normalise_sql("SELECT \"a b\""),
            normalise_sql("SELECT a b"),
            "a quoted name that is not plain keeps its quotes"
        );
    }

    /// The same schema written by hand and by another tool (quoted names,
    /// other spacing, the constraint spelt apart) reads the same; a
    /// collation, a unique constraint or a foreign key action does not.
    #[test]
    fn the_same_schema_written_differently_reads_the_same() {
        let by_hand = rusqlite::Connection::open_in_memory().unwrap();
        by_hand
            .execute_batch(
                "CREATE TABLE learner (id INTEGER PRIMARY KEY, email TEXT NOT NULL COLLATE NOCASE UNIQUE);
                 CREATE TABLE progress (learner_id INTEGER REFERENCES learner(id) ON DELETE CASCADE, done INT);
                 CREATE INDEX progress_by_learner ON progress (learner_id);",
            )
            .unwrap();
        let by_tool = rusqlite::Connection::open_in_memory().unwrap();
        by_tool
            .execute_batch(
                "CREATE TABLE \"learner\" (\"id\" integer NOT NULL PRIMARY KEY, \"email\" text NOT NULL COLLATE nocase, UNIQUE (\"email\"));
                 CREATE TABLE \"progress\" (\"learner_id\" integer, \"done\" int,
                     FOREIGN KEY (\"learner_id\") REFERENCES \"learner\" (\"id\") ON DELETE CASCADE);
                 CREATE INDEX \"progress_by_learner\" ON \"progress\" (\"learner_id\");",
            )
            .unwrap();
        let hand = read(&by_hand).unwrap();
        let tool = read(&by_tool).unwrap();
        let differences: Vec<String> = hand
            .compare(&tool)
            .iter()
            .map(ToString::to_string)
            .collect();
        // `id INTEGER PRIMARY KEY` is NOT NULL only when declared so.
        assert_eq!(
            differences,
            [
                "table learner: column id is INTEGER NOT NULL PRIMARY KEY in the actual schema \
              but INTEGER PRIMARY KEY in the expected schema"
            ]
        );
        for change in [
            "CREATE TABLE learner (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)",
            "CREATE TABLE learner (id INTEGER PRIMARY KEY, email TEXT NOT NULL COLLATE NOCASE)",
        ] {
            let other = rusqlite::Connection::open_in_memory().unwrap();
            other.execute_batch(change).unwrap();
            let learner = |s: &crate::schema::Schema| s.clone().without(|name| name != "learner");
            assert_ne!(learner(&read(&other).unwrap()), learner(&hand), "{change}");
        }
    }
}

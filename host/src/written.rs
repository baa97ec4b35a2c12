//! Which tables an upgrade wrote, and the foreign-key check scoped to them.
//!
//! The upgrade runs in one transaction with `foreign_keys=OFF` (table
//! rebuilds need it) and checks foreign keys before COMMIT. A row can only
//! come to break a foreign key if its own table or the table it refers to was
//! written or changed shape, so [`check_foreign_keys`] runs
//! `foreign_key_check` only on each table C with foreign keys such that C, or
//! a table C refers to, is in W, the set of tables the upgrade wrote. That
//! catches everything the upgrade broke, without reading the tables it never
//! touched (a whole-database check reads every table: seconds on a database
//! of gigabytes). Violations that were already there, in tables the upgrade
//! never touched, are not the upgrade's business and are not reported: that
//! is the point.
//!
//! W holds names, compared case-insensitively (ASCII, as SQLite does):
//! - data writes: every INSERT, UPDATE and DELETE that SQLite's authorizer
//!   reports while a migration or a hook compiles a statement
//!   ([`WrittenTables::observe`], called by the migrations' authorizer in
//!   [`crate::migrate::apply`] and the hooks' in
//!   [`crate::hooks::authorizer::Policy::check`]). It is called at compile
//!   time, for the statements of the triggers a statement fires too, and
//!   costs nothing per row. Rows that REPLACE conflict resolution deletes
//!   belong to the table inserted into, which is in W; with foreign keys off
//!   there are no cascades.
//! - schema changes: every table whose `sqlite_schema` row (or one of its
//!   indexes' or triggers') was added, removed or changed between the start
//!   of the transaction and the check ([`SchemaRows`]). That covers CREATE,
//!   DROP, ALTER TABLE (RENAME rewrites the children's `REFERENCES` too, so
//!   they change as well), rebuilds by the 12-step procedure, and edits under
//!   `writable_schema`.
//! - uplift's own tables (`uplift_*`), which uplift writes itself, outside
//!   any authorizer: all of them count as written.
//!
//! W is unknown, and the whole database is checked, when an authorizer saw
//! `PRAGMA writable_schema` or an action it does not know, when the record
//! could not be kept (a poisoned lock), or when a trigger on one of uplift's
//! tables exists (its statements would run when uplift writes the table,
//! where no authorizer sees them).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::AuthAction;

use crate::meta::is_uplift_table;
use crate::migrate::{self, ForeignKeyViolation};

/// The tables written during one upgrade (W), shared by the authorizers
/// that record into it; clones share the same record. `None` inside means
/// unknown: the whole database must be checked.
#[derive(Debug, Clone)]
pub struct WrittenTables(Arc<Mutex<Option<HashSet<String>>>>);

impl Default for WrittenTables {
    fn default() -> Self {
        WrittenTables(Arc::new(Mutex::new(Some(HashSet::new()))))
    }
}

impl WrittenTables {
    /// An empty record.
    pub fn new() -> WrittenTables {
        WrittenTables::default()
    }

    /// Records what one authorizer action writes: the table of an INSERT,
    /// UPDATE or DELETE. `PRAGMA writable_schema` and actions this version
    /// of rusqlite does not know make W unknown.
    pub fn observe(&self, action: &AuthAction<'_>) {
        match action {
            AuthAction::Insert { table_name }
            | AuthAction::Delete { table_name }
            | AuthAction::Update { table_name, .. } => self.insert(table_name),
            AuthAction::Pragma { pragma_name, .. }
                if pragma_name.eq_ignore_ascii_case("writable_schema") =>
            {
                self.give_up()
            }
            AuthAction::Unknown { .. } => self.give_up(),
            _ => {}
        }
    }

    /// Records `table` as written.
    pub fn insert(&self, table: &str) {
        // A poisoned lock stays poisoned: `names` then answers unknown.
        if let Ok(mut guard) = self.0.lock()
            && let Some(names) = guard.as_mut()
        {
            names.insert(table.to_ascii_lowercase());
        }
    }

    /// Makes W unknown: the whole database will be checked.
    pub fn give_up(&self) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = None;
        }
    }

    /// Records every table whose schema rows differ between `before` and
    /// `after` (the table itself, and the table an index or trigger belongs
    /// to).
    pub fn record_schema_changes(&self, before: &SchemaRows, after: &SchemaRows) {
        for row in before.0.symmetric_difference(&after.0) {
            self.insert(&row.name);
            self.insert(&row.tbl_name);
        }
    }

    /// The lower-cased names written, or `None` when W is unknown.
    pub fn names(&self) -> Option<HashSet<String>> {
        self.0.lock().ok()?.clone()
    }
}

/// One row of `sqlite_schema`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SchemaRow {
    kind: String,
    name: String,
    tbl_name: String,
    sql: Option<String>,
}

/// The main schema's `sqlite_schema` rows, to tell which tables changed
/// shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaRows(BTreeSet<SchemaRow>);

impl SchemaRows {
    /// Reads `main.sqlite_schema`.
    pub fn read(conn: &Connection) -> rusqlite::Result<SchemaRows> {
        let mut stmt = conn.prepare("SELECT type, name, tbl_name, sql FROM main.sqlite_schema")?;
        let rows = stmt.query_map([], |row| {
            Ok(SchemaRow {
                kind: row.get(0)?,
                name: row.get(1)?,
                tbl_name: row.get(2)?,
                sql: row.get(3)?,
            })
        })?;
        Ok(SchemaRows(rows.collect::<Result<_, _>>()?))
    }

    /// The names of its tables.
    fn tables(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|r| r.kind == "table")
            .map(|r| r.name.as_str())
    }
}

/// A table with foreign keys and the tables they refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableKeys {
    /// The table (the child).
    pub name: String,
    /// The tables its foreign keys refer to, as written in `REFERENCES`.
    pub parents: Vec<String>,
}

/// Every table of the main schema that has foreign keys, by name, with its
/// parents.
pub fn foreign_key_tables(conn: &Connection) -> rusqlite::Result<Vec<TableKeys>> {
    let mut stmt = conn.prepare(
        "SELECT s.name, f.\"table\"
         FROM main.sqlite_schema AS s, pragma_foreign_key_list(s.name, 'main') AS f
         WHERE s.type = 'table' ORDER BY s.name",
    )?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
    let mut tables: Vec<TableKeys> = Vec::new();
    for row in rows {
        let (name, parent) = row?;
        match tables.last_mut() {
            Some(last) if last.name == name => last.parents.push(parent),
            _ => tables.push(TableKeys {
                name,
                parents: vec![parent],
            }),
        }
    }
    Ok(tables)
}

/// The tables whose foreign keys must be checked when `written` (lower-case
/// names) were written: each of `tables` that was written itself or refers
/// to a written table. A table with foreign keys that neither it nor its
/// parents were written is left out, even if it holds violations: the
/// upgrade did not make them.
pub fn tables_to_check<'a>(written: &HashSet<String>, tables: &'a [TableKeys]) -> Vec<&'a str> {
    let is_written = |name: &str| written.contains(&name.to_ascii_lowercase());
    tables
        .iter()
        .filter(|t| is_written(&t.name) || t.parents.iter().any(|p| is_written(p)))
        .map(|t| t.name.as_str())
        .collect()
}

/// The result of [`check_foreign_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyCheck {
    /// At most `limit` rows that break a foreign key.
    pub violations: Vec<ForeignKeyViolation>,
    /// How many tables' foreign keys were checked.
    pub tables_checked: usize,
    /// Whether W was unknown, so the whole database was checked.
    pub whole_database: bool,
}

/// Checks the foreign keys the upgrade could have broken: records the schema
/// changes since `before` and uplift's own tables in `written`, then runs
/// `foreign_key_check` on the tables [`tables_to_check`] selects, or on the
/// whole database when W is unknown (see the module's documentation). At
/// most `limit` violations are returned. Fails only when SQLite does (for
/// example a foreign key that refers to columns with no unique index).
pub fn check_foreign_keys(
    conn: &Connection,
    written: &WrittenTables,
    before: &SchemaRows,
    limit: usize,
) -> rusqlite::Result<ForeignKeyCheck> {
    let after = SchemaRows::read(conn)?;
    written.record_schema_changes(before, &after);
    for table in after.tables().filter(|t| is_uplift_table(t)) {
        written.insert(table);
    }
    if has_trigger_on_uplift_table(conn)? {
        written.give_up();
    }
    let tables = foreign_key_tables(conn)?;
    let Some(names) = written.names() else {
        return Ok(ForeignKeyCheck {
            violations: migrate::foreign_key_violations(conn, limit)?,
            tables_checked: tables.len(),
            whole_database: true,
        });
    };
    let chosen = tables_to_check(&names, &tables);
    let mut violations = Vec::new();
    let mut stmt = conn.prepare("SELECT * FROM pragma_foreign_key_check(?1, 'main')")?;
    for table in &chosen {
        if violations.len() >= limit {
            break;
        }
        let rows = stmt.query_map([table], ForeignKeyViolation::from_row)?;
        for row in rows.take(limit - violations.len()) {
            violations.push(row?);
        }
    }
    Ok(ForeignKeyCheck {
        violations,
        tables_checked: chosen.len(),
        whole_database: false,
    })
}

/// Whether a trigger (main or temp) fires on one of uplift's tables.
fn has_trigger_on_uplift_table(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(
        "SELECT tbl_name FROM main.sqlite_schema WHERE type = 'trigger'
         UNION ALL SELECT tbl_name FROM temp.sqlite_schema WHERE type = 'trigger'",
    )?;
    let names = stmt.query_map([], |row| row.get::<_, String>(0))?;
    for name in names {
        if is_uplift_table(&name?) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Groups `(child, parent)` pairs into [`TableKeys`], for tests.
    fn keys(pairs: &[(&str, &str)]) -> Vec<TableKeys> {
        let mut map: HashMap<&str, Vec<String>> = HashMap::new();
        let mut order = Vec::new();
        for (child, parent) in pairs {
            if !map.contains_key(child) {
                order.push(*child);
            }
            map.entry(child).or_default().push(parent.to_string());
        }
        order
            .into_iter()
            .map(|name| TableKeys {
                name: name.to_string(),
                parents: map.remove(name).unwrap_or_default(),
            })
            .collect()
    }

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| n.to_ascii_lowercase()).collect()
    }

    #[test]
    fn only_written_tables_and_children_of_written_tables_are_checked() {
        // orders → customer, line → orders and product, review → product.
        let tables = keys(&[
            ("orders", "customer"),
            ("line", "orders"),
            ("line", "Product"),
            ("review", "product"),
        ]);
        assert_eq!(tables_to_check(&set(&[]), &tables), Vec::<&str>::new());
        // A written parent: its children, not its grandchildren.
        assert_eq!(tables_to_check(&set(&["customer"]), &tables), ["orders"]);
        // Names compare case-insensitively, both ways.
        assert_eq!(
            tables_to_check(&set(&["PRODUCT"]), &tables),
            ["line", "review"]
        );
        // A written child is checked; a written table without foreign keys
        // that nothing refers to selects nothing.
        assert_eq!(tables_to_check(&set(&["review"]), &tables), ["review"]);
        assert_eq!(
            tables_to_check(&set(&["audit"]), &tables),
            Vec::<&str>::new()
        );
    }

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT UNIQUE);
             CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
             CREATE TABLE \"Odd \"\"name\" (id INTEGER PRIMARY KEY, code TEXT REFERENCES PARENT(code));
             CREATE TABLE other (id INTEGER PRIMARY KEY);
             CREATE TABLE stray (id INTEGER PRIMARY KEY, other_id INTEGER REFERENCES other(id));
             INSERT INTO parent VALUES (1, 'a');
             INSERT INTO child VALUES (1, 1);
             INSERT INTO \"Odd \"\"name\" VALUES (1, 'a');
             INSERT INTO stray VALUES (1, 42); -- already broken, never touched",
        )
        .unwrap();
        conn
    }

    #[test]
    fn the_schema_is_read_with_every_tables_parents() {
        assert_eq!(
            foreign_key_tables(&conn()).unwrap(),
            keys(&[
                ("Odd \"name", "PARENT"),
                ("child", "parent"),
                ("stray", "other")
            ])
        );
    }

    #[test]
    fn the_authorizer_reports_writes_inside_triggers_when_a_statement_is_compiled() {
        use rusqlite::hooks::{AuthContext, Authorization};
        let conn = conn();
        conn.execute_batch(
            "CREATE TRIGGER tidy AFTER DELETE ON other BEGIN DELETE FROM stray WHERE other_id = old.id; END",
        )
        .unwrap();
        let written = WrittenTables::new();
        let recorder = written.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            recorder.observe(&ctx.action);
            Authorization::Allow
        }));
        // Compiled, never run.
        conn.prepare("DELETE FROM Other WHERE id = 0").unwrap();
        assert_eq!(written.names(), Some(set(&["other", "stray"])));
    }

    #[test]
    fn a_write_to_a_parent_checks_its_children_and_not_untouched_tables() {
        let conn = conn();
        let before = SchemaRows::read(&conn).unwrap();
        let written = WrittenTables::new();
        written.insert("Parent");
        conn.execute_batch("DELETE FROM parent").unwrap();
        let check = check_foreign_keys(&conn, &written, &before, 10).unwrap();
        assert!(!check.whole_database);
        assert_eq!(check.tables_checked, 2);
        let tables: Vec<&str> = check.violations.iter().map(|v| v.table.as_str()).collect();
        assert_eq!(tables, ["Odd \"name", "child"]);
        // At most `limit`.
        let check = check_foreign_keys(&conn, &written, &before, 1).unwrap();
        assert_eq!(check.violations.len(), 1);
    }

    #[test]
    fn a_schema_change_counts_as_a_write() {
        let conn = conn();
        let before = SchemaRows::read(&conn).unwrap();
        conn.execute_batch("DROP TABLE other").unwrap();
        let check = check_foreign_keys(&conn, &WrittenTables::new(), &before, 10).unwrap();
        assert_eq!(check.tables_checked, 1);
        assert_eq!(check.violations[0].table, "stray");
        assert_eq!(check.violations[0].parent, "other");
    }

    #[test]
    fn writable_schema_or_a_trigger_on_uplift_tables_checks_the_whole_database() {
        let conn = conn();
        let before = SchemaRows::read(&conn).unwrap();
        let written = WrittenTables::new();
        written.observe(&AuthAction::Pragma {
            pragma_name: "Writable_Schema",
            pragma_value: Some("1"),
        });
        let check = check_foreign_keys(&conn, &written, &before, 10).unwrap();
        assert!(check.whole_database);
        assert_eq!(check.tables_checked, 3);
        assert_eq!(check.violations[0].table, "stray");

        let conn = self::conn();
        conn.execute_batch(
            "CREATE TABLE uplift_meta (key TEXT PRIMARY KEY, value TEXT);
             CREATE TEMP TRIGGER sneaky AFTER UPDATE ON main.uplift_meta BEGIN DELETE FROM parent; END;",
        )
        .unwrap();
        let before = SchemaRows::read(&conn).unwrap();
        let check = check_foreign_keys(&conn, &WrittenTables::new(), &before, 10).unwrap();
        assert!(check.whole_database);
    }

    #[test]
    fn uplift_tables_count_as_written() {
        let conn = conn();
        conn.execute_batch(
            "CREATE TABLE uplift_meta (key TEXT PRIMARY KEY, value TEXT);
             CREATE TABLE note (id INTEGER PRIMARY KEY, k TEXT REFERENCES uplift_meta(key));
             INSERT INTO note VALUES (1, 'gone');",
        )
        .unwrap();
        let before = SchemaRows::read(&conn).unwrap();
        let check = check_foreign_keys(&conn, &WrittenTables::new(), &before, 10).unwrap();
        assert_eq!(check.tables_checked, 1);
        assert_eq!(check.violations[0].table, "note");
    }
}

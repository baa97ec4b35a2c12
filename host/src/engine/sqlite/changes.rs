//! What an upgrade wrote, by table: the record the foreign-key check before
//! COMMIT reads to know which tables it must check (see
//! [`super::foreign_keys`]).
//!
//! What is recorded ([`WrittenTables`]), by table name compared
//! case-insensitively (ASCII, as SQLite does):
//! - data writes: every INSERT, DELETE and UPDATE (with its columns) that
//!   SQLite's authorizer reports while a migration or a hook compiles a
//!   statement ([`WrittenTables::observe`], called by the migrations'
//!   authorizer in [`super::migration::apply`] and the hooks' in
//!   [`crate::engine::sqlite::authorizer::Policy::check`]). It is called at compile
//!   time, for the statements of the triggers a statement fires too, and
//!   costs nothing per row. With foreign keys off there are no cascades.
//! - shape changes: every table an authorizer saw created, dropped, indexed
//!   or given a trigger, and every table whose `sqlite_schema` row (or one
//!   of its indexes' or triggers') was added, removed or changed between the
//!   start of the transaction and the check ([`SchemaRows`]). That covers
//!   CREATE, DROP, ALTER TABLE (RENAME rewrites the children's `REFERENCES`
//!   too, so they change as well), rebuilds by the 12-step procedure, and
//!   edits under `writable_schema`.
//! - one exception: `ALTER TABLE T ADD COLUMN` keeps T's rows, its b-tree
//!   (the same root page), its other columns and its indexes, so it is not a
//!   change of shape when uplift saw it happen. A migration's statements run
//!   one at a time, and around each ALTER TABLE the schema is read before and
//!   after ([`AlterSnapshot`]): the statement counts as adding columns only
//!   when the one schema row that changed is T's own, with the same root
//!   page, its old columns exactly a prefix of its new ones, and its foreign
//!   keys unchanged ([`WrittenTables::record_alter`]). An ALTER TABLE that
//!   uplift did not watch (a hook's) voids every such exception.
//! - uplift's own tables (`uplift_*`), which uplift writes itself, outside
//!   any authorizer: all of them count as changed in shape.
//!
//! Nothing is known, and the whole database is checked, when an authorizer
//! saw `PRAGMA writable_schema` or an action it does not know, when the
//! record could not be kept (a poisoned lock), or when a trigger on one of
//! uplift's tables exists (its statements would run when uplift writes the
//! table, where no authorizer sees them).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::AuthAction;
use rusqlite::types::Value;

/// The data an upgrade wrote into one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableWrites {
    /// Rows were inserted (and REPLACE may have deleted some).
    pub inserted: bool,
    /// Rows were deleted.
    pub deleted: bool,
    /// The columns an UPDATE set, lower-case; `rowid` for the rowid under
    /// any of its names.
    pub updated: BTreeSet<String>,
}

impl TableWrites {
    /// Whether these writes can have given a row new values in `columns`
    /// (lower-case): an insert, an update of one of them or of the rowid, or
    /// any update when `any_update` (a generated column among them).
    pub(super) fn set_any_of(&self, columns: &HashSet<String>, any_update: bool) -> bool {
        self.inserted
            || (any_update && !self.updated.is_empty())
            || self
                .updated
                .iter()
                .any(|c| c == "rowid" || columns.contains(c))
    }

    /// Whether these writes can have removed a value of a key made of
    /// `columns` (lower-case) from the table: a delete, an insert (REPLACE),
    /// or an update that [`TableWrites::set_any_of`] them.
    pub(super) fn may_remove(&self, columns: &HashSet<String>, any_update: bool) -> bool {
        self.deleted || self.set_any_of(columns, any_update)
    }
}

/// What one upgrade did to the tables; see the module's documentation.
#[derive(Debug, Clone, Default)]
pub(super) struct Record {
    /// Data writes, by lower-case table name.
    pub(super) writes: HashMap<String, TableWrites>,
    /// Tables (lower-case) whose shape changed.
    pub(super) reshaped: HashSet<String>,
    /// Tables (lower-case) that gained columns by a watched ALTER TABLE ADD
    /// COLUMN.
    extended: HashSet<String>,
    /// An ALTER TABLE ran unwatched: `extended` proves nothing.
    extensions_void: bool,
    /// The tables ALTER TABLE named while the statement being compiled is
    /// watched ([`WrittenTables::watch_statement`]).
    watching: Option<Vec<String>>,
}

impl Record {
    fn writes(&mut self, table: &str) -> &mut TableWrites {
        self.writes.entry(table.to_ascii_lowercase()).or_default()
    }
}

/// What an upgrade wrote, shared by the authorizers that record into it;
/// clones share the same record. `None` inside means unknown: the whole
/// database must be checked.
#[derive(Debug, Clone)]
pub struct WrittenTables(Arc<Mutex<Option<Record>>>);

impl Default for WrittenTables {
    fn default() -> Self {
        WrittenTables(Arc::new(Mutex::new(Some(Record::default()))))
    }
}

impl WrittenTables {
    /// An empty record.
    pub fn new() -> WrittenTables {
        WrittenTables::default()
    }

    /// A copy of the record as it stands; `None` when it is unknown.
    pub(super) fn snapshot(&self) -> Option<Record> {
        self.0.lock().ok().and_then(|guard| guard.clone())
    }

    /// Runs `f` on the record, unless it is unknown. A poisoned lock stays
    /// poisoned, and the record is then unknown.
    fn with<T>(&self, f: impl FnOnce(&mut Record) -> T) -> Option<T> {
        let mut guard = self.0.lock().ok()?;
        guard.as_mut().map(f)
    }

    /// Records what one authorizer action writes or reshapes (see the
    /// module's documentation). `PRAGMA writable_schema` and actions this
    /// version of rusqlite does not know make the record unknown.
    pub fn observe(&self, action: &AuthAction<'_>) {
        let lower = |name: &str| name.to_ascii_lowercase();
        match *action {
            AuthAction::Insert { table_name } => {
                self.with(|r| r.writes(table_name).inserted = true);
            }
            AuthAction::Delete { table_name } => {
                self.with(|r| r.writes(table_name).deleted = true);
            }
            AuthAction::Update {
                table_name,
                column_name,
            } => {
                // SQLite names the rowid "ROWID" whichever alias was set.
                self.with(|r| r.writes(table_name).updated.insert(lower(column_name)));
            }
            AuthAction::AlterTable { table_name, .. } => {
                self.with(|r| match &mut r.watching {
                    Some(altered) => altered.push(lower(table_name)),
                    None => r.extensions_void = true,
                });
            }
            AuthAction::CreateTable { table_name }
            | AuthAction::CreateTempTable { table_name }
            | AuthAction::DropTable { table_name }
            | AuthAction::DropTempTable { table_name }
            | AuthAction::CreateIndex { table_name, .. }
            | AuthAction::CreateTempIndex { table_name, .. }
            | AuthAction::DropIndex { table_name, .. }
            | AuthAction::DropTempIndex { table_name, .. }
            | AuthAction::CreateTrigger { table_name, .. }
            | AuthAction::CreateTempTrigger { table_name, .. }
            | AuthAction::DropTrigger { table_name, .. }
            | AuthAction::DropTempTrigger { table_name, .. }
            | AuthAction::CreateVtable { table_name, .. }
            | AuthAction::DropVtable { table_name, .. } => self.reshaped(table_name),
            AuthAction::Pragma { pragma_name, .. }
                if pragma_name.eq_ignore_ascii_case("writable_schema") =>
            {
                self.give_up()
            }
            AuthAction::Unknown { .. } => self.give_up(),
            _ => {}
        }
    }

    /// Records that `table`'s shape changed.
    pub fn reshaped(&self, table: &str) {
        self.with(|r| r.reshaped.insert(table.to_ascii_lowercase()));
    }

    /// Makes the record unknown: the whole database will be checked.
    pub fn give_up(&self) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = None;
        }
    }

    /// Starts watching the statement about to be compiled: the tables an
    /// ALTER TABLE in it names are kept for [`WrittenTables::end_watch`]
    /// instead of voiding the ADD COLUMN exceptions.
    pub fn watch_statement(&self) {
        self.with(|r| r.watching = Some(Vec::new()));
    }

    /// Stops watching; the tables ALTER TABLE named (lower-case) while the
    /// statement was compiled.
    pub fn end_watch(&self) -> Vec<String> {
        self.with(|r| r.watching.take().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Records what a watched ALTER TABLE statement naming `altered` did,
    /// from the schema `before` and `after` it ran: an ADD COLUMN (see the
    /// module's documentation) extends its table; anything else reshapes
    /// every table whose schema rows changed, and the tables named.
    pub fn record_alter(&self, altered: &[String], before: &AlterSnapshot, after: &AlterSnapshot) {
        let added_columns = match altered {
            [table] => only_columns_added(table, before, after),
            _ => false,
        };
        self.with(|r| {
            if added_columns {
                r.extended.insert(altered[0].clone());
                return;
            }
            r.reshaped.extend(altered.iter().cloned());
            for row in before.rows.0.symmetric_difference(&after.rows.0) {
                r.reshaped.insert(row.name.to_ascii_lowercase());
                r.reshaped.insert(row.tbl_name.to_ascii_lowercase());
            }
        });
    }

    /// Records as reshaped every table whose schema rows differ between
    /// `before` and `after` (the table itself, and the table an index or
    /// trigger belongs to), except a table that only gained columns by a
    /// watched ADD COLUMN: its own row changed, keeping its root page.
    pub fn record_schema_changes(&self, before: &SchemaRows, after: &SchemaRows) {
        self.with(|r| {
            for row in before.0.symmetric_difference(&after.0) {
                for name in [&row.name, &row.tbl_name] {
                    let name = name.to_ascii_lowercase();
                    let extended = !r.extensions_void
                        && r.extended.contains(&name)
                        && row.kind == "table"
                        && matches!(
                            (before.table(&name), after.table(&name)),
                            (Some(old), Some(new)) if old.rootpage == new.rootpage
                        );
                    if !extended {
                        r.reshaped.insert(name);
                    }
                }
            }
        });
    }

    /// The lower-cased names of the tables data was written into, or `None`
    /// when the record is unknown.
    pub fn names(&self) -> Option<HashSet<String>> {
        self.with(|r| r.writes.keys().cloned().collect())
    }

    /// The data writes into `table`, if any (and the record is known).
    pub fn writes(&self, table: &str) -> Option<TableWrites> {
        self.with(|r| r.writes.get(&table.to_ascii_lowercase()).cloned())
            .flatten()
    }
}

/// Whether `table`'s ALTER TABLE only added columns: the one schema row that
/// changed is its own (same name, same root page), its old columns are
/// exactly the first of its new ones, and its foreign keys did not change.
fn only_columns_added(table: &str, before: &AlterSnapshot, after: &AlterSnapshot) -> bool {
    let changed: Vec<&SchemaRow> = before.rows.0.symmetric_difference(&after.rows.0).collect();
    let (Some(old), Some(new)) = (before.rows.table(table), after.rows.table(table)) else {
        return false;
    };
    let (Some(old_shape), Some(new_shape)) = (before.shapes.get(table), after.shapes.get(table))
    else {
        return false;
    };
    changed.len() == 2
        && changed.contains(&old)
        && changed.contains(&new)
        && old.name == new.name
        && old.rootpage == new.rootpage
        && new_shape.columns.len() > old_shape.columns.len()
        && new_shape.columns.starts_with(&old_shape.columns)
        && new_shape.foreign_keys == old_shape.foreign_keys
}

/// One row of `sqlite_schema`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SchemaRow {
    kind: String,
    name: String,
    tbl_name: String,
    rootpage: Option<i64>,
    sql: Option<String>,
}

/// The main schema's `sqlite_schema` rows, to tell which tables changed
/// shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaRows(BTreeSet<SchemaRow>);

impl SchemaRows {
    /// Reads `main.sqlite_schema`.
    pub fn read(conn: &Connection) -> rusqlite::Result<SchemaRows> {
        let mut stmt =
            conn.prepare("SELECT type, name, tbl_name, rootpage, sql FROM main.sqlite_schema")?;
        let rows = stmt.query_map([], |row| {
            Ok(SchemaRow {
                kind: row.get(0)?,
                name: row.get(1)?,
                tbl_name: row.get(2)?,
                rootpage: row.get(3)?,
                sql: row.get(4)?,
            })
        })?;
        Ok(SchemaRows(rows.collect::<Result<_, _>>()?))
    }

    /// The names of its tables.
    pub(super) fn tables(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|r| r.kind == "table")
            .map(|r| r.name.as_str())
    }

    /// The row of the table called `name` (any case).
    fn table(&self, name: &str) -> Option<&SchemaRow> {
        self.0
            .iter()
            .find(|r| r.kind == "table" && r.name.eq_ignore_ascii_case(name))
    }
}

/// A table's columns (`pragma_table_xinfo`) and foreign keys
/// (`pragma_foreign_key_list`), every field of each row.
#[derive(Debug, Clone, PartialEq)]
struct TableShape {
    columns: Vec<Vec<Value>>,
    foreign_keys: Vec<Vec<Value>>,
}

impl TableShape {
    fn read(conn: &Connection, table: &str) -> rusqlite::Result<TableShape> {
        let rows = |sql: &str| -> rusqlite::Result<Vec<Vec<Value>>> {
            let mut stmt = conn.prepare(sql)?;
            let width = stmt.column_count();
            let rows = stmt.query_map([table], |row| {
                (0..width).map(|i| row.get::<_, Value>(i)).collect()
            })?;
            rows.collect()
        };
        Ok(TableShape {
            columns: rows("SELECT * FROM pragma_table_xinfo(?1, 'main') ORDER BY cid")?,
            foreign_keys: rows(
                "SELECT * FROM pragma_foreign_key_list(?1, 'main') ORDER BY id, seq",
            )?,
        })
    }
}

/// The schema around one ALTER TABLE statement: every `sqlite_schema` row,
/// and the columns and foreign keys of the tables it names.
#[derive(Debug, Clone)]
pub struct AlterSnapshot {
    rows: SchemaRows,
    shapes: HashMap<String, TableShape>,
}

impl AlterSnapshot {
    /// Reads the schema and the shapes of `tables` (lower-case names).
    pub fn read(conn: &Connection, tables: &[String]) -> rusqlite::Result<AlterSnapshot> {
        let mut shapes = HashMap::new();
        for table in tables {
            shapes.insert(table.clone(), TableShape::read(conn, table)?);
        }
        Ok(AlterSnapshot {
            rows: SchemaRows::read(conn)?,
            shapes,
        })
    }
}

/// Runs the statements of `sql` one at a time, each stepped once as
/// `Connection::execute_batch` does, on a connection whose authorizer feeds
/// `written`; around each ALTER TABLE the schema is read before and after,
/// for [`WrittenTables::record_alter`].
pub fn run_batch(conn: &Connection, sql: &str, written: &WrittenTables) -> rusqlite::Result<()> {
    use fallible_iterator::FallibleIterator;
    let mut batch = rusqlite::Batch::new(conn, sql);
    loop {
        written.watch_statement();
        let next = batch.next();
        let altered = written.end_watch();
        let Some(mut stmt) = next? else {
            return Ok(());
        };
        if altered.is_empty() {
            stmt.raw_query().next()?;
            continue;
        }
        let before = AlterSnapshot::read(conn, &altered)?;
        stmt.raw_query().next()?;
        let after = AlterSnapshot::read(conn, &altered)?;
        written.record_alter(&altered, &before, &after);
    }
}

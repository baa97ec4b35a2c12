//! SQLite's authorizer, enforcing a plugin's capabilities on every statement a
//! hook prepares: reads only declared or owned tables, writes only declared
//! or owned tables, schema changes only on owned tables ([`Ownership`]: under
//! the plugin's prefix *and* created by the plugin); always refused:
//! ATTACH/DETACH, PRAGMA (except a short read-only list), transaction control,
//! extension loading, triggers, virtual tables, `sqlite_schema` and uplift's
//! own `uplift_*` tables.
//!
//! SQLite calls the authorizer while it compiles a statement, including for
//! the bookkeeping it does on `sqlite_schema` behind CREATE, ALTER and DROP.
//! The first action of a statement tells what kind it is (CREATE starts by
//! inserting into `sqlite_schema`, DROP by deleting from it, ALTER with the
//! ALTER action); that bookkeeping is allowed only inside those kinds, and a
//! hook's own SQL can never read `sqlite_schema` (its own writes to it are
//! refused by SQLite unless `writable_schema`, which is refused here).
//!
//! Triggers are refused because SQLite authorizes a trigger's body only when
//! it fires, which may be after the hook, outside the sandbox.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::hooks::manifest::Capabilities;
use crate::meta::is_uplift_table;
use crate::written::WrittenTables;

/// PRAGMAs a hook may run, all read-only, each taking a table name that must
/// be readable.
const TABLE_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "index_list",
    "foreign_key_list",
];

/// Eponymous virtual tables that expose the database file itself (page
/// contents, statistics of every table), refused although they are not in the
/// schema.
const HIDDEN_TABLES: &[&str] = &["dbstat", "sqlite_dbpage", "sqlite_stmt"];

/// What the statement being compiled is, judged by its first action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing seen yet.
    Unknown,
    /// CREATE TABLE/INDEX/VIEW: SQLite inserts into `sqlite_schema` first.
    Create,
    /// DROP: SQLite deletes from `sqlite_schema` first.
    Drop,
    /// ALTER TABLE.
    Alter,
    /// Anything else: the hook's own reads and writes.
    Other,
}

/// Which tables and views a plugin owns during one hook: those whose names
/// start with its `capabilities.owns` prefix and that either did not exist
/// when the hook started (the hook created them) or are recorded as created
/// by the plugin in an earlier hook (`uplift_plugin_tables`, see
/// [`crate::meta`]). A table that merely matches the prefix (an application
/// table `learner` under the prefix `learn`, another plugin's table under an
/// overlapping prefix) is not owned: it is like any other table.
#[derive(Debug, Clone)]
pub struct Ownership {
    plugin: String,
    caps: Capabilities,
    /// Lower-cased names of the tables and views in the database when the
    /// hook started.
    existing: HashSet<String>,
    /// Lower-cased names of the tables and views recorded as the plugin's.
    recorded: HashSet<String>,
}

impl Ownership {
    /// The ownership of `plugin` with `caps`, in a database whose tables and
    /// views are `existing` when the hook starts, of which `recorded` are
    /// recorded as created by the plugin.
    pub fn new(
        plugin: &str,
        caps: &Capabilities,
        existing: &[String],
        recorded: &[String],
    ) -> Ownership {
        let lower = |names: &[String]| names.iter().map(|n| n.to_ascii_lowercase()).collect();
        Ownership {
            plugin: plugin.to_string(),
            caps: caps.clone(),
            existing: lower(existing),
            recorded: lower(recorded),
        }
    }

    /// Whether `name` existed when the hook started.
    pub fn existed(&self, name: &str) -> bool {
        self.existing.contains(&name.to_ascii_lowercase())
    }

    /// Whether `name` is under the owned prefix, whoever created it.
    fn under_prefix(&self, name: &str) -> bool {
        self.caps.under_owned_prefix(name)
    }

    /// Whether the plugin owns the table, view or index `name`: under its
    /// prefix, and new in this hook or recorded as the plugin's. (An index
    /// is never in `existing`, which holds tables and views; what it indexes
    /// is checked as a table.)
    pub fn owns(&self, name: &str) -> bool {
        if !self.under_prefix(name) || is_uplift_table(name) {
            return false;
        }
        let lower = name.to_ascii_lowercase();
        !self.existing.contains(&lower) || self.recorded.contains(&lower)
    }

    /// Why the plugin may not `what` (`drop table`, `alter table`...) the
    /// object `name`, which it does not own.
    pub fn refusal(&self, what: &str, name: &str) -> String {
        let plugin = &self.plugin;
        if is_uplift_table(name) {
            return format!("plugin {plugin} may not {what} {name}: it is uplift's own");
        }
        match &self.caps.owns {
            Some(prefix) if self.under_prefix(name) => format!(
                "plugin {plugin} may not {what} {name}: it matches the owned prefix {prefix:?} but was not created by {plugin}"
            ),
            Some(prefix) => format!(
                "plugin {plugin} may not {what} {name}: it owns only names starting with {prefix}"
            ),
            None => format!(
                "plugin {plugin} may not {what} {name}: it owns no tables (capabilities.owns)"
            ),
        }
    }

    /// For a refused read or write of `name`: a note when the name matches
    /// the prefix (so the reader does not wonder why owning it did not
    /// suffice).
    fn not_created_note(&self, name: &str) -> String {
        match &self.caps.owns {
            Some(prefix) if self.under_prefix(name) => format!(
                " (it matches the owned prefix {prefix:?} but was not created by {})",
                self.plugin
            ),
            _ => String::new(),
        }
    }
}

/// The authorizer's state for one hook: its capabilities, the kind of the
/// statement being compiled, and what it refused.
#[derive(Debug)]
pub struct Policy {
    plugin: String,
    caps: Capabilities,
    /// What the plugin owns; its `existing` names are also how a name read
    /// that is neither a table in the database nor owned is recognised as a
    /// common table expression, a subquery or a table-valued function.
    ownership: Ownership,
    kind: Kind,
    last_refusal: Option<String>,
    new_statement: Arc<AtomicBool>,
    /// Where the tables the hook's statements write are recorded, if
    /// anywhere (see [`crate::written`]).
    written: Option<WrittenTables>,
}

/// The policy shared between the authorizer callback and the host functions.
pub type SharedPolicy = Arc<Mutex<Policy>>;

impl Policy {
    /// The policy for `plugin` with `caps`, in a database whose tables and
    /// views are `existing`, of which `recorded` are recorded as created by
    /// the plugin (see [`Ownership`]).
    pub fn new(
        plugin: &str,
        caps: &Capabilities,
        existing: &[String],
        recorded: &[String],
    ) -> Policy {
        Policy::with_ownership(Ownership::new(plugin, caps, existing, recorded))
    }

    /// The policy for the plugin and capabilities of `ownership`.
    pub fn with_ownership(ownership: Ownership) -> Policy {
        Policy {
            plugin: ownership.plugin.clone(),
            caps: ownership.caps.clone(),
            ownership,
            kind: Kind::Unknown,
            last_refusal: None,
            new_statement: Arc::new(AtomicBool::new(true)),
            written: None,
        }
    }

    /// Records in `written` every table a statement checked by this policy
    /// writes (also statements it refuses: the record errs on the side of
    /// more).
    pub fn record_writes(&mut self, written: WrittenTables) {
        self.written = Some(written);
    }

    /// A flag that, when set, starts a new statement at the next action: the
    /// cheap form of [`Policy::start_statement`] for hot paths.
    pub fn statement_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.new_statement)
    }

    /// Call before SQLite compiles a statement (prepare, and step, which may
    /// recompile after a schema change).
    pub fn start_statement(&mut self) {
        self.kind = Kind::Unknown;
        self.last_refusal = None;
    }

    /// The reason for the most recent refusal since [`Policy::start_statement`].
    pub fn take_refusal(&mut self) -> Option<String> {
        self.last_refusal.take()
    }

    /// Decides one action. `Err` holds the reason, for people.
    pub fn check(&mut self, ctx: &AuthContext<'_>) -> Result<(), String> {
        if self.new_statement.swap(false, Ordering::Relaxed) {
            self.start_statement();
        }
        let action = ctx.action;
        if let Some(written) = &self.written {
            written.observe(&action);
        }
        if self.kind == Kind::Unknown {
            self.kind = match action {
                AuthAction::Insert { table_name } if is_schema_table(table_name) => Kind::Create,
                AuthAction::Delete { table_name } if is_schema_table(table_name) => Kind::Drop,
                AuthAction::AlterTable { .. } => Kind::Alter,
                _ => Kind::Other,
            };
        }
        match ctx.database_name {
            None | Some("main") | Some("temp") => {}
            Some(other) => return Err(format!("database {other:?} is not the application's")),
        }
        let plugin = &self.plugin;
        match action {
            AuthAction::Select | AuthAction::Recursive => Ok(()),
            AuthAction::Function { function_name } => {
                if function_name.eq_ignore_ascii_case("load_extension") {
                    Err("loading extensions is never allowed".into())
                } else {
                    Ok(())
                }
            }
            AuthAction::Read {
                table_name,
                column_name,
            } => {
                if is_schema_table(table_name) || table_name.eq_ignore_ascii_case("sqlite_sequence")
                {
                    // SQLite's own bookkeeping inside CREATE/ALTER/DROP (after
                    // CREATE it only looks up the new row's rowid; ALTER and
                    // DROP cannot contain a query of the hook's own).
                    let internal = matches!(self.kind, Kind::Alter | Kind::Drop)
                        || (self.kind == Kind::Create
                            && is_schema_table(table_name)
                            && column_name.eq_ignore_ascii_case("rowid"));
                    if internal {
                        return Ok(());
                    }
                    return Err(format!(
                        "reading {table_name} (SQLite's schema) is never allowed"
                    ));
                }
                if is_uplift_table(table_name) {
                    return Err(format!("{table_name} is uplift's own table"));
                }
                if HIDDEN_TABLES
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(table_name))
                {
                    return Err(format!("reading {table_name} is never allowed"));
                }
                if self.may_read(table_name) || !self.ownership.existed(table_name) {
                    return Ok(());
                }
                Err(format!(
                    "plugin {plugin} may not read table {table_name}{}{}: declare it in capabilities.read",
                    via(ctx.accessor),
                    self.ownership.not_created_note(table_name)
                ))
            }
            AuthAction::Insert { table_name }
            | AuthAction::Delete { table_name }
            | AuthAction::Update { table_name, .. } => {
                if is_schema_table(table_name) || table_name.eq_ignore_ascii_case("sqlite_sequence")
                {
                    if self.kind != Kind::Other && self.kind != Kind::Unknown {
                        return Ok(());
                    }
                    return Err(format!(
                        "changing {table_name} (SQLite's schema) is never allowed"
                    ));
                }
                if is_uplift_table(table_name) {
                    return Err(format!("{table_name} is uplift's own table"));
                }
                if self.caps.declares_write(table_name) || self.ownership.owns(table_name) {
                    return Ok(());
                }
                Err(format!(
                    "plugin {plugin} may not write table {table_name}{}{}: declare it in capabilities.write",
                    via(ctx.accessor),
                    self.ownership.not_created_note(table_name)
                ))
            }
            AuthAction::CreateTable { table_name } | AuthAction::CreateTempTable { table_name } => {
                self.owned("create table", table_name)
            }
            AuthAction::DropTable { table_name } | AuthAction::DropTempTable { table_name } => {
                self.owned("drop table", table_name)
            }
            AuthAction::AlterTable { table_name, .. } => self.owned("alter table", table_name),
            AuthAction::Analyze { table_name } => self.owned("analyze table", table_name),
            AuthAction::CreateView { view_name } | AuthAction::CreateTempView { view_name } => {
                self.owned("create view", view_name)
            }
            AuthAction::DropView { view_name } | AuthAction::DropTempView { view_name } => {
                self.owned("drop view", view_name)
            }
            AuthAction::CreateIndex {
                index_name,
                table_name,
            }
            | AuthAction::CreateTempIndex {
                index_name,
                table_name,
            }
            | AuthAction::DropIndex {
                index_name,
                table_name,
            }
            | AuthAction::DropTempIndex {
                index_name,
                table_name,
            } => {
                self.owned("index table", table_name)?;
                if index_name.starts_with("sqlite_autoindex_") {
                    Ok(())
                } else {
                    self.owned("create or drop index", index_name)
                }
            }
            AuthAction::Reindex { index_name } => {
                if self.kind == Kind::Create || index_name.starts_with("sqlite_autoindex_") {
                    Ok(())
                } else {
                    self.owned("reindex", index_name)
                }
            }
            AuthAction::DropTrigger {
                trigger_name,
                table_name,
            }
            | AuthAction::DropTempTrigger {
                trigger_name,
                table_name,
            } => {
                self.owned("drop trigger on table", table_name)?;
                self.owned("drop trigger", trigger_name)
            }
            AuthAction::CreateTrigger { trigger_name, .. }
            | AuthAction::CreateTempTrigger { trigger_name, .. } => Err(format!(
                "creating trigger {trigger_name} is not allowed: a trigger's body would run later, outside the sandbox"
            )),
            AuthAction::CreateVtable { table_name, .. }
            | AuthAction::DropVtable { table_name, .. } => Err(format!(
                "virtual table {table_name}: virtual tables are not allowed in hooks"
            )),
            AuthAction::Pragma {
                pragma_name,
                pragma_value,
            } => {
                let allowed = TABLE_PRAGMAS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(pragma_name));
                match pragma_value {
                    Some(table) if allowed && self.may_read(table) && !is_uplift_table(table) => {
                        Ok(())
                    }
                    _ => Err(format!(
                        "PRAGMA {pragma_name} is not allowed (hooks may only use PRAGMA {} on tables they may read)",
                        TABLE_PRAGMAS.join("/")
                    )),
                }
            }
            AuthAction::Transaction { operation } => Err(format!(
                "transaction control ({operation:?}) is not allowed: each hook runs inside the upgrade's transaction"
            )),
            AuthAction::Savepoint {
                operation,
                savepoint_name,
            } => Err(format!(
                "SAVEPOINT/RELEASE ({operation:?} {savepoint_name}) is not allowed: each hook runs inside the upgrade's transaction"
            )),
            AuthAction::Attach { filename } => Err(format!(
                "ATTACH {filename:?} is not allowed: hooks see only the application's database"
            )),
            AuthAction::Detach { database_name } => {
                Err(format!("DETACH {database_name} is not allowed"))
            }
            other => Err(format!("{other:?} is not allowed in hooks")),
        }
    }

    /// Whether the hook may read `table`: declared for reading or writing,
    /// or owned.
    fn may_read(&self, table: &str) -> bool {
        self.caps.declares_read(table) || self.ownership.owns(table)
    }

    fn owned(&self, what: &str, name: &str) -> Result<(), String> {
        if self.ownership.owns(name) {
            return Ok(());
        }
        Err(self.ownership.refusal(what, name))
    }
}

fn via(accessor: Option<&str>) -> String {
    match accessor {
        Some(a) => format!(" (through trigger or view {a})"),
        None => String::new(),
    }
}

fn is_schema_table(name: &str) -> bool {
    [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(name))
}

/// The names of the tables and views of `conn`'s main and temp schemas, for
/// [`Policy::new`].
pub fn existing_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM main.sqlite_schema WHERE type IN ('table', 'view')
         UNION SELECT name FROM temp.sqlite_schema WHERE type IN ('table', 'view')",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

/// Installs `policy` as the connection's authorizer.
pub fn install(conn: &Connection, policy: &SharedPolicy) {
    let policy = Arc::clone(policy);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let Ok(mut p) = policy.lock() else {
            return Authorization::Deny;
        };
        match p.check(&ctx) {
            Ok(()) => Authorization::Allow,
            Err(reason) => {
                p.last_refusal.get_or_insert(reason);
                Authorization::Deny
            }
        }
    }));
}

/// Removes the connection's authorizer.
pub fn remove(conn: &Connection) {
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_with(caps: Capabilities) -> (Connection, SharedPolicy) {
        conn_recording(caps, &[])
    }

    /// A database with an application table under the prefix `p_`
    /// (`p_core`) and one the plugin created earlier (`p_mine`, in
    /// `recorded` when the test says so).
    fn conn_recording(caps: Capabilities, recorded: &[&str]) -> (Connection, SharedPolicy) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE facility(id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE secret(id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE uplift_meta(key TEXT PRIMARY KEY, value TEXT);
             CREATE TABLE p_core(id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE p_mine(id INTEGER PRIMARY KEY, v TEXT);",
        )
        .unwrap();
        let existing = existing_tables(&conn).unwrap();
        let recorded: Vec<String> = recorded.iter().map(|s| s.to_string()).collect();
        let policy = Arc::new(Mutex::new(Policy::new("p", &caps, &existing, &recorded)));
        install(&conn, &policy);
        (conn, policy)
    }

    fn run(conn: &Connection, policy: &SharedPolicy, sql: &str) -> Result<(), String> {
        policy.lock().unwrap().start_statement();
        conn.execute_batch(sql).map_err(|e| {
            policy
                .lock()
                .unwrap()
                .take_refusal()
                .unwrap_or_else(|| e.to_string())
        })
    }

    fn caps() -> Capabilities {
        Capabilities {
            read: vec!["facility".into()],
            write: vec![],
            owns: Some("p_".into()),
        }
    }

    #[test]
    fn owned_tables_can_be_created_altered_indexed_and_dropped() {
        let (conn, policy) = conn_with(caps());
        for sql in [
            "CREATE TABLE p_items(id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
            "CREATE INDEX p_items_name ON p_items(name)",
            "ALTER TABLE p_items ADD COLUMN extra TEXT",
            "INSERT INTO p_items(name) SELECT name FROM facility",
            "CREATE VIEW p_view AS SELECT * FROM p_items",
            "SELECT * FROM p_view",
            "DROP VIEW p_view",
            "DROP INDEX p_items_name",
            "DROP TABLE p_items",
        ] {
            assert_eq!(run(&conn, &policy, sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn undeclared_schema_and_uplift_tables_are_refused() {
        let (conn, policy) = conn_with(caps());
        for (sql, reason) in [
            ("SELECT * FROM secret", "may not read table secret"),
            (
                "INSERT INTO facility(name) VALUES ('x')",
                "may not write table facility",
            ),
            ("SELECT * FROM sqlite_schema", "SQLite's schema"),
            ("SELECT * FROM uplift_meta", "uplift's own"),
            ("DROP TABLE facility", "may not drop table facility"),
            ("ALTER TABLE facility ADD COLUMN x", "may not alter table"),
            (
                "CREATE INDEX p_idx ON facility(name)",
                "may not index table facility",
            ),
            ("ATTACH ':memory:' AS other", "ATTACH"),
            ("PRAGMA writable_schema = 1", "PRAGMA writable_schema"),
            ("COMMIT", "transaction control"),
            ("SAVEPOINT x", "SAVEPOINT"),
            (
                "CREATE TABLE p_t(a); CREATE TRIGGER p_tr AFTER INSERT ON p_t BEGIN DELETE FROM secret; END",
                "creating trigger",
            ),
            (
                "CREATE TABLE p_t2 AS SELECT sql FROM sqlite_schema",
                "SQLite's schema",
            ),
            (
                "CREATE VIEW p_v AS SELECT * FROM secret; SELECT * FROM p_v",
                "through trigger or view p_v",
            ),
        ] {
            let result = run(&conn, &policy, sql);
            assert!(
                matches!(&result, Err(r) if r.contains(reason)),
                "{sql}: {result:?} does not mention {reason:?}"
            );
        }
    }

    #[test]
    fn a_table_under_the_prefix_is_owned_only_if_the_plugin_created_it() {
        let (conn, policy) = conn_recording(caps(), &["P_MINE"]);
        for (sql, reason) in [
            ("SELECT * FROM p_core", "may not read table p_core"),
            ("UPDATE p_core SET v = 'x'", "may not write table p_core"),
            ("DROP TABLE p_core", "may not drop table p_core"),
            (
                "ALTER TABLE p_core ADD COLUMN x",
                "may not alter table p_core",
            ),
            (
                "ALTER TABLE p_core RENAME TO p_gone",
                "may not alter table p_core",
            ),
            (
                "CREATE INDEX p_core_v ON p_core(v)",
                "may not index table p_core",
            ),
        ] {
            let result = run(&conn, &policy, sql);
            assert!(
                matches!(&result, Err(r) if r.contains(reason)
                    && r.contains("matches the owned prefix \"p_\" but was not created by p")),
                "{sql}: {result:?}"
            );
        }
        for sql in [
            "SELECT * FROM p_mine",
            "UPDATE p_mine SET v = 'x'",
            "ALTER TABLE p_mine ADD COLUMN extra TEXT",
            "CREATE INDEX p_mine_v ON p_mine(v)",
            "CREATE TABLE p_new(a)",
            "INSERT INTO p_new VALUES (1)",
            "DROP TABLE p_new",
            "DROP TABLE p_mine",
        ] {
            assert_eq!(run(&conn, &policy, sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn a_declared_table_under_the_prefix_is_readable_but_not_droppable() {
        let mut caps = caps();
        caps.read.push("p_core".into());
        let (conn, policy) = conn_recording(caps, &[]);
        assert_eq!(run(&conn, &policy, "SELECT * FROM p_core"), Ok(()));
        assert_eq!(run(&conn, &policy, "PRAGMA table_info(p_core)"), Ok(()));
        assert!(run(&conn, &policy, "DROP TABLE p_core").is_err());
        // Not recorded, so not the plugin's, though it matches the prefix.
        assert!(run(&conn, &policy, "SELECT * FROM p_mine").is_err());
    }

    #[test]
    fn the_tables_a_hook_writes_are_recorded_refused_ones_too() {
        let mut caps = caps();
        caps.write.push("facility".into());
        let (conn, policy) = conn_with(caps);
        let written = WrittenTables::new();
        policy.lock().unwrap().record_writes(written.clone());
        assert_eq!(
            run(&conn, &policy, "DELETE FROM Facility WHERE id = 1"),
            Ok(())
        );
        assert!(run(&conn, &policy, "UPDATE secret SET v = 'x'").is_err());
        assert_eq!(
            written.names(),
            Some(HashSet::from(["facility".into(), "secret".into()]))
        );
    }

    #[test]
    fn common_table_expressions_are_not_tables() {
        let (conn, policy) = conn_with(caps());
        let sql = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 5) SELECT count(*) FROM r";
        assert_eq!(run(&conn, &policy, sql), Ok(()));
        assert_eq!(
            run(&conn, &policy, "SELECT value FROM json_each('[1, 2]')"),
            Ok(())
        );
        // A CTE cannot hide a real table: the name is checked as the table.
        let shadow = "WITH x AS (SELECT * FROM secret) SELECT * FROM x";
        assert!(run(&conn, &policy, shadow).is_err());
        assert!(run(&conn, &policy, "SELECT * FROM dbstat").is_err());
    }

    #[test]
    fn table_pragmas_on_readable_tables_are_allowed() {
        let (conn, policy) = conn_with(caps());
        assert_eq!(run(&conn, &policy, "PRAGMA table_info(facility)"), Ok(()));
        assert_eq!(
            run(
                &conn,
                &policy,
                "SELECT * FROM pragma_table_info('facility')"
            ),
            Ok(())
        );
        assert!(run(&conn, &policy, "PRAGMA table_info(secret)").is_err());
    }
}

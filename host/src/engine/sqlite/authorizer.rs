//! SQLite's authorizer, enforcing a plugin's capabilities on every statement a
//! hook prepares: reads only declared or owned tables, writes only declared
//! or owned tables, schema changes only on owned tables ([`Ownership`]: under
//! the plugin's prefix *and* created by the plugin); always refused:
//! ATTACH/DETACH, PRAGMA (except a short read-only list), transaction control,
//! extension loading, triggers, virtual tables, `sqlite_schema` and uplift's
//! own `uplift_*` tables. SQL functions and the virtual tables a hook may
//! read are named lists ([`ALLOWED_FUNCTIONS`], [`ALLOWED_EPONYMOUS`]);
//! everything else is refused, so a function or module a later SQLite adds
//! is refused until someone reviews it.
//!
//! To a hook, a table it may not use and a table that does not exist look
//! the same: the authorizer's refusal of an undeclared name and SQLite's
//! own errors about names ("no such table", "no such column", "already
//! exists"...) reach the hook as one message ([`HIDDEN`], code 23), and a
//! statement SQLite compiles without asking the authorizer anything (`DROP
//! TABLE IF EXISTS` of a missing table) is judged by its text
//! ([`Policy::check_text`]). The operator's log keeps the real reason.
//!
//! While a hook runs, the connection also has SQLite's defensive settings
//! ([`install`]): `SQLITE_DBCONFIG_DEFENSIVE`, no trusted schema, no
//! `fts3_tokenizer` pointers.
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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::engine::sqlite::changes::WrittenTables;
use crate::engine::sqlite::sql::is_schema_table;
use crate::hooks::manifest::Capabilities;
use crate::names::{is_uplift_table, starts_with_ignore_case};

/// PRAGMAs a hook may run, all read-only, each taking a table name that must
/// be readable.
const TABLE_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "index_list",
    "foreign_key_list",
];

/// PRAGMAs without an argument a hook may run: read-only, and revealing
/// nothing beyond the hook's own transaction (FTS5 runs `data_version`
/// itself whenever a hook reads or writes an FTS5 table).
const PLAIN_PRAGMAS: &[&str] = &["data_version"];

/// The SQL functions a hook may call, reviewed one by one against the
/// bundled SQLite's `PRAGMA function_list` (SQLite 3.50): the core scalar,
/// aggregate, window, date and JSON functions, and the full-text functions
/// that only work inside a query of a (declared) FTS table. Refused, because
/// they reach outside the statement's values: `load_extension`,
/// `fts3_tokenizer` (returns and takes function pointers), `fts5` (the FTS5
/// API pointer), `sqlite_log` (writes the host's error log),
/// `sqlite_version`, `sqlite_source_id`, `sqlite_compileoption_*`,
/// `fts5_source_id` and `total_changes` (host state), `optimize` (rewrites
/// an FTS4 table from a SELECT), the R-tree debugging functions
/// (`rtreenode`, `rtreedepth`, `rtreecheck`: parse or walk raw pages), and
/// `subtype`, `fts5_locale`, `fts5_get_locale`, `fts5_insttoken`, which no
/// hook needs. Anything not listed, including what a later SQLite adds, is
/// refused.
#[rustfmt::skip]
pub(crate) const ALLOWED_FUNCTIONS: &[&str] = &[
    // core scalar functions
    "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "if",
    "ifnull", "iif", "instr", "last_insert_rowid", "length", "like", "likelihood", "likely",
    "lower", "ltrim", "max", "min", "nullif", "octet_length", "printf", "quote", "random",
    "randomblob", "replace", "round", "rtrim", "sign", "soundex", "substr", "substring", "trim",
    "typeof", "unhex", "unicode", "unistr", "unistr_quote", "unlikely", "upper", "zeroblob",
    // aggregate functions
    "avg", "count", "group_concat", "string_agg", "sum", "total",
    // window functions
    "cume_dist", "dense_rank", "first_value", "lag", "last_value", "lead", "nth_value", "ntile",
    "percent_rank", "rank", "row_number",
    // date and time
    "current_date", "current_time", "current_timestamp", "date", "datetime", "julianday",
    "strftime", "time", "timediff", "unixepoch",
    // JSON
    "->", "->>", "json", "json_array", "json_array_length", "json_error_position",
    "json_extract", "json_group_array", "json_group_object", "json_insert", "json_object",
    "json_patch", "json_pretty", "json_quote", "json_remove", "json_replace", "json_set",
    "json_type", "json_valid", "jsonb", "jsonb_array", "jsonb_extract", "jsonb_group_array",
    "jsonb_group_object", "jsonb_insert", "jsonb_object", "jsonb_patch", "jsonb_remove",
    "jsonb_replace", "jsonb_set",
    // full-text search, inside queries of FTS3/4/5 tables
    "match", "matchinfo", "offsets", "snippet", "bm25", "highlight",
];

/// SQLite's internal functions, which SQL cannot call (SQLite answers "no
/// such function") but which SQLite's own statements behind ALTER TABLE and
/// DROP call, and the authorizer sees.
const INTERNAL_FUNCTIONS: &[&str] = &[
    "sqlite_rename_table",
    "sqlite_rename_column",
    "sqlite_rename_test",
    "sqlite_rename_quotefix",
    "sqlite_drop_column",
];

/// Virtual tables a hook may read without declaring them (eponymous
/// modules, used as table-valued functions): their rows come from their
/// arguments. `pragma_*` tables are allowed here and checked as the PRAGMA
/// they run. Every other module (`dbstat`, `fts3tokenize`, `fts4aux`,
/// `fts5vocab`, `rtree`...) is refused: reading needs a table the manifest
/// declares, and a hook cannot create virtual tables.
pub(crate) const ALLOWED_EPONYMOUS: &[&str] = &["json_each", "json_tree"];

/// What a hook is told when it names a table, column or index it may not
/// use, or one that does not exist: the same words either way, so that a
/// hook cannot learn which tables exist beyond its manifest.
pub const HIDDEN: &str = concat!(
    "no such table, column or index, or not one this plugin may use: a hook sees only the ",
    "tables its manifest declares (capabilities.read, capabilities.write) and those it owns; ",
    "the upgrade's log gives the reason"
);

/// Beginnings and pieces of SQLite's error messages about names, which
/// would tell a hook whether a table, column or index exists: they reach
/// the hook as [`HIDDEN`].
const NAME_ERRORS: &[&str] = &[
    "no such table",
    "no such column",
    "no such index",
    "no such view",
    "no such trigger",
    "ambiguous column name",
    "unable to identify the object to be reindexed",
    "cannot modify ",
    "may not be modified",
    "may not be dropped",
    "error in view ",
    "error in trigger ",
    "is circularly defined",
];

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
/// [`crate::engine::sqlite::meta`]). A table that merely matches the prefix (an application
/// table `learner` under the prefix `learn`, another plugin's table under an
/// overlapping prefix) is not owned: it is like any other table.
#[derive(Debug, Clone)]
pub(crate) struct Ownership {
    plugin: String,
    caps: Capabilities,
    /// Lower-cased names of the tables and views in the database when the
    /// hook started.
    existing: HashSet<String>,
    /// Lower-cased names of the tables and views recorded as the plugin's.
    recorded: HashSet<String>,
    /// Lower-cased index name -> lower-cased table name, for the indexes in
    /// the database when the hook started ([`Ownership::with_schema_of`]).
    indexes: HashMap<String, String>,
    /// Lower-cased shadow table name -> lower-cased name of the virtual
    /// table it belongs to (an FTS table's `_content`, `_data`...).
    shadows: HashMap<String, String>,
    /// Lower-cased names of the connection's virtual-table modules.
    modules: HashSet<String>,
    /// Lower-cased names of the connection's SQL functions that hooks may
    /// not call (all but [`ALLOWED_FUNCTIONS`]).
    refused_functions: HashSet<String>,
}

/// Virtual-table modules of SQLite that are, or may be, eponymous (readable
/// without CREATE VIRTUAL TABLE), known even when the connection's own list
/// was not read ([`Ownership::with_schema_of`]).
const KNOWN_MODULES: &[&str] = &[
    "dbstat",
    "sqlite_dbpage",
    "sqlite_stmt",
    "fts3tokenize",
    "fts4aux",
    "fts5vocab",
    "generate_series",
    "carray",
    "json_each",
    "json_tree",
];

impl Ownership {
    /// The ownership of `plugin` with `caps`, in a database whose tables and
    /// views are `existing` when the hook starts, of which `recorded` are
    /// recorded as created by the plugin.
    pub(crate) fn new(
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
            indexes: HashMap::new(),
            shadows: HashMap::new(),
            modules: HashSet::new(),
            refused_functions: HashSet::new(),
        }
    }

    /// Whether `name` is one of the connection's SQL functions that hooks
    /// may not call.
    fn refuses_function(&self, name: &str) -> bool {
        self.refused_functions.contains(&name.to_ascii_lowercase())
    }

    /// Whether `name` is a virtual-table module's: a read of it that is not
    /// a table in the database is a table-valued function's, not a common
    /// table expression's.
    fn is_module(&self, name: &str) -> bool {
        KNOWN_MODULES.iter().any(|m| m.eq_ignore_ascii_case(name))
            || self.modules.contains(&name.to_ascii_lowercase())
    }

    /// Adds what the authorizer needs to know of `conn`'s schema beyond the
    /// table names: which table each index belongs to (REINDEX names only
    /// the index) and which tables are shadow tables of a virtual table
    /// (SQLite's FTS code reads and writes them itself, in the hook's name).
    pub(crate) fn with_schema_of(mut self, conn: &Connection) -> rusqlite::Result<Ownership> {
        let mut stmt = conn.prepare(
            "SELECT name, tbl_name FROM main.sqlite_schema WHERE type = 'index'
             UNION ALL SELECT name, tbl_name FROM temp.sqlite_schema WHERE type = 'index'",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (index, table) = row?;
            self.indexes
                .insert(index.to_ascii_lowercase(), table.to_ascii_lowercase());
        }
        // SQLite itself says which tables are shadow tables; a shadow table
        // is named after its virtual table and a suffix after the last `_`
        // (as SQLite's own sqlite3ShadowTableName reads it).
        let mut stmt = conn.prepare(
            "SELECT name FROM pragma_table_list WHERE schema IN ('main', 'temp') AND type = 'shadow'",
        )?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for name in names {
            let name = name?.to_ascii_lowercase();
            if let Some((vtab, _)) = name.rsplit_once('_') {
                let vtab = vtab.to_string();
                self.shadows.insert(name, vtab);
            }
        }
        let mut stmt = conn.prepare("SELECT name FROM pragma_module_list")?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for name in names {
            self.modules.insert(name?.to_ascii_lowercase());
        }
        let mut stmt = conn.prepare("SELECT DISTINCT name FROM pragma_function_list")?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for name in names {
            let name = name?.to_ascii_lowercase();
            if !ALLOWED_FUNCTIONS.contains(&name.as_str()) {
                self.refused_functions.insert(name);
            }
        }
        Ok(self)
    }

    /// The virtual table whose shadow table `name` is, if it is one.
    fn shadow_owner(&self, name: &str) -> Option<&str> {
        self.shadows
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The table the index `index` belongs to: from the schema when the
    /// hook started or, for an automatic index the hook's own CREATE made,
    /// from its name (`sqlite_autoindex_<table>_<n>`). `None` for an index
    /// the hook created under its own name (on a table it owns: CREATE
    /// INDEX checked that).
    fn table_of_index(&self, index: &str) -> Option<String> {
        let lower = index.to_ascii_lowercase();
        if let Some(table) = self.indexes.get(&lower) {
            return Some(table.clone());
        }
        lower
            .strip_prefix("sqlite_autoindex_")
            .and_then(|rest| rest.rsplit_once('_'))
            .map(|(table, _)| table.to_string())
    }

    /// Whether `name` existed when the hook started.
    pub(crate) fn existed(&self, name: &str) -> bool {
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
    pub(crate) fn owns(&self, name: &str) -> bool {
        if !self.under_prefix(name) || is_uplift_table(name) {
            return false;
        }
        let lower = name.to_ascii_lowercase();
        !self.existing.contains(&lower) || self.recorded.contains(&lower)
    }

    /// Why the plugin may not `what` (`drop table`, `alter table`...) the
    /// object `name`, which it does not own.
    pub(crate) fn refusal(&self, what: &str, name: &str) -> String {
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

/// Why the authorizer refused an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The reason, for the operator's log and the upgrade's error.
    pub reason: String,
    /// The refusal concerns a name the hook may not know about (a table,
    /// view or index it neither declares nor owns, existing or not): the
    /// hook is told only [`HIDDEN`].
    pub hidden: bool,
}

impl Refusal {
    fn plain(reason: String) -> Refusal {
        Refusal {
            reason,
            hidden: false,
        }
    }

    /// What the hook is told.
    pub(crate) fn for_hook(&self) -> &str {
        if self.hidden { HIDDEN } else { &self.reason }
    }
}

impl From<String> for Refusal {
    fn from(reason: String) -> Refusal {
        Refusal::plain(reason)
    }
}

impl From<&str> for Refusal {
    fn from(reason: &str) -> Refusal {
        Refusal::plain(reason.to_string())
    }
}

/// The authorizer's state for one hook: its capabilities, the kind of the
/// statement being compiled, and what it refused.
#[derive(Debug)]
pub(crate) struct Policy {
    plugin: String,
    caps: Capabilities,
    /// What the plugin owns; its `existing` names are also how a name read
    /// that is neither a table in the database nor owned is recognised as a
    /// table-valued function (an eponymous virtual table): SQLite reports no
    /// reads of common table expressions and subqueries.
    ownership: Ownership,
    kind: Kind,
    /// Actions seen since the statement started: zero after a successful
    /// compilation means SQLite asked nothing (see [`Policy::check_text`]).
    actions: usize,
    last_refusal: Option<Refusal>,
    new_statement: Arc<AtomicBool>,
    /// Where the tables the hook's statements write are recorded, if
    /// anywhere (see [`crate::engine::sqlite::changes`]).
    written: Option<WrittenTables>,
}

/// The policy shared between the authorizer callback and the host functions.
pub(crate) type SharedPolicy = Arc<Mutex<Policy>>;

impl Policy {
    /// The policy for `plugin` with `caps`, in a database whose tables and
    /// views are `existing`, of which `recorded` are recorded as created by
    /// the plugin (see [`Ownership`]).
    #[cfg(test)]
    pub(crate) fn new(
        plugin: &str,
        caps: &Capabilities,
        existing: &[String],
        recorded: &[String],
    ) -> Policy {
        Policy::with_ownership(Ownership::new(plugin, caps, existing, recorded))
    }

    /// The policy for the plugin and capabilities of `ownership`.
    pub(crate) fn with_ownership(ownership: Ownership) -> Policy {
        Policy {
            plugin: ownership.plugin.clone(),
            caps: ownership.caps.clone(),
            ownership,
            kind: Kind::Unknown,
            actions: 0,
            last_refusal: None,
            new_statement: Arc::new(AtomicBool::new(true)),
            written: None,
        }
    }

    /// Records in `written` every table a statement checked by this policy
    /// writes (also statements it refuses: the record errs on the side of
    /// more).
    pub(crate) fn record_writes(&mut self, written: WrittenTables) {
        self.written = Some(written);
    }

    /// A flag that, when set, starts a new statement at the next action: the
    /// cheap form of [`Policy::start_statement`] for hot paths.
    pub(crate) fn statement_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.new_statement)
    }

    /// Call before SQLite compiles a statement (prepare, and step, which may
    /// recompile after a schema change).
    pub(crate) fn start_statement(&mut self) {
        self.kind = Kind::Unknown;
        self.actions = 0;
        self.last_refusal = None;
    }

    /// The reason for the most recent refusal since [`Policy::start_statement`].
    #[cfg(test)]
    pub(crate) fn take_refusal(&mut self) -> Option<String> {
        self.last_refusal.take().map(|r| r.reason)
    }

    /// The most recent refusal since [`Policy::start_statement`], with what
    /// the hook may be told of it.
    pub(crate) fn take_refusal_details(&mut self) -> Option<Refusal> {
        self.last_refusal.take()
    }

    /// Whether SQLite's error `message` is a refusal after all, or is about
    /// a name, and so could tell the hook whether a table, column or index exists; if
    /// so, it is recorded as a hidden refusal. "no such column" from `SELECT
    /// nope FROM secret` and "no such table" from `SELECT nope FROM nosuch`
    /// then look the same, as do "index secret_v already exists" and the
    /// refusal to create an index outside the owned prefix. An object under
    /// the owned prefix that already exists keeps SQLite's message: the
    /// hook could learn that anyway by creating one.
    pub(crate) fn hide_name_error(&mut self, message: &str) -> bool {
        // The authorizer's refusal of a function reaches the statement as
        // SQLITE_ERROR "not authorized to use function: ...", not
        // SQLITE_AUTH: it is a refusal all the same (recorded by `check`).
        if message.starts_with("not authorized") && self.last_refusal.is_some() {
            return true;
        }
        let hidden = if let Some(name) = existing_object_named(message) {
            !self.ownership.under_prefix(name) && !self.may_read(name)
        } else {
            NAME_ERRORS.iter().any(|e| message.contains(e))
        };
        if hidden {
            self.last_refusal = Some(Refusal {
                reason: format!("SQLite: {message}"),
                hidden: true,
            });
        }
        hidden
    }

    /// Judges what the authorizer cannot see of a statement SQLite compiled:
    /// the new name of `ALTER TABLE ... RENAME TO` (SQLite asks only about
    /// the table renamed, and answers "there is already another table" for
    /// an existing name, which would tell the hook it exists), and a
    /// statement SQLite compiled without asking the authorizer anything,
    /// which happens when an `IF EXISTS` / `IF NOT EXISTS` clause
    /// makes it do nothing (`DROP TABLE IF EXISTS` of a missing table,
    /// `CREATE INDEX IF NOT EXISTS` of an existing index) and for a few
    /// statements (`VACUUM`, `REINDEX` of a collation no index uses). Had
    /// the object been otherwise, the authorizer would have been asked, so
    /// the statement is judged as that question would have been (and a
    /// missing undeclared table is refused just like an existing one); any
    /// other statement SQLite asks nothing about is refused. `Ok` when
    /// `sql` is allowed.
    pub(crate) fn check_text(&mut self, sql: &str) -> Result<(), Refusal> {
        // The flag is cleared by the first action after it was set.
        let asked = !self.new_statement.load(Ordering::Relaxed) && self.actions > 0;
        // Most statements: asked about, and not an ALTER (one word read).
        let ddl = leading_words(sql, 1)
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("ALTER") || w.eq_ignore_ascii_case("CREATE"));
        if asked && !ddl {
            return Ok(());
        }
        let words = leading_words(sql, 12);
        let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        let is = |i: usize, w: &str| word(i).eq_ignore_ascii_case(w);
        // The object's name after `at`, skipping a schema name.
        let name_at = |at: usize| -> (&str, usize) {
            if word(at + 1) == "." {
                (word(at + 2), at + 3)
            } else {
                (word(at), at + 1)
            }
        };
        let creates_table = is(0, "CREATE")
            && words
                .iter()
                .take(4)
                .any(|w| w.eq_ignore_ascii_case("TABLE"));
        if creates_table || is(0, "ALTER") {
            // A column's DEFAULT is evaluated later, by each INSERT, without
            // SQLite asking the authorizer about its functions (it asks about
            // those of CHECK constraints and generated columns): they are
            // found in the text.
            let all = sql_words(sql, usize::MAX, true);
            let called = all
                .windows(2)
                .find(|w| w[1] == "(" && self.ownership.refuses_function(&w[0]));
            if let Some(call) = called {
                let refusal = Refusal::plain(format!(
                    "SQL function {}() is not allowed in hooks, in a table's definition either (hooks may call SQLite's core, aggregate, window, date, JSON and full-text functions; the plugin guide lists them)",
                    call[0]
                ));
                self.last_refusal = Some(refusal.clone());
                return Err(refusal);
            }
            // A foreign key's table is named only in the text: refused here,
            // before the key exists, so that no key on a table the plugin may
            // not write is ever enforced while the hook runs (the check after
            // the hook, in `dependencies`, stands behind this one).
            let parent = all
                .windows(2)
                .find(|w| w[0].eq_ignore_ascii_case("REFERENCES") && !self.may_write(&w[1]));
            if let Some(key) = parent {
                let table = &key[1];
                let refusal = self.hidden_unless_prefix(
                    table,
                    format!(
                        "plugin {} may not refer to table {table} by foreign key: the key would block the application's deletes and key updates of {table}; a plugin's table may refer only to tables it owns or declares in capabilities.write",
                        self.plugin
                    ),
                );
                self.last_refusal = Some(refusal.clone());
                return Err(refusal);
            }
        }
        if is(0, "ALTER") && is(1, "TABLE") {
            let (_, next) = name_at(2);
            if is(next, "RENAME") && is(next + 1, "TO") {
                let new_name = word(next + 2);
                if !self.ownership.owns(new_name) {
                    let refusal = self.refuse_name("rename a table to", new_name);
                    self.last_refusal = Some(refusal.clone());
                    return Err(refusal);
                }
            }
        }
        if asked {
            return Ok(());
        }
        let refusal = if is(0, "DROP") && is(2, "IF") && is(3, "EXISTS") {
            let what = word(1).to_ascii_lowercase();
            let (name, _) = name_at(4);
            match what.as_str() {
                "table" | "view" | "index" | "trigger" => {
                    if self.ownership.under_prefix(name) && !is_uplift_table(name) {
                        return Ok(());
                    }
                    self.refuse_name(&format!("drop {what}"), name)
                }
                _ => self.unasked(sql),
            }
        } else if is(0, "REINDEX") && self.ownership.owns(name_at(1).0) {
            // An owned table without indexes: nothing to rebuild.
            return Ok(());
        } else if is(0, "CREATE") {
            let at = if is(1, "UNIQUE") { 2 } else { 1 };
            if is(at, "INDEX") && is(at + 1, "IF") && is(at + 2, "NOT") && is(at + 3, "EXISTS") {
                let (index, next) = name_at(at + 4);
                let (table, _) = if is(next, "ON") {
                    name_at(next + 1)
                } else {
                    ("", next)
                };
                match self.owned("index table", table) {
                    Ok(()) if self.ownership.owns(index) => return Ok(()),
                    Ok(()) => self.refuse_name("create or drop index", index),
                    Err(refusal) => refusal,
                }
            } else if words
                .iter()
                .take(3)
                .any(|w| w.eq_ignore_ascii_case("TRIGGER"))
            {
                Refusal::plain(
                    "creating triggers is not allowed: a trigger's body would run later, outside the sandbox"
                        .into(),
                )
            } else {
                self.unasked(sql)
            }
        } else {
            self.unasked(sql)
        };
        self.last_refusal = Some(refusal.clone());
        Err(refusal)
    }

    fn unasked(&self, sql: &str) -> Refusal {
        let first = leading_words(sql, 1).pop().unwrap_or_default();
        Refusal::plain(format!(
            "plugin {} may not run this {first} statement: SQLite compiled it without letting the sandbox check it",
            self.plugin
        ))
    }

    /// Decides one action.
    pub(crate) fn check(&mut self, ctx: &AuthContext<'_>) -> Result<(), Refusal> {
        if self.new_statement.swap(false, Ordering::Relaxed) {
            self.start_statement();
        }
        self.actions += 1;
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
        // SQLite passes ALTER TABLE's database in the action itself and, for
        // DROP COLUMN, the column's name where the database name would be.
        let database = match action {
            AuthAction::AlterTable { database_name, .. } => Some(database_name),
            _ => ctx.database_name,
        };
        match database {
            None | Some("main") | Some("temp") => {}
            Some(other) => {
                return Err(format!("database {other:?} is not the application's").into());
            }
        }
        match action {
            AuthAction::Select | AuthAction::Recursive => Ok(()),
            AuthAction::Function { function_name } => {
                let allowed = ALLOWED_FUNCTIONS
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(function_name))
                    || (matches!(self.kind, Kind::Alter | Kind::Drop | Kind::Create)
                        && INTERNAL_FUNCTIONS
                            .iter()
                            .any(|f| f.eq_ignore_ascii_case(function_name)));
                if allowed {
                    Ok(())
                } else {
                    Err(format!(
                        "SQL function {function_name}() is not allowed in hooks (hooks may call SQLite's core, aggregate, window, date, JSON and full-text functions; the plugin guide lists them)"
                    )
                    .into())
                }
            }
            AuthAction::Read {
                table_name,
                column_name,
            } => {
                // SQLite's own bookkeeping inside CREATE/ALTER/DROP (after
                // CREATE it only looks up the new row's rowid; ALTER and
                // DROP cannot contain a query of the hook's own).
                let internal = matches!(self.kind, Kind::Alter | Kind::Drop)
                    || (self.kind == Kind::Create
                        && is_schema_table(table_name)
                        && column_name.eq_ignore_ascii_case("rowid"));
                self.check_rows(table_name, Rows::Read, internal, ctx.accessor)
            }
            AuthAction::Insert { table_name }
            | AuthAction::Delete { table_name }
            | AuthAction::Update { table_name, .. } => {
                let internal = self.kind != Kind::Other && self.kind != Kind::Unknown;
                self.check_rows(table_name, Rows::Write, internal, ctx.accessor)
            }
            AuthAction::CreateTable { table_name } | AuthAction::CreateTempTable { table_name } => {
                // SQLite creates its own tables inside a statement: an
                // AUTOINCREMENT column sqlite_sequence inside the CREATE of an
                // owned table, ANALYZE its statistics tables (before asking
                // about the tables it analyzes, which must be owned).
                if self.kind == Kind::Create && is_sqlite_bookkeeping(table_name) {
                    return Ok(());
                }
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
                // CREATE INDEX fills its new index (checked as CREATE INDEX).
                if self.kind == Kind::Create {
                    return Ok(());
                }
                // REINDEX names a table, an index or a collation; SQLite asks
                // about each index it would rebuild, by the index's name only:
                // the index's table must be owned, whatever the index is called.
                match self.ownership.table_of_index(index_name) {
                    Some(table) => self.owned("reindex table", &table),
                    None => self.owned("reindex", index_name),
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
            )
            .into()),
            AuthAction::CreateVtable {
                table_name,
                module_name,
            }
            | AuthAction::DropVtable {
                table_name,
                module_name,
            } => Err(format!(
                "virtual table {table_name} (module {module_name}): hooks may not create or drop virtual tables"
            )
            .into()),
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
                    None if PLAIN_PRAGMAS
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(pragma_name)) =>
                    {
                        Ok(())
                    }
                    _ => Err(format!(
                        "PRAGMA {pragma_name} is not allowed (hooks may only use PRAGMA {} on tables they may read)",
                        TABLE_PRAGMAS.join("/")
                    )
                    .into()),
                }
            }
            AuthAction::Transaction { operation } => Err(format!(
                "transaction control ({operation:?}) is not allowed: each hook runs inside the upgrade's transaction"
            )
            .into()),
            AuthAction::Savepoint {
                operation,
                savepoint_name,
            } => Err(format!(
                "SAVEPOINT/RELEASE ({operation:?} {savepoint_name}) is not allowed: each hook runs inside the upgrade's transaction"
            )
            .into()),
            AuthAction::Attach { filename } => Err(format!(
                "ATTACH {filename:?} is not allowed: hooks see only the application's database"
            )
            .into()),
            AuthAction::Detach { database_name } => {
                Err(format!("DETACH {database_name} is not allowed").into())
            }
            other => Err(format!("{other:?} is not allowed in hooks").into()),
        }
    }

    /// Whether the hook may read `table`: declared for reading or writing,
    /// owned, or a shadow table of a virtual table it may read.
    pub(crate) fn may_read(&self, table: &str) -> bool {
        self.declared_or_owned(table, |t| self.caps.declares_read(t))
    }

    /// Whether the hook may write `table`: declared for writing, owned, or a
    /// shadow table of a virtual table it may write (SQLite's defensive mode
    /// keeps the hook's own SQL from writing shadow tables; the FTS code
    /// writes them when the hook writes the virtual table).
    pub(crate) fn may_write(&self, table: &str) -> bool {
        self.declared_or_owned(table, |t| self.caps.declares_write(t))
    }

    /// Whether `table`, or the virtual table it is a shadow table of, is
    /// `declared` or owned.
    fn declared_or_owned(&self, table: &str, declared: impl Fn(&str) -> bool) -> bool {
        let allowed = |t: &str| declared(t) || self.ownership.owns(t);
        allowed(table) || self.ownership.shadow_owner(table).is_some_and(allowed)
    }

    /// Whether the plugin owns the table, view or index `name` (see
    /// [`Ownership::owns`]).
    pub(crate) fn owns(&self, name: &str) -> bool {
        self.ownership.owns(name)
    }

    /// Whether a read of `name` that is not a table the plugin may read is
    /// still allowed: a common table expression's, or a table-valued
    /// function of [`ALLOWED_EPONYMOUS`] (`pragma_*` ones only when `pragmas`,
    /// for statements whose PRAGMA the authorizer judges too).
    pub(crate) fn reads_no_table(&self, name: &str, pragmas: bool) -> bool {
        !self.ownership.existed(name)
            && !self.ownership.owns(name)
            && (!self.ownership.is_module(name)
                || ALLOWED_EPONYMOUS
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(name))
                || (pragmas && starts_with_ignore_case(name, "pragma_")))
    }

    /// A refusal about `name`, hidden when the hook may not know of it.
    /// Judges reading or writing the rows of `table`: SQLite's schema only
    /// by SQLite itself inside a schema change (`internal`), uplift's own
    /// tables never, the rest as the manifest declares.
    fn check_rows(
        &mut self,
        table: &str,
        rows: Rows,
        internal: bool,
        accessor: Option<&str>,
    ) -> Result<(), Refusal> {
        if is_schema_table(table) || table.eq_ignore_ascii_case("sqlite_sequence") {
            if internal {
                return Ok(());
            }
            let doing = match rows {
                Rows::Read => "reading",
                Rows::Write => "changing",
            };
            return Err(self.hidden_unless_prefix(
                table,
                format!("{doing} {table} (SQLite's schema) is never allowed"),
            ));
        }
        if is_uplift_table(table) {
            return Err(format!("{table} is uplift's own table").into());
        }
        let allowed = match rows {
            // A recursive common table expression, or a table-valued
            // function of the allowed modules (a `pragma_*` one is judged
            // again as the PRAGMA it runs), reads no table.
            Rows::Read => self.may_read(table) || self.reads_no_table(table, true),
            Rows::Write => self.may_write(table),
        };
        if allowed {
            return Ok(());
        }
        let (verb, list) = match rows {
            Rows::Read => ("read", "capabilities.read"),
            Rows::Write => ("write", "capabilities.write"),
        };
        let note = self.ownership.not_created_note(table);
        let plugin = &self.plugin;
        Err(self.hidden_unless_prefix(
            table,
            format!(
                "plugin {plugin} may not {verb} table {table}{}{note}: declare it in {list}",
                via(accessor),
            ),
        ))
    }

    fn hidden_unless_prefix(&self, name: &str, reason: String) -> Refusal {
        Refusal {
            reason,
            hidden: self.is_hidden(name),
        }
    }

    /// Whether `name` is one the hook may not learn anything about: neither
    /// readable nor under its owned prefix (uplift's and SQLite's own names
    /// are public).
    /// `sqlite_sequence` and `sqlite_stat*` are hidden too: whether they
    /// exist tells whether the application uses AUTOINCREMENT or ANALYZE.
    fn is_hidden(&self, name: &str) -> bool {
        !self.may_read(name)
            && !self.ownership.under_prefix(name)
            && !is_uplift_table(name)
            && !is_schema_table(name)
    }

    /// The refusal of `what` on `name`, which the plugin does not own.
    fn refuse_name(&self, what: &str, name: &str) -> Refusal {
        self.hidden_unless_prefix(name, self.ownership.refusal(what, name))
    }

    fn owned(&self, what: &str, name: &str) -> Result<(), Refusal> {
        if self.ownership.owns(name) {
            return Ok(());
        }
        Err(self.refuse_name(what, name))
    }
}

/// The name in SQLite's "... NAME already exists" and "there is already
/// another table or index with this name: NAME" messages.
fn existing_object_named(message: &str) -> Option<&str> {
    if let Some(name) =
        message.strip_prefix("there is already another table or index with this name: ")
    {
        return Some(name.trim());
    }
    let head = message.strip_suffix(" already exists")?;
    let name = head.rsplit_once(' ').map_or(head, |(_, name)| name);
    Some(name.trim_matches(|c| c == '"' || c == '\'' || c == '`' || c == '[' || c == ']'))
}

/// Whether `name` is one of the tables SQLite creates itself inside a
/// statement of the hook (see [`Policy::check`]); they are SQLite's, not
/// the plugin's, and the schema check after the hook lets them be.
pub(crate) fn is_sqlite_bookkeeping(name: &str) -> bool {
    ["sqlite_sequence", "sqlite_stat1", "sqlite_stat4"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(name))
}

/// Reading or writing a table's rows.
#[derive(Debug, Clone, Copy)]
enum Rows {
    Read,
    Write,
}

/// The first `max` words of `sql`: keywords and names (quoted names
/// unquoted), and `.` and `(` as words of their own; comments skipped;
/// stops at a string literal, a `;` or anything else.
fn leading_words(sql: &str, max: usize) -> Vec<String> {
    sql_words(sql, max, false)
}

/// The words of `sql` as [`leading_words`] reads them, or, when `whole`,
/// all of them: then a string literal is the word `'` and every other
/// character a word of its own, so that `name (` finds every call.
fn sql_words(sql: &str, max: usize, whole: bool) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = sql.chars().peekable();
    while words.len() < max {
        let Some(&c) = chars.peek() else { break };
        if c.is_whitespace() {
            chars.next();
        } else if c == '-' || c == '/' {
            chars.next();
            let comment = if c == '-' { '-' } else { '*' };
            if chars.peek() != Some(&comment) {
                if !whole {
                    break;
                }
                words.push(c.to_string());
                continue;
            }
            chars.next();
            let mut last = ' ';
            for c in chars.by_ref() {
                if (comment == '-' && c == '\n') || (comment == '*' && last == '*' && c == '/') {
                    break;
                }
                last = c;
            }
        } else if c == '.' || c == '(' {
            chars.next();
            words.push(c.to_string());
        } else if c == '"' || c == '`' || c == '[' {
            chars.next();
            let close = if c == '[' { ']' } else { c };
            let mut word = String::new();
            while let Some(c) = chars.next() {
                if c == close {
                    if close != ']' && chars.peek() == Some(&close) {
                        chars.next();
                        word.push(close);
                        continue;
                    }
                    break;
                }
                word.push(c);
            }
            words.push(word);
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || c == '_' || c == '$' {
                    word.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            words.push(word);
        } else if whole && c == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        continue;
                    }
                    break;
                }
            }
            words.push("'".to_string());
        } else if whole {
            chars.next();
            words.push(c.to_string());
        } else {
            break;
        }
    }
    words
}

fn via(accessor: Option<&str>) -> String {
    match accessor {
        Some(a) => format!(" (through trigger or view {a})"),
        None => String::new(),
    }
}

/// The names of the tables and views of `conn`'s main and temp schemas, for
/// [`Policy::new`].
pub(crate) fn existing_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM main.sqlite_schema WHERE type IN ('table', 'view')
         UNION SELECT name FROM temp.sqlite_schema WHERE type IN ('table', 'view')",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

/// SQLite's settings a hook runs under, each with the value it must have:
/// defensive mode (no `writable_schema`, shadow tables read-only to the
/// hook's own SQL, no corrupting PRAGMAs), an untrusted schema (functions
/// with side effects cannot run from views, triggers, defaults or indexes)
/// and no `fts3_tokenizer` pointers. The function itself is refused too;
/// the settings are the second wall.
const HOOK_CONFIG: [(DbConfig, bool); 3] = [
    (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
    (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
    (DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false),
];

/// The connection's settings from before [`install`], which [`remove`]
/// puts back.
#[derive(Debug)]
pub(crate) struct SavedConfig(Vec<(DbConfig, bool)>);

/// Installs `policy` as the connection's authorizer and turns on the
/// defensive settings of [`HOOK_CONFIG`]; [`remove`] undoes both. Fails
/// when SQLite refuses a setting (then nothing is installed): a hook must
/// not run without them.
pub(crate) fn install(conn: &Connection, policy: &SharedPolicy) -> rusqlite::Result<SavedConfig> {
    let mut saved = Vec::with_capacity(HOOK_CONFIG.len());
    for (setting, value) in HOOK_CONFIG {
        match conn
            .db_config(setting)
            .and_then(|old| conn.set_db_config(setting, value).map(|_| old))
        {
            Ok(old) => saved.push((setting, old)),
            Err(e) => {
                restore(conn, &saved);
                return Err(e);
            }
        }
    }
    let policy = Arc::clone(policy);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let Ok(mut p) = policy.lock() else {
            return Authorization::Deny;
        };
        match p.check(&ctx) {
            Ok(()) => Authorization::Allow,
            Err(refusal) => {
                p.last_refusal.get_or_insert(refusal);
                Authorization::Deny
            }
        }
    }));
    Ok(SavedConfig(saved))
}

/// Removes the connection's authorizer and puts back the settings `saved`
/// by [`install`].
pub(crate) fn remove(conn: &Connection, saved: SavedConfig) {
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    restore(conn, &saved.0);
}

fn restore(conn: &Connection, saved: &[(DbConfig, bool)]) {
    for (setting, value) in saved {
        // Best effort: SQLite accepts every one of these settings on an open
        // connection, and the connection is the upgrade's own.
        let _ = conn.set_db_config(*setting, *value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

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
             CREATE TABLE p_mine(id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE badge(code TEXT PRIMARY KEY, v TEXT);
             CREATE UNIQUE INDEX secret_v ON secret(v);
             CREATE VIRTUAL TABLE docs USING fts5(body);
             INSERT INTO docs VALUES ('hello world');
             CREATE VIRTUAL TABLE docs4 USING fts4(body);
             INSERT INTO docs4 VALUES ('hello there');
             CREATE TABLE counter(id INTEGER PRIMARY KEY AUTOINCREMENT);
             INSERT INTO counter DEFAULT VALUES;",
        )
        .unwrap();
        let existing = existing_tables(&conn).unwrap();
        let recorded: Vec<String> = recorded.iter().map(|s| s.to_string()).collect();
        let ownership = Ownership::new("p", &caps, &existing, &recorded)
            .with_schema_of(&conn)
            .unwrap();
        let policy = Arc::new(Mutex::new(Policy::with_ownership(ownership)));
        // The settings live as long as the test's connection.
        std::mem::forget(install(&conn, &policy).unwrap());
        (conn, policy)
    }

    /// Runs `sql` (one statement) as the host runs a hook's statement, and
    /// returns what the hook sees: rows as text, or SQLite's code and the
    /// message.
    fn hook_sees(
        conn: &Connection,
        policy: &SharedPolicy,
        sql: &str,
    ) -> Result<Vec<String>, (i32, String)> {
        let refused = |policy: &SharedPolicy| {
            let refusal = policy.lock().unwrap().take_refusal_details().unwrap();
            (ffi::SQLITE_AUTH, refusal.for_hook().to_string())
        };
        let error = |e: rusqlite::Error| -> (i32, String) {
            let (code, message) = match &e {
                rusqlite::Error::SqliteFailure(f, m) => {
                    (f.extended_code & 0xff, m.clone().unwrap_or_default())
                }
                rusqlite::Error::SqlInputError { error, msg, .. } => {
                    (error.extended_code & 0xff, msg.clone())
                }
                other => (-1, other.to_string()),
            };
            if code == ffi::SQLITE_AUTH
                || (code == ffi::SQLITE_ERROR && policy.lock().unwrap().hide_name_error(&message))
            {
                return refused(policy);
            }
            (code, message)
        };
        policy.lock().unwrap().start_statement();
        let mut stmt = conn.prepare(sql).map_err(error)?;
        if policy.lock().unwrap().check_text(sql).is_err() {
            return Err(refused(policy));
        }
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        rows.map_err(error)
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

    /// Every statement of `sqls` runs.
    fn allowed(conn: &Connection, policy: &SharedPolicy, sqls: &[&str]) {
        for sql in sqls {
            assert_eq!(run(conn, policy, sql), Ok(()), "{sql}");
        }
    }

    /// Every statement of `sqls` is refused.
    fn refused(conn: &Connection, policy: &SharedPolicy, sqls: &[&str]) {
        for sql in sqls {
            assert!(run(conn, policy, sql).is_err(), "{sql}");
        }
    }

    /// Every statement of `cases` is refused, with a reason that mentions
    /// its words.
    fn refused_because(conn: &Connection, policy: &SharedPolicy, cases: &[(&str, &str)]) {
        for (sql, reason) in cases {
            let result = run(conn, policy, sql);
            assert!(
                matches!(&result, Err(r) if r.contains(reason)),
                "{sql}: {result:?} does not mention {reason:?}"
            );
        }
    }

    /// Every statement of `sqls` is refused, saying `words`.
    fn refused_saying(conn: &Connection, policy: &SharedPolicy, sqls: &[&str], words: &str) {
        for sql in sqls {
            let result = run(conn, policy, sql);
            assert!(
                matches!(&result, Err(r) if r.contains(words)),
                "{sql}: {result:?} does not say {words:?}"
            );
        }
    }

    /// [`caps`] declaring `read` and `write` besides.
    fn caps_plus(read: &[&str], write: &[&str]) -> Capabilities {
        let mut caps = caps();
        caps.read.extend(read.iter().map(|t| t.to_string()));
        caps.write.extend(write.iter().map(|t| t.to_string()));
        caps
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
        allowed(
            &conn,
            &policy,
            &[
                "CREATE TABLE p_items(id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
                "CREATE INDEX p_items_name ON p_items(name)",
                "ALTER TABLE p_items ADD COLUMN extra TEXT",
                "INSERT INTO p_items(name) SELECT name FROM facility",
                "CREATE VIEW p_view AS SELECT * FROM p_items",
                "SELECT * FROM p_view",
                "DROP VIEW p_view",
                "DROP INDEX p_items_name",
                "DROP TABLE p_items",
            ],
        );
    }

    #[test]
    fn undeclared_schema_and_uplift_tables_are_refused() {
        let (conn, policy) = conn_with(caps());
        refused_because(
            &conn,
            &policy,
            &[
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
            ],
        );
    }

    #[test]
    fn a_table_under_the_prefix_is_owned_only_if_the_plugin_created_it() {
        let (conn, policy) = conn_recording(caps(), &["P_MINE"]);
        let cases = [
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
        ];
        refused_because(&conn, &policy, &cases);
        let sqls: Vec<&str> = cases.iter().map(|(sql, _)| *sql).collect();
        refused_saying(
            &conn,
            &policy,
            &sqls,
            "matches the owned prefix \"p_\" but was not created by p",
        );
        allowed(
            &conn,
            &policy,
            &[
                "SELECT * FROM p_mine",
                "UPDATE p_mine SET v = 'x'",
                "ALTER TABLE p_mine ADD COLUMN extra TEXT",
                "CREATE INDEX p_mine_v ON p_mine(v)",
                "CREATE TABLE p_new(a)",
                "INSERT INTO p_new VALUES (1)",
                "DROP TABLE p_new",
                "DROP TABLE p_mine",
            ],
        );
    }

    #[test]
    fn a_declared_table_under_the_prefix_is_readable_but_not_droppable() {
        let (conn, policy) = conn_recording(caps_plus(&["p_core"], &[]), &[]);
        assert_eq!(run(&conn, &policy, "SELECT * FROM p_core"), Ok(()));
        assert_eq!(run(&conn, &policy, "PRAGMA table_info(p_core)"), Ok(()));
        assert!(run(&conn, &policy, "DROP TABLE p_core").is_err());
        // Not recorded, so not the plugin's, though it matches the prefix.
        assert!(run(&conn, &policy, "SELECT * FROM p_mine").is_err());
    }

    #[test]
    fn the_tables_a_hook_writes_are_recorded_refused_ones_too() {
        let (conn, policy) = conn_with(caps_plus(&[], &["facility"]));
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

    #[test]
    fn functions_outside_the_reviewed_list_are_refused() {
        let (conn, policy) = conn_with(caps());
        refused_saying(
            &conn,
            &policy,
            &[
                "SELECT fts3_tokenizer('simple')",
                "SELECT fts3_tokenizer('simple', x'4141414141414141')",
                "SELECT load_extension('/tmp/x.so')",
                "SELECT sqlite_version()",
                "SELECT sqlite_source_id()",
                "SELECT sqlite_compileoption_get(0)",
                "SELECT total_changes()",
                "SELECT sqlite_log(1, 'forged')",
                "SELECT fts5(NULL)",
                "SELECT rtreenode(2, x'00')",
                // A function in a definition runs whenever the application
                // reads the table: refused when the hook creates it.
                "CREATE TABLE p_gen(x, y AS (sqlite_version()))",
                "CREATE TABLE p_chk(x CHECK (fts3_tokenizer('simple') IS NULL))",
            ],
            "is not allowed in hooks",
        );
        allowed(
            &conn,
            &policy,
            &[
                "SELECT json_extract('{\"a\": 1}', '$.a'), date('2024-01-01'), upper('x')",
                "SELECT count(*), group_concat(name) FROM facility",
                "SELECT row_number() OVER (ORDER BY id) FROM facility",
                // SQLite's own functions behind ALTER TABLE still run.
                "CREATE TABLE p_t(a, b)",
                "ALTER TABLE p_t RENAME COLUMN a TO c",
                "ALTER TABLE p_t DROP COLUMN b",
                "ALTER TABLE p_t RENAME TO p_u",
            ],
        );
    }

    #[test]
    fn a_column_default_cannot_call_a_refused_function() {
        // SQLite evaluates a DEFAULT at each INSERT without asking the
        // authorizer about its functions.
        let (conn, policy) = conn_with(caps());
        run(&conn, &policy, "CREATE TABLE p_t(a)").unwrap();
        for sql in [
            "CREATE TABLE p_d(x DEFAULT (total_changes()))",
            "CREATE TABLE p_d(x DEFAULT (\"sqlite_version\" /* c */ ()))",
            "CREATE TEMP TABLE p_d(x DEFAULT ([sqlite_source_id]()))",
            "ALTER TABLE p_t ADD COLUMN y DEFAULT (sqlite_log(1, 'forged'))",
        ] {
            let seen = hook_sees(&conn, &policy, sql);
            assert!(
                matches!(&seen, Err((23, m)) if m.contains("is not allowed in hooks")),
                "{sql}: {seen:?}"
            );
        }
        for sql in [
            "CREATE TABLE p_ok(x DEFAULT (datetime('now')), total_changes INTEGER)",
            "CREATE TABLE p_str(x DEFAULT 'sqlite_version()')",
            "ALTER TABLE p_t ADD COLUMN z DEFAULT (upper('a'))",
        ] {
            assert_eq!(hook_sees(&conn, &policy, sql), Ok(vec![]), "{sql}");
        }
    }

    #[test]
    fn every_function_and_module_of_the_bundled_sqlite_was_reviewed() {
        // Refused on purpose (see ALLOWED_FUNCTIONS). A function a new
        // SQLite adds is refused by the authorizer; this test makes someone
        // decide whether to allow it.
        const REFUSED: &[&str] = &[
            "fts3_tokenizer",
            "fts5",
            "fts5_get_locale",
            "fts5_insttoken",
            "fts5_locale",
            "fts5_source_id",
            "load_extension",
            "optimize",
            "rtreecheck",
            "rtreedepth",
            "rtreenode",
            "sqlite_compileoption_get",
            "sqlite_compileoption_used",
            "sqlite_log",
            "sqlite_source_id",
            "sqlite_version",
            "subtype",
            "total_changes",
        ];
        const REFUSED_MODULES: &[&str] = &[
            "dbstat",
            "fts3",
            "fts3tokenize",
            "fts4",
            "fts4aux",
            "fts5",
            "fts5vocab",
            "rtree",
            "rtree_i32",
            "pragma_function_list",
            "pragma_module_list",
        ];
        let conn = Connection::open_in_memory().unwrap();
        let names = |sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        for function in names("SELECT DISTINCT name FROM pragma_function_list") {
            let allowed = ALLOWED_FUNCTIONS.contains(&function.as_str());
            let refused = REFUSED.contains(&function.as_str());
            assert!(allowed != refused, "function {function}: review it");
        }
        for module in names("SELECT name FROM pragma_module_list") {
            let allowed = ALLOWED_EPONYMOUS.contains(&module.as_str());
            let refused = REFUSED_MODULES.contains(&module.as_str());
            assert!(allowed != refused, "module {module}: review it");
        }
    }

    #[test]
    fn only_the_named_table_valued_functions_and_no_virtual_tables() {
        let (conn, policy) = conn_with(caps());
        allowed(
            &conn,
            &policy,
            &[
                "SELECT * FROM json_each('[1]')",
                "SELECT * FROM json_tree('{}')",
            ],
        );
        refused(
            &conn,
            &policy,
            &[
                "SELECT * FROM dbstat",
                "SELECT * FROM pragma_database_list",
                "SELECT * FROM pragma_function_list",
                "CREATE VIRTUAL TABLE p_fts USING fts5(x)",
                "CREATE VIRTUAL TABLE p_tok USING fts3tokenize(simple)",
            ],
        );
    }

    #[test]
    fn hooks_run_with_sqlites_defensive_settings_which_are_put_back_after() {
        let conn = Connection::open_in_memory().unwrap();
        let before: Vec<bool> = HOOK_CONFIG
            .iter()
            .map(|(s, _)| conn.db_config(*s).unwrap())
            .collect();
        let policy = Arc::new(Mutex::new(Policy::new("p", &caps(), &[], &[])));
        let saved = install(&conn, &policy).unwrap();
        for (setting, value) in HOOK_CONFIG {
            assert_eq!(conn.db_config(setting).unwrap(), value, "{setting:?}");
        }
        remove(&conn, saved);
        let after: Vec<bool> = HOOK_CONFIG
            .iter()
            .map(|(s, _)| conn.db_config(*s).unwrap())
            .collect();
        assert_eq!(after, before);
        assert!(after[1], "SQLite trusts the schema by default");
    }

    #[test]
    fn reindex_and_analyze_reach_only_owned_tables_whatever_the_index_is_called() {
        let (conn, policy) = conn_with(caps());
        refused(
            &conn,
            &policy,
            &[
                "REINDEX sqlite_autoindex_badge_1",
                "REINDEX sqlite_autoindex_uplift_meta_1",
                "REINDEX secret_v",
                "REINDEX secret",
                "REINDEX badge",
                "REINDEX",
                "ANALYZE secret",
                "ANALYZE sqlite_autoindex_badge_1",
                "ANALYZE uplift_meta",
            ],
        );
        allowed(
            &conn,
            &policy,
            &[
                "CREATE TABLE p_items(id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
                "CREATE INDEX p_items_id ON p_items(id, name)",
                "REINDEX p_items",
                "REINDEX sqlite_autoindex_p_items_1",
                "REINDEX p_items_id",
            ],
        );
    }

    #[test]
    fn an_owned_autoincrement_table_works_and_sqlite_sequence_stays_closed() {
        let (conn, policy) = conn_with(caps());
        allowed(
            &conn,
            &policy,
            &[
                "CREATE TABLE p_seq(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
                "INSERT INTO p_seq(v) VALUES ('a'), ('b')",
                "DELETE FROM p_seq",
                "ALTER TABLE p_seq RENAME TO p_seq2",
                "INSERT INTO p_seq2(v) VALUES ('c')",
            ],
        );
        let last: i64 = conn
            .query_row("SELECT max(id) FROM p_seq2", [], |r| r.get(0))
            .unwrap();
        assert_eq!(last, 3, "AUTOINCREMENT remembered the deleted ids");
        refused(
            &conn,
            &policy,
            &[
                "SELECT * FROM sqlite_sequence",
                "UPDATE sqlite_sequence SET seq = 0",
                "DELETE FROM sqlite_sequence",
            ],
        );
    }

    #[test]
    fn declared_fts_tables_work_without_declaring_their_shadow_tables() {
        let (conn, policy) = conn_with(caps_plus(&["docs"], &["docs4"]));
        allowed(
            &conn,
            &policy,
            &[
                "SELECT body, bm25(docs), highlight(docs, 0, '[', ']') FROM docs WHERE docs MATCH 'hello'",
                "SELECT body, snippet(docs4), offsets(docs4) FROM docs4 WHERE docs4 MATCH 'hello'",
                "INSERT INTO docs4 VALUES ('more')",
                "DELETE FROM docs4 WHERE body = 'more'",
            ],
        );
        // Writing a table declared only for reading, or the shadow tables
        // directly, is refused (the latter by SQLite's defensive mode).
        refused(
            &conn,
            &policy,
            &[
                "INSERT INTO docs VALUES ('x')",
                "DELETE FROM docs4_content",
                "SELECT optimize(docs4) FROM docs4",
            ],
        );
    }

    #[test]
    fn an_undeclared_table_and_a_missing_one_look_the_same_to_a_hook() {
        let (conn, policy) = conn_with(caps());
        run(
            &conn,
            &policy,
            "CREATE TABLE p_items(id INTEGER PRIMARY KEY, name TEXT)",
        )
        .unwrap();
        // Each pair: the first names objects that exist (undeclared), the
        // second the same shape with names that do not.
        for (existing, missing) in [
            ("SELECT v FROM secret", "SELECT v FROM nosuch"),
            ("SELECT nope FROM secret", "SELECT nope FROM nosuch"),
            ("SELECT count(*) FROM secret", "SELECT count(*) FROM nosuch"),
            (
                "SELECT id FROM facility, secret",
                "SELECT id FROM facility, nosuch",
            ),
            (
                "INSERT INTO secret(v) VALUES (1)",
                "INSERT INTO nosuch(v) VALUES (1)",
            ),
            ("UPDATE secret SET nope = 1", "UPDATE nosuch SET nope = 1"),
            ("DELETE FROM secret", "DELETE FROM nosuch"),
            ("DROP TABLE secret", "DROP TABLE nosuch"),
            ("DROP TABLE IF EXISTS secret", "DROP TABLE IF EXISTS nosuch"),
            ("DROP INDEX secret_v", "DROP INDEX nosuch_v"),
            (
                "DROP INDEX IF EXISTS secret_v",
                "DROP INDEX IF EXISTS nosuch_v",
            ),
            ("REINDEX secret_v", "REINDEX nosuch_v"),
            ("ANALYZE secret", "ANALYZE nosuch"),
            (
                "ALTER TABLE secret ADD COLUMN z",
                "ALTER TABLE nosuch ADD COLUMN z",
            ),
            ("CREATE TABLE secret(x)", "CREATE TABLE nosuch(x)"),
            (
                "CREATE INDEX p_i ON secret(v)",
                "CREATE INDEX p_i ON nosuch(v)",
            ),
            (
                "CREATE INDEX IF NOT EXISTS secret_v ON p_items(name)",
                "CREATE INDEX IF NOT EXISTS nosuch_v ON p_items(name)",
            ),
            (
                "CREATE INDEX secret_v ON p_items(name)",
                "CREATE INDEX nosuch_v ON p_items(name)",
            ),
            (
                "ALTER TABLE p_items RENAME TO secret",
                "ALTER TABLE p_items RENAME TO nosuch",
            ),
            (
                "/* hidden */ -- from the check\n alter table main.\"p_items\" rename to [secret]",
                "/* hidden */ -- from the check\n alter table main.\"p_items\" rename to [nosuch]",
            ),
            ("PRAGMA table_info(secret)", "PRAGMA table_info(nosuch)"),
            (
                "CREATE TABLE p_pin(x REFERENCES secret(id))",
                "CREATE TABLE p_pin(x REFERENCES nosuch(id))",
            ),
            // Whether the application uses AUTOINCREMENT or ANALYZE.
            (
                "SELECT * FROM sqlite_sequence",
                "SELECT * FROM sqlite_stat1",
            ),
            ("DELETE FROM sqlite_sequence", "DELETE FROM sqlite_stat1"),
            (
                "SELECT * FROM pragma_index_list('secret')",
                "SELECT * FROM pragma_index_list('nosuch')",
            ),
        ] {
            let seen = hook_sees(&conn, &policy, existing);
            assert!(seen.is_err(), "{existing}: {seen:?}");
            assert_eq!(
                seen,
                hook_sees(&conn, &policy, missing),
                "{existing} / {missing}"
            );
        }
        let seen = hook_sees(&conn, &policy, "SELECT v FROM secret");
        assert_eq!(seen, Err((ffi::SQLITE_AUTH, HIDDEN.to_string())));
        // What the plugin may know of keeps SQLite's own words.
        let seen = hook_sees(&conn, &policy, "CREATE TABLE p_items(x)");
        assert_eq!(
            seen,
            Err((
                ffi::SQLITE_ERROR,
                "table p_items already exists".to_string()
            ))
        );
        assert_eq!(
            hook_sees(&conn, &policy, "DROP TABLE IF EXISTS p_gone"),
            Ok(vec![])
        );
        // Twice: the second time, the index is already there.
        for _ in 0..2 {
            let sql = "CREATE INDEX IF NOT EXISTS p_n ON p_items(name)";
            assert_eq!(hook_sees(&conn, &policy, sql), Ok(vec![]));
        }
        assert!(hook_sees(&conn, &policy, "VACUUM").is_err());
        // No index uses the collation: SQLite asks nothing.
        assert!(hook_sees(&conn, &policy, "REINDEX nocase").is_err());
        // An owned table without indexes: nothing to ask about, nothing to do.
        run(&conn, &policy, "CREATE TABLE p_bare(x)").unwrap();
        assert_eq!(hook_sees(&conn, &policy, "REINDEX p_bare"), Ok(vec![]));
    }
}

//! What the objects a hook created or changed refer to, checked after the
//! hook: an owned object must not reach beyond the plugin's manifest once
//! the hook is over, when no authorizer guards it.
//!
//! - A foreign key of an owned table may refer only to a table the plugin
//!   may write (declared in `capabilities.write`, or owned): any key blocks
//!   the deletes and key updates of the rows it refers to (or, with `ON
//!   DELETE CASCADE`, turns them into writes of the plugin's table), so a
//!   key on a table the plugin may only read, or not at all, would let it
//!   constrain the application's writes after the upgrade.
//! - An owned view may read only tables the plugin may read and call only
//!   the functions a hook may call ([`ALLOWED_FUNCTIONS`]): the application
//!   runs it later, and a migration that changes a table it reads would
//!   fail on it. A view that does not compile is refused too.
//!
//! The authorizer cannot do this while the hook runs: SQLite resolves a
//! view's tables only when a statement uses the view, and asks nothing
//! about the table a foreign key names.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::engine::sqlite::authorizer::{ALLOWED_FUNCTIONS, Policy};
use crate::engine::sqlite::sql::quote_ident;

/// One schema object, as the runner's snapshot has it: schema (`main` or
/// `temp`), type, name.
pub(crate) struct Object<'a> {
    pub schema: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

/// The first problem with what the objects in `changed` (created or
/// changed by the hook) refer to, in words naming the plugin, the object
/// and the way out; `None` when there is none. `policy` says what the
/// plugin may read and write (owning what the hook created). Fails only
/// when SQLite does.
pub(crate) fn check(
    conn: &Connection,
    plugin: &str,
    changed: &[Object<'_>],
    policy: &Policy,
) -> rusqlite::Result<Option<String>> {
    for object in changed {
        let problem = match object.kind {
            "table" => foreign_key_problem(conn, plugin, object, policy)?,
            "view" => view_problem(conn, plugin, object, policy),
            _ => None,
        };
        if problem.is_some() {
            return Ok(problem);
        }
    }
    Ok(None)
}

fn foreign_key_problem(
    conn: &Connection,
    plugin: &str,
    table: &Object<'_>,
    policy: &Policy,
) -> rusqlite::Result<Option<String>> {
    let mut stmt = conn.prepare(
        "SELECT \"table\", group_concat(\"from\", ', ')
           FROM pragma_foreign_key_list(?1, ?2) GROUP BY id ORDER BY id",
    )?;
    let keys = stmt.query_map([table.name, table.schema], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for key in keys {
        let (parent, columns) = key?;
        if !policy.may_write(&parent) {
            return Ok(Some(format!(
                "table {name} of plugin {plugin} has a foreign key ({columns}) referring to table \
                 {parent}, which the plugin may not write: the key would block the application's \
                 deletes and key updates of {parent} after the upgrade. A plugin's table may refer \
                 only to tables it owns or declares in capabilities.write; keep the id in a plain \
                 column instead",
                name = table.name
            )));
        }
    }
    Ok(None)
}

/// What compiling a query of the view showed: the tables it reads and the
/// functions it calls, with the view (or nested view) that does.
#[derive(Default)]
struct Seen {
    reads: Vec<(String, Option<String>)>,
    functions: Vec<(String, Option<String>)>,
}

fn view_problem(
    conn: &Connection,
    plugin: &str,
    view: &Object<'_>,
    policy: &Policy,
) -> Option<String> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = Arc::clone(&seen);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        if let Ok(mut seen) = recorder.lock() {
            let accessor = ctx.accessor.map(str::to_string);
            match ctx.action {
                AuthAction::Read { table_name, .. } => {
                    seen.reads.push((table_name.to_string(), accessor));
                }
                AuthAction::Function { function_name } => {
                    seen.functions.push((function_name.to_string(), accessor));
                }
                _ => {}
            }
        }
        Authorization::Allow
    }));
    let sql = format!(
        "SELECT * FROM {}.{}",
        quote_ident(view.schema),
        quote_ident(view.name)
    );
    let compiled = conn.prepare(&sql).map(drop);
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    let name = view.name;
    if let Err(e) = compiled {
        return Some(format!(
            "view {name} of plugin {plugin} does not compile ({e}): a broken view makes later \
             migrations fail; create views only over tables that exist"
        ));
    }
    let seen = seen.lock().ok()?;
    // What the plugin's own views do (SQLite names the view, or nothing
    // for a table none of whose columns is used): a declared application
    // view's tables are the application's business.
    let mine = |accessor: &Option<String>| {
        accessor
            .as_deref()
            .is_none_or(|a| a.eq_ignore_ascii_case(name) || policy.owns(a))
    };
    for (table, _) in seen.reads.iter().filter(|(_, a)| mine(a)) {
        if !policy.may_read(table) && !policy.reads_no_table(table, false) {
            return Some(format!(
                "view {name} of plugin {plugin} reads {table}, which the plugin may not read: \
                 the view would outlive the hook and break migrations that change {table}. A \
                 plugin's view may read only tables it owns or declares in capabilities.read",
            ));
        }
    }
    for (function, _) in seen.functions.iter().filter(|(_, a)| mine(a)) {
        if !ALLOWED_FUNCTIONS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(function))
        {
            return Some(format!(
                "view {name} of plugin {plugin} calls {function}(), which hooks may not call: \
                 the application would run it later"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sqlite::authorizer::{Ownership, existing_tables};
    use crate::hooks::Capabilities;

    /// A database with `learner` (declared for reading) and `secret`
    /// (undeclared), and the policy of plugin `p` owning `p_`, as a hook
    /// starting now would have it.
    fn setup() -> (Connection, Policy) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE learner(id INTEGER PRIMARY KEY);
             CREATE TABLE grade(id INTEGER PRIMARY KEY);
             CREATE TABLE secret(id INTEGER PRIMARY KEY);",
        )
        .unwrap();
        let caps = Capabilities {
            read: vec!["learner".into()],
            write: vec!["grade".into()],
            owns: Some("p_".into()),
        };
        let existing = existing_tables(&conn).unwrap();
        let policy = Policy::with_ownership(Ownership::new("p", &caps, &existing, &[]));
        (conn, policy)
    }

    fn table(name: &str) -> Object<'_> {
        Object {
            schema: "main",
            kind: "table",
            name,
        }
    }

    #[test]
    fn a_key_on_a_table_the_plugin_may_not_write_is_found_after_the_hook() {
        // However the key got there: the authorizer's reading of the text
        // is the first wall, this is the second.
        let (conn, policy) = setup();
        conn.execute_batch(
            "CREATE TABLE p_ok(a REFERENCES grade(id), b REFERENCES p_ok(a));
             CREATE TABLE p_read(a, b, FOREIGN KEY (a, b) REFERENCES learner(id, id));
             CREATE TABLE p_hidden(a REFERENCES secret);",
        )
        .unwrap();
        assert_eq!(check(&conn, "p", &[table("p_ok")], &policy).unwrap(), None);
        let problem = check(&conn, "p", &[table("p_read")], &policy)
            .unwrap()
            .unwrap();
        assert!(
            problem.contains(
                "table p_read of plugin p has a foreign key (a, b) referring to table learner"
            ),
            "{problem}"
        );
        let problem = check(&conn, "p", &[table("p_hidden")], &policy)
            .unwrap()
            .unwrap();
        assert!(problem.contains("referring to table secret"), "{problem}");
    }
}

//! A well-behaved plugin: reads and writes its declared table, creates and
//! fills a table it owns with a prepared statement, streams with a cursor,
//! logs and prints.

wit_bindgen::generate!({ path: "../../../wit", world: "upgrade-hook" });

use exports::uplift::hooks::hooks::{Context, Guest};
use uplift::hooks::database;
use uplift::hooks::log::{self, Level};
use uplift::hooks::types::{DbError, Value};

#[unsafe(link_section = "uplift:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

struct Tidy;

fn text(e: DbError) -> String {
    format!("database error {}: {}", e.code, e.message)
}

fn copy_notes(ctx: &Context) -> Result<(), String> {
    database::execute_batch(
        "CREATE TABLE tidy_copy(id INTEGER PRIMARY KEY, body TEXT, len INTEGER);
         CREATE INDEX tidy_copy_len ON tidy_copy(len);",
    )
    .map_err(text)?;
    let insert =
        database::prepare("INSERT INTO tidy_copy(id, body, len) VALUES (?, ?, ?)").map_err(text)?;
    let cursor = database::open_cursor(
        "SELECT id, body FROM notes WHERE id > ? ORDER BY id",
        &[Value::Integer(0)],
    )
    .map_err(text)?;
    let mut copied = 0;
    loop {
        let batch = cursor.next(2).map_err(text)?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            let len = match &row[1] {
                Value::Text(s) => s.len() as i64,
                _ => 0,
            };
            insert
                .execute(&[row[0].clone(), row[1].clone(), Value::Integer(len)])
                .map_err(text)?;
            copied += 1;
        }
    }
    log::log(
        Level::Info,
        &format!(
            "copied {copied} notes for {} {} -> {}",
            ctx.app, ctx.old_version, ctx.new_version
        ),
    );
    println!("stdout works too");
    Ok(())
}

fn shout() -> Result<(), String> {
    let update =
        database::prepare("UPDATE notes SET body = upper(body) WHERE id = ?").map_err(text)?;
    let ids = database::query("SELECT id FROM notes ORDER BY id", &[]).map_err(text)?;
    let mut changed = 0;
    for row in &ids.rows {
        changed += update.execute(&[row[0].clone()]).map_err(text)?;
    }
    database::execute(
        "INSERT INTO notes(body) VALUES (?)",
        &[Value::Text(format!("shouted {changed}"))],
    )
    .map_err(text)?;
    let rowid = database::last_insert_rowid();
    log::log(Level::Debug, &format!("last rowid {rowid}"));
    Ok(())
}

impl Guest for Tidy {
    fn run(ctx: Context) -> Result<(), String> {
        match ctx.hook.as_str() {
            "copy_notes" => copy_notes(&ctx),
            "shout" => shout(),
            other => Err(format!("no hook {other}")),
        }
    }
}

export!(Tidy);

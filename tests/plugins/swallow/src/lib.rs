//! A careless plugin: its hook treats every write as best effort. It
//! marks every lesson's title (a table nothing else in the example upgrade
//! writes, so its pages are journaled here: the first I/O the hook causes),
//! fills a cache (each learner's row written twice, so that every second
//! write fails on the primary key), then a backfill, and swallows every
//! database error on the way (a full disk, an I/O error, anything) and
//! carries on writing, as hooks written in a hurry do. uplift must not let the writes
//! that follow an error which ended its transaction commit on their own.

wit_bindgen::generate!({ path: "../../../wit", world: "upgrade-hook" });

use exports::uplift::hooks::hooks::{Context, Guest};
use uplift::hooks::database;
use uplift::hooks::log::{self, Level};
use uplift::hooks::types::Value;

#[unsafe(link_section = "uplift:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

struct Swallow;

fn carry_on() -> Result<(), String> {
    let _ = database::execute_batch(
        "CREATE TABLE swallow_cache(learner INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE swallow_backfill(learner INTEGER PRIMARY KEY, name TEXT, note TEXT);",
    );
    let lessons = database::query("SELECT id FROM lesson ORDER BY id", &[])
        .map_err(|e| format!("cannot read lessons: {}", e.message))?;
    let mut failed = 0u32;
    for row in &lessons.rows {
        if database::execute(
            "UPDATE lesson SET title = title || '.' WHERE id = ?",
            &[row[0].clone()],
        )
        .is_err()
        {
            failed += 1;
        }
    }
    let learners = database::query("SELECT id, username FROM learner ORDER BY id", &[])
        .map_err(|e| format!("cannot read learners: {}", e.message))?;
    for row in &learners.rows {
        for _ in 0..2 {
            if database::execute(
                "INSERT INTO swallow_cache(learner, name) VALUES (?, ?)",
                &[row[0].clone(), row[1].clone()],
            )
            .is_err()
            {
                failed += 1;
            }
        }
    }
    for row in &learners.rows {
        if database::execute(
            "INSERT INTO swallow_backfill(learner, name, note) VALUES (?, ?, ?)",
            &[
                row[0].clone(),
                row[1].clone(),
                Value::Text("backfilled".to_string()),
            ],
        )
        .is_err()
        {
            failed += 1;
        }
    }
    log::log(
        Level::Info,
        &format!(
            "wrote {} learners; ignored {failed} failed writes",
            learners.rows.len()
        ),
    );
    Ok(())
}

impl Guest for Swallow {
    fn run(ctx: Context) -> Result<(), String> {
        match ctx.hook.as_str() {
            "carry_on" => carry_on(),
            other => Err(format!("no hook {other}")),
        }
    }
}

export!(Swallow);

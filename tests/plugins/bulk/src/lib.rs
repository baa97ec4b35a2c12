//! The benchmark plugin: updates every row of `bench` one at a time through a
//! prepared statement (bench/hooks.rs compares it with native rusqlite).

wit_bindgen::generate!({ path: "../../../wit", world: "upgrade-hook" });

use exports::uplift::hooks::hooks::{Context, Guest};
use uplift::hooks::database;
use uplift::hooks::types::{DbError, Value};

#[unsafe(link_section = "uplift:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

struct Bulk;

fn text(e: DbError) -> String {
    format!("database error {}: {}", e.code, e.message)
}

impl Guest for Bulk {
    fn run(_ctx: Context) -> Result<(), String> {
        let rows = database::query("SELECT count(*) FROM bench", &[]).map_err(text)?;
        let n = match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(n)) => *n,
            _ => return Err("no row count".into()),
        };
        let update = database::prepare("UPDATE bench SET v = v + 1 WHERE id = ?").map_err(text)?;
        for id in 1..=n {
            let changed = update.execute(&[Value::Integer(id)]).map_err(text)?;
            if changed != 1 {
                return Err(format!("row {id}: {changed} rows changed"));
            }
        }
        Ok(())
    }
}

export!(Bulk);

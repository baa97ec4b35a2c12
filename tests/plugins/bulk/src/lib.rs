//! The benchmark plugin: updates every row of `bench` one at a time through a
//! prepared statement (bench/hooks.rs compares it with native rusqlite):
//! `update_each_row` with one host call per row, `update_each_row_batched`
//! with `execute-many`, 1,000 parameter lists per host call.

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

/// Rows changed per host call in `update_each_row_batched`.
const BATCH: i64 = 1000;

impl Guest for Bulk {
    fn run(ctx: Context) -> Result<(), String> {
        let rows = database::query("SELECT count(*) FROM bench", &[]).map_err(text)?;
        let n = match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(n)) => *n,
            _ => return Err("no row count".into()),
        };
        let update = database::prepare("UPDATE bench SET v = v + 1 WHERE id = ?").map_err(text)?;
        match ctx.hook.as_str() {
            "update_each_row" => {
                for id in 1..=n {
                    let changed = update.execute(&[Value::Integer(id)]).map_err(text)?;
                    if changed != 1 {
                        return Err(format!("row {id}: {changed} rows changed"));
                    }
                }
            }
            "update_each_row_batched" => {
                let mut batch = Vec::with_capacity(BATCH as usize);
                let mut first = 1;
                while first <= n {
                    let last = (first + BATCH - 1).min(n);
                    batch.clear();
                    batch.extend((first..=last).map(Value::Integer));
                    let changed = update.execute_many(&batch).map_err(text)?;
                    if changed != (last - first + 1) as u64 {
                        return Err(format!("rows {first}..={last}: {changed} rows changed"));
                    }
                    first = last + 1;
                }
            }
            other => return Err(format!("no hook named {other}")),
        }
        Ok(())
    }
}

export!(Bulk);

//! A plugin that tries to make uplift use more memory, time or disk than its
//! limits allow, one hook per attack (selected by `ctx.hook`). Each attack's
//! size comes from the declared table `attack_size(k TEXT, n INTEGER)`
//! (key: the hook's name), so that the tests run them small and the
//! benchmark (`bench/exhaustion`) at full size. `modest` is a well-behaved
//! hook, run after an attack to show the sandbox still works.

wit_bindgen::generate!({ path: "../../../wit", world: "upgrade-hook" });

use exports::uplift::hooks::hooks::{Context, Guest};
use uplift::hooks::database;
use uplift::hooks::types::{DbError, Value};

#[unsafe(link_section = "uplift:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

struct Greedy;

fn text(e: DbError) -> String {
    format!(
        "database error {} ({}): {}",
        e.code, e.extended_code, e.message
    )
}

/// The attack's size: `attack_size.n` for `key`, else `default`.
fn size(key: &str, default: i64) -> i64 {
    database::query(
        "SELECT n FROM attack_size WHERE k = ?1",
        &[Value::Text(key.into())],
    )
    .ok()
    .and_then(|rows| rows.rows.into_iter().next())
    .and_then(|row| match row.first() {
        Some(Value::Integer(n)) => Some(*n),
        _ => None,
    })
    .unwrap_or(default)
}

/// `n` rows numbered from 1, as a CTE named `r(i)`.
const ROWS: &str = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT ?2)";

impl Guest for Greedy {
    fn run(ctx: Context) -> Result<(), String> {
        let survived = |what: String| Err(format!("the attack was not stopped: {what}"));
        match ctx.hook.as_str() {
            // One row of 20 columns of `n`-byte values, materialized by
            // SQLite before a byte of it reaches the reply.
            "wide_row" => {
                let n = size("wide_row", 50_000_000);
                let columns = vec!["randomblob(?1)"; 20].join(", ");
                let rows = database::query(&format!("SELECT {columns}"), &[Value::Integer(n)])
                    .map_err(text)?;
                survived(format!("{} row(s) of 20 values", rows.rows.len()))
            }
            // 20 cursors each holding an `n`-byte bound value (SQLite copies
            // bound values).
            "bound_blobs" => {
                let n = size("bound_blobs", 50_000_000) as usize;
                let mut held = Vec::new();
                for _ in 0..20 {
                    let blob = Value::Blob(vec![7u8; n]);
                    held.push(database::open_cursor("SELECT length(?1)", &[blob]).map_err(text)?);
                }
                survived(format!("{} cursors with bound values", held.len()))
            }
            // 20 cursors each parked on an `n`-byte row.
            "parked_cursors" => {
                let n = size("parked_cursors", 50_000_000);
                database::execute("CREATE TABLE greedy_big(b BLOB)", &[]).map_err(text)?;
                database::execute(
                    "INSERT INTO greedy_big VALUES (randomblob(?1))",
                    &[Value::Integer(n)],
                )
                .map_err(text)?;
                let mut held = Vec::new();
                for _ in 0..20 {
                    let cursor =
                        database::open_cursor("SELECT b FROM greedy_big", &[]).map_err(text)?;
                    let rows = cursor.next(1).map_err(text)?;
                    drop(rows);
                    held.push(cursor);
                }
                survived(format!("{} parked cursors", held.len()))
            }
            // `n` NULLs in one reply: no bytes of values, but each costs the
            // host a value and a row.
            "many_nulls" => {
                let n = size("many_nulls", 60_000_000);
                let rows = database::query(
                    &format!("{ROWS} SELECT NULL FROM r"),
                    &[Value::Null, Value::Integer(n)],
                )
                .map_err(text)?;
                survived(format!("{} NULLs", rows.rows.len()))
            }
            // A sort of `n` rows of 1 MB blobs: SQLite's sorter spills to
            // temporary files.
            "order_by" => {
                let n = size("order_by", 5_000);
                let rows = database::query(
                    &format!(
                        "{ROWS} SELECT length(b) FROM \
                         (SELECT randomblob(?1) AS b FROM r ORDER BY b) LIMIT 1"
                    ),
                    &[Value::Integer(1_000_000), Value::Integer(n)],
                )
                .map_err(text)?;
                survived(format!("{} row(s) sorted", rows.rows.len()))
            }
            // 1 MB blobs into an owned table until something stops it.
            "owned_blobs" => fill("CREATE TABLE greedy_blobs(b BLOB)", "greedy_blobs"),
            // The same into a TEMP table (a deleted temporary file).
            "temp_table" => fill("CREATE TEMP TABLE greedy_tmp(b BLOB)", "greedy_tmp"),
            // A WASI clock wait (std's sleep) of `n` seconds.
            "sleep" => {
                let n = size("sleep", 30) as u64;
                std::thread::sleep(std::time::Duration::from_secs(n));
                survived(format!("slept {n} s"))
            }
            // One call of instr() that compares a needle of n/2 bytes at each
            // of n places: quadratic, inside one SQL function call.
            "instr" => {
                let n = size("instr", 2_000_000) as usize;
                let haystack = format!("{}b", "a".repeat(n));
                let needle = format!("{}b", "a".repeat(n / 2));
                let rows = database::query(
                    "SELECT instr(?1, ?2)",
                    &[Value::Text(haystack), Value::Text(needle)],
                )
                .map_err(text)?;
                survived(format!("instr returned {:?}", rows.rows))
            }
            // One LIKE with an `n`-character pattern of wildcards.
            "like" => {
                let n = size("like", 10_000) as usize;
                let subject = "a".repeat(2_000_000);
                let pattern = format!("{}b", "%a".repeat(n / 2));
                let rows = database::query(
                    "SELECT ?1 LIKE ?2",
                    &[Value::Text(subject), Value::Text(pattern)],
                )
                .map_err(text)?;
                survived(format!("LIKE returned {:?}", rows.rows))
            }
            // `n` levels of views, each joining the one below three times: a
            // query on the top one is 3^n joins to compile.
            "nested_views" => {
                let n = size("nested_views", 12);
                database::execute("CREATE VIEW greedy_v0 AS SELECT 1 AS x", &[]).map_err(text)?;
                for level in 1..=n {
                    let below = level - 1;
                    database::execute(
                        &format!(
                            "CREATE VIEW greedy_v{level} AS SELECT a.x FROM greedy_v{below} a, \
                             greedy_v{below} b, greedy_v{below} c WHERE a.x = b.x + c.x - 1"
                        ),
                        &[],
                    )
                    .map_err(text)?;
                }
                let rows = database::query(&format!("SELECT count(*) FROM greedy_v{n}"), &[])
                    .map_err(text)?;
                survived(format!("counted {:?}", rows.rows))
            }
            "modest" => {
                let rows =
                    database::query("SELECT count(*) FROM attack_size", &[]).map_err(text)?;
                match rows.rows.len() {
                    1 => Ok(()),
                    n => Err(format!("expected one row, got {n}")),
                }
            }
            other => Err(format!("no such hook: {other}")),
        }
    }
}

/// Creates a table with `create`, then inserts 1 MB blobs into `table` until
/// an insert fails; returns that failure.
fn fill(create: &str, table: &str) -> Result<(), String> {
    database::execute(create, &[]).map_err(text)?;
    let insert = database::prepare(&format!("INSERT INTO {table} VALUES (randomblob(1000000))"))
        .map_err(text)?;
    let mut rows = 0u64;
    loop {
        if let Err(e) = insert.execute(&[]) {
            return Err(format!("after {rows} MB: {}", text(e)));
        }
        rows += 1;
    }
}

export!(Greedy);

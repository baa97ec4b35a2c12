//! A plugin that tries everything a hook must not do, one hook per attempt
//! (selected by `ctx.hook`). uplift's tests run each hook and check that it
//! is stopped with a clear error and leaves the database unchanged.

wit_bindgen::generate!({ path: "../../../wit", world: "upgrade-hook" });

use exports::uplift::hooks::hooks::{Context, Guest};
use uplift::hooks::database;
use uplift::hooks::log::{self, Level};
use uplift::hooks::types::{DbError, Value};

#[unsafe(link_section = "uplift:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

struct Hostile;

fn text(e: DbError) -> String {
    format!(
        "database error {} ({}): {}",
        e.code, e.extended_code, e.message
    )
}

fn exec(sql: &str) -> Result<(), String> {
    database::execute(sql, &[]).map(|_| ()).map_err(text)
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let local = std::hint::black_box([n; 16]);
    if std::hint::black_box(n) == u64::MAX {
        return 0;
    }
    recurse(n + 1).wrapping_add(local[3])
}

impl Guest for Hostile {
    fn run(ctx: Context) -> Result<(), String> {
        match ctx.hook.as_str() {
            "infinite_loop" => {
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            }
            "memory_bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "deep_recursion" => {
                let n = recurse(0);
                Err(format!("recursion ended at {n}"))
            }
            "huge_query" => {
                // Ten thousand rows of one megabyte each: ten gigabytes.
                let rows = database::query(
                    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 10000)
                     SELECT i, zeroblob(1000000) FROM r",
                    &[],
                )
                .map_err(text)?;
                Err(format!("got {} rows", rows.rows.len()))
            }
            "huge_blob" => {
                let rows = database::query("SELECT zeroblob(2000000000)", &[]).map_err(text)?;
                Err(format!("got {} rows", rows.rows.len()))
            }
            "runaway_query" => {
                let rows = database::query(
                    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r)
                     SELECT count(*) FROM r",
                    &[],
                )
                .map_err(text)?;
                Err(format!("got {} rows", rows.rows.len()))
            }
            "read_undeclared" => {
                let rows = database::query("SELECT v FROM secret", &[]).map_err(text)?;
                Err(format!("read {} secret rows", rows.rows.len()))
            }
            "write_undeclared" => exec("UPDATE secret SET v = 'pwned'"),
            "delete_secret" => exec("DELETE FROM secret"),
            "attach" => exec("ATTACH DATABASE '/tmp/uplift-hostile.db' AS other"),
            "writable_schema" => exec("PRAGMA writable_schema = ON"),
            "commit" => {
                exec("DELETE FROM notes")?;
                exec("COMMIT")
            }
            "rollback" => exec("ROLLBACK"),
            "release" => {
                exec("DELETE FROM notes")?;
                exec("RELEASE uplift_hook")
            }
            "drop_core" => exec("DROP TABLE secret"),
            "write_uplift" => {
                exec("UPDATE uplift_meta SET value = '99.0' WHERE key = 'data_version'")
            }
            "read_schema" => {
                let rows = database::query("SELECT sql FROM sqlite_schema", &[]).map_err(text)?;
                Err(format!("read {} schema rows", rows.rows.len()))
            }
            "log_flood" => loop {
                log::log(
                    Level::Info,
                    "flooding the log with this line, again and again",
                );
            },
            "stdout_flood" => loop {
                println!("flooding stdout with this line, again and again");
            },
            "read_file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => {
                    exec("DELETE FROM notes")?;
                    Ok(println!("read {} bytes of /etc/passwd", text.len()))
                }
                Err(e) => Err(format!("could not read /etc/passwd: {e}")),
            },
            "panic" => {
                exec("DELETE FROM notes")?;
                panic!("the hostile plugin panics on purpose")
            }
            "write_then_fail" => {
                exec("DELETE FROM notes")?;
                exec("CREATE TABLE hostile_scratch(x)")?;
                Err("changed things, then failed on purpose".into())
            }
            "rename_out" => {
                exec("CREATE TABLE hostile_t(x)")?;
                exec("ALTER TABLE hostile_t RENAME TO users")
            }
            "create_trigger" => {
                exec("CREATE TABLE hostile_t(x)")?;
                exec(
                    "CREATE TRIGGER hostile_tr AFTER INSERT ON hostile_t BEGIN DELETE FROM secret; END",
                )
            }
            "ignore_refusal" => {
                let refused = database::query("SELECT v FROM secret", &[]).is_err();
                database::execute(
                    "INSERT INTO notes(body) VALUES (?)",
                    &[Value::Text(format!("secret refused: {refused}"))],
                )
                .map_err(text)?;
                Ok(())
            }
            "leak_statements" => {
                // Statements held forever, each in uplift's memory.
                for _ in 0..1_000_000 {
                    let stmt = database::prepare("SELECT body FROM notes").map_err(text)?;
                    std::mem::forget(stmt);
                }
                Err("a million statements were held open".into())
            }
            "alter_core" => exec("ALTER TABLE secret ADD COLUMN pwned TEXT"),
            // A "best effort" cache that fills an owned table until a write
            // fails (a full disk), swallows the failure and carries on with a
            // backfill of the application's table: if SQLite ended the
            // transaction on that failure, each later write would commit on
            // its own.
            "best_effort" => {
                exec("CREATE TABLE hostile_cache(x BLOB)")?;
                for _ in 0..100_000 {
                    if exec("INSERT INTO hostile_cache VALUES (zeroblob(262144))").is_err() {
                        break;
                    }
                }
                let _ = exec("DELETE FROM hostile_cache");
                for i in 0..5 {
                    let _ = database::execute(
                        "INSERT INTO notes(body) VALUES (?)",
                        &[Value::Text(format!("backfilled {i}"))],
                    );
                }
                Ok(())
            }
            // A table of the plugin's own, and everything it may then do to
            // it (in later hooks: ownership outlives the hook that created
            // it), or, under another plugin's manifest, may not.
            "create_owned" => {
                exec("CREATE TABLE hostile_kept(x INTEGER)")?;
                exec("INSERT INTO hostile_kept(x) VALUES (1)")
            }
            "read_owned" => {
                let rows = database::query("SELECT x FROM hostile_kept", &[]).map_err(text)?;
                log::log(
                    Level::Info,
                    &format!("hostile_kept has {} rows", rows.rows.len()),
                );
                Ok(())
            }
            "write_owned" => exec("INSERT INTO hostile_kept(x) VALUES (2)"),
            "alter_owned" => exec("ALTER TABLE hostile_kept ADD COLUMN y TEXT"),
            "rename_owned" => exec("ALTER TABLE hostile_kept RENAME TO hostile_moved"),
            "drop_owned" => exec("DROP TABLE hostile_kept"),
            "drop_moved" => exec("DROP TABLE hostile_moved"),
            // Runs the statements of the table `script` (id, sql, param), each
            // with `param` bound when it is not NULL, and logs what each
            // returned: how tests try SQL a hostile plugin could send.
            "script" => {
                let script = database::query("SELECT id, sql, param FROM script ORDER BY id", &[])
                    .map_err(text)?;
                for row in script.rows {
                    let (id, sql, param) = match &row[..] {
                        [Value::Integer(id), Value::Text(sql), param] => (*id, sql, param.clone()),
                        _ => return Err("script rows are (id, sql, param)".into()),
                    };
                    let params = match param {
                        Value::Null => vec![],
                        value => vec![value],
                    };
                    let line = match database::query(sql, &params) {
                        Ok(rows) => format!("#{id} ok: {:?}", rows.rows),
                        Err(e) => format!(
                            "#{id} error {} ({}): {}",
                            e.code, e.extended_code, e.message
                        ),
                    };
                    log::log(Level::Info, &line);
                }
                Ok(())
            }
            // Control characters in everything a plugin says: its log, its
            // stdout and stderr, its error.
            "spoof" => {
                log::log(
                    Level::Info,
                    "log\r[tidy/shout] forged\x1b[2K\x1b]52;c;cHduZWQ=\x07",
                );
                println!("stdout\x1b[1A\u{9b}2K\u{202e}");
                eprintln!("stderr\x1b]0;title\x1b\\\x08");
                Err("error\n[tidy/shout] forged\r\x1b[31m".into())
            }
            other => Err(format!("no hook {other}")),
        }
    }
}

export!(Hostile);

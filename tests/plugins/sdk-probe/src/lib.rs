//! Exercises uplift-hooks-sdk inside a real component, for the tests in
//! `tests/all/sdk.rs`: several hooks (dispatch), every database helper, the
//! log macros and `println!`. Each hook records what it saw in `probe_seen`,
//! a table it owns, so that the test can check it from the host side.

use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! {
    name: "sdk-probe",
    reads: ["facility"],
    writes: ["learner"],
    owns: "probe_",
}

fn record(ctx: &Context, what: &str) -> Result<()> {
    ctx.db()
        .execute_batch("CREATE TABLE IF NOT EXISTS probe_seen (hook TEXT, what TEXT)")?;
    ctx.db().execute(
        "INSERT INTO probe_seen (hook, what) VALUES (?, ?)",
        params![ctx.hook(), what],
    )?;
    Ok(())
}

#[version_upgrade(old_version = "<1.0.0", new_version = ">=1.0.0")]
fn first(ctx: &Context) -> Result<()> {
    info!(
        "first ran from {} to {}",
        ctx.old_version(),
        ctx.new_version()
    );
    record(ctx, &format!("dry_run={}", ctx.dry_run()))
}

/// Prepared inserts, then a cursor read in small batches.
#[version_upgrade(old_version = "*", new_version = "^1.0")]
fn second(ctx: &Context) -> Result<()> {
    let db = ctx.db();
    db.execute_batch("CREATE TABLE IF NOT EXISTS probe_numbers (n INTEGER, label TEXT)")?;
    let insert = db.prepare("INSERT INTO probe_numbers (n, label) VALUES (?1, ?2)")?;
    for n in 1..=1000i64 {
        let label = (n % 10 == 0).then(|| format!("n{n}"));
        insert.execute(params![n, label])?;
    }
    let mut sum = 0i64;
    let mut labelled = 0;
    for row in db
        .cursor("SELECT n, label FROM probe_numbers ORDER BY n", params![])?
        .batch_size(7)
        .rows::<(i64, Option<String>)>()
    {
        let (n, label) = row?;
        sum += n;
        labelled += usize::from(label.is_some());
    }
    let (count,): (i64,) = db.query_one("SELECT count(*) FROM probe_numbers", params![])?;
    record(ctx, &format!("sum={sum} labelled={labelled} count={count}"))?;

    // Many parameter lists in one call: 500 more rows, in batches of 128.
    let lists: Vec<Value> = (1001..=1500i64)
        .flat_map(|n| params![n, Option::<String>::None].to_vec())
        .collect();
    let mut added = 0;
    for batch in lists.chunks(2 * 128) {
        added += insert.execute_many(batch)?;
    }
    let (count,): (i64,) = db.query_one("SELECT count(*) FROM probe_numbers", params![])?;
    record(ctx, &format!("execute_many added={added} count={count}"))?;

    // A failing list: the ones before it stay, the error names it.
    db.execute_batch("CREATE TABLE probe_unique (n INTEGER UNIQUE)")?;
    let unique = db.prepare("INSERT INTO probe_unique (n) VALUES (?)")?;
    let Err(err) = unique.execute_many(params![1, 2, 2, 3]) else {
        bail!("a duplicate in a UNIQUE column was accepted");
    };
    let (kept,): (i64,) = db.query_one("SELECT count(*) FROM probe_unique", params![])?;
    let message = err.database().map(|e| (e.code, e.message.clone()));
    record(ctx, &format!("kept={kept} error={message:?}"))?;
    // A length that is not a multiple of the parameter count runs nothing.
    let Err(err) = insert.execute_many(params![1, "one", 2]) else {
        bail!("three values for two parameters were accepted");
    };
    let (count,): (i64,) = db.query_one("SELECT count(*) FROM probe_numbers", params![])?;
    let code = err.database().map(|e| e.code);
    record(ctx, &format!("count={count} code={code:?}"))
}

#[derive(FromRow)]
struct Facility {
    id: i64,
    #[column = "name"]
    title: String,
}

/// Structs, query_map, errors with SQLite's codes, println!.
#[version_upgrade(old_version = "<=0.9", new_version = ">=1.0.0, <2")]
fn third(ctx: &Context) -> Result<()> {
    let db = ctx.db();
    let facilities: Vec<Facility> =
        db.query("SELECT id, name FROM facility ORDER BY id", params![])?;
    let names = db.query_map("SELECT name FROM facility ORDER BY id", params![], |row| {
        row.get::<String>("name")
    })?;
    let first = facilities.first().map(|f| format!("{}:{}", f.id, f.title));
    record(
        ctx,
        &format!(
            "facilities={} first={first:?} names={names:?}",
            facilities.len()
        ),
    )?;

    let syntax = db.execute("SELEC nonsense", params![]).unwrap_err();
    let code = syntax.database().map(|e| e.code);
    record(ctx, &format!("syntax error code={code:?}"))?;

    let missing: Option<(i64,)> =
        db.query_opt("SELECT id FROM facility WHERE id = ?", params![-1])?;
    record(ctx, &format!("missing={missing:?}"))?;

    let null = db
        .query_one::<(i64,)>("SELECT NULL", params![])
        .unwrap_err();
    record(ctx, &format!("null into i64: {null}"))?;

    let statement = db.prepare("SELECT id AS facility_id, name FROM facility")?;
    record(ctx, &format!("columns={:?}", statement.columns()))?;

    println!("third says hello on stdout");
    warn!("a warning");
    Ok(())
}

#[version_upgrade(old_version = "0.0.1", new_version = "*")]
fn fails(_ctx: &Context) -> Result<()> {
    bail!("this hook always fails (on purpose)")
}

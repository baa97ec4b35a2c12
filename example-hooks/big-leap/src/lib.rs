//! The seed's big leap: a hook for installations that jump from before 0.6.4
//! straight to 1.0.0 or later. It warns the operator and records the leap in
//! a table of its own.

use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! {
    name: "big-leap",
    version: "1.0.0",
    reads: ["facility"],
    owns: "bigleap_",
}

#[version_upgrade(old_version = "<0.6.4", new_version = ">=1.0.0")]
fn big_leap_upgrade(ctx: &Context) -> Result<()> {
    warn!("You've just upgraded from a very old version to a very new version!");
    let db = ctx.db();
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS bigleap_log (
             id INTEGER PRIMARY KEY,
             old_version TEXT NOT NULL,
             new_version TEXT NOT NULL,
             facilities INTEGER NOT NULL
         )",
    )?;
    let (facilities,): (i64,) = db.query_one("SELECT count(*) FROM facility", params![])?;
    db.execute(
        "INSERT INTO bigleap_log (old_version, new_version, facilities) VALUES (?, ?, ?)",
        params![ctx.old_version(), ctx.new_version(), facilities],
    )?;
    info!(
        "recorded the leap from {} to {} ({facilities} facilities)",
        ctx.old_version(),
        ctx.new_version()
    );
    Ok(())
}

//! __NAME__: an uplift plugin. Each `#[version_upgrade]` function is a hook
//! that runs, inside uplift's upgrade transaction, when the data version
//! before the upgrade matches `old_version` and the release being installed
//! matches `new_version`.
//!
//! `plugin!` declares what the hooks may touch: `reads: [...]` and
//! `writes: [...]` name the application's tables; `owns` is a prefix of the
//! tables the plugin creates and keeps for itself.

use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! {
    name: "__NAME__",
    version: "0.1.0",
    owns: "__PREFIX__",
}

/// Records every upgrade to 1.0.0 or later in a table the plugin owns.
#[version_upgrade(old_version = "<1.0.0", new_version = ">=1.0.0")]
fn record_upgrade(ctx: &Context) -> Result<()> {
    let db = ctx.db();
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS __PREFIX__upgrades (
             id INTEGER PRIMARY KEY,
             old_version TEXT NOT NULL,
             new_version TEXT NOT NULL
         )",
    )?;
    db.execute(
        "INSERT INTO __PREFIX__upgrades (old_version, new_version) VALUES (?, ?)",
        params![ctx.old_version(), ctx.new_version()],
    )?;
    info!(
        "recorded the upgrade from {} to {}",
        ctx.old_version(),
        ctx.new_version()
    );
    Ok(())
}

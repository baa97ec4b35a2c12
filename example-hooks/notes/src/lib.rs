//! notes: a note for every learner, in a table the plugin owns; a plugin
//! with a life of its own, released in two versions from this one source.
//!
//! - notes 1.0.0 (crate `notes-v1`, feature `v1`) ships in learnhub 0.6.4;
//! - notes 2.0.0 (crate `notes`) ships in learnhub 1.0.0, and gives each note
//!   a `pinned` flag.
//!
//! Its hooks are selected by the plugin's own version, not the
//! application's: `create_notes` runs on the plugin's first activation (no
//! `plugin_old_version`) and on every later upgrade, and `add_pinned` runs
//! once, when data that notes 1 left meets notes 2. A fresh activation of
//! notes 2 and an upgrade from notes 1 end with the same table.

use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! {
    name: "notes",
    reads: ["learner"],
    owns: "notes_",
}

/// The notes table as this version of the plugin creates it.
#[cfg(feature = "v1")]
const NOTES_TABLE: &str = "CREATE TABLE IF NOT EXISTS notes_note (
     id         INTEGER PRIMARY KEY,
     learner_id INTEGER NOT NULL,
     body       TEXT NOT NULL
 )";

/// The notes table as this version of the plugin creates it.
#[cfg(not(feature = "v1"))]
const NOTES_TABLE: &str = "CREATE TABLE IF NOT EXISTS notes_note (
     id         INTEGER PRIMARY KEY,
     learner_id INTEGER NOT NULL,
     body       TEXT NOT NULL,
     pinned     INTEGER NOT NULL DEFAULT 0
 )";

/// On the plugin's first activation, and harmlessly on every later upgrade:
/// the table, and a welcome note for each learner who has none.
#[version_upgrade(plugin_new_version = "*")]
fn create_notes(ctx: &Context) -> Result<()> {
    ctx.db().execute_batch(NOTES_TABLE)?;
    let welcomed = ctx.db().execute(
        "INSERT INTO notes_note (learner_id, body)
         SELECT id, 'Welcome!' FROM learner
          WHERE id NOT IN (SELECT learner_id FROM notes_note)",
        params![],
    )?;
    info!(
        "notes {}: notes_note is ready; {welcomed} learners welcomed",
        ctx.plugin_version()
    );
    Ok(())
}

/// Once, when data that notes 1 left meets notes 2 (never on a first
/// activation, whose table `create_notes` makes with the column).
#[cfg(not(feature = "v1"))]
#[version_upgrade(plugin_old_version = "<2.0.0", plugin_new_version = ">=2.0.0")]
fn add_pinned(ctx: &Context) -> Result<()> {
    ctx.db()
        .execute_batch("ALTER TABLE notes_note ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")?;
    info!("notes_note gained its pinned column");
    Ok(())
}

//! A plugin with tables of its own: it owns every table whose name starts
//! with `badges_`. One hook creates them (on any upgrade to 0.2.0 or later,
//! and again harmlessly afterwards); another, declared after it and so run
//! after it, awards the "first lesson" badge to every learner with progress
//! when the application reaches 1.0.0.

use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! {
    name: "badges",
    version: "1.0.0",
    reads: ["learner", "progress"],
    owns: "badges_",
}

#[version_upgrade(old_version = "*", new_version = ">=0.2.0")]
fn create_tables(ctx: &Context) -> Result<()> {
    ctx.db().execute_batch(
        "CREATE TABLE IF NOT EXISTS badges_award (
             learner_id INTEGER NOT NULL,
             badge      TEXT NOT NULL,
             awarded_in TEXT NOT NULL,
             PRIMARY KEY (learner_id, badge)
         )",
    )?;
    debug!("badges_award is ready");
    Ok(())
}

// Runs after `create_tables`, which is declared first, so its table exists.
#[version_upgrade(old_version = "<1.0.0", new_version = ">=1.0.0")]
fn first_lesson(ctx: &Context) -> Result<()> {
    let awarded = ctx.db().execute(
        "INSERT OR IGNORE INTO badges_award (learner_id, badge, awarded_in)
         SELECT learner.id, 'first-lesson', ?
           FROM learner
          WHERE EXISTS (SELECT 1 FROM progress WHERE progress.learner_id = learner.id)",
        params![ctx.new_version()],
    )?;
    info!("awarded the first-lesson badge to {awarded} learners");
    Ok(())
}

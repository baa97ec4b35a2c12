//! A hook selected by its plugin's own versions, alone or with the
//! application's.
use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! { name: "notes", version: "2.0.0", owns: "notes_" }

#[version_upgrade(plugin_new_version = "*")]
fn create_notes(_ctx: &Context) -> Result<()> {
    Ok(())
}

#[version_upgrade(plugin_old_version = "<2.0.0", plugin_new_version = ">=2.0.0")]
fn add_pinned(_ctx: &Context) -> Result<()> {
    Ok(())
}

#[version_upgrade(old_version = "*", new_version = ">=1.0.0", plugin_old_version = "^1")]
fn both(_ctx: &Context) -> Result<()> {
    Ok(())
}

fn main() {}

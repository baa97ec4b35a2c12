use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! { name: "p", version: "2.0.0" }

#[version_upgrade(plugin_old_version = "<<2.0")]
fn hook(_ctx: &Context) -> Result<()> {
    Ok(())
}

fn main() {}

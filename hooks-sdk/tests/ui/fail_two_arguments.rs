use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! { name: "p", version: "1.0.0" }

#[version_upgrade(old_version = "<0.6.4", new_version = ">=1.0.0")]
fn hook(_ctx: &Context, _extra: i32) -> Result<()> {
    Ok(())
}

fn main() {}

use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! { name: "p", version: "1.0.0" }

#[version_upgrade()]
fn hook(_ctx: &Context) -> Result<()> {
    Ok(())
}

fn main() {}

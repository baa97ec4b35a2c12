use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! {
    name: "big-leap",
    version: "1.0.0",
    reads: ["facility"],
    writes: ["facility"],
    owns: "bigleap_",
}

#[version_upgrade(old_version = "<0.6.4", new_version = ">=1.0.0")]
fn big_leap_upgrade(_ctx: &Context) -> Result<()> {
    Ok(())
}

#[version_upgrade(old_version = ">=0.14.0, <0.16.0 || ^2.1", new_version = "1.2.*")]
fn another(_ctx: &Context) -> Result<()> {
    Ok(())
}

fn main() {}

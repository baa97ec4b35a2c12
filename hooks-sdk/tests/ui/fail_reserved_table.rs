uplift_hooks_sdk::plugin! {
    name: "p",
    version: "1.0.0",
    writes: ["uplift_meta"],
}

fn main() {}

uplift_hooks_sdk::plugin! {
    version: "1.0.0",
    reads: ["facility"],
}

fn main() {}

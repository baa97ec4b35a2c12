uplift_hooks_sdk::plugin! {
    name: "p",
    version: "one",
}

fn main() {}

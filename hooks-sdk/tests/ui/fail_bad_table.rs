uplift_hooks_sdk::plugin! {
    name: "p",
    version: "1.0.0",
    reads: ["facility", "learner-list"],
}

fn main() {}

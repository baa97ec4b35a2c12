uplift_hooks_sdk::plugin! {
    name: "p",
    read: ["facility"],
}

fn main() {}

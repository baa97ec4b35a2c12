uplift_hooks_sdk::plugin! {
    name: "Big Leap",
    version: "1.0.0",
}

fn main() {}

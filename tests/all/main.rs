//! uplift's integration tests: one binary, one module per capability.
//!
//! Tests that need the example or hostile plugin components or the `sqlite3`
//! CLI expect `scripts/test` to have built or installed them first.

mod backup;
mod crash;
mod example_app;
mod foreign_keys;
mod hooks;
mod nothing_lost;
mod packaging;
mod sdk;
mod support;
mod tools;
mod upgrade;
mod version;

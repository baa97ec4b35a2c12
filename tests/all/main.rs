//! uplift's integration tests: one binary, one module per capability.
//!
//! Tests that need the example or hostile plugin components or the `sqlite3`
//! CLI expect `scripts/test` to have built or installed them first; those of
//! `postgres` need PostgreSQL's server programs (`scripts/setup` installs
//! them) and start a throwaway cluster of their own.

mod adopt;
mod backup;
mod cli;
mod crash;
mod example_app;
mod faults;
mod foreign_keys;
mod hooks;
mod io_errors;
mod json;
mod limits;
mod multi_db;
mod nothing_lost;
mod packaging;
mod plugin_versions;
mod postgres;
mod power_loss;
mod sdk;
mod support;
mod tools;
mod upgrade;
mod version;

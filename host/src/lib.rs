//! uplift: upgrades an application's SQLite database when a new release is
//! installed — backup, migrations, sandboxed WebAssembly upgrade hooks and the
//! new data version, all in one transaction.
//!
//! The `uplift` binary (`src/main.rs` and its `cli` module, behind the
//! default `cli` feature) is a thin layer over this library, which knows
//! nothing of the terminal.

pub mod backup;
mod disk;
mod engine;
mod errors;
pub mod home;
pub mod hook_test;
pub mod hooks;
pub mod migrations;
mod names;
pub mod paths;
pub mod release;
mod transaction;
pub mod upgrade;

pub use engine::{EngineError, ForeignKeyViolation, MetaError};
pub use upgrade::error::UpgradeError;
pub use uplift_contract::version;

/// uplift's internals, for its own integration tests and benchmarks: not
/// part of the API, and not stable.
#[doc(hidden)]
pub mod internals {
    pub use crate::engine::sqlite::{changes, meta, migration};
}

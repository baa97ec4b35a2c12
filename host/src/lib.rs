//! uplift: upgrades an application's SQLite database when a new release is
//! installed — backup, migrations, sandboxed WebAssembly upgrade hooks and the
//! new data version, all in one transaction.
//!
//! The `uplift` binary (`src/main.rs` and its `cli` module, behind the
//! default `cli` feature) is a thin layer over this library, which knows
//! nothing of the terminal.

pub mod backup;
pub mod disk;
pub mod home;
pub mod hooks;
pub mod meta;
pub mod migrate;
pub mod paths;
pub mod release;
mod transaction;
pub mod upgrade;
pub mod written;

pub use uplift_contract::version;

//! uplift: upgrades an application's SQLite database when a new release is
//! installed — backup, migrations, sandboxed WebAssembly upgrade hooks and the
//! new data version, all in one transaction.
//!
//! The binary (`src/main.rs` over [`cli`]) is a thin layer over this library;
//! nothing else knows about the terminal.

pub mod backup;
pub mod cli;
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

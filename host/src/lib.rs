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
pub mod history;
pub mod home;
pub mod hook_test;
pub mod hooks;
pub mod migrations;
mod names;
pub mod release;
pub mod schema;
mod transaction;
pub mod upgrade;
pub mod upgrade_paths;

pub use engine::sqlite::version as sqlite_version;
pub use engine::{Cell, EngineError, ForeignKeyViolation, MetaError};
pub use errors::chain_text as error_text;
pub use upgrade::error::UpgradeError;
pub use uplift_contract::version;

/// uplift's internals, for its own integration tests and benchmarks: not
/// part of the API, and not stable.
#[doc(hidden)]
pub mod internals {
    pub use crate::engine::sqlite::{changes, meta, migration};

    /// Runs a hook on a SQLite connection the way an upgrade does (its own
    /// savepoint, the authorizer, the limits), outside any upgrade.
    pub trait RunOnConnection: AsMut<crate::hooks::HookRunner> {
        /// Runs `hook` on `conn` in its own savepoint and sandbox.
        fn run(
            &mut self,
            conn: &mut rusqlite::Connection,
            hook: &crate::hooks::PlannedHook,
            ctx: &crate::hooks::HookContext,
            log: std::sync::Arc<dyn crate::hooks::LogSink>,
        ) -> Result<crate::hooks::HookOutcome, crate::hooks::HookError> {
            crate::engine::sqlite::hook_run::run_hook(self.as_mut(), conn, None, hook, ctx, log)
        }
    }

    impl RunOnConnection for crate::hooks::HookRunner {}

    impl AsMut<crate::hooks::HookRunner> for crate::hooks::HookRunner {
        fn as_mut(&mut self) -> &mut crate::hooks::HookRunner {
            self
        }
    }
}

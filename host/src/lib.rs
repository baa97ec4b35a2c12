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

pub use engine::postgres::PgError;
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

    /// The statements of a migration the PostgreSQL engine refuses before
    /// an upgrade starts (line, leading keywords), for the tests that check
    /// them against a real server.
    pub fn postgres_refusals(sql: &str) -> Vec<(usize, String)> {
        crate::engine::postgres::statements::refusals(sql)
            .into_iter()
            .map(|r| (r.line, r.statement))
            .collect()
    }

    /// What [`crate::release::Release::load`] makes of a `release.toml`
    /// holding `text`, for a release folder called `release`.
    pub fn release_from_toml(
        text: &str,
    ) -> Result<crate::release::Release, crate::release::ReleaseError> {
        crate::release::Release::from_toml(std::path::Path::new("release"), text)
    }

    /// What [`crate::home::Home::settings`] makes of an `uplift.toml`
    /// holding `text`.
    pub fn settings_from_toml(text: &str) -> Result<crate::home::Settings, crate::home::HomeError> {
        crate::home::Settings::from_toml(std::path::Path::new("uplift.toml"), text)
    }

    /// What [`crate::hooks::PluginsToml::load`] makes of a `plugins.toml`
    /// holding `text`.
    pub fn plugins_from_toml(
        text: &str,
    ) -> Result<crate::hooks::PluginsToml, crate::hooks::HookError> {
        crate::hooks::PluginsToml::from_toml(std::path::Path::new("plugins.toml"), text)
    }

    /// One statement of a dump as the restore reads it, before anything
    /// runs: see [`read_dump`].
    #[derive(Debug, Clone, PartialEq)]
    pub struct DumpStatement {
        /// The line it starts on.
        pub line: u64,
        /// Its text, from its first token to its `;`.
        pub text: Vec<u8>,
        /// For an `INSERT` the restore binds instead of handing it to
        /// SQLite: the statement it prepares (`INSERT INTO t(cols)`, before
        /// ` VALUES(?,...)`), the table as written, and the values.
        pub insert: Option<(Vec<u8>, Vec<u8>, Vec<DumpValue>)>,
    }

    /// A literal value of a dump's `INSERT`, as the restore binds it.
    #[derive(Debug, Clone, PartialEq)]
    pub enum DumpValue {
        /// `NULL`.
        Null,
        /// An integer.
        Integer(i64),
        /// A float.
        Real(f64),
        /// Text (its bytes: a dump may hold text that is not UTF-8).
        Text(Vec<u8>),
        /// A blob.
        Blob(Vec<u8>),
    }

    /// Reads the dump text `dump` as the restore does before anything
    /// runs: split into statements (a `BufReader` of `buffer` bytes, so
    /// that statements straddle refills), each `INSERT` the fast path
    /// understands parsed into the values it binds. Fails as the restore
    /// does on text that ends inside a statement, or a statement longer
    /// than `max_statement_bytes`.
    pub fn read_dump(
        dump: &[u8],
        buffer: usize,
        max_statement_bytes: usize,
    ) -> Result<Vec<DumpStatement>, crate::backup::SplitError> {
        use crate::engine::sqlite::backup::sqlparse::{
            Bytes, Literal, StatementReader, parse_insert,
        };
        let reader = std::io::BufReader::with_capacity(buffer.max(1), dump);
        let mut statements = StatementReader::new(reader, max_statement_bytes);
        let (mut values, mut scratch, mut out) = (Vec::new(), Vec::new(), Vec::new());
        while let Some((line, stmt)) = statements.next_statement()? {
            let insert = parse_insert(stmt, &mut values, &mut scratch).map(|parsed| {
                let bytes = |b: Bytes| match b {
                    Bytes::Stmt(a, e) => stmt[a..e].to_vec(),
                    Bytes::Scratch(a, e) => scratch[a..e].to_vec(),
                };
                let values = values.iter().map(|value| match *value {
                    Literal::Null => DumpValue::Null,
                    Literal::Integer(n) => DumpValue::Integer(n),
                    Literal::Real(f) => DumpValue::Real(f),
                    Literal::Text(b) => DumpValue::Text(bytes(b)),
                    Literal::Blob(b) => DumpValue::Blob(bytes(b)),
                });
                (
                    stmt[..parsed.head_end].to_vec(),
                    stmt[parsed.target.0..parsed.target.1].to_vec(),
                    values.collect(),
                )
            });
            out.push(DumpStatement {
                line,
                text: stmt.to_vec(),
                insert,
            });
        }
        Ok(out)
    }

    impl AsMut<crate::hooks::HookRunner> for crate::hooks::HookRunner {
        fn as_mut(&mut self) -> &mut crate::hooks::HookRunner {
            self
        }
    }
}

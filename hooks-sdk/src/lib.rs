//! Write uplift upgrade hooks in Rust.
//!
//! A plugin is a `cdylib` crate built with `cargo build --target
//! wasm32-wasip2 --release`; the result is a WebAssembly component of the
//! `uplift:hooks` world with its manifest embedded, ready for `uplift hooks
//! validate` and for a release's `plugins/` folder. No other tool is needed.
//!
//! ```ignore
//! use uplift_hooks_sdk::prelude::*;
//!
//! uplift_hooks_sdk::plugin! {
//!     name: "big-leap",
//!     version: "1.0.0",
//!     reads: ["facility"],
//!     owns: "bigleap_",
//! }
//!
//! #[version_upgrade(old_version = "<0.6.4", new_version = ">=1.0.0")]
//! fn big_leap_upgrade(ctx: &Context) -> Result<()> {
//!     warn!("upgrading from {} to {}", ctx.old_version(), ctx.new_version());
//!     let (facilities,): (i64,) = ctx.db().query_one("SELECT count(*) FROM facility", params![])?;
//!     info!("{facilities} facilities");
//!     Ok(())
//! }
//! ```
//!
//! # The pieces
//!
//! - [`plugin!`] (once, at the crate root) declares the plugin's name,
//!   version and capabilities: the tables it `reads`, the tables it `writes`
//!   and the table-name prefix it `owns`. Names are checked at compile time.
//! - [`version_upgrade`] marks each hook. Both ranges are checked at compile
//!   time with uplift's own grammar; a bad one is a compile error pointing at
//!   it. The hook's name in the manifest is the function's name.
//!   A hook can also be selected by its plugin's own version (see "Plugin
//!   versions" below).
//! - [`Context`] tells the hook where it runs (old and new version, dry run)
//!   and gives the [`Database`].
//! - [`Database`] runs SQL inside the upgrade's transaction: [`params!`],
//!   rows read into tuples or [`FromRow`] structs, prepared [`Statement`]s,
//!   [`Cursor`]s that stream large results. Every failure is an [`Error`]
//!   carrying SQLite's code and message ([`DbError`]).
//! - [`trace!`], [`debug!`], [`info!`], [`warn!`] and [`error!`] write to the
//!   upgrade's log; `println!` and `eprintln!` are captured there too.
//!
//! A hook that returns `Err` stops the upgrade, which is rolled back; the
//! error's text is shown to the operator. A panic stops it too (the message
//! is logged first).
//!
//! # Plugin versions
//!
//! A plugin has a version of its own (`plugin!`'s `version`), and the data
//! records the version each plugin was last upgraded with. A hook that
//! names `plugin_old_version` (matched against that recorded version) or
//! `plugin_new_version` (matched against the installed plugin's) is a
//! *plugin hook*: it also runs when only the plugin changed, that is when
//! the operator enables it, drops a newer component into the home's
//! `plugins/`, or a release ships a newer one, and on a fresh install. The
//! application's ranges may then be left out (any version; in an upgrade of
//! plugins alone the application's version is old == new).
//!
//! ```ignore
//! // The plugin's first activation, and every later step: no
//! // `plugin_old_version` matches "no version recorded yet" too. Write it to
//! // be idempotent, it runs again on later upgrades.
//! #[version_upgrade(plugin_new_version = "*")]
//! fn create_tables(ctx: &Context) -> Result<()> {
//!     ctx.db().execute_batch("CREATE TABLE IF NOT EXISTS notes_note (id INTEGER PRIMARY KEY, body TEXT NOT NULL, pinned INTEGER NOT NULL DEFAULT 0)")
//! }
//!
//! // Data that version 1 of the plugin left: a `plugin_old_version` never
//! // matches a first activation (nothing to convert then).
//! #[version_upgrade(plugin_old_version = "<2.0.0", plugin_new_version = ">=2.0.0")]
//! fn add_pinned(ctx: &Context) -> Result<()> {
//!     ctx.db().execute_batch("ALTER TABLE notes_note ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
//! }
//! ```
//!
//! A hook with no plugin range is an *application hook*: it runs only when
//! the application's version moves, whatever the plugin's version. An older
//! plugin than the data has seen is refused, as an application downgrade
//! is; a disabled plugin keeps its tables and record, and continues from the
//! recorded version when it is enabled again.

mod context;
mod db;
mod error;
#[doc(hidden)]
pub mod log;
mod row;

#[doc(hidden)]
pub mod __private;

/// The bindings wit-bindgen generates for the `uplift:hooks` world. The SDK's
/// types wrap them; reach for them only for something the SDK does not offer.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "upgrade-hook",
        pub_export_macro: true,
        default_bindings_module: "uplift_hooks_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

pub use context::Context;
pub use db::{Cursor, DEFAULT_BATCH, Database, Statement, TypedRows};
pub use error::{ConversionError, DbError, Error, Result};
pub use log::Level;
pub use row::{FromRow, FromSql, Row, RowIndex, ToSql, Value};
pub use uplift_contract::{Version, VersionError, VersionRange};
pub use uplift_hooks_sdk_macros::{FromRow, plugin, version_upgrade};

/// Everything a hook usually needs: `use uplift_hooks_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Context, Cursor, Database, Error, FromRow, FromSql, Result, Row, Statement, ToSql, Value,
        Version, bail, debug, error, info, params, trace, version_upgrade, warn,
    };
}

/// Builds the parameters of a statement, bound in order to its `?`
/// placeholders: `params![name, 42, None::<i64>]`. Anything that implements
/// [`ToSql`] can be a parameter; `params![]` is no parameter.
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[$crate::Value]
    };
    ($($value:expr),+ $(,)?) => {
        &[$($crate::ToSql::to_value(&$value)),+] as &[$crate::Value]
    };
}

/// Returns early from a hook with an error made from a format string:
/// `bail!("facility {id} has no name")`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::Error::msg(::std::format!($($arg)+)))
    };
}

/// Writes a line at level `trace` to the upgrade's log (`format!` syntax).
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::write($crate::Level::Trace, &::std::format!($($arg)+)) };
}

/// Writes a line at level `debug` to the upgrade's log (`format!` syntax).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::write($crate::Level::Debug, &::std::format!($($arg)+)) };
}

/// Writes a line at level `info` to the upgrade's log (`format!` syntax).
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::write($crate::Level::Info, &::std::format!($($arg)+)) };
}

/// Writes a line at level `warn` to the upgrade's log (`format!` syntax).
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::write($crate::Level::Warn, &::std::format!($($arg)+)) };
}

/// Writes a line at level `error` to the upgrade's log (`format!` syntax).
/// It does not stop the hook: return an `Err` for that.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::write($crate::Level::Error, &::std::format!($($arg)+)) };
}

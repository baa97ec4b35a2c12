//! [`Context`]: where in the upgrade a hook runs, and its database.

use crate::bindings::exports::uplift::hooks::hooks::Context as WitContext;
use crate::db::Database;

static DATABASE: DatabaseCell = DatabaseCell(Database::new());

/// `Database` is deliberately not `Sync` (its handles belong to the one
/// thread a component has); this wrapper lets one live in a static.
struct DatabaseCell(Database);

// SAFETY: a WebAssembly component instance has exactly one thread, and
// `Database` holds no data (it only names the imported functions).
unsafe impl Sync for DatabaseCell {}

/// What the host tells a hook about the upgrade it is part of, and the way to
/// its database.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    inner: WitContext,
}

impl Context {
    /// A context from the host's record.
    #[doc(hidden)]
    pub fn from_wit(inner: WitContext) -> Context {
        Context { inner }
    }

    /// The database, limited to what the plugin's manifest declares.
    pub fn db(&self) -> &Database {
        &DATABASE.0
    }

    /// The application's name (from its `release.toml`).
    pub fn app(&self) -> &str {
        &self.inner.app
    }

    /// This plugin's name, as in its manifest.
    pub fn plugin(&self) -> &str {
        &self.inner.plugin
    }

    /// This plugin's version, as in its manifest.
    pub fn plugin_version(&self) -> &str {
        &self.inner.plugin_version
    }

    /// The hook being run (the function's name).
    pub fn hook(&self) -> &str {
        &self.inner.hook
    }

    /// The data version before the upgrade, as written (`0.6.3`).
    pub fn old_version(&self) -> &str {
        &self.inner.old_version
    }

    /// The release version the data is being upgraded to (`1.0.0`).
    pub fn new_version(&self) -> &str {
        &self.inner.new_version
    }

    /// True when nothing this run does will be kept (`uplift hooks test`).
    /// Hooks should behave exactly the same either way; this is for messages.
    pub fn dry_run(&self) -> bool {
        self.inner.dry_run
    }
}

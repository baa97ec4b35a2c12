//! What the macros' generated code calls. Not part of the API: it may change
//! in any release.

use std::sync::Once;

use crate::bindings::exports::uplift::hooks::hooks::{Context as WitContext, Guest};
use crate::{Context, Level, Result};

pub use inventory;

/// One `#[version_upgrade]` function, registered for dispatch.
pub struct Hook {
    /// The function's name, which is the hook's name in the manifest.
    pub name: &'static str,
    /// Its `old_version` range, as written (`*` when not given).
    pub old_version: &'static str,
    /// Its `new_version` range, as written (`*` when not given).
    pub new_version: &'static str,
    /// Its `plugin_old_version` range, as written, if given.
    pub plugin_old_version: Option<&'static str>,
    /// Its `plugin_new_version` range, as written, if given.
    pub plugin_new_version: Option<&'static str>,
    /// The function.
    pub run: fn(&Context) -> Result<()>,
}

inventory::collect!(Hook);

/// Every registered hook, in no particular order.
pub fn hooks() -> impl Iterator<Item = &'static Hook> {
    inventory::iter::<Hook>.into_iter()
}

/// Runs the hook named `ctx.hook`.
///
/// Fails with the hook's own error (as text, with its causes), or when the
/// plugin has no hook of that name (listing the ones it has).
pub fn dispatch(ctx: Context) -> std::result::Result<(), String> {
    static PANIC_HOOK: Once = Once::new();
    PANIC_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            crate::log::write(Level::Error, &format!("hook panicked: {info}"));
            default(info);
        }));
    });
    let Some(hook) = hooks().find(|h| h.name == ctx.hook()) else {
        let mut known: Vec<&str> = hooks().map(|h| h.name).collect();
        known.sort_unstable();
        return Err(format!(
            "plugin {:?} has no hook named {:?} (it has: {})",
            ctx.plugin(),
            ctx.hook(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    (hook.run)(&ctx).map_err(|e| e.to_string())
}

/// The type `plugin!` exports as the component's `hooks` interface.
pub struct Dispatcher;

impl Guest for Dispatcher {
    fn run(ctx: WitContext) -> std::result::Result<(), String> {
        dispatch(Context::from_wit(ctx))
    }
}

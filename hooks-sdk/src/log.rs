//! The upgrade's log, through the `uplift:hooks/log` interface. Use the
//! macros [`trace!`](crate::trace) to [`error!`](crate::error).

/// How much a log line matters: `Trace`, `Debug`, `Info`, `Warn`, `Error`.
pub use crate::bindings::uplift::hooks::log::Level;

/// Writes `message` to the upgrade's log at `level`; the host prefixes it
/// with the plugin and hook.
pub fn write(level: Level, message: &str) {
    crate::bindings::uplift::hooks::log::log(level, message);
}

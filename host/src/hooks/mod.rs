//! Plugin upgrade hooks: WebAssembly components of the world `upgrade-hook`
//! (`wit/hooks.wit`) run in a sandbox with exactly the database access their
//! manifest declares.
//!
//! - [`manifest`]: the `uplift:manifest` custom section, read without running
//!   anything; `embed-manifest`.
//! - [`plugins`]: finding plugins in the release and the home, which are
//!   active (`plugins.toml`), and the deterministic plan of hooks to run.
//! - [`lifecycle`]: plugins' own versions, recorded in the data against the
//!   installed ones (first activation, upgrade, downgrade).
//! - [`runtime`]: the engine, the compile cache and [`HookRunner`], which runs
//!   one hook in its own store, savepoint and limits.
//! - [`authorizer`]: SQLite's authorizer enforcing a manifest's capabilities.
//! - [`validate`]: the checks of `uplift hooks validate`, for CI.
//! - [`scaffold`]: `uplift hooks new`, a new plugin in Rust or Python.
//! - `uplift hooks test` ([`crate::hook_test`]): a plugin's hooks run on a copy of a
//!   database, with the rows they change.
//!
//! Store data must be `'static`, so [`HookRunner::run`] takes the upgrade's
//! connection out of the caller's `&mut Connection` for the duration of the
//! hook (leaving an empty in-memory connection in its place) and always puts
//! it back before returning, whatever the outcome.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub(crate) mod bindings;
pub(crate) mod bounds;
pub(crate) mod capability;
pub(crate) mod clocks;
pub(crate) mod database;
pub(crate) mod handles;
pub mod lifecycle;
pub(crate) mod log;
pub mod manifest;
pub mod plugins;
mod runtime;
pub(crate) mod sandbox;
pub mod scaffold;
pub mod validate;

pub use crate::engine::sqlite::authorizer::HIDDEN;
pub use crate::engine::sqlite::limits::install_sqlite_allocator;
pub use bounds::supervise_whole_process;
pub use lifecycle::{ChangeKind, PluginChange, PluginChanges, RecordedPlugin};
pub use manifest::{Capabilities, HookManifest, HookSpec, ManifestError, PluginStep};
pub use plugins::{PlanScope, PlannedHook, Plugin, PluginOrigin, PluginSet, PluginsToml};
pub use runtime::{
    CacheOutcome, CompileCache, CompileRun, HookContext, HookOutcome, HookRunner, LoadReport,
};

/// `text` that came from a plugin, made safe to show on the operator's
/// terminal: every control character (C0 including CR, LF and TAB, DEL, the
/// C1 controls such as the 8-bit CSI), the Unicode bidirectional overrides
/// and isolates and the line and paragraph separators are written as
/// `\xNN` or `\u{NNNN}`, and `\` as `\\`. So a log line, the guest's stdout
/// and stderr, a hook's error or a table name can neither move the cursor,
/// erase or recolour the `[plugin/hook]` prefix, start a line of its own,
/// reverse the text's direction, nor send a terminal escape (OSC 52 sets
/// the clipboard). The escaping is reversible (`\` is escaped too), so two
/// different texts never look the same. Borrowed when nothing needs it.
pub fn escape_untrusted(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || is_unsafe_char(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether a terminal could act on `c` rather than show it (see
/// [`escape_untrusted`]).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' // direction marks
            | '\u{202a}'..='\u{202e}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{2028}' | '\u{2029}') // line and paragraph separators
}

/// A limit of the sandbox that a hook hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The wall-clock time limit (`[hooks] timeout_seconds`).
    Time {
        /// The limit, in seconds.
        seconds: u64,
    },
    /// The memory limit (`[hooks] memory_mib`).
    Memory {
        /// The limit, in MiB.
        mib: u64,
    },
    /// The cap on the bytes one database call may return (`[hooks] max_reply_mib`).
    Reply {
        /// The cap, in MiB.
        mib: u64,
    },
    /// SQLite's length limit on one string or blob, which follows the reply
    /// cap (`[hooks] max_reply_mib`): hit by SQL that builds a long value,
    /// whatever it returns.
    Length {
        /// The length limit, in MiB.
        mib: u64,
    },
    /// The cap on log output, including stdout and stderr (`[hooks] max_log_kib`).
    Log {
        /// The cap, in KiB.
        kib: u64,
    },
    /// The cap on prepared statements and cursors held open at once, which
    /// live in uplift's memory rather than the hook's.
    Handles {
        /// How many may be open at once.
        max: usize,
    },
    /// The memory SQLite may use for the hook's statements
    /// (`[hooks] database_memory_mib`).
    DatabaseMemory {
        /// The limit, in MiB.
        mib: u64,
    },
    /// How much the hook may make the database, its journal and SQLite's
    /// temporary files grow (`[hooks] disk_mib`).
    Disk {
        /// How much they may grow, in MiB.
        mib: u64,
    },
    /// How much the hook may make uplift's resident memory grow
    /// ([`crate::home::HookLimits::process_memory_mib`]), caught by the
    /// watchdog when no precise limit did.
    ProcessMemory {
        /// How much it may grow, in MiB.
        mib: u64,
    },
    /// The time compiling a plugin's component may take
    /// (`[hooks] compile_seconds`).
    Compile {
        /// The limit, in seconds.
        seconds: u64,
    },
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Time { seconds } => write!(
                f,
                "time limit: ran longer than {seconds} s (raise [hooks] timeout_seconds in uplift.toml if the hook needs it)"
            ),
            Limit::Memory { mib } => write!(
                f,
                "memory limit: tried to grow its memory beyond {mib} MiB ([hooks] memory_mib in uplift.toml)"
            ),
            Limit::Reply { mib } => write!(
                f,
                "reply limit: one database call would return more than {mib} MiB (use a cursor; [hooks] max_reply_mib in uplift.toml)"
            ),
            Limit::Length { mib } => write!(
                f,
                "length limit: SQL built a string or blob longer than {mib} MiB (SQLite's length limit, which follows [hooks] max_reply_mib in uplift.toml)"
            ),
            Limit::Log { kib } => write!(
                f,
                "log limit: wrote more than {kib} KiB of log, stdout and stderr ([hooks] max_log_kib in uplift.toml)"
            ),
            Limit::Handles { max } => write!(
                f,
                "statement limit: held more than {max} prepared statements and cursors open at once (drop the ones it no longer needs)"
            ),
            Limit::DatabaseMemory { mib } => write!(
                f,
                "database memory limit: its SQL made SQLite use more than {mib} MiB (rows read at once, bound values, sorts, temporary tables; [hooks] database_memory_mib in uplift.toml)"
            ),
            Limit::Disk { mib } => write!(
                f,
                "disk limit: made the database, its journal or SQLite's temporary files grow by more than {mib} MiB ([hooks] disk_mib in uplift.toml)"
            ),
            Limit::ProcessMemory { mib } => write!(
                f,
                "process memory limit: made uplift's memory grow by more than {mib} MiB (twice [hooks] memory_mib, plus database_memory_mib, max_reply_mib and 256 MiB, in uplift.toml)"
            ),
            Limit::Compile { seconds } => write!(
                f,
                "compile limit: compiling its component took longer than {seconds} s ([hooks] compile_seconds in uplift.toml)"
            ),
        }
    }
}

/// The error a host function raises to stop the guest when a limit is hit;
/// found again in the trap's error chain.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LimitHit(pub Limit);

/// The trap a hook is stopped with when SQLite ended the upgrade's
/// transaction under it (after a full disk, an I/O error...): the hook must
/// not carry on, each of its writes then committing alone. Carries SQLite's
/// message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("SQLite ended the upgrade's transaction: {0}")]
pub(crate) struct TransactionEnded(pub String);

/// Everything that can go wrong finding, loading, validating or running
/// hooks. Errors about one hook name its plugin and hook.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The database's engine has no sandbox for hooks yet, so the hook was
    /// not run.
    #[error("hook {plugin}/{hook} was not run: hooks have no sandbox on {engine} yet")]
    NoSandbox {
        /// The plugin.
        plugin: String,
        /// The hook.
        hook: String,
        /// The engine.
        engine: &'static str,
    },
    /// A plugin file or folder could not be read.
    #[error("could not read {path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A plugin's manifest is missing or invalid.
    #[error("plugin {path}: {source}")]
    Manifest {
        /// The plugin's component file.
        path: PathBuf,
        /// What is wrong with its manifest.
        #[source]
        source: ManifestError,
    },
    /// Two plugin files declare the same plugin name.
    #[error("two plugins are named {name:?}: {first} and {second}; remove or rename one of them")]
    DuplicatePlugin {
        /// The name both declare.
        name: String,
        /// The first file found with that name.
        first: PathBuf,
        /// The second file found with that name.
        second: PathBuf,
    },
    /// `release.toml` names a core plugin the release does not contain.
    #[error(
        "the release names core plugin {name:?}, but no component in {dir} has that name: reinstall the release"
    )]
    MissingCorePlugin {
        /// The core plugin's name, as `release.toml` gives it.
        name: String,
        /// The release's plugins folder, where it was looked for.
        dir: PathBuf,
    },
    /// `plugins.toml` is not valid.
    #[error("invalid {path}: {message}; fix or remove it")]
    PluginsToml {
        /// The `plugins.toml` file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `plugin enable/disable` of a plugin that does not exist.
    #[error("no plugin is named {name:?}; `uplift plugin list` shows the plugins found")]
    UnknownPlugin {
        /// The name given.
        name: String,
    },
    /// `plugins.toml` enables a plugin that is not installed.
    #[error(
        "plugins.toml enables plugin {name:?}, but no plugin of that name is in the release's plugins/ \
         or in {}: put its .wasm file there, or run `uplift plugin disable {name}`",
        home_plugins.display()
    )]
    MissingPlugin {
        /// The plugin's name.
        name: String,
        /// The home's plugins folder, where it was also looked for.
        home_plugins: PathBuf,
    },
    /// `plugin disable` of a core plugin.
    #[error(
        "plugin {name:?} is a core plugin of the release: it is always active and cannot be disabled"
    )]
    CorePlugin {
        /// The plugin's name.
        name: String,
    },
    /// The release given to `hooks validate --release` could not be read.
    #[error("release {dir}: {message}")]
    Release {
        /// The release folder given.
        dir: PathBuf,
        /// Why it could not be read, its causes included.
        message: String,
    },
    /// The engine could not be created.
    #[error("could not set up the WebAssembly engine: {0}")]
    Engine(String),
    /// A component could not be compiled or linked.
    #[error("plugin {plugin} ({path}) could not be loaded: {message}")]
    Load {
        /// The plugin's name.
        plugin: String,
        /// The component file.
        path: PathBuf,
        /// Why it could not be compiled or linked.
        message: String,
    },
    /// The hook trapped (a panic, an out-of-bounds access, a stack overflow...).
    #[error("{}", describe_trap(.plugin, .hook, .reason, .stderr, .backtrace))]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The hook's name.
        hook: String,
        /// What the trap was (escaped with [`escape_untrusted`]).
        reason: String,
        /// The last lines the hook wrote to stderr (a Rust panic's message).
        stderr: Vec<String>,
        /// The guest's call stack at the trap, when known.
        backtrace: Option<String>,
    },
    /// The hook returned an error.
    #[error("{}", describe_failed(.plugin, .hook, .message, .refused))]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// The hook's name.
        hook: String,
        /// The error the hook returned (escaped with [`escape_untrusted`]).
        message: String,
        /// Statements the sandbox refused during the hook.
        refused: Vec<String>,
    },
    /// The hook hit a limit of the sandbox.
    #[error("hook {plugin}/{hook} was stopped: {limit}")]
    Limit {
        /// The plugin's name.
        plugin: String,
        /// The hook's name.
        hook: String,
        /// The limit it hit.
        limit: Limit,
    },
    /// The hook left a schema change on objects it does not own.
    #[error(
        "hook {plugin}/{hook} changed {object}, which its manifest does not own; the change was rolled back"
    )]
    SchemaChange {
        /// The plugin's name.
        plugin: String,
        /// The hook's name.
        hook: String,
        /// The object's kind and name, such as `table users` (escaped with
        /// [`escape_untrusted`]).
        object: String,
    },
    /// SQLite ended the upgrade's transaction while the hook ran (a full
    /// disk, an I/O error, no memory...); the hook was stopped at its next
    /// database call.
    #[error(
        "hook {plugin}/{hook} was stopped: SQLite ended the upgrade's transaction after an error ({cause}); \
         nothing the upgrade wrote was committed"
    )]
    TransactionLost {
        /// The plugin's name.
        plugin: String,
        /// The hook's name.
        hook: String,
        /// SQLite's message for the error that ended it.
        cause: String,
    },
    /// A table or view the hook created or changed refers to what its
    /// plugin may not use (see the plugin guide's threat model).
    #[error("hook {plugin}/{hook}: {problem}; the hook's changes were rolled back")]
    Dependency {
        /// The plugin's name.
        plugin: String,
        /// The hook's name.
        hook: String,
        /// What the table or view refers to that it may not (escaped with
        /// [`escape_untrusted`]).
        problem: String,
    },
    /// The host's own bookkeeping around a hook failed (savepoint, schema
    /// snapshot).
    #[error("hook {plugin}/{hook}: could not {what}: {source}")]
    Database {
        /// The plugin's name.
        plugin: String,
        /// The hook's name.
        hook: String,
        /// What the host was doing, as a verb phrase ("turn on SQLite's
        /// defensive settings").
        what: &'static str,
        /// SQLite's error.
        #[source]
        source: crate::engine::EngineError,
    },
}

impl HookError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them): `hook` for plugins that could not be
    /// found, read or loaded and hooks that failed, as in
    /// [`crate::UpgradeError::code`]; `unknown-plugin` and `core-plugin`
    /// for `plugin enable` and `plugin disable`; `release` for the release
    /// `hooks validate --release` could not read.
    pub fn code(&self) -> &'static str {
        match self {
            HookError::Release { .. } => "release",
            HookError::UnknownPlugin { .. } => "unknown-plugin",
            HookError::CorePlugin { .. } => "core-plugin",
            _ => "hook",
        }
    }
}

fn describe_trap(
    plugin: &str,
    hook: &str,
    reason: &str,
    stderr: &[String],
    backtrace: &Option<String>,
) -> String {
    let mut text = format!("hook {plugin}/{hook} crashed: {reason}");
    if !stderr.is_empty() {
        text.push_str("\n  its stderr ended with:");
        for line in stderr {
            text.push_str("\n    ");
            text.push_str(line);
        }
    }
    if let Some(bt) = backtrace {
        text.push_str("\n  guest backtrace:");
        for line in bt.lines() {
            text.push_str("\n    ");
            text.push_str(line.trim_start());
        }
    }
    text
}

fn describe_failed(plugin: &str, hook: &str, message: &str, refused: &[String]) -> String {
    let mut text = format!("hook {plugin}/{hook} failed: {message}");
    for r in refused {
        text.push_str("\n  the sandbox refused: ");
        text.push_str(r);
    }
    text
}

impl HookError {
    /// The plugin and hook the error is about, when it is about one hook.
    pub fn hook(&self) -> Option<(&str, &str)> {
        match self {
            HookError::Trap { plugin, hook, .. }
            | HookError::Failed { plugin, hook, .. }
            | HookError::Limit { plugin, hook, .. }
            | HookError::SchemaChange { plugin, hook, .. }
            | HookError::Dependency { plugin, hook, .. }
            | HookError::Database { plugin, hook, .. } => Some((plugin, hook)),
            _ => None,
        }
    }
}

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// The finest detail.
    Trace,
    /// Detail for finding a problem.
    Debug,
    /// Ordinary progress; the level of the hook's stdout.
    Info,
    /// Something that may need attention; the level of the hook's stderr.
    /// Shown even with `--quiet`.
    Warn,
    /// A failure. Shown even with `--quiet`.
    Error,
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The hook's `log` import.
    Hook,
    /// The hook's stdout (level info).
    Stdout,
    /// The hook's stderr (level warn).
    Stderr,
    /// The sandbox itself (a refused statement, a limit).
    Sandbox,
}

/// One line of a hook's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// How much it matters.
    pub level: LogLevel,
    /// Where it came from.
    pub source: LogSource,
    /// The plugin's name.
    pub plugin: String,
    /// The hook's name.
    pub hook: String,
    /// The text, escaped with [`escape_untrusted`] so that a terminal shows
    /// it rather than acts on it.
    pub message: String,
}

impl fmt::Display for LogLine {
    /// `[plugin/hook] message`, with the level when it is not info.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}/{}] ", self.plugin, self.hook)?;
        if self.level != LogLevel::Info {
            write!(f, "{}: ", self.level)?;
        }
        f.write_str(&self.message)
    }
}

/// Receives a hook's log lines as they are written. Called on the thread
/// running the hook.
pub trait LogSink: Send + Sync {
    /// One line (never containing a newline).
    fn line(&self, line: &LogLine);
}

impl<F: Fn(&LogLine) + Send + Sync> LogSink for F {
    fn line(&self, line: &LogLine) {
        self(line)
    }
}

/// A [`LogSink`] that keeps every line, for tests and `--json` output.
#[derive(Debug, Default)]
pub struct CollectLog {
    lines: Mutex<Vec<LogLine>>,
}

impl CollectLog {
    /// An empty collector, shareable as a sink.
    pub fn new() -> Arc<CollectLog> {
        Arc::new(CollectLog::default())
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl LogSink for CollectLog {
    fn line(&self, line: &LogLine) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The inverse of [`escape_untrusted`], to show that it loses nothing.
    fn unescape(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                Some('u') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => panic!("unknown escape {other:?} in {text:?}"),
            }
        }
        out
    }

    /// Text a hostile plugin would write: terminal escapes and the
    /// characters around them, mixed with ordinary text.
    fn hostile_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\x1b[2K".to_string()),
            Just("\x1b]52;c;cHduZWQ=\x07".to_string()),
            Just("\x1b]0;title\x1b\\".to_string()),
            Just("\r[other/hook] forged".to_string()),
            Just("\u{9b}1A".to_string()),
            Just("\u{202e}".to_string()),
            Just("\\x1b".to_string()),
            any::<char>().prop_map(String::from),
            "[ -~]{0,8}",
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_character_a_terminal_acts_on(text in hostile_text()) {
            let escaped = escape_untrusted(&text);
            prop_assert!(!escaped.chars().any(is_unsafe_char), "{escaped:?}");
        }

        #[test]
        fn escaping_loses_nothing(text in hostile_text()) {
            prop_assert_eq!(unescape(&escape_untrusted(&text)), text);
        }

        #[test]
        fn ordinary_text_is_shown_as_it_is(text in "[ -\\[\\]-~é€😀]{0,40}") {
            prop_assert!(matches!(escape_untrusted(&text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn each_kind_of_control_is_escaped_visibly() {
        assert_eq!(
            escape_untrusted("a\r\nb\t\x1b[1m\u{9b}\u{7f}\u{202e}\\"),
            "a\\r\\nb\\t\\x1b[1m\\u{9b}\\x7f\\u{202e}\\\\"
        );
    }
}

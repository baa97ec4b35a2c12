//! How a command fails, and so the process's exit code and, with `--json`,
//! the failure object on stdout: the one policy for every command. A
//! command returns [`Outcome`]; [`Failure::report`] prints the error, once,
//! and gives the exit code. Each failure has a stable code for machines,
//! taken from the typed error it carries ([`code_of`]); `docs/errors.md`
//! lists them.

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use uplift::backup::{BackupError, BackupFileError, RestoreError};
use uplift::home::HomeError;
use uplift::hook_test::TrialError;
use uplift::hooks::HookError;
use uplift::hooks::manifest::ManifestError;
use uplift::hooks::scaffold::ScaffoldError;
use uplift::migrations::MigrateError;
use uplift::release::ReleaseError;
use uplift::upgrade::AdoptError;
use uplift::upgrade_paths::PathsError;
use uplift::version::VersionError;
use uplift::{EngineError, MetaError, PgError, UpgradeError};

use super::output;

/// Exit code when the operation failed (the database is unchanged).
const EXIT_FAILED: u8 = 1;
/// Exit code for a usage error or invalid input (as clap uses).
const EXIT_USAGE: u8 = 2;

/// The code of a usage error that has no more precise one (clap's own
/// parse errors among them).
pub(super) const USAGE: &str = "usage";
/// The code of an error uplift did not expect: one that carries no typed
/// error it knows.
const UNEXPECTED: &str = "unexpected";

/// What every command returns.
pub(super) type Outcome = Result<(), Failure>;

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The operation failed and changed nothing: exit 1.
    Failed(anyhow::Error),
    /// A check found problems (a path that differs, a plugin that is
    /// invalid, a hook that failed): exit 1. Without `--json` the command
    /// has printed them and nothing more is said; with `--json` they are
    /// the failure object's `details`.
    Reported(Findings),
    /// Invalid usage or input found after parsing: exit 2, as for clap's
    /// own usage errors.
    Usage {
        /// What is wrong.
        error: anyhow::Error,
        /// Its stable code: that of the typed error it came from, or
        /// [`USAGE`].
        code: &'static str,
    },
}

/// What a check found wrong, for [`Failure::Reported`].
#[derive(Debug)]
pub(crate) struct Findings {
    /// The stable code.
    code: &'static str,
    /// What was found, in a sentence (stderr and the JSON `message`).
    message: String,
    /// With `--json`: the command's document, which says what failed.
    details: Option<serde_json::Value>,
}

impl Failure {
    /// A usage error saying `message`, with the code [`USAGE`].
    pub(crate) fn usage(message: impl Display) -> Failure {
        Failure::Usage {
            error: anyhow::Error::msg(message.to_string()),
            code: USAGE,
        }
    }

    /// A usage error caused by the typed error `err`, printed by its own
    /// message alone (which names what it concerns), with its code.
    pub(crate) fn usage_error<E: std::error::Error + 'static>(err: E) -> Failure {
        Failure::usage_because(&err, &err)
    }

    /// A usage error saying `message`, with the code of the typed error
    /// `cause` it reports.
    pub(crate) fn usage_because(
        cause: &(dyn std::error::Error + 'static),
        message: impl Display,
    ) -> Failure {
        Failure::Usage {
            error: anyhow::Error::msg(message.to_string()),
            code: known_code(cause).unwrap_or(USAGE),
        }
    }

    /// A check found problems: `code` and a sentence saying what.
    pub(crate) fn found(code: &'static str, message: impl Display) -> Failure {
        Failure::Reported(Findings {
            code,
            message: message.to_string(),
            details: None,
        })
    }

    /// This failure with `details` (the command's JSON document) attached,
    /// when it is the findings of a check.
    pub(crate) fn with_details(self, details: serde_json::Value) -> Failure {
        match self {
            Failure::Reported(findings) => Failure::Reported(Findings {
                details: Some(details),
                ..findings
            }),
            other => other,
        }
    }

    /// The process's exit code.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Failed(_) | Failure::Reported(_) => ExitCode::from(EXIT_FAILED),
            Failure::Usage { .. } => ExitCode::from(EXIT_USAGE),
        }
    }

    /// The stable code of this failure, for machines.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Failure::Failed(err) => code_of(err),
            Failure::Reported(findings) => findings.code,
            Failure::Usage { code, .. } => code,
        }
    }

    /// The failure object `--json` prints on stdout: `{"outcome":
    /// "failed", "error": {"code", "message", ...}}`, with `rolled_back`
    /// for an upgrade's errors and `details` for a check's findings.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let message = match self {
            Failure::Failed(err) | Failure::Usage { error: err, .. } => render_error(err),
            Failure::Reported(findings) => findings.message.clone(),
        };
        let mut error = serde_json::json!({ "code": self.code(), "message": message });
        if let Failure::Failed(err) = self
            && let Some(upgrade) = upgrade_error(err)
        {
            error["rolled_back"] = matches!(upgrade, UpgradeError::RolledBack { .. }).into();
        }
        if let Failure::Reported(Findings {
            details: Some(details),
            ..
        }) = self
        {
            error["details"] = details.clone();
        }
        serde_json::json!({ "outcome": "failed", "error": error })
    }

    /// Prints the error on stderr (unless, without `--json`, the command
    /// already reported it) and, with `--json`, the failure object on
    /// stdout; returns the exit code.
    pub(crate) fn report(self) -> ExitCode {
        let json = output::json_mode();
        if json {
            output::print_json(&self.to_json());
        }
        match &self {
            Failure::Failed(err) | Failure::Usage { error: err, .. } => {
                eprintln!("error: {}", render_error(err))
            }
            Failure::Reported(findings) if json => eprintln!("error: {}", findings.message),
            Failure::Reported(_) => {}
        }
        self.exit_code()
    }
}

/// Any error a command meets is a failure of the operation (exit 1);
/// usage errors are made with [`Failure::usage`].
impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(err: E) -> Failure {
        Failure::Failed(err.into())
    }
}

/// Exit 1 with the findings `found` makes when `ok` is false: the command
/// has reported what it found (or, with `--json`, attaches its document).
pub(super) fn reported_unless(ok: bool, found: impl FnOnce() -> Failure) -> Outcome {
    if ok { Ok(()) } else { Err(found()) }
}

/// Failures the command line itself finds (the library's own errors carry
/// their codes).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    /// `dbrestore` of the main database alone in a home of several, without
    /// `--main-alone`.
    #[error(
        "release {version} names several databases, and dbrestore restores the main one ({}) \
         alone: {others} would stay at another moment than the dump's; pass --main-alone to \
         restore it anyway; nothing was changed",
        main.display()
    )]
    MainAlone {
        /// The installed release.
        version: String,
        /// The main database.
        main: PathBuf,
        /// The other databases' files.
        others: String,
    },
    /// `dbbackup` with no database in the home.
    #[error("there is no database to back up at {}", .0.display())]
    NoDatabase(PathBuf),
    /// `dbrestore --select` without a terminal to ask on.
    #[error(
        "dbrestore --select needs a terminal to pick from; pass the FILE to restore, or --latest"
    )]
    NoTerminal,
    /// `dbrestore --latest` found no backup to restore.
    #[error("no backup in {} {wanted}; what exists:\n{listing}", dir.display())]
    NoBackup {
        /// The backups folder.
        dir: PathBuf,
        /// What was looked for ("that verifies").
        wanted: String,
        /// Every backup there, one per line.
        listing: String,
    },
    /// `dbrestore --select` found no backup it could offer.
    #[error("no usable backup in {}:\n{listing}", dir.display())]
    NoUsableBackup {
        /// The backups folder.
        dir: PathBuf,
        /// Every backup there, one per line.
        listing: String,
    },
    /// The answer to `dbrestore --select` is not one of the numbers.
    #[error("{answer:?} is not a number from 1 to {count}; nothing was restored")]
    BadChoice {
        /// What was typed.
        answer: String,
        /// How many backups were offered.
        count: usize,
    },
    /// A file given on the command line could not be read or written.
    #[error("could not {what} {}: {cause}", path.display())]
    File {
        /// "read" or "write".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error (not a `source`: the message quotes it).
        cause: std::io::Error,
    },
    /// A component's or a TOML file's manifest is invalid.
    #[error("{}: {cause}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        cause: ManifestError,
    },
    /// `uplift run` could not start the application.
    #[error("could not run {program}: {cause}")]
    Exec {
        /// The program.
        program: String,
        /// The system's error.
        cause: std::io::Error,
    },
    /// `uplift run` found the data changed under it again and again.
    #[error(
        "the database in {} kept changing while uplift tried to start the application (another uplift restoring or upgrading it?); run again",
        .0.display()
    )]
    KeptChanging(PathBuf),
    /// `hooks test --require-match` and no hook matched.
    #[error(
        "no hook of {plugin} matches an upgrade from {from} to {to} (--require-match): check the hooks' ranges"
    )]
    NoHookMatched {
        /// The plugin.
        plugin: String,
        /// The data version upgraded from.
        from: String,
        /// The release version upgraded to.
        to: String,
    },
    /// Standard output could not be written (not a closed pipe).
    #[error("could not write to standard output: {0}")]
    Stdout(String),
}

impl CommandError {
    /// What kind of failure this is, as a stable word for machines.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            CommandError::NoDatabase(_) => "no-database",
            CommandError::MainAlone { .. } => "several-databases",
            CommandError::NoTerminal => "no-terminal",
            CommandError::NoBackup { .. } | CommandError::NoUsableBackup { .. } => "no-backup",
            CommandError::BadChoice { .. } => "invalid-choice",
            CommandError::File { .. } => "io",
            CommandError::Manifest { cause, .. } => cause.code(),
            CommandError::Exec { .. } => "exec",
            CommandError::KeptChanging(_) => "data-kept-changing",
            CommandError::NoHookMatched { .. } => "no-hook-matched",
            CommandError::Stdout(_) => "stdout",
        }
    }
}

/// The code of `err`: that of the outermost typed error uplift knows in its
/// chain, or `unexpected`.
pub(crate) fn code_of(err: &anyhow::Error) -> &'static str {
    err.chain().find_map(known_code).unwrap_or(UNEXPECTED)
}

/// The code of `err` when it is one of the typed errors uplift knows.
fn known_code(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    macro_rules! coded {
        ($($ty:ty),* $(,)?) => {
            $(if let Some(e) = err.downcast_ref::<$ty>() {
                return Some(e.code());
            })*
        };
    }
    coded!(
        CommandError,
        UpgradeError,
        AdoptError,
        HomeError,
        ReleaseError,
        MigrateError,
        MetaError,
        BackupError,
        BackupFileError,
        RestoreError,
        HookError,
        ManifestError,
        ScaffoldError,
        PathsError,
        TrialError,
        PgError,
    );
    if let Some(e) = err.downcast_ref::<VersionError>() {
        return Some(match e {
            VersionError::Version { .. } => "invalid-version",
            VersionError::Range { .. } => "invalid-range",
        });
    }
    if err.is::<EngineError>() {
        return Some("database");
    }
    if err.is::<std::io::Error>() {
        return Some("io");
    }
    None
}

/// The upgrade's error in `err`'s chain, which says whether it was rolled
/// back.
fn upgrade_error(err: &anyhow::Error) -> Option<&UpgradeError> {
    err.chain().find_map(|e| {
        e.downcast_ref::<UpgradeError>()
            .or_else(|| match e.downcast_ref::<AdoptError>() {
                Some(AdoptError::Upgrade(upgrade)) => Some(upgrade),
                _ => None,
            })
    })
}

/// The error and its causes on one line, leaving out a cause whose text the
/// message already quotes (library errors often include their source).
fn render_error(err: &anyhow::Error) -> String {
    uplift::error_text(err.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_error_gives_its_code_through_context() {
        let err = anyhow::Error::new(HomeError::NoDefault).context("while reading the home");
        assert_eq!(code_of(&err), "no-home");
        let err = anyhow::Error::new(UpgradeError::Home(HomeError::NoDefault));
        assert_eq!(code_of(&err), "home");
    }

    #[test]
    fn an_error_of_no_known_type_is_unexpected() {
        assert_eq!(code_of(&anyhow::anyhow!("something odd")), "unexpected");
    }

    #[test]
    fn a_failure_object_has_the_code_message_and_details() {
        let failure = Failure::found("path-problems", "1 of 2 paths has problems")
            .with_details(serde_json::json!([{ "ok": false }]));
        let json = failure.to_json();
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["error"]["code"], "path-problems");
        assert_eq!(json["error"]["message"], "1 of 2 paths has problems");
        assert_eq!(json["error"]["details"][0]["ok"], false);
        assert!(json["error"].get("rolled_back").is_none());
    }

    #[test]
    fn a_usage_error_from_a_typed_error_keeps_its_code_and_exits_2() {
        let err = uplift::version::Version::parse("banana").unwrap_err();
        let failure = Failure::usage_error(err);
        assert_eq!(failure.code(), "invalid-version");
        assert_eq!(failure.exit_code(), ExitCode::from(2));
        assert_eq!(Failure::usage("no").code(), "usage");
    }
}

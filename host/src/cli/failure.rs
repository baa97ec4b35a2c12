//! How a command fails, and so the process's exit code: the one policy for
//! every command. A command returns [`Outcome`]; `main` prints the error,
//! once, and exits with [`Failure::exit_code`].

use std::fmt::Display;
use std::process::ExitCode;

/// Exit code when the operation failed (the database is unchanged).
const EXIT_FAILED: u8 = 1;
/// Exit code for a usage error or invalid input (as clap uses).
const EXIT_USAGE: u8 = 2;

/// What every command returns.
pub(super) type Outcome = Result<(), Failure>;

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The operation failed and changed nothing: exit 1.
    Failed(anyhow::Error),
    /// A check found problems, which the command has printed (a path that
    /// differs, a plugin that is invalid, a hook that failed): exit 1,
    /// with nothing more to say.
    Reported,
    /// Invalid usage or input found after parsing: exit 2, as for clap's
    /// own usage errors.
    Usage(anyhow::Error),
}

impl Failure {
    /// A usage error saying `message`. A library error given here is
    /// printed by its own message alone, which names what it concerns.
    pub(crate) fn usage(message: impl Display) -> Failure {
        Failure::Usage(anyhow::Error::msg(message.to_string()))
    }

    /// A failure saying `message` alone (a library error whose message
    /// already quotes its causes).
    pub(crate) fn failed(message: impl Display) -> Failure {
        Failure::Failed(anyhow::Error::msg(message.to_string()))
    }

    /// The process's exit code.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Failed(_) | Failure::Reported => ExitCode::from(EXIT_FAILED),
            Failure::Usage(_) => ExitCode::from(EXIT_USAGE),
        }
    }

    /// Prints the error on stderr, unless the command already reported it,
    /// and returns the exit code.
    pub(crate) fn report(self) -> ExitCode {
        if let Failure::Failed(err) | Failure::Usage(err) = &self {
            eprintln!("error: {}", render_error(err));
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

/// Exit 1 with nothing more printed when `ok` is false: the command has
/// reported what it found.
pub(super) fn reported_unless(ok: bool) -> Outcome {
    if ok { Ok(()) } else { Err(Failure::Reported) }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// message already quotes (library errors often include their source).
fn render_error(err: &anyhow::Error) -> String {
    uplift::error_text(err.as_ref())
}

//! The `uplift` command: a thin layer over the library that knows about
//! the terminal (arguments, progress bars, exit codes); see [`cli`].

mod cli;

use std::process::ExitCode;

/// Runs the command; a failure prints its error once and picks the exit
/// code (1 the operation failed, 2 invalid usage).
fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

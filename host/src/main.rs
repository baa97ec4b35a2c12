//! The `uplift` command: a thin layer over the library that knows about
//! the terminal (arguments, progress bars, exit codes); see [`cli`].

mod cli;

use std::process::ExitCode;

/// Runs the command; a failure prints its error once (with `--json`, its
/// failure object too) and picks the exit code (1 the operation failed, 2
/// invalid usage).
fn main() -> ExitCode {
    cli::run()
}

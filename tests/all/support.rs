//! Helpers shared by the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// A `Command` running the `uplift` binary built for these tests.
pub fn uplift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_uplift"))
}

/// A `Command` running the real `sqlite3` shell, which `scripts/setup`
/// installs; panics with that hint when it is missing.
pub fn sqlite3() -> Command {
    let found = Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "the sqlite3 shell is missing: run scripts/setup");
    Command::new("sqlite3")
}

/// Runs a command to completion with stdin closed and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .expect("the command should start")
}

/// The output's stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The output's stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The names of the files in a folder, sorted (empty if it does not exist).
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("readable entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

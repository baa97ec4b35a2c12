//! The command line itself, whatever the command: a reader that goes away,
//! usage errors and their exit code, help, completions, the man page,
//! colour and `--version`.

use std::process::{Command, Output, Stdio};

use crate::support::{TestRelease, run, stderr, stdout, uplift};

/// A home folder (not created) and a release with one migration, in a
/// temporary folder.
struct Fixture {
    dir: tempfile::TempDir,
    release: TestRelease,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let release = TestRelease::new(
            dir.path(),
            "release",
            "shop",
            "1.0.0",
            &[(
                "0001_initial.sql",
                "CREATE TABLE item (id INTEGER PRIMARY KEY);",
            )],
        );
        Fixture { dir, release }
    }

    /// `uplift --home H --release R ARGS`.
    fn uplift(&self, args: &[&str]) -> Command {
        let mut cmd = uplift();
        cmd.arg("--home")
            .arg(self.dir.path().join("home"))
            .args(["--release", self.release.path()])
            .args(args);
        cmd
    }
}

/// Runs `cmd` with its stdout a pipe whose reader is already gone, as
/// `uplift status | head -0` would leave it.
fn with_stdout_closed(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let f = Fixture::new();
    let install = f.uplift(&["upgrade"]).output().unwrap();
    assert!(install.status.success(), "{}", stderr(&install));
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["migrations", "list"],
        &["version", "compare", "1.0", "0.9"],
        &["--help"],
    ] {
        let out = with_stdout_closed(&mut f.uplift(args));
        assert_eq!(
            out.status.code(),
            Some(0),
            "uplift {args:?}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("panicked") && !stderr(&out).contains("Broken pipe"),
            "uplift {args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn output_that_cannot_be_written_fails_the_command() {
    let f = Fixture::new();
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not on Linux
    };
    let out = f
        .uplift(&["status"])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not write to standard output"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_release_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    for command in ["status", "upgrade", "migrations"] {
        let mut args = vec!["--home", home.path().to_str().unwrap(), command];
        if command == "migrations" {
            args.push("list");
        }
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no release given: pass --release DIR or set UPLIFT_RELEASE"),
            "{command}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_home_that_is_not_a_folder_is_a_usage_error() {
    let f = Fixture::new();
    let file = f.dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = uplift()
        .arg("--home")
        .arg(&file)
        .args(["--release", f.release.path(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a folder"), "{}", stderr(&out));

    let out = uplift()
        .args(["--release", f.release.path(), "status"])
        .env("UPLIFT_HOME", "")
        .env_remove("HOME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_release_folder_that_is_not_a_release_is_a_failure_not_a_usage_error() {
    let f = Fixture::new();
    let out = uplift()
        .arg("--home")
        .arg(f.dir.path().join("home"))
        .args(["--release", "/nowhere", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

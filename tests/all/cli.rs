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

#[test]
fn help_puts_the_global_options_under_their_own_heading() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&out);
    let heading = help
        .find("Global options:")
        .unwrap_or_else(|| panic!("{help}"));
    for option in [
        "--home <DIR>",
        "--release <DIR>",
        "--quiet",
        "--color <WHEN>",
    ] {
        let at = help
            .find(option)
            .unwrap_or_else(|| panic!("{option}: {help}"));
        assert!(at > heading, "{option} is not under Global options: {help}");
    }
}

#[test]
fn a_commands_help_shows_an_example() {
    let out = run(&["upgrade", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Examples:\n  uplift upgrade --plan"),
        "{}",
        stdout(&out)
    );
    let out = run(&["version", "compare", "--help"]);
    assert!(
        stdout(&out).contains("<FIRST> <SECOND>"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn completions_are_generated_from_the_commands() {
    let out = run(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    for word in ["upgrade", "dbrestore", "--release", "--color"] {
        assert!(script.contains(word), "{word} missing:\n{script}");
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("dbrestore"), "{shell}");
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn the_man_page_is_roff_naming_every_command() {
    let out = run(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    // clap_mangen puts two lines of string definitions before the title.
    let first_macro = page
        .lines()
        .find(|line| !line.starts_with(".ie") && !line.starts_with(".el"))
        .unwrap_or_default();
    assert!(first_macro.starts_with(".TH uplift 1"), "{page}");
    for command in ["upgrade", "dbrestore", "completions"] {
        assert!(page.contains(command), "{command} missing:\n{page}");
    }
}

#[test]
fn version_names_the_engines() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], format!("uplift {}", env!("CARGO_PKG_VERSION")));
    assert!(lines[1].starts_with("wasmtime 4"), "{text}");
    assert_eq!(lines[2], format!("SQLite {}", rusqlite::version()));
}

/// `uplift ARGS --help`'s text, with colour forced on unless something in
/// `args` or `env` turns it off.
fn help_with_colour_forced(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = uplift();
    cmd.env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .args(args)
        .arg("--help");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn no_color_and_color_never_print_no_escape_codes() {
    const ESC: char = '\u{1b}';
    assert!(help_with_colour_forced(&[], &[]).contains(ESC));
    assert!(help_with_colour_forced(&["--color", "always"], &[("NO_COLOR", "1")]).contains(ESC));
    assert!(!help_with_colour_forced(&[], &[("NO_COLOR", "1")]).contains(ESC));
    assert!(!help_with_colour_forced(&["--color", "never"], &[]).contains(ESC));
    assert!(!help_with_colour_forced(&["status", "--color=never"], &[]).contains(ESC));
    // An error clap reports obeys it too.
    let out = uplift()
        .env("CLICOLOR_FORCE", "1")
        .args(["--color", "never", "no-such-command"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains(ESC), "{}", stderr(&out));
}

#[test]
fn verbose_shows_the_hooks_skipped_and_quiet_and_verbose_conflict() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("home");
    crate::support::install_example(&home, "0.6.4");
    let release = crate::support::example_release("1.0.0");
    let plan = |verbose: bool| {
        let mut args = vec![
            "--home",
            home.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
        ];
        if verbose {
            args.push("-v");
        }
        args.extend(["upgrade", "--plan"]);
        let out = crate::support::run(&args);
        assert!(out.status.success(), "{}", crate::support::stderr(&out));
        crate::support::stdout(&out)
    };
    let skipped = "skipped    big-leap/big_leap_upgrade (its ranges do not select it)";
    assert!(plan(true).contains(skipped), "{}", plan(true));
    assert!(!plan(false).contains("skipped"), "{}", plan(false));
    let out = crate::support::run(&["-v", "-q", "--home", home.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(2));
}

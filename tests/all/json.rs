//! `--json` on every command: one JSON document on stdout whether the
//! command succeeds or fails, the failure's stable code (docs/errors.md),
//! the same exit codes as without it, and the human message still on
//! stderr. A walk over every subcommand makes sure a new command cannot
//! forget it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{TestRelease, component, run_cmd, stderr, stdout, uplift};

/// A temporary folder with a release (`shop` 1.0.0, one migration) and a
/// home (not created until a command creates it).
struct Site {
    dir: tempfile::TempDir,
    release: TestRelease,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let release = TestRelease::new(
            dir.path(),
            "release",
            "shop",
            "1.0.0",
            &[(
                "0001_initial.sql",
                "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);",
            )],
        );
        Site { dir, release }
    }

    /// The site with the release installed.
    fn installed() -> Self {
        let site = Site::new();
        let out = site.run(&["upgrade"]);
        assert!(out.status.success(), "install: {}", stderr(&out));
        site
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn db(&self) -> PathBuf {
        self.home().join("db.sqlite3")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `uplift --home H --release R ARGS`, stdin closed.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = uplift();
        cmd.arg("--home")
            .arg(self.home())
            .args(["--release", self.release.path()])
            .args(args);
        run_cmd(&mut cmd)
    }

    /// `uplift --home H ARGS`, without a release.
    fn run_without_release(&self, args: &[&str]) -> Output {
        let mut cmd = uplift();
        cmd.arg("--home").arg(self.home()).args(args);
        run_cmd(&mut cmd)
    }
}

/// Stdout as exactly one JSON document (anything after it fails).
fn document(out: &Output) -> Value {
    let text = stdout(out);
    let mut values = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(value)) => value,
        other => panic!(
            "stdout is not a JSON document ({other:?}):\n{text}\nstderr:\n{}",
            stderr(out)
        ),
    };
    assert!(
        values.next().is_none(),
        "more than one JSON document on stdout:\n{text}"
    );
    value
}

/// The command succeeded (exit 0) and printed one JSON document: it.
fn succeeded(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    let value = document(out);
    assert_ne!(value["outcome"], "failed", "{value:#}");
    value
}

/// The command failed with exit code `exit` and printed the failure object
/// with `code`, and its message on stderr too: the object's `error`.
fn failed(out: &Output, exit: i32, code: &str) -> Value {
    let value = document(out);
    assert_eq!(
        out.status.code(),
        Some(exit),
        "{value:#}\nstderr:\n{}",
        stderr(out)
    );
    assert_eq!(value["outcome"], "failed", "{value:#}");
    assert_eq!(value["error"]["code"], code, "{value:#}");
    let message = value["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {value:#}"));
    assert!(!message.is_empty(), "{value:#}");
    assert!(
        stderr(out).contains(message.lines().next().unwrap()),
        "stderr should carry the message {message:?}:\n{}",
        stderr(out)
    );
    value["error"].clone()
}

// ------------------------------------------------------------ the site

#[test]
fn status_json_succeeds_and_fails_with_the_release_code() {
    let site = Site::installed();
    // Both spellings: after the command and before it.
    for args in [&["status", "--json"][..], &["--json", "status"]] {
        let status = succeeded(&site.run(args));
        assert_eq!(status["state"], "up to date");
        assert_eq!(status["data_version"], "1.0.0");
    }
    let out = site.run_without_release(&["--release", "/nonexistent/release", "status", "--json"]);
    failed(&out, 1, "release");
}

#[test]
fn a_missing_release_is_a_usage_error_with_its_own_code() {
    let site = Site::new();
    let error = failed(
        &site.run_without_release(&["status", "--json"]),
        2,
        "no-release",
    );
    assert!(
        error["message"].as_str().unwrap().contains("--release"),
        "{error}"
    );
}

#[test]
fn report_and_history_json_succeed_and_fail_with_codes() {
    let site = Site::installed();
    let report = succeeded(&site.run(&["report", "--json"]));
    assert_eq!(report["application"]["name"], "shop");
    let history = succeeded(&site.run(&["history", "--json"]));
    assert_eq!(history[0]["outcome"], "installed", "{history:#}");

    let out = site.run_without_release(&["--release", "/nonexistent", "report", "--json"]);
    failed(&out, 1, "release");
    // A database that is not one.
    std::fs::write(
        site.db(),
        b"this is not a database, and it is long enough to say so",
    )
    .unwrap();
    failed(&site.run(&["history", "--json"]), 1, "database-open");
}

#[test]
fn migrations_list_json_fails_on_drift_with_the_list_as_details() {
    let site = Site::installed();
    let list = succeeded(&site.run(&["migrations", "list", "--json"]));
    assert_eq!(list[0]["state"], "applied", "{list:#}");

    std::fs::write(
        site.release.dir.join("migrations/0001_initial.sql"),
        "CREATE TABLE item (id INTEGER PRIMARY KEY, title TEXT);",
    )
    .unwrap();
    let error = failed(
        &site.run(&["--json", "migrations", "list"]),
        1,
        "migration-drift",
    );
    assert_eq!(error["details"][0]["file"], "0001_initial.sql", "{error:#}");
    assert_eq!(error["details"][0]["state"], "changed", "{error:#}");
}

// ------------------------------------------------------------ upgrading

#[test]
fn upgrade_json_fails_with_the_cause_of_an_abandoned_install() {
    let site = Site::new();
    std::fs::write(
        site.release.dir.join("migrations/0002_broken.sql"),
        "CREATE TABLE item (id INTEGER);",
    )
    .unwrap();
    let error = failed(&site.run(&["upgrade", "--json"]), 1, "migration-failed");
    assert_eq!(error["rolled_back"], false, "{error:#}");
}

#[test]
fn upgrade_json_succeeds_with_its_outcome() {
    let site = Site::new();
    let outcome = succeeded(&site.run(&["upgrade", "--json"]));
    assert_eq!(outcome["outcome"], "installed", "{outcome:#}");
    let outcome = succeeded(&site.run(&["--json", "upgrade"]));
    assert_eq!(outcome["outcome"], "up_to_date", "{outcome:#}");
}

#[test]
fn run_json_leaves_stdout_to_the_application_and_fails_with_exec() {
    let site = Site::new();
    let out = site.run(&[
        "run",
        "--json",
        "--",
        "sh",
        "-c",
        "echo from the application",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "from the application\n",
        "the upgrade before it prints nothing on stdout"
    );
    let out = site.run(&["run", "--json", "--", "/nonexistent/program"]);
    failed(&out, 1, "exec");
}

#[test]
fn adopt_json_succeeds_and_fails_without_a_database() {
    let site = Site::new();
    failed(
        &site.run(&["adopt", "--as", "1.0.0", "--json"]),
        1,
        "no-database",
    );

    std::fs::create_dir_all(site.home()).unwrap();
    rusqlite::Connection::open(site.db())
        .unwrap()
        .execute_batch("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);")
        .unwrap();
    let adopted = succeeded(&site.run(&["adopt", "--as", "1.0.0", "--json"]));
    assert_eq!(adopted["outcome"], "adopted", "{adopted:#}");
    assert_eq!(adopted["version"], "1.0.0", "{adopted:#}");
    failed(
        &site.run(&["adopt", "--as", "1.0.0", "--json"]),
        1,
        "already-managed",
    );
}

#[test]
fn verify_paths_json_succeeds_and_fails_with_codes() {
    let site = Site::new();
    let later = TestRelease::new(
        site.dir.path(),
        "later",
        "shop",
        "1.1.0",
        &[
            (
                "0001_initial.sql",
                "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);",
            ),
            (
                "0002_price.sql",
                "ALTER TABLE item ADD COLUMN price INTEGER;",
            ),
        ],
    );
    let paths =
        succeeded(&site.run(&["verify-paths", "--json", site.release.path(), later.path()]));
    assert_eq!(paths[0]["from"], "1.0.0", "{paths:#}");
    assert_eq!(paths[0]["problems"], serde_json::json!([]), "{paths:#}");

    failed(
        &site.run(&["verify-paths", "--json", site.release.path()]),
        1,
        "too-few-releases",
    );
    let twin = TestRelease::new(site.dir.path(), "twin", "shop", "1.0.0", &[]);
    failed(
        &site.run(&["verify-paths", "--json", site.release.path(), twin.path()]),
        1,
        "duplicate-release",
    );
}

#[test]
fn testdb_json_succeeds_and_fails_when_the_file_exists() {
    let site = Site::new();
    let out_file = site.path("test.sqlite3");
    let created = succeeded(&site.run(&["testdb", "--json", out_file.to_str().unwrap()]));
    assert_eq!(created["outcome"], "created", "{created:#}");
    assert_eq!(created["version"], "1.0.0", "{created:#}");
    assert!(out_file.is_file());
    failed(
        &site.run(&["testdb", "--json", out_file.to_str().unwrap()]),
        1,
        "file-exists",
    );
}

// ------------------------------------------------------------ backups

#[test]
fn dbbackup_json_succeeds_and_fails_without_a_database() {
    let site = Site::new();
    failed(&site.run(&["dbbackup", "--json"]), 1, "no-database");
    let out = site.run(&["upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let made = succeeded(&site.run(&["dbbackup", "--json"]));
    assert_eq!(made["outcome"], "backed_up", "{made:#}");
    assert_eq!(made["data_version"], "1.0.0", "{made:#}");
    assert!(
        Path::new(made["path"].as_str().unwrap()).is_file(),
        "{made:#}"
    );
}

#[test]
fn dbrestore_json_succeeds_and_refuses_an_empty_dump() {
    let site = Site::installed();
    let made = succeeded(&site.run(&["dbbackup", "--json"]));
    let empty = site.path("empty.dump");
    std::fs::write(&empty, b"").unwrap();
    failed(
        &site.run(&["dbrestore", "--json", empty.to_str().unwrap()]),
        1,
        "backup-invalid",
    );
    let restored = succeeded(&site.run(&["dbrestore", "--json", made["path"].as_str().unwrap()]));
    assert_eq!(restored["outcome"], "restored", "{restored:#}");
    assert_eq!(restored["data_version"], "1.0.0", "{restored:#}");
    assert!(restored["safety_backup"].is_string(), "{restored:#}");
}

#[test]
fn dbrestore_latest_json_fails_with_no_backup() {
    let site = Site::new();
    let error = failed(
        &site.run(&["dbrestore", "--latest", "--json"]),
        1,
        "no-backup",
    );
    assert!(
        error["message"].as_str().unwrap().contains("no backup in"),
        "{error}"
    );
}

#[test]
fn backups_list_and_prune_json_succeed_and_fail_while_the_home_is_locked() {
    let site = Site::installed();
    succeeded(&site.run(&["dbbackup", "--json"]));
    let listed = succeeded(&site.run(&["backups", "list", "--json"]));
    assert_eq!(listed[0]["kind"], "manual", "{listed:#}");
    let pruned = succeeded(&site.run(&["backups", "prune", "--keep", "1", "--json"]));
    assert_eq!(pruned["outcome"], "pruned", "{pruned:#}");
    assert_eq!(pruned["removed"], serde_json::json!([]), "{pruned:#}");

    let home = uplift::home::Home::resolve(Some(site.home())).unwrap();
    let _held = home.lock(false).unwrap();
    failed(
        &site.run(&["backups", "prune", "--keep", "1", "--json"]),
        1,
        "home",
    );
    // A home that is not a folder: usage.
    let file = site.path("a-file");
    std::fs::write(&file, "").unwrap();
    let mut cmd = uplift();
    cmd.arg("--home")
        .arg(&file)
        .args(["backups", "list", "--json"]);
    failed(&run_cmd(&mut cmd), 2, "usage");
}

// ------------------------------------------------------------ plugins and hooks

#[test]
fn plugin_commands_json_succeed_and_fail_with_codes() {
    let site = Site::installed();
    let listed = succeeded(&site.run(&["plugin", "list", "--json"]));
    assert_eq!(listed, serde_json::json!([]));
    failed(
        &site.run(&["plugin", "enable", "nothing-here", "--json"]),
        1,
        "unknown-plugin",
    );
    failed(
        &site.run(&["plugin", "disable", "nothing-here", "--json"]),
        1,
        "unknown-plugin",
    );
    let compiled = succeeded(&site.run(&["plugin", "precompile", "--json"]));
    assert_eq!(compiled["outcome"], "precompiled", "{compiled:#}");
    assert_eq!(compiled["plugins"], serde_json::json!([]), "{compiled:#}");
    failed(
        &site.run_without_release(&["plugin", "precompile", "--json"]),
        2,
        "no-release",
    );
    std::fs::write(site.home().join("plugins.toml"), "[plugins\n").unwrap();
    failed(&site.run(&["plugin", "list", "--json"]), 1, "hook");
}

#[test]
fn plugin_enable_and_disable_json_say_what_they_did() {
    let site = Site::installed();
    let plugins = site.home().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(
        plugins.join("extra.wasm"),
        crate::support::hostile_with_manifest("extra", "1.0.0", "{}", &[]),
    )
    .unwrap();
    let enabled = succeeded(&site.run(&["plugin", "enable", "extra", "--json"]));
    assert_eq!(
        enabled,
        serde_json::json!({ "outcome": "enabled", "plugin": "extra" })
    );
    let disabled = succeeded(&site.run(&["--json", "plugin", "disable", "extra"]));
    assert_eq!(
        disabled,
        serde_json::json!({ "outcome": "disabled", "plugin": "extra" })
    );
}

#[test]
fn hooks_inspect_and_embed_manifest_json_succeed_and_fail_with_codes() {
    let site = Site::new();
    let not_wasm = site.path("not.wasm");
    std::fs::write(&not_wasm, b"hello").unwrap();
    failed(
        &site.run(&["hooks", "inspect", "--json", not_wasm.to_str().unwrap()]),
        1,
        "manifest",
    );
    failed(
        &site.run(&["hooks", "inspect", "--json", "/nonexistent/plugin.wasm"]),
        1,
        "io",
    );
    let tidy = component("uplift-test-tidy");
    let manifest = succeeded(&site.run(&["hooks", "inspect", "--json", tidy.to_str().unwrap()]));
    assert_eq!(manifest["name"], "tidy", "{manifest:#}");

    let toml = site.path("hook.toml");
    let written = site.path("out.wasm");
    let embed = |site: &Site| {
        site.run(&[
            "hooks",
            "embed-manifest",
            "--json",
            "--manifest",
            toml.to_str().unwrap(),
            tidy.to_str().unwrap(),
            "-o",
            written.to_str().unwrap(),
        ])
    };
    std::fs::write(&toml, "name = [not toml").unwrap();
    failed(&embed(&site), 1, "manifest");
    std::fs::write(&toml, "name = \"renamed\"\nversion = \"2.0.0\"\n").unwrap();
    let done = succeeded(&embed(&site));
    assert_eq!(done["outcome"], "written", "{done:#}");
    assert_eq!(done["plugin"], "renamed", "{done:#}");
    assert!(written.is_file());
}

#[test]
fn hooks_validate_json_is_one_array_and_fails_with_it_as_details() {
    let site = Site::new();
    let tidy = component("uplift-test-tidy");
    let reports = succeeded(&site.run_without_release(&[
        "hooks",
        "validate",
        "--json",
        tidy.to_str().unwrap(),
    ]));
    assert_eq!(reports[0]["valid"], true, "{reports:#}");
    let not_wasm = site.path("not.wasm");
    std::fs::write(&not_wasm, b"hello").unwrap();
    let error = failed(
        &site.run_without_release(&[
            "hooks",
            "validate",
            "--json",
            tidy.to_str().unwrap(),
            not_wasm.to_str().unwrap(),
        ]),
        1,
        "invalid-plugin",
    );
    assert_eq!(error["details"][0]["valid"], true, "{error:#}");
    assert_eq!(error["details"][1]["valid"], false, "{error:#}");
}

#[test]
fn hooks_new_json_succeeds_and_refuses_a_bad_name() {
    let site = Site::new();
    let dir = site.path("my-plugin");
    let created = succeeded(&site.run(&[
        "hooks",
        "new",
        "my-plugin",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(created["outcome"], "created", "{created:#}");
    assert_eq!(created["plugin"], "my-plugin", "{created:#}");
    assert!(
        !created["files"].as_array().unwrap().is_empty(),
        "{created:#}"
    );
    assert!(dir.join("Cargo.toml").is_file());
    failed(
        &site.run(&["hooks", "new", "9-lives", "--json"]),
        2,
        "invalid-plugin-name",
    );
    failed(
        &site.run(&[
            "hooks",
            "new",
            "again",
            "--dir",
            dir.to_str().unwrap(),
            "--json",
        ]),
        2,
        "folder-not-empty",
    );
}

#[test]
fn hooks_test_json_succeeds_and_fails_with_codes() {
    let site = Site::new();
    let db = site.path("app.sqlite3");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE learner (id INTEGER PRIMARY KEY, email TEXT);")
        .unwrap();
    let plugin = component("email-backfill");
    let trial = |extra: &[&str]| {
        let mut args = vec![
            "hooks",
            "test",
            plugin.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        site.run_without_release(&args)
    };
    let report = succeeded(&trial(&["--from", "1.0.0", "--to", "1.0.0"]));
    assert_eq!(report["plugin"], "email-backfill", "{report:#}");
    assert_eq!(report["hooks"], serde_json::json!([]), "{report:#}");
    failed(
        &trial(&["--from", "1.0.0", "--to", "1.0.0", "--require-match"]),
        1,
        "no-hook-matched",
    );
    failed(&trial(&["--to", "1.0.0"]), 2, "no-data-version");
    failed(
        &trial(&["--from", "banana", "--to", "1.0.0"]),
        2,
        "invalid-version",
    );
    failed(
        &trial(&["--from", "1.0.0", "--to", "1.0.0", "--hook", "no_such_hook"]),
        2,
        "unknown-hook",
    );
}

// ------------------------------------------------------------ versions, docs

#[test]
fn version_commands_json_succeed_and_fail_with_codes() {
    let compared = succeeded(&crate::support::run(&[
        "version",
        "compare",
        "0.15.0rc10",
        "0.15.0rc9",
        "--json",
    ]));
    assert_eq!(
        compared,
        serde_json::json!({ "first": "0.15.0rc10", "second": "0.15.0rc9", "order": ">" })
    );
    failed(
        &crate::support::run(&["version", "compare", "1.0", "banana", "--json"]),
        2,
        "invalid-version",
    );
    let matched = succeeded(&crate::support::run(&[
        "--json", "version", "match", "<0.6.4", "0.6.3",
    ]));
    assert_eq!(matched["versions"][0]["matches"], true, "{matched:#}");
    let error = failed(
        &crate::support::run(&["--json", "version", "match", "<0.6.4", "0.6.3", "0.6.4"]),
        1,
        "range-not-matched",
    );
    assert_eq!(
        error["details"]["versions"][1]["version"], "0.6.4",
        "{error:#}"
    );
    assert_eq!(
        error["details"]["versions"][1]["matches"], false,
        "{error:#}"
    );
    failed(
        &crate::support::run(&["--json", "version", "match", "<<banana", "0.6.3"]),
        2,
        "invalid-range",
    );
}

#[test]
fn completions_man_and_version_json_succeed() {
    let script = succeeded(&crate::support::run(&["completions", "bash", "--json"]));
    assert_eq!(script["shell"], "bash");
    assert!(script["script"].as_str().unwrap().contains("uplift"));
    let page = succeeded(&crate::support::run(&["man", "--json"]));
    assert!(page["page"].as_str().unwrap().contains(".TH"), "{page:#}");
    let versions = succeeded(&crate::support::run(&["--json", "--version"]));
    assert_eq!(versions["uplift"], env!("CARGO_PKG_VERSION"));
    assert!(versions["sqlite"].as_str().unwrap().starts_with('3'));
    let help = succeeded(&crate::support::run(&["status", "--help", "--json"]));
    assert!(
        help["help"].as_str().unwrap().contains("Usage:"),
        "{help:#}"
    );
    // Their only failures are usage errors.
    failed(
        &crate::support::run(&["completions", "tcsh", "--json"]),
        2,
        "usage",
    );
    failed(
        &crate::support::run(&["man", "extra", "--json"]),
        2,
        "usage",
    );
}

// ------------------------------------------------------------ usage

#[test]
fn a_usage_error_clap_finds_is_a_json_failure_with_exit_2() {
    for args in [
        &["status", "--json", "--bogus"][..],
        &["--json", "no-such-command"],
        &["--json"],
        &["--json", "dbrestore"],
    ] {
        let out = crate::support::run(args);
        let error = failed(&out, 2, "usage");
        assert!(
            stderr(&out).contains("Usage:"),
            "uplift {args:?}: clap's text stays on stderr:\n{}",
            stderr(&out)
        );
        assert!(
            !error["message"].as_str().unwrap().starts_with("error:"),
            "{error}"
        );
    }
    // Without --json, no JSON: clap's own output, as before.
    let out = crate::support::run(&["status", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    // A --json after `--` belongs to the application `run` starts.
    let site = Site::new();
    let out = site.run_without_release(&["run", "--", "app", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

// ------------------------------------------------------------ every command

/// Every command the tests above cover with `--json`, success and failure.
/// A command missing here fails `every_command_takes_json_and_prints_one_document`.
const COVERED: &[&str] = &[
    "adopt",
    "backups list",
    "backups prune",
    "completions",
    "dbbackup",
    "dbrestore",
    "history",
    "hooks embed-manifest",
    "hooks inspect",
    "hooks new",
    "hooks test",
    "hooks validate",
    "man",
    "migrations list",
    "plugin disable",
    "plugin enable",
    "plugin list",
    "plugin precompile",
    "report",
    "run",
    "status",
    "testdb",
    "upgrade",
    "verify-paths",
    "version compare",
    "version match",
];

/// The subcommands `uplift PATH --help` lists (but `help`).
fn subcommands(path: &[String]) -> Vec<String> {
    let out = uplift().args(path).arg("--help").output().unwrap();
    assert!(out.status.success(), "uplift {path:?} --help");
    let help = stdout(&out);
    let Some(start) = help.find("\nCommands:\n") else {
        return Vec::new();
    };
    help[start + "\nCommands:\n".len()..]
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let name = line.strip_prefix("  ")?;
            if name.starts_with(' ') {
                return None; // a description's continuation
            }
            name.split_whitespace().next().map(str::to_string)
        })
        .filter(|name| name != "help")
        .collect()
}

/// Every command, as its path of subcommand names, found by walking the
/// help of each command group.
fn leaf_commands() -> Vec<Vec<String>> {
    let mut leaves = Vec::new();
    let mut todo = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let children = subcommands(&path);
        if children.is_empty() && !path.is_empty() {
            leaves.push(path);
            continue;
        }
        for child in children {
            let mut next = path.clone();
            next.push(child);
            todo.push(next);
        }
    }
    leaves.sort();
    leaves
}

#[test]
fn every_command_takes_json_and_prints_one_document() {
    let leaves = leaf_commands();
    assert!(leaves.len() >= 20, "the walk found too few: {leaves:?}");
    let found: Vec<String> = leaves.iter().map(|p| p.join(" ")).collect();
    assert_eq!(
        found, COVERED,
        "every command must take --json and have its success and failure tested in tests/all/json.rs"
    );
    // Each one, given --json and nothing else (in a home and with a
    // release that do not exist), prints one JSON document: its result,
    // or a failure object with a code, and exits 0, 1 or 2 accordingly.
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("home");
    for path in &leaves {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_uplift"));
        cmd.env_remove("UPLIFT_HOME")
            .env_remove("UPLIFT_RELEASE")
            .arg("--home")
            .arg(&home)
            .args(["--release", "/nonexistent/release"])
            .args(path)
            .arg("--json");
        let out = run_cmd(&mut cmd);
        let value = document(&out);
        match out.status.code() {
            Some(0) => assert_ne!(value["outcome"], "failed", "{path:?}: {value:#}"),
            Some(1 | 2) => {
                assert_eq!(value["outcome"], "failed", "{path:?}: {value:#}");
                assert!(
                    value["error"]["code"]
                        .as_str()
                        .is_some_and(|c| !c.is_empty()),
                    "{path:?}: {value:#}"
                );
            }
            other => panic!("{path:?} exited {other:?}: {}", stderr(&out)),
        }
    }
}

//! Tools for plugin authors: `uplift hooks new` scaffolds plugins that build
//! and validate as generated; `uplift hooks test` runs a plugin's hooks on a
//! copy of a database and reports what they changed, never touching the
//! original.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{
    TestRelease, component, example_release, file_names, fingerprint, query_i64, repo_root, run,
    run_cmd, stderr, stdout, uplift,
};

/// The target folder the test suite builds into (shared with the scaffolded
/// crate, so it reuses the compiled SDK dependencies).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

fn validate(wasm: &Path) {
    let out = run(&["hooks", "validate", wasm.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "validate {}: {}{}",
        wasm.display(),
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("ok "), "{}", stdout(&out));
}

/// Every file under `dir`, with its text (lossy), for looking into all of
/// them at once.
fn files_in(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                files.push((path, text));
            }
        }
    }
    files
}

/// Panics if a scaffolded file names an absolute path: the plugin's own
/// folder, uplift's checkout, the temporary folder, or any `/name` after a
/// quote, a space, a parenthesis or `=`.
fn assert_no_absolute_path(dir: &Path) {
    let files = files_in(dir);
    assert!(!files.is_empty());
    for (path, text) in files {
        for absolute in [dir.to_path_buf(), repo_root(), std::env::temp_dir()] {
            let absolute = absolute.to_string_lossy().into_owned();
            assert!(
                !text.contains(&absolute),
                "{} names {absolute}:\n{text}",
                path.display()
            );
        }
        let rooted = text.as_bytes().windows(3).position(|w| {
            b"\"' `(=".contains(&w[0]) && w[1] == b'/' && w[2].is_ascii_alphanumeric()
        });
        assert!(
            rooted.is_none(),
            "{} names an absolute path at byte {rooted:?}:\n{text}",
            path.display()
        );
    }
}

#[test]
fn a_scaffolded_rust_plugin_takes_the_published_sdk_and_builds_against_a_patch() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("visit-counter");
    let out = run_cmd(
        uplift()
            .env_remove("UPLIFT_HOOKS_SDK")
            .args(["hooks", "new", "visit-counter", "--dir"])
            .arg(&dir),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("cargo build --release --target wasm32-wasip2"));
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    // By default the SDK released with this uplift, from crates.io: the
    // plugin builds anywhere, and names no path at all.
    let requirement = format!("uplift-hooks-sdk = \"{}\"\n", env!("CARGO_PKG_VERSION"));
    assert!(cargo_toml.contains(&requirement), "{cargo_toml}");
    assert_no_absolute_path(&dir);
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("cargo build --release --target wasm32-wasip2"));
    assert!(readme.contains("[patch.crates-io]"), "{readme}");

    // What the README says to do to build against a checkout (the SDK is
    // not on crates.io while this test runs from one): a [patch], added
    // here only, by a path relative to the plugin's folder.
    let sdk = repo_root().join("hooks-sdk");
    let up = dir.components().count() - 1;
    let relative: PathBuf = std::iter::repeat_n(std::path::Component::ParentDir, up)
        .map(|c| c.as_os_str().to_owned())
        .chain(sdk.strip_prefix("/").unwrap().iter().map(|c| c.to_owned()))
        .collect();
    let patched = format!(
        "{cargo_toml}\n[patch.crates-io]\nuplift-hooks-sdk = {{ path = {:?} }}\n",
        relative.display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), patched).unwrap();

    let target = target_dir();
    let build = run_cmd(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&dir)
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .arg("--target-dir")
            .arg(&target),
    );
    assert!(build.status.success(), "cargo build: {}", stderr(&build));
    let wasm = target.join("wasm32-wasip2/release/visit_counter.wasm");
    validate(&wasm);
    let inspect = run(&["hooks", "inspect", wasm.to_str().unwrap()]);
    assert!(
        stdout(&inspect).contains("visit_counter_"),
        "{}",
        stdout(&inspect)
    );
}

/// `uplift hooks new NAME --dir DIR` with UPLIFT_HOOKS_SDK set to `sdk`.
fn scaffold_with_sdk(name: &str, dir: &Path, sdk: &str) -> std::process::Output {
    run_cmd(
        uplift()
            .env("UPLIFT_HOOKS_SDK", sdk)
            .args(["hooks", "new", name, "--dir"])
            .arg(dir),
    )
}

#[test]
fn uplift_hooks_sdk_names_a_local_path_relative_to_the_plugin_or_a_git_revision() {
    let scratch = tempfile::tempdir_in(repo_root()).unwrap();
    let dir = scratch.path().join("inner");
    let sdk = format!("path:{}", repo_root().join("hooks-sdk").display());
    let out = scaffold_with_sdk("inner", &dir, &sdk);
    assert!(out.status.success(), "{}", stderr(&out));
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains("uplift-hooks-sdk = { path = \"../../hooks-sdk\" }"),
        "{cargo_toml}"
    );
    assert!(cargo_toml.contains("\n[workspace]\n"), "{cargo_toml}");
    assert_no_absolute_path(&dir);

    // `checkout`: the checkout this uplift was built from, relative too.
    let dir = scratch.path().join("checkout");
    let out = scaffold_with_sdk("checkout", &dir, "checkout");
    assert!(out.status.success(), "{}", stderr(&out));
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains("uplift-hooks-sdk = { path = \"../../hooks-sdk\" }"),
        "{cargo_toml}"
    );

    let dir = scratch.path().join("from-git");
    let out = scaffold_with_sdk(
        "from-git",
        &dir,
        "git:https://example.org/uplift.git#v0.1.0",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains(
            "uplift-hooks-sdk = { git = \"https://example.org/uplift.git\", rev = \"v0.1.0\" }"
        ),
        "{cargo_toml}"
    );

    // A source that cannot be understood is a usage error naming the
    // variable, and writes nothing.
    let dir = scratch.path().join("bad");
    let out = scaffold_with_sdk("bad", &dir, "soon");
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(
            "invalid SDK source: UPLIFT_HOOKS_SDK: \"soon\" is not a version requirement"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!dir.exists());
}

/// `uplift hooks new NAME --sdk SDK --dir DIR`, with UPLIFT_HOOKS_SDK set
/// to `variable`.
fn scaffold_with_sdk_option(
    name: &str,
    dir: &Path,
    sdk: &str,
    variable: &str,
) -> std::process::Output {
    run_cmd(
        uplift()
            .env("UPLIFT_HOOKS_SDK", variable)
            .args(["hooks", "new", name, "--sdk", sdk, "--dir"])
            .arg(dir),
    )
}

/// The `uplift-hooks-sdk = ...` line of a scaffolded plugin's Cargo.toml.
fn sdk_dependency(dir: &Path) -> String {
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let line = cargo_toml
        .lines()
        .find(|line| line.starts_with("uplift-hooks-sdk"));
    line.unwrap_or_else(|| panic!("no SDK dependency in {cargo_toml}"))
        .to_string()
}

#[test]
fn hooks_new_sdk_takes_the_forms_of_the_variable_and_wins_over_it() {
    let scratch = tempfile::tempdir().unwrap();
    // The option wins over the variable, even one that would be refused.
    for (sdk, dependency) in [
        (
            "git:https://example.org/uplift.git#v0.1.0",
            "uplift-hooks-sdk = { git = \"https://example.org/uplift.git\", rev = \"v0.1.0\" }",
        ),
        ("=0.1.2", "uplift-hooks-sdk = \"=0.1.2\""),
    ] {
        let dir = scratch.path().join("good");
        let out = scaffold_with_sdk_option("good", &dir, sdk, "soon");
        assert!(out.status.success(), "{sdk}: {}", stderr(&out));
        assert_eq!(sdk_dependency(&dir), dependency);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // A value that cannot be understood is a usage error naming the
    // option, and writes nothing.
    let dir = scratch.path().join("bad");
    for (sdk, says) in [
        (
            "soon",
            "invalid SDK source: --sdk: \"soon\" is not a version requirement",
        ),
        (
            "path:/nowhere/hooks-sdk",
            "/nowhere/hooks-sdk has no Cargo.toml",
        ),
        ("git:#v1", "git: needs the repository's URL"),
    ] {
        let out = scaffold_with_sdk_option("bad", &dir, sdk, "");
        assert_eq!(out.status.code(), Some(2), "{sdk}: {}", stdout(&out));
        assert!(stderr(&out).contains(says), "{sdk}: {}", stderr(&out));
        assert!(!dir.exists(), "{sdk} wrote {}", dir.display());
    }
}

#[test]
fn a_scaffolded_python_plugin_builds_with_build_plugin_and_validates() {
    if !repo_root().join(".venv/bin/componentize-py").is_file() {
        eprintln!(
            "SKIPPED a_scaffolded_python_plugin_builds_with_build_plugin_and_validates: \
             .venv/bin/componentize-py is missing (run scripts/setup)"
        );
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("py-notes");
    let out = run(&[
        "hooks",
        "new",
        "py-notes",
        "--lang",
        "python",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("uplift-build-plugin app.py -o py-notes.wasm"),
        "{}",
        stdout(&out)
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("pip install \"uplift-hooks>=")
            && readme.contains("uplift-build-plugin app.py -o py-notes.wasm"),
        "{readme}"
    );
    assert!(dir.join("test_app.py").is_file());
    assert_no_absolute_path(&dir);
    // The checkout's build-plugin is uplift-build-plugin without installing
    // the package (the installed command is tested by the packaging module).
    let build = run_cmd(
        Command::new(repo_root().join("hooks-sdk/python/build-plugin"))
            .current_dir(&dir)
            .args(["app.py", "-o", "py-notes.wasm", "--uplift"])
            .arg(env!("CARGO_BIN_EXE_uplift")),
    );
    assert!(
        build.status.success(),
        "build-plugin: {}{}",
        stdout(&build),
        stderr(&build)
    );
    validate(&dir.join("py-notes.wasm"));
}

#[test]
fn an_invalid_name_is_refused_and_nothing_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    for name in ["Bad-Name", "9lives", "uplift", "has space", ""] {
        let dir = scratch.path().join("plugin");
        let out = run(&["hooks", "new", name, "--dir", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(name), "{name:?}: {}", stderr(&out));
        assert!(!dir.exists(), "{name:?} wrote {}", dir.display());
    }
    let out = run(&[
        "hooks",
        "new",
        "Bad",
        "--dir",
        scratch.path().to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("invalid plugin name \"Bad\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_non_empty_folder_is_refused_and_left_as_it_was() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("mine.txt"), "keep me").unwrap();
    let out = run(&[
        "hooks",
        "new",
        "fine-name",
        "--lang",
        "python",
        "--dir",
        scratch.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("exists and is not empty"),
        "{}",
        stderr(&out)
    );
    assert_eq!(crate::support::file_names(scratch.path()), ["mine.txt"]);

    // An empty folder is fine.
    let empty = scratch.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(&[
        "hooks",
        "new",
        "fine-name",
        "--dir",
        empty.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(empty.join("src/lib.rs").is_file());
}

/// Runs `uplift GLOBAL... hooks test PLUGIN --db DB REST...`.
fn hooks_test(global: &[&str], plugin: &Path, db: &Path, rest: &[&str]) -> std::process::Output {
    let mut cmd = uplift();
    cmd.args(global)
        .args(["hooks", "test"])
        .arg(plugin)
        .arg("--db")
        .arg(db)
        .args(rest);
    run_cmd(&mut cmd)
}

/// A home with example release 0.6.4 installed and its fixtures loaded; its
/// database.
fn learnhub_064(root: &Path) -> PathBuf {
    crate::support::install_example(&root.join("home"), "0.6.4")
}

#[test]
fn hooks_test_shows_the_rows_a_hook_updates_and_leaves_the_database_untouched() {
    let scratch = tempfile::tempdir().unwrap();
    let db = learnhub_064(scratch.path());
    let before = std::fs::read(&db).unwrap();
    let missing =
        crate::support::query_i64(&db, "SELECT count(*) FROM learner WHERE email IS NULL");
    assert!(
        missing > 0,
        "the fixtures should have learners without email"
    );

    let plugin = component("email-backfill");
    let args = [
        "hooks",
        "test",
        plugin.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--from",
        "0.6.4",
        "--to",
        "1.0.0",
    ];
    let out = run(&args);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("ok   email-backfill/backfill_emails"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "learner: 0 inserted, {missing} updated, 0 deleted"
        )),
        "{text}"
    );
    // Examples in rowid order, showing only the changed column.
    assert!(
        text.contains("updated rowid=1: email NULL → 'learner1@2.example.org'"),
        "{text}"
    );
    assert!(
        text.contains("updated rowid=2: email NULL → 'learner2@3.example.org'"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "gave {missing} learners a placeholder email address"
        )),
        "{text}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the original changed");
    assert_eq!(
        crate::support::query_i64(&db, "SELECT count(*) FROM learner WHERE email IS NULL"),
        missing
    );

    // The same as JSON, with the app name from --release.
    let release = example_release("1.0.0");
    let mut json_args = vec!["--release", release.to_str().unwrap()];
    json_args.extend(args);
    json_args.push("--json");
    let out = run(&json_args);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["plugin"], "email-backfill");
    assert_eq!(report["hooks"][0]["hook"], "backfill_emails");
    assert_eq!(report["hooks"][0]["ok"], true);
    let learner = &report["hooks"][0]["changes"][0];
    assert_eq!(learner["table"], "learner");
    assert_eq!(learner["updated"], missing);
    assert_eq!(learner["examples"].as_array().unwrap().len(), 3);
    // Values keep their types: the email was NULL (null), and became text.
    let example = &learner["examples"][0];
    assert_eq!(
        example["before"]["email"],
        serde_json::Value::Null,
        "{example}"
    );
    assert!(example["after"]["email"].is_string(), "{example}");
    assert!(
        !example["after"]["email"]
            .as_str()
            .unwrap()
            .starts_with('\''),
        "text without SQL quotes: {example}"
    );
    assert!(
        report["log"][0]["message"]
            .as_str()
            .unwrap()
            .contains("placeholder")
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the original changed");
}

#[test]
fn hooks_test_shows_inserted_rows_of_a_table_the_hook_creates() {
    let scratch = tempfile::tempdir().unwrap();
    let db = learnhub_064(scratch.path());
    let plugin = component("big-leap");
    // big-leap runs from before 0.6.4 only: nothing matches 0.6.4 -> 1.0.0.
    let out = hooks_test(&[], &plugin, &db, &["--from", "0.6.4", "--to", "1.0.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no hook of plugin big-leap"),
        "{}",
        stdout(&out)
    );

    let out = hooks_test(&[], &plugin, &db, &["--from", "0.2.0", "--to", "1.0.0"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("bigleap_log: 1 inserted, 0 updated, 0 deleted"),
        "{text}"
    );
    assert!(text.contains("old_version='0.2.0'"), "{text}");
    assert!(text.contains("warn: You've just upgraded"), "{text}");
}

#[test]
fn hooks_test_of_a_refused_statement_exits_1_naming_the_refusal() {
    let scratch = tempfile::tempdir().unwrap();
    let db = learnhub_064(scratch.path());
    let before = std::fs::read(&db).unwrap();
    let plugin = component("uplift-test-hostile");
    let out = hooks_test(
        &[],
        &plugin,
        &db,
        &["--from", "0.6.4", "--to", "1.0.0", "--hook", "attach"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("FAIL hostile/attach"), "{text}");
    assert!(text.contains("the sandbox refused"), "{text}");
    assert!(text.contains("ATTACH"), "{text}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the original changed");
}

#[test]
fn hooks_test_refuses_an_unknown_hook_and_a_missing_database() {
    let scratch = tempfile::tempdir().unwrap();
    let plugin = component("email-backfill");
    let missing = scratch.path().join("none.sqlite3");
    let out = hooks_test(
        &[],
        &plugin,
        &missing,
        &["--from", "0.6.4", "--to", "1.0.0"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("none.sqlite3"), "{}", stderr(&out));
    assert!(!missing.exists(), "a missing database must not be created");

    let db = learnhub_064(scratch.path());
    let out = hooks_test(
        &[],
        &plugin,
        &db,
        &["--from", "0.6.4", "--to", "1.0.0", "--hook", "nope"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no hook \"nope\"; its hooks are: backfill_emails"),
        "{}",
        stderr(&out)
    );
}

/// A home at `root/home` with release 0.9.0 of a small "notes" application
/// installed (a table `notes` with two rows and no `body` column), and
/// release 1.0.0, whose migration 0002 adds `body`. Returns the database and
/// release 1.0.0.
fn notes_home_before_body(root: &Path) -> (PathBuf, TestRelease) {
    let create = (
        "0001_notes.sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY);",
    );
    let r09 = TestRelease::new(root, "r09", "notes-app", "0.9.0", &[create]);
    let r10 = TestRelease::new(
        root,
        "r10",
        "notes-app",
        "1.0.0",
        &[
            create,
            (
                "0002_note_body.sql",
                "ALTER TABLE notes ADD COLUMN body TEXT;\nUPDATE notes SET body = 'note ' || id;",
            ),
        ],
    );
    let home = root.join("home");
    let out = run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        r09.path(),
        "upgrade",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = home.join("db.sqlite3");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO notes (id) VALUES (1), (2);")
        .unwrap();
    (db, r10)
}

#[test]
fn hooks_test_with_a_release_migrates_the_copy_before_the_hooks_as_the_upgrade_would() {
    let scratch = tempfile::tempdir().unwrap();
    let (db, r10) = notes_home_before_body(scratch.path());
    let before = fingerprint(&db);
    let plugin = component("uplift-test-tidy");

    // Without the release, the copy keeps the old schema: tidy's hooks,
    // written for 1.0.0, fail on the missing column.
    let out = hooks_test(&[], &plugin, &db, &["--from", "0.9.0", "--to", "1.0.0"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("FAIL tidy/copy_notes"), "{text}");
    assert!(text.contains("no such column: body"), "{text}");
    assert!(!text.contains("migrated the copy"), "{text}");

    // With it, migration 0002 runs first (reported before the hooks' log)
    // and --to defaults to the release's version.
    let release = ["--release", r10.path()];
    let out = hooks_test(&release, &plugin, &db, &["--from", "0.9.0"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let migrated = text
        .find("migrated the copy first: 0002_note_body.sql")
        .unwrap_or_else(|| panic!("no migration reported:\n{text}"));
    assert!(
        !text.contains("0001_notes.sql"),
        "0001 was already applied:\n{text}"
    );
    let logged = text.find("copied 2 notes for notes-app 0.9.0 -> 1.0.0");
    assert!(logged.is_some_and(|at| at > migrated), "{text}");
    assert!(text.contains("ok   tidy/copy_notes"), "{text}");
    assert!(text.contains("ok   tidy/shout"), "{text}");
    assert!(
        text.contains("tidy_copy: 2 inserted, 0 updated, 0 deleted"),
        "{text}"
    );
    assert!(text.contains("body='note 1'"), "{text}");

    let out = hooks_test(&release, &plugin, &db, &["--from", "0.9.0", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["to"], "1.0.0");
    let files: Vec<&str> = report["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["0002_note_body.sql"]);
    assert_eq!(report["hooks"][0]["ok"], true);

    assert_eq!(fingerprint(&db), before, "the original database changed");
    assert_eq!(query_i64(&db, "SELECT count(*) FROM uplift_migrations"), 1);
}

#[test]
fn hooks_test_refuses_a_release_whose_migration_fails_on_the_copy() {
    let scratch = tempfile::tempdir().unwrap();
    let (db, _) = notes_home_before_body(scratch.path());
    let before = fingerprint(&db);
    let broken = TestRelease::new(
        scratch.path(),
        "broken",
        "notes-app",
        "1.0.0",
        &[
            (
                "0001_notes.sql",
                "CREATE TABLE notes (id INTEGER PRIMARY KEY);",
            ),
            ("0002_typo.sql", "ALTER TABLE nots ADD COLUMN body TEXT;"),
        ],
    );
    let plugin = component("uplift-test-tidy");
    let out = hooks_test(
        &["--release", broken.path()],
        &plugin,
        &db,
        &["--from", "0.9.0"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(
        err.contains("could not bring the copy to release 1.0.0's schema")
            && err.contains("migration 0002_typo.sql failed")
            && err.contains("nots"),
        "{err}"
    );
    assert_no_hook_ran_and_unchanged(&out, &db, &before);
}

/// An empty application database at `root/app.sqlite3`.
fn empty_db(root: &Path) -> PathBuf {
    let db = root.join("app.sqlite3");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
        .unwrap();
    db
}

#[test]
fn hooks_test_applies_the_hook_limits_of_the_homes_uplift_toml() {
    let scratch = tempfile::tempdir().unwrap();
    let db = empty_db(scratch.path());
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("uplift.toml"),
        "[hooks]\nmemory_mib = 16\ntimeout_seconds = 1\n",
    )
    .unwrap();
    let plugin = component("uplift-test-hostile");
    let hook = |name: &str, home_by_env: bool| {
        let mut cmd = uplift();
        if home_by_env {
            cmd.env("UPLIFT_HOME", &home);
        } else {
            cmd.args(["--home", home.to_str().unwrap()]);
        }
        cmd.args(["hooks", "test", plugin.to_str().unwrap(), "--db"])
            .arg(&db)
            .args(["--from", "0.1", "--to", "1.0", "--hook", name]);
        run_cmd(&mut cmd)
    };

    let out = hook("memory_bomb", false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("FAIL hostile/memory_bomb"), "{text}");
    assert!(
        text.contains("beyond 16 MiB") && text.contains("memory_mib"),
        "the home's 16 MiB should be the limit, not the default 256:\n{text}"
    );

    let out = hook("infinite_loop", true);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("ran longer than 1 s") && text.contains("timeout_seconds"),
        "the home's 1 s should be the limit, not the default 300 s:\n{text}"
    );
}

#[test]
fn hooks_test_refuses_a_malformed_uplift_toml_naming_the_file() {
    let scratch = tempfile::tempdir().unwrap();
    let db = empty_db(scratch.path());
    let before = fingerprint(&db);
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let settings = home.join("uplift.toml");
    std::fs::write(&settings, "[hooks]\ntimeout_secs = 5\n").unwrap();
    let plugin = component("uplift-test-tidy");
    let out = hooks_test(
        &["--home", home.to_str().unwrap()],
        &plugin,
        &db,
        &["--from", "0.1", "--to", "1.0"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(
        err.contains(&format!("invalid settings file {}", settings.display()))
            && err.contains("timeout_secs"),
        "{err}"
    );
    assert_no_hook_ran_and_unchanged(&out, &db, &before);
}

#[test]
fn hooks_test_needs_to_or_a_release() {
    let scratch = tempfile::tempdir().unwrap();
    let db = empty_db(scratch.path());
    let plugin = component("uplift-test-tidy");
    let out = hooks_test(&[], &plugin, &db, &["--from", "0.1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--to V"), "{}", stderr(&out));
}

#[test]
fn hooks_test_records_what_a_hook_creates_so_the_plugins_later_hooks_own_it() {
    let scratch = tempfile::tempdir().unwrap();
    // A bare database: no uplift tables; the record goes into the copy.
    let db = empty_db(scratch.path());
    let before = fingerprint(&db);
    let plugin = scratch.path().join("hostile.wasm");
    let owns = r#"{"read":[],"write":[],"owns":"hostile_"}"#;
    let bytes = crate::support::hostile_with_manifest(
        "hostile",
        "1.0.0",
        owns,
        &["create_owned", "alter_owned", "drop_owned"],
    );
    std::fs::write(&plugin, bytes).unwrap();
    let out = hooks_test(&[], &plugin, &db, &["--from", "0.1.0", "--to", "1.0.0"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for hook in ["create_owned", "alter_owned", "drop_owned"] {
        assert!(text.contains(&format!("ok   hostile/{hook}")), "{text}");
    }
    assert_eq!(fingerprint(&db), before, "the original database changed");

    // A table the copy already has under the prefix is not the plugin's.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE hostile_kept (x INTEGER);")
        .unwrap();
    let before = fingerprint(&db);
    let out = hooks_test(
        &[],
        &plugin,
        &db,
        &["--from", "0.1.0", "--to", "1.0.0", "--hook", "drop_owned"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("FAIL hostile/drop_owned"), "{text}");
    assert!(
        text.contains(r#"may not drop table hostile_kept: it matches the owned prefix "hostile_" but was not created by hostile"#),
        "{text}"
    );
    assert_eq!(fingerprint(&db), before, "the original database changed");
}

/// `hooks test` stopped before any hook of `tidy` ran, and the original
/// database is as `before`.
fn assert_no_hook_ran_and_unchanged(out: &std::process::Output, db: &Path, before: &str) {
    assert!(
        !stdout(out).contains("tidy/"),
        "no hook may run: {}",
        stdout(out)
    );
    assert_eq!(fingerprint(db), before, "the original database changed");
}

/// Without a home, `hooks test` keeps compiled plugins in the user's cache
/// (`$XDG_CACHE_HOME/uplift`), so a second run does not compile again.
#[test]
fn hooks_test_without_a_home_caches_compiled_plugins_for_the_user() {
    let scratch = tempfile::tempdir().unwrap();
    let db = empty_db(scratch.path());
    let cache = scratch.path().join("xdg-cache");
    let plugin = component("uplift-test-hostile");
    let mut cmd = uplift();
    cmd.env_remove("UPLIFT_HOME")
        .env("HOME", scratch.path().join("user"))
        .env("XDG_CACHE_HOME", &cache)
        .args(["hooks", "test", plugin.to_str().unwrap(), "--db"])
        .arg(&db)
        .args(["--from", "0.1", "--to", "1.0", "--hook", "panic"]);
    let out = run_cmd(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let entries = file_names(&cache.join("uplift"));
    assert!(
        entries.iter().any(|e| e.ends_with(".cwasm")),
        "the compiled plugin is in the user's cache: {entries:?}"
    );
}

#[test]
fn testdb_builds_a_database_at_a_release_with_its_fixtures_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("old.sqlite3");
    let release = example_release("0.6.4");
    let out = run(&[
        "--release",
        release.to_str().unwrap(),
        "testdb",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("learnhub 0.6.4 with 3 fixture files loaded"),
        "{}",
        stdout(&out)
    );
    assert_eq!(query_i64(&out_path, "SELECT count(*) FROM learner"), 1500);
    assert!(query_i64(&out_path, "SELECT count(*) FROM progress") > 0);
    let conn = rusqlite::Connection::open(&out_path).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM uplift_meta WHERE key = 'data_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "0.6.4");
    drop(conn);
    assert_eq!(
        file_names(dir.path()),
        ["old.sqlite3"],
        "nothing is left beside it"
    );

    // Never over an existing file.
    let before = std::fs::read(&out_path).unwrap();
    let again = run(&[
        "--release",
        release.to_str().unwrap(),
        "testdb",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), before);
    // A release is needed.
    let none = run(&["testdb", dir.path().join("x.sqlite3").to_str().unwrap()]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert_eq!(file_names(dir.path()), ["old.sqlite3"]);
}

#[test]
fn hooks_test_takes_from_from_the_database_warns_when_told_otherwise_and_can_require_a_match() {
    let scratch = tempfile::tempdir().unwrap();
    let db = learnhub_064(scratch.path());
    let plugin = component("email-backfill");
    let test = |extra: &[&str]| {
        let mut args = vec![
            "hooks",
            "test",
            plugin.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--to",
            "1.0.0",
            "--json",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    // No --from: the database's own data version.
    let out = test(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["from"], "0.6.4");
    assert_eq!(report["hooks"][0]["hook"], "backfill_emails");
    assert!(report.get("warnings").is_none(), "{report}");

    // A --from the database disagrees with: run as told, and warned.
    let out = test(&["--from", "0.6.3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--from 0.6.3, but")
            && stderr(&out).contains("records data version 0.6.4"),
        "{}",
        stderr(&out)
    );

    // No hook matches 1.0.0 -> 1.0.0: fine by default, a failure for CI.
    let out = test(&["--from", "1.0.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = test(&["--from", "1.0.0", "--require-match"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no hook of email-backfill matches an upgrade from 1.0.0 to 1.0.0"),
        "{}",
        stderr(&out)
    );

    // A database uplift never upgraded, and no --from: say what to give.
    let bare = scratch.path().join("bare.sqlite3");
    rusqlite::Connection::open(&bare)
        .unwrap()
        .execute_batch("CREATE TABLE learner (id INTEGER PRIMARY KEY, email TEXT);")
        .unwrap();
    let out = run(&[
        "hooks",
        "test",
        plugin.to_str().unwrap(),
        "--db",
        bare.to_str().unwrap(),
        "--to",
        "1.0.0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("records no data version"),
        "{}",
        stderr(&out)
    );
}

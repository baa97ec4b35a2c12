//! uplift as its users install it, without the repository's layout: the SDK
//! crates package for crates.io with the WIT inside them; the wheel carries
//! the `uplift` binary into a fresh virtual environment and upgrades a
//! database from there; the Python helper installs into a fresh virtual
//! environment and builds a plugin with its console script.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{repo_root, run_cmd, stderr, stdout};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The crates a Rust plugin author depends on, in dependency order.
const SDK_CRATES: [&str; 3] = [
    "uplift-contract",
    "uplift-hooks-sdk-macros",
    "uplift-hooks-sdk",
];

/// Runs `cargo package --no-verify` for the SDK crates into `target` and
/// returns the folder each `.crate` file was unpacked into.
fn package_sdk_crates(target: &Path) -> Vec<PathBuf> {
    let mut cmd = cargo();
    cmd.current_dir(repo_root())
        .args([
            "package",
            "--no-verify",
            "--allow-dirty",
            "--locked",
            "--quiet",
        ])
        .arg("--target-dir")
        .arg(target);
    for name in SDK_CRATES {
        cmd.args(["-p", name]);
    }
    let out = run_cmd(&mut cmd);
    assert!(out.status.success(), "cargo package: {}", stderr(&out));
    let version = env!("CARGO_PKG_VERSION");
    SDK_CRATES
        .iter()
        .map(|name| {
            let file = target
                .join("package")
                .join(format!("{name}-{version}.crate"));
            assert!(file.is_file(), "{} was not written", file.display());
            let out = run_cmd(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(&file)
                    .arg("-C")
                    .arg(target),
            );
            assert!(out.status.success(), "tar: {}", stderr(&out));
            target.join(format!("{name}-{version}"))
        })
        .collect()
}

#[test]
fn the_sdk_crates_package_with_the_repository_wit_inside() {
    let scratch = tempfile::tempdir().unwrap();
    let unpacked = package_sdk_crates(scratch.path());
    let sdk = &unpacked[2];
    // The SDK's wit-bindgen reads `wit/` beside its Cargo.toml: the packaged
    // files must be the repository's own WIT (hooks-sdk/wit is a symlink to
    // it), byte for byte, so the published SDK and the host cannot disagree.
    let wit = repo_root().join("wit");
    for entry in std::fs::read_dir(&wit).unwrap() {
        let entry = entry.unwrap();
        let packaged = sdk.join("wit").join(entry.file_name());
        assert_eq!(
            std::fs::read(&packaged)
                .unwrap_or_else(|e| panic!("{} is not packaged: {e}", packaged.display())),
            std::fs::read(entry.path()).unwrap(),
            "{} differs from the repository's",
            packaged.display()
        );
    }
    let lib = std::fs::read_to_string(sdk.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("path: \"wit\""),
        "the SDK reads its WIT elsewhere"
    );

    // Path dependencies are published as version requirements on the other
    // SDK crates (cargo drops the path when it normalizes Cargo.toml).
    let version = env!("CARGO_PKG_VERSION");
    for (dir, deps) in [
        (&unpacked[1], &["uplift-contract"][..]),
        (sdk, &["uplift-contract", "uplift-hooks-sdk-macros"][..]),
    ] {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let manifest: toml::Table = toml::from_str(&manifest).unwrap();
        for dep in deps {
            let spec = &manifest["dependencies"][*dep];
            assert_eq!(
                spec.get("version").and_then(|v| v.as_str()),
                Some(version),
                "{}: {dep} = {spec}",
                dir.display()
            );
            assert!(spec.get("path").is_none(), "{dep} = {spec}");
        }
    }
}

/// The virtual environment `scripts/setup` makes (maturin, componentize-py,
/// and the wheels the Python helper's dependencies come from).
fn setup_venv() -> PathBuf {
    repo_root().join(".venv")
}

/// The folder holding the `uplift-sqlite` wheel `scripts/build-wheel`
/// built (before the tests: cargo replaces `target/debug/uplift` while it
/// builds, which tests running it at that moment would not survive).
fn wheel_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("packaging-wheels");
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/build-wheel first",
        dir.display()
    );
    dir
}

/// A fresh virtual environment in `dir`, made by the system's python3 (not
/// the repository's .venv), with its own pip.
fn fresh_venv(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let out = run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    assert!(out.status.success(), "python3 -m venv: {}", stderr(&out));
    venv
}

/// `pip install --no-index` into `venv`: only from `find_links` folders,
/// never from the network, so the test installs exactly what it built.
fn pip_install(venv: &Path, find_links: &[&Path], what: &[&Path]) {
    let mut cmd = Command::new(venv.join("bin/pip"));
    cmd.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-index",
    ]);
    for dir in find_links {
        cmd.arg("--find-links").arg(dir);
    }
    let out = run_cmd(cmd.args(what));
    assert!(
        out.status.success(),
        "pip install {what:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Runs `script` with `sh -c`, with only `venv/bin` and the system's
/// folders on PATH: the way a shell with the venv activated would.
fn in_venv(venv: &Path, script: &str) -> std::process::Output {
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        venv.join("bin").display()
    );
    run_cmd(
        Command::new("sh")
            .args(["-c", script])
            .env("PATH", path)
            .env("VIRTUAL_ENV", venv)
            .env_remove("UPLIFT_HOME")
            .env_remove("UPLIFT_RELEASE")
            .env_remove("UPLIFT_BIN")
            .env_remove("CARGO_TARGET_DIR"),
    )
}

fn the_wheel() -> PathBuf {
    let wheels: Vec<PathBuf> = std::fs::read_dir(wheel_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    wheels.into_iter().next().unwrap()
}

#[test]
fn the_wheel_installs_a_working_uplift_into_a_fresh_venv() {
    let scratch = tempfile::tempdir().unwrap();
    let wheel = the_wheel();
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("uplift_sqlite-{}-", env!("CARGO_PKG_VERSION"))),
        "{name}"
    );
    let venv = fresh_venv(scratch.path());
    pip_install(&venv, &[], &[&wheel]);

    let out = in_venv(&venv, "command -v uplift && uplift --version");
    assert!(out.status.success(), "{}", stderr(&out));
    // `--version` names the build's engines on the lines after its own.
    let expected = format!(
        "{}\nuplift {}\nwasmtime ",
        venv.join("bin/uplift").display(),
        env!("CARGO_PKG_VERSION")
    );
    assert!(stdout(&out).starts_with(&expected), "{}", stdout(&out));

    // A real upgrade through the installed binary: a fresh install at 1.0.0,
    // then an upgrade to 1.1.0 with a backup and a migration.
    let v1 = crate::support::TestRelease::new(
        scratch.path(),
        "v1",
        "shop",
        "1.0.0",
        &[(
            "0001_items.sql",
            "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\nINSERT INTO item (name) VALUES ('kettle');",
        )],
    );
    let v2 = crate::support::TestRelease::new(
        scratch.path(),
        "v2",
        "shop",
        "1.1.0",
        &[
            (
                "0001_items.sql",
                "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\nINSERT INTO item (name) VALUES ('kettle');",
            ),
            (
                "0002_price.sql",
                "ALTER TABLE item ADD COLUMN price INTEGER NOT NULL DEFAULT 5;",
            ),
        ],
    );
    let home = scratch.path().join("home");
    for release in [&v1, &v2] {
        let out = in_venv(
            &venv,
            &format!(
                "uplift --home '{}' --release '{}' upgrade --json",
                home.display(),
                release.path()
            ),
        );
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
    let db = home.join("db.sqlite3");
    assert_eq!(
        crate::support::query_i64(&db, "SELECT sum(price) FROM item"),
        5
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM uplift_meta WHERE key = 'data_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "1.1.0");
    assert_eq!(
        crate::support::file_names(&home.join("backups")).len(),
        1,
        "the upgrade to 1.1.0 backs up the 1.0.0 data"
    );
}

/// The wheels `scripts/setup` downloads for the Python helper's build
/// backend and dependencies (componentize-py).
fn setup_wheels() -> PathBuf {
    let wheels = setup_venv().join("wheels");
    assert!(
        wheels.is_dir(),
        "{} is missing: run scripts/setup",
        wheels.display()
    );
    wheels
}

#[test]
fn the_python_helper_installs_into_a_fresh_venv_tests_plugins_and_builds_them() {
    let scratch = tempfile::tempdir().unwrap();
    let venv = fresh_venv(scratch.path());
    // What `pip install uplift-hooks` does, from this folder: its build
    // backend, componentize-py and the uplift-sqlite wheel are its
    // dependencies, found among the wheels given (never on the network).
    pip_install(
        &venv,
        &[&setup_wheels(), &wheel_dir()],
        &[&repo_root().join("hooks-sdk/python")],
    );

    // Plain CPython: the helper's own tests of its local implementation
    // (run from their folder, so that `uplift_hooks` is the installed
    // package, not the source beside them), py-stats's unit test, which
    // imports the plugin itself, and the one `uplift hooks new` scaffolds.
    let scaffolded = scratch.path().join("py-notes");
    let out = in_venv(
        &venv,
        &format!(
            "uplift hooks new py-notes --lang python --dir '{}'",
            scaffolded.display()
        ),
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for folder in [
        repo_root().join("hooks-sdk/python/tests"),
        repo_root().join("example-hooks/py-stats"),
        scaffolded,
    ] {
        let out = in_venv(
            &venv,
            &format!(
                "cd '{}' && python -B -m unittest discover -p 'test_*.py'",
                folder.display()
            ),
        );
        assert!(
            out.status.success(),
            "{}: {}{}",
            folder.display(),
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("\nOK"),
            "{}: {}",
            folder.display(),
            stderr(&out)
        );
    }

    // The console script builds py-stats with the componentize-py and the
    // uplift it brought (nothing of the repository's .venv or target on
    // PATH), and the uplift of the wheel runs it in a real upgrade.
    let release = |version: &str, plugins: &str| {
        let dir = scratch.path().join(version);
        std::fs::create_dir_all(dir.join("migrations")).unwrap();
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        std::fs::write(
            dir.join("release.toml"),
            format!("app = \"learnhub\"\nversion = \"{version}\"\ncore_plugins = [{plugins}]\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("migrations/0001_learner.sql"),
            "CREATE TABLE learner (id INTEGER PRIMARY KEY, facility_id INTEGER NOT NULL);\n\
             INSERT INTO learner (facility_id) VALUES (1), (1), (2);\n",
        )
        .unwrap();
        dir
    };
    let old = release("0.9.0", "");
    let new = release("1.0.0", "\"py-stats\"");
    let out = in_venv(
        &venv,
        &format!(
            "cd '{}' && uplift-build-plugin app.py -o '{}'",
            repo_root().join("example-hooks/py-stats").display(),
            new.join("plugins/py-stats.wasm").display()
        ),
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("(py-stats 1.0.0; hooks: summarize_learners)"),
        "{}",
        stdout(&out)
    );
    let home = scratch.path().join("home");
    for release in [&old, &new] {
        let out = in_venv(
            &venv,
            &format!(
                "uplift --home '{}' --release '{}' upgrade",
                home.display(),
                release.display()
            ),
        );
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
    let conn = rusqlite::Connection::open(home.join("db.sqlite3")).unwrap();
    let summary: String = conn
        .query_row(
            "SELECT group_concat(facility_id || ':' || learners, ' ') \
             FROM (SELECT * FROM pystats_summary ORDER BY facility_id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(summary, "1:2 2:1");
}

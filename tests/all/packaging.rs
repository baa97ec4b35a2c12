//! uplift as its users install it, without the repository's layout: the SDK
//! crates package for crates.io with the WIT inside them; the wheel carries
//! the `uplift` binary into a fresh virtual environment and upgrades a
//! database from there; the Python helper installs into a fresh virtual
//! environment and builds a plugin with its console script.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{repo_root, run_cmd, stderr};

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

//! `uplift hooks new`: a new plugin that builds and passes `uplift hooks
//! validate` as generated, in Rust (a crate using `uplift-hooks-sdk`) or
//! Python (an `app.py` using the `uplift-hooks` package's `uplift_hooks`).
//!
//! The generated plugin owns the table prefix `NAME_` (`-` becoming `_`) and
//! has one hook, for upgrades from before 1.0.0 to 1.0.0 or later, that
//! records the upgrade in a table of its own.
//!
//! Nothing scaffolded names an absolute path, so the plugin builds wherever
//! it is copied to (a CI runner, another machine): a Rust plugin takes the
//! SDK from crates.io by default ([`SdkSource`]), a Python one names the
//! `uplift-build-plugin` command that `pip install uplift-hooks` provides.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use uplift_contract::names;

use crate::disk::{IoError, io_err};
use crate::errors::chain_text;

const RUST_CARGO_TOML: &str = include_str!("templates/rust-Cargo.toml");
const RUST_LIB_RS: &str = include_str!("templates/rust-lib.rs");
const RUST_README: &str = include_str!("templates/rust-README.md");
const PYTHON_APP: &str = include_str!("templates/python-app.py");
const PYTHON_README: &str = include_str!("templates/python-README.md");
const PYTHON_TEST: &str = include_str!("templates/python-test_app.py");

/// The environment variable `uplift hooks new` reads the SDK's source from
/// ([`SdkSource::from_str`]); unset, the SDK comes from crates.io.
pub const SDK_SOURCE_VAR: &str = "UPLIFT_HOOKS_SDK";

/// Where a scaffolded Rust plugin takes `uplift-hooks-sdk` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A version requirement on the SDK published on crates.io: the
    /// default, [`SdkSource::published`]. Builds anywhere.
    Version(String),
    /// A local `hooks-sdk` folder (of a checkout of uplift), to develop
    /// against an unreleased SDK. Written relative to the plugin's folder.
    Path(PathBuf),
    /// uplift's git repository (cargo finds the SDK crate in its
    /// workspace), at `rev` (a branch, tag or commit) or its default branch.
    Git {
        /// The repository's URL.
        url: String,
        /// The branch, tag or commit; `None` for the default branch.
        rev: Option<String>,
    },
}

impl SdkSource {
    /// The SDK released with this uplift: `uplift-hooks-sdk = "X.Y.Z"`
    /// (cargo's caret requirement), the SDK sharing uplift's version.
    pub fn published() -> SdkSource {
        SdkSource::Version(env!("CARGO_PKG_VERSION").to_string())
    }

    /// The source named by [`SDK_SOURCE_VAR`], or [`SdkSource::published`]
    /// when it is unset or empty.
    pub fn from_env() -> Result<SdkSource, ScaffoldError> {
        match std::env::var(SDK_SOURCE_VAR) {
            Ok(value) if !value.trim().is_empty() => parse_from(SDK_SOURCE_VAR, &value),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(SdkSource::published()),
            Err(std::env::VarError::NotUnicode(_)) => Err(ScaffoldError::InvalidSdk(format!(
                "{SDK_SOURCE_VAR} is not valid UTF-8"
            ))),
        }
    }

    /// The source `value` names, as `uplift hooks new --sdk` takes it: a
    /// form of [`SdkSource::from_str`], or `checkout`, the `hooks-sdk` of
    /// the uplift checkout `checkout`. An error names `origin`, the option
    /// or variable the value came from.
    pub fn named(origin: &str, value: &str, checkout: &Path) -> Result<SdkSource, ScaffoldError> {
        if value.trim() == "checkout" {
            return Ok(SdkSource::Path(checkout.join("hooks-sdk")));
        }
        parse_from(origin, value)
    }

    /// The dependency's value in the plugin's `Cargo.toml`, for a plugin in
    /// the folder `dir` (absolute).
    fn dependency(&self, dir: &Path) -> Result<String, ScaffoldError> {
        Ok(match self {
            SdkSource::Version(req) => toml_string(req),
            SdkSource::Path(sdk) => {
                let sdk = absolute(sdk).map_err(io_err("could not write", sdk))?;
                let rel = relative_path(dir, &sdk);
                format!(
                    "{{ path = {} }}",
                    toml_string(&rel.to_string_lossy().replace('\\', "/"))
                )
            }
            SdkSource::Git { url, rev: None } => format!("{{ git = {} }}", toml_string(url)),
            SdkSource::Git {
                url,
                rev: Some(rev),
            } => {
                format!(
                    "{{ git = {}, rev = {} }}",
                    toml_string(url),
                    toml_string(rev)
                )
            }
        })
    }
}

/// Parses the forms `uplift hooks new` accepts for the SDK's source: a
/// version requirement (`0.1`, `=0.1.2`), `path:DIR`, or `git:URL` /
/// `git:URL#REV`.
impl FromStr for SdkSource {
    type Err = ScaffoldError;

    fn from_str(value: &str) -> Result<SdkSource, ScaffoldError> {
        let value = value.trim();
        if let Some(dir) = value.strip_prefix("path:") {
            if dir.is_empty() {
                return Err(ScaffoldError::InvalidSdk(
                    "path: needs the hooks-sdk folder, e.g. path:../uplift/hooks-sdk".into(),
                ));
            }
            let dir = PathBuf::from(dir);
            if !dir.join("Cargo.toml").is_file() {
                return Err(ScaffoldError::InvalidSdk(format!(
                    "{} has no Cargo.toml: name the hooks-sdk folder of an uplift checkout",
                    dir.display()
                )));
            }
            return Ok(SdkSource::Path(dir));
        }
        if let Some(git) = value.strip_prefix("git:") {
            let (url, rev) = match git.split_once('#') {
                Some((url, rev)) if !rev.is_empty() => (url, Some(rev.to_string())),
                Some((url, _)) => (url, None),
                None => (git, None),
            };
            if url.is_empty() {
                return Err(ScaffoldError::InvalidSdk(
                    "git: needs the repository's URL, e.g. git:https://example.org/uplift.git#v0.1.0"
                        .into(),
                ));
            }
            return Ok(SdkSource::Git {
                url: url.to_string(),
                rev,
            });
        }
        semver::VersionReq::parse(value).map_err(|e| {
            ScaffoldError::InvalidSdk(format!(
                "{value:?} is not a version requirement ({e}): give one such as {}, or path:DIR, or git:URL#REV",
                env!("CARGO_PKG_VERSION")
            ))
        })?;
        Ok(SdkSource::Version(value.to_string()))
    }
}

/// [`SdkSource::from_str`], its error naming `origin`, where the value
/// came from.
fn parse_from(origin: &str, value: &str) -> Result<SdkSource, ScaffoldError> {
    value.parse().map_err(|e| match e {
        ScaffoldError::InvalidSdk(reason) => {
            ScaffoldError::InvalidSdk(format!("{origin}: {reason}"))
        }
        other => other,
    })
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A Rust crate built for `wasm32-wasip2` with `uplift-hooks-sdk`.
    Rust,
    /// A Python file built with `uplift-build-plugin` (the `uplift-hooks`
    /// package).
    Python,
}

/// What `uplift hooks new` wrote.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// The plugin's folder.
    pub dir: PathBuf,
    /// The files written, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// The command that builds the plugin, run in `dir`.
    pub build: String,
}

/// Why a plugin could not be scaffolded. Nothing is written in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name breaks the manifest's rules (wit/MANIFEST.md).
    #[error("{0}")]
    InvalidName(String),
    /// The target folder exists and is not empty.
    #[error(
        "{} exists and is not empty: choose another folder with --dir, or remove it",
        .0.display()
    )]
    NotEmpty(PathBuf),
    /// The SDK's source cannot be understood ([`SdkSource::from_str`]).
    #[error("invalid SDK source: {0}")]
    InvalidSdk(String),
    /// The target exists and is not a folder.
    #[error("{} exists and is not a folder: choose another one with --dir", .0.display())]
    NotAFolder(PathBuf),
    /// A file or folder could not be read or written. The message says
    /// why too (the command line prints it alone).
    #[error("{}", chain_text(.0))]
    Io(IoError),
}

impl ScaffoldError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them).
    pub fn code(&self) -> &'static str {
        match self {
            ScaffoldError::InvalidName(_) => "invalid-plugin-name",
            ScaffoldError::NotEmpty(_) => "folder-not-empty",
            ScaffoldError::InvalidSdk(_) => "invalid-sdk-source",
            ScaffoldError::NotAFolder(_) => "not-a-folder",
            ScaffoldError::Io(_) => "io",
        }
    }
}

impl From<IoError> for ScaffoldError {
    fn from(err: IoError) -> ScaffoldError {
        ScaffoldError::Io(err)
    }
}

/// The table prefix a plugin called `name` owns: `name_` with `-` as `_`.
/// Fails when the name is invalid or the prefix would be reserved
/// (`sqlite_`, `uplift_`).
pub fn owned_prefix(name: &str) -> Result<String, ScaffoldError> {
    names::check_plugin_name(name).map_err(|e| ScaffoldError::InvalidName(e.to_string()))?;
    let prefix = format!("{}_", name.replace('-', "_"));
    names::check_owned_prefix(&prefix).map_err(|reason| {
        ScaffoldError::InvalidName(format!(
            "plugin name {name:?} would own the table prefix {prefix:?}: {reason}; choose another name"
        ))
    })?;
    Ok(prefix)
}

/// What `uplift hooks new` runs without `--sdk`: [`scaffold_with`], the
/// SDK named by the [`SDK_SOURCE_VAR`] environment variable
/// ([`SdkSource::from_env`]: crates.io's by default), where the value
/// `checkout` names the `hooks-sdk` of `checkout`, the uplift checkout this
/// binary was built from ([`repo_root`]), for developing uplift and a
/// plugin together.
pub fn scaffold(
    name: &str,
    lang: Lang,
    dir: &Path,
    checkout: &Path,
) -> Result<Scaffold, ScaffoldError> {
    let sdk = match std::env::var(SDK_SOURCE_VAR) {
        Ok(value) if value.trim() == "checkout" => SdkSource::Path(checkout.join("hooks-sdk")),
        _ => SdkSource::from_env()?,
    };
    scaffold_with(name, lang, dir, &sdk)
}

/// Writes a new plugin called `name` in `lang` into `dir` (created if
/// missing). A Rust plugin depends on `uplift-hooks-sdk` from `sdk` (a
/// local path is written relative to `dir`); a Python plugin (`app.py`,
/// its unit test `test_app.py`) is built with `uplift-build-plugin`, and
/// `sdk` plays no part in it.
///
/// Fails, writing nothing, when the name is invalid (wit/MANIFEST.md's rules)
/// or `dir` exists and is not an empty folder; fails when a file cannot be
/// written (the folder is then removed if this call created it).
pub fn scaffold_with(
    name: &str,
    lang: Lang,
    dir: &Path,
    sdk: &SdkSource,
) -> Result<Scaffold, ScaffoldError> {
    let prefix = owned_prefix(name)?;
    let io = |path: &Path| io_err("could not write", path);
    let existed = match std::fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err(ScaffoldError::NotAFolder(dir.to_path_buf())),
        Ok(_) => {
            if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(io(dir)(source).into()),
    };
    let dir_abs = absolute(dir).map_err(io(dir))?;
    let fill = |template: &str, extra: &[(&str, &str)]| {
        let mut text = template
            .replace("__NAME__", name)
            .replace("__PREFIX__", &prefix)
            .replace("__LIBNAME__", &name.replace('-', "_"))
            .replace("__VERSION__", env!("CARGO_PKG_VERSION"));
        for (key, value) in extra {
            text = text.replace(key, value);
        }
        text
    };
    let (files, build): (Vec<(&str, String)>, String) = match lang {
        Lang::Rust => {
            let dependency = sdk.dependency(&dir_abs)?;
            let extra = [("__SDK_DEPENDENCY__", dependency.as_str())];
            (
                vec![
                    ("Cargo.toml", fill(RUST_CARGO_TOML, &extra)),
                    ("src/lib.rs", fill(RUST_LIB_RS, &extra)),
                    ("README.md", fill(RUST_README, &extra)),
                    (".gitignore", "/target\n/Cargo.lock\n".to_string()),
                ],
                "cargo build --release --target wasm32-wasip2".to_string(),
            )
        }
        Lang::Python => (
            vec![
                ("app.py", fill(PYTHON_APP, &[])),
                ("test_app.py", fill(PYTHON_TEST, &[])),
                ("README.md", fill(PYTHON_README, &[])),
                (".gitignore", "__pycache__/\n*.wasm\n".to_string()),
            ],
            format!("uplift-build-plugin app.py -o {name}.wasm"),
        ),
    };
    let write_all = || -> Result<(), ScaffoldError> {
        for (file, text) in &files {
            let path = dir.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, text).map_err(io(&path))?;
        }
        Ok(())
    };
    if let Err(err) = write_all() {
        if !existed {
            let _ = std::fs::remove_dir_all(dir);
        }
        return Err(err);
    }
    Ok(Scaffold {
        dir: dir.to_path_buf(),
        files: files.iter().map(|(f, _)| PathBuf::from(f)).collect(),
        build,
    })
}

/// The root of the uplift repository this binary was built from (the parent
/// of the `host` crate's folder, fixed at compile time).
pub fn repo_root() -> PathBuf {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    host.parent().unwrap_or(host).to_path_buf()
}

/// `path` made absolute against the current folder, with `.` and `..`
/// resolved lexically (the folder need not exist yet).
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let joined = std::path::absolute(path)?;
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// `target` as a path relative to the folder `from`, both absolute and
/// lexically normal; `target` itself when no relative path leads there (on
/// Windows, another drive).
fn relative_path(from: &Path, target: &Path) -> PathBuf {
    let mut from_parts = from.components().peekable();
    let mut target_parts = target.components().peekable();
    if from_parts.peek() != target_parts.peek() {
        return target.to_path_buf();
    }
    while from_parts.peek().is_some() && from_parts.peek() == target_parts.peek() {
        from_parts.next();
        target_parts.next();
    }
    let mut rel: PathBuf = from_parts.map(|_| Component::ParentDir).collect();
    rel.extend(target_parts);
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_sdk_path_is_written_relative_to_the_plugin() {
        let sdk = Path::new("/src/uplift/hooks-sdk");
        assert_eq!(
            relative_path(Path::new("/src/uplift/plugins/mine"), sdk),
            PathBuf::from("../../hooks-sdk")
        );
        assert_eq!(
            relative_path(Path::new("/home/me/mine"), sdk),
            PathBuf::from("../../../src/uplift/hooks-sdk")
        );
        assert_eq!(relative_path(sdk, sdk), PathBuf::from("."));
        let dep = SdkSource::Path(sdk.into())
            .dependency(Path::new("/src/mine"))
            .unwrap();
        assert_eq!(dep, r#"{ path = "../uplift/hooks-sdk" }"#);
    }

    #[test]
    fn sdk_sources_parse_from_their_three_forms() {
        assert_eq!(
            "0.1".parse::<SdkSource>().unwrap(),
            SdkSource::Version("0.1".into())
        );
        assert_eq!(
            SdkSource::published().dependency(Path::new("/x")).unwrap(),
            format!("\"{}\"", env!("CARGO_PKG_VERSION"))
        );
        let git: SdkSource = "git:https://example.org/uplift.git#v0.1.0".parse().unwrap();
        assert_eq!(
            git.dependency(Path::new("/x")).unwrap(),
            r#"{ git = "https://example.org/uplift.git", rev = "v0.1.0" }"#
        );
        assert_eq!(
            "git:https://example.org/uplift.git"
                .parse::<SdkSource>()
                .unwrap(),
            SdkSource::Git {
                url: "https://example.org/uplift.git".into(),
                rev: None
            }
        );
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hooks-sdk");
        assert_eq!(
            format!("path:{}", sdk.display())
                .parse::<SdkSource>()
                .unwrap(),
            SdkSource::Path(sdk)
        );
        for (bad, says) in [
            ("one point two", "is not a version requirement"),
            ("path:", "needs the hooks-sdk folder"),
            ("path:/nowhere/at/all", "/nowhere/at/all has no Cargo.toml"),
            ("git:", "needs the repository's URL"),
        ] {
            let err = bad.parse::<SdkSource>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_name_whose_prefix_is_reserved_is_refused() {
        assert_eq!(owned_prefix("my-plugin").unwrap(), "my_plugin_");
        assert!(owned_prefix("uplift").is_err());
        assert!(owned_prefix("sqlite-x").is_err());
        assert!(owned_prefix("Bad").is_err());
    }
}

//! `uplift hooks new`: a new plugin that builds and passes `uplift hooks
//! validate` as generated, in Rust (a crate using `uplift-hooks-sdk`) or
//! Python (an `app.py` using `hooks-sdk/python`'s `uplift_hooks`).
//!
//! The generated plugin owns the table prefix `NAME_` (`-` becoming `_`) and
//! has one hook, for upgrades from before 1.0.0 to 1.0.0 or later, that
//! records the upgrade in a table of its own.

use std::path::{Component, Path, PathBuf};

use uplift_contract::names;

const RUST_CARGO_TOML: &str = include_str!("templates/rust-Cargo.toml");
const RUST_LIB_RS: &str = include_str!("templates/rust-lib.rs");
const RUST_README: &str = include_str!("templates/rust-README.md");
const PYTHON_APP: &str = include_str!("templates/python-app.py");
const PYTHON_README: &str = include_str!("templates/python-README.md");

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A Rust crate built for `wasm32-wasip2` with `uplift-hooks-sdk`.
    Rust,
    /// A Python file built with `hooks-sdk/python/build-plugin`.
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
    /// The target exists and is not a folder.
    #[error("{} exists and is not a folder: choose another one with --dir", .0.display())]
    NotAFolder(PathBuf),
    /// A file or folder could not be read or written.
    #[error("could not write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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

/// Writes a new plugin called `name` in `lang` into `dir` (created if
/// missing). `repo` is the root of uplift's repository: the Rust crate
/// depends on its `hooks-sdk/` by path (relative when `dir` is inside the
/// repository, absolute otherwise), the Python README names its
/// `hooks-sdk/python/build-plugin`.
///
/// Fails, writing nothing, when the name is invalid (wit/MANIFEST.md's rules)
/// or `dir` exists and is not an empty folder; fails when a file cannot be
/// written (the folder is then removed if this call created it).
pub fn scaffold(
    name: &str,
    lang: Lang,
    dir: &Path,
    repo: &Path,
) -> Result<Scaffold, ScaffoldError> {
    let prefix = owned_prefix(name)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    let existed = match std::fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err(ScaffoldError::NotAFolder(dir.to_path_buf())),
        Ok(_) => {
            if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(ScaffoldError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let dir_abs = absolute(dir).map_err(io(dir))?;
    let repo_abs = absolute(repo).map_err(io(repo))?;
    let fill = |template: &str, extra: &[(&str, &str)]| {
        let mut text = template
            .replace("__NAME__", name)
            .replace("__PREFIX__", &prefix)
            .replace("__LIBNAME__", &name.replace('-', "_"));
        for (key, value) in extra {
            text = text.replace(key, value);
        }
        text
    };
    let (files, build): (Vec<(&str, String)>, String) = match lang {
        Lang::Rust => {
            let sdk = path_from(&dir_abs, &repo_abs.join("hooks-sdk"));
            let sdk = sdk.to_string_lossy().replace('\\', "/");
            let extra = [("__SDK_PATH__", sdk.as_str())];
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
        Lang::Python => {
            let tool = path_from(&dir_abs, &repo_abs.join("hooks-sdk/python/build-plugin"));
            let tool = tool.to_string_lossy().replace('\\', "/");
            let build = format!("{tool} app.py -o {name}.wasm");
            let extra = [("__BUILD_PLUGIN__", tool.as_str())];
            (
                vec![
                    ("app.py", fill(PYTHON_APP, &extra)),
                    ("README.md", fill(PYTHON_README, &extra)),
                ],
                build,
            )
        }
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

/// How to reach `target` (a path under a repository's `hooks-sdk/`) from
/// the folder `from`, both absolute: a relative path when `from` is inside
/// that repository, else `target` itself.
fn path_from(from: &Path, target: &Path) -> PathBuf {
    let repo = repo_of(target);
    if !from.starts_with(&repo) {
        return target.to_path_buf();
    }
    let common: PathBuf = from
        .components()
        .zip(target.components())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let mut rel = PathBuf::new();
    for _ in from.components().skip(common.components().count()) {
        rel.push("..");
    }
    for part in target.components().skip(common.components().count()) {
        rel.push(part);
    }
    rel
}

/// The repository root of a path under `hooks-sdk/`: the folder above the
/// `hooks-sdk` component.
fn repo_of(target: &Path) -> PathBuf {
    let mut repo = PathBuf::new();
    for part in target.components() {
        if part.as_os_str() == "hooks-sdk" {
            return repo;
        }
        repo.push(part);
    }
    target.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_path_is_relative_inside_the_repository_and_absolute_outside() {
        let sdk = Path::new("/src/uplift/hooks-sdk");
        assert_eq!(
            path_from(Path::new("/src/uplift/plugins/mine"), sdk),
            PathBuf::from("../../hooks-sdk")
        );
        assert_eq!(path_from(Path::new("/home/me/mine"), sdk), sdk);
    }

    #[test]
    fn a_name_whose_prefix_is_reserved_is_refused() {
        assert_eq!(owned_prefix("my-plugin").unwrap(), "my_plugin_");
        assert!(owned_prefix("uplift").is_err());
        assert!(owned_prefix("sqlite-x").is_err());
        assert!(owned_prefix("Bad").is_err());
    }
}

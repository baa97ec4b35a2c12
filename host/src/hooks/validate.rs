//! `uplift hooks validate`: checks a plugin component for CI without running
//! any of its code — it is a component, imports only what uplift provides,
//! exports the `upgrade-hook` world, carries a valid manifest, and (given a
//! release) names only tables that exist in that release's schema, and
//! owns a prefix that none of the release's tables starts with.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::hooks::HookError;
use crate::hooks::manifest::{self, HookManifest, ManifestError};
use crate::hooks::runtime::HookEngine;
use crate::release::Release;
use crate::version::Version;

/// The result of validating one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// The plugin's name, when its manifest could be read.
    pub plugin: Option<String>,
    /// The plugin's version, when its manifest could be read.
    pub version: Option<String>,
    /// True when there are no errors.
    pub valid: bool,
    /// What is wrong, one sentence each.
    pub errors: Vec<String>,
    /// What is suspect but not wrong (a hook whose ranges can never match
    /// the releases named), one sentence each.
    pub warnings: Vec<String>,
}

/// Validates plugin components against this uplift's linker and, optionally,
/// a release's schema.
pub struct Validator {
    engine: HookEngine,
    release: Option<(PathBuf, Vec<String>)>,
    /// The release's version and the later ones named: what a hook's
    /// `new_version` should match one of.
    targets: Vec<Version>,
}

impl Validator {
    /// A validator; with `release`, also checks that the tables a manifest
    /// names exist after that release's migrations (applied in order to an
    /// in-memory database). Fails when the engine cannot be set up or the
    /// release cannot be loaded or its migrations do not apply.
    pub fn new(release: Option<&Path>) -> Result<Validator, HookError> {
        let engine = HookEngine::new()?;
        let (release, targets) = match release {
            Some(dir) => {
                let (version, tables) = release_schema(dir)?;
                (Some((dir.to_path_buf(), tables)), vec![version])
            }
            None => (None, Vec::new()),
        };
        Ok(Validator {
            engine,
            release,
            targets,
        })
    }

    /// Also names releases later than the one given: a hook whose
    /// `new_version` matches none of them (nor the release) is warned of.
    pub fn with_later(mut self, later: impl IntoIterator<Item = Version>) -> Validator {
        self.targets.extend(later);
        self
    }

    /// Bounds the time compiling one component may take (`[hooks]
    /// compile_seconds`; see [`crate::hooks::bounds`]).
    pub fn with_compile_seconds(mut self, seconds: u64) -> Validator {
        self.engine.compile_seconds = seconds;
        self
    }

    /// Validates the file at `path`. Never fails: problems are the report's
    /// errors.
    pub fn validate(&self, path: &Path) -> FileReport {
        let mut report = FileReport {
            file: path.to_path_buf(),
            plugin: None,
            version: None,
            valid: false,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                report.errors.push(format!("could not read the file: {e}"));
                return report;
            }
        };
        match manifest::read_manifest(&bytes) {
            Ok(m) => {
                if let Some((dir, tables)) = &self.release {
                    for (key, names) in [
                        ("read", &m.capabilities.read),
                        ("write", &m.capabilities.write),
                    ] {
                        for name in names {
                            if !tables.iter().any(|t| t.eq_ignore_ascii_case(name)) {
                                report.errors.push(format!(
                                    "capabilities.{key} names table {name}, which the schema of release {} does not have",
                                    dir.display()
                                ));
                            }
                        }
                    }
                    // The release's own tables are never the plugin's, even
                    // under its prefix: the sandbox would refuse what the
                    // author meant by owning them.
                    if let Some(prefix) = &m.capabilities.owns {
                        let captured: Vec<&str> = tables
                            .iter()
                            .filter(|t| m.capabilities.under_owned_prefix(t))
                            .map(String::as_str)
                            .collect();
                        if !captured.is_empty() {
                            report.errors.push(format!(
                                "capabilities.owns prefix {prefix:?} matches table(s) {} of release {}, which belong to the application: a plugin owns only the tables it creates, so choose a prefix none of the application's tables starts with (declare those tables in capabilities.read or capabilities.write to use them)",
                                captured.join(", "),
                                dir.display()
                            ));
                        }
                    }
                }
                report.warnings = range_warnings(&m, &self.targets);
                report.plugin = Some(m.name);
                report.version = Some(m.version);
            }
            Err(
                e @ (ManifestError::NotWasm
                | ManifestError::CoreModule
                | ManifestError::Malformed(_)),
            ) => {
                report.errors.push(e.to_string());
                return report;
            }
            Err(e) => report.errors.push(format!("manifest: {e}")),
        }
        let subject = format!(
            "plugin {} ({})",
            report.plugin.as_deref().unwrap_or("(no manifest)"),
            path.display()
        );
        match self.engine.compile(&bytes, None, &subject) {
            Ok((component, _)) => {
                if let Err(e) = self.engine.pre(&component) {
                    report.errors.push(e);
                }
            }
            Err(e) => report.errors.push(format!("not a valid component: {e}")),
        }
        report.valid = report.errors.is_empty();
        report
    }
}

/// The hooks whose ranges can never match: a `new_version` that none of
/// `targets` (the release and the later ones named) matches, and a
/// `plugin_new_version` that the plugin's own version does not match (the
/// installed plugin is this one).
fn range_warnings(manifest: &HookManifest, targets: &[Version]) -> Vec<String> {
    let own = Version::parse(&manifest.version).ok();
    let named = targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut warnings = Vec::new();
    for hook in &manifest.hooks {
        if !targets.is_empty() && !targets.iter().any(|v| hook.new_version.matches(v)) {
            warnings.push(format!(
                "hook {}: new_version {:?} matches none of the releases named ({named}), so it never runs \
                 when upgrading to them; name later releases with --later V if it is meant for one",
                hook.name,
                hook.new_version.to_string()
            ));
        }
        if let (Some(range), Some(own)) = (&hook.plugin_new_version, &own)
            && !range.matches(own)
        {
            warnings.push(format!(
                "hook {}: plugin_new_version {:?} does not match this plugin's own version {own}, so \
                 this component never runs it",
                hook.name,
                range.to_string()
            ));
        }
    }
    warnings
}

/// The version of the release at `dir`, and the tables and views of its
/// schema after all its migrations.
fn release_schema(dir: &Path) -> Result<(Version, Vec<String>), HookError> {
    let release_error = |e: crate::release::ReleaseError| HookError::Release {
        dir: dir.to_path_buf(),
        message: crate::errors::chain_text(&e),
    };
    let release = Release::load(dir).map_err(release_error)?;
    let tables = crate::engine::sqlite::schema::schema_tables(&release).map_err(release_error)?;
    Ok((release.version, tables))
}

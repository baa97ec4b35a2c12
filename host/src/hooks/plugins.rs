//! Finding plugins and planning their hooks. Plugins are the `*.wasm`
//! components in the release's `plugins/` and the home's `plugins/`; only
//! their manifests are read (nothing is compiled). The release's core plugins
//! are always active; every other plugin is active when the home's
//! `plugins.toml` enables it:
//!
//! ```toml
//! # Which optional plugins are active (`uplift plugin enable/disable NAME`).
//! [plugins]
//! audit-log = true
//! old-report = false
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::home::Home;
use crate::hooks::HookError;
use crate::hooks::lifecycle::{PluginChange, PluginChanges, RecordedPlugin};
use crate::hooks::manifest::{self, Capabilities, HookManifest, HookSpec};
use crate::version::Version;

/// Where a plugin was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginOrigin {
    /// The release's `plugins/`.
    Release,
    /// The home's `plugins/`, added by the operator.
    Home,
}

/// One plugin component and its manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Plugin {
    /// The manifest, read from the component's custom section.
    pub manifest: HookManifest,
    /// The component file.
    pub path: PathBuf,
    /// Where it was found.
    pub origin: PluginOrigin,
    /// A core plugin of the release: always active.
    pub core: bool,
    /// Whether its hooks run.
    pub active: bool,
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// A hook that will run, in plan order.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedHook {
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// The hook's name.
    pub hook: String,
    /// The component file.
    pub path: PathBuf,
    /// What the hook may touch.
    pub capabilities: Capabilities,
    /// The hook's `old_version` range.
    pub old_version: String,
    /// The hook's `new_version` range.
    pub new_version: String,
    /// The hook's `plugin_old_version` range, if it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_old_version: Option<String>,
    /// The hook's `plugin_new_version` range, if it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_new_version: Option<String>,
}

/// Which plugins, and which of their hooks, an upgrade considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanScope {
    /// The application's version moves (or a migration is pending): every
    /// active plugin, each with its own step, and all of its hooks.
    Application,
    /// Only plugins changed (the application's version stays, old == new),
    /// or a fresh install activates them: only the plugins whose version
    /// moves, and only their plugin hooks
    /// ([`HookSpec::is_plugin_hook`]).
    PluginsOnly,
}

/// The home's `plugins.toml`: which non-core plugins are active.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsToml {
    /// Plugin name → active.
    #[serde(default)]
    pub plugins: BTreeMap<String, bool>,
}

impl PluginsToml {
    /// Reads the home's `plugins.toml`; empty when it does not exist.
    pub fn load(home: &Home) -> Result<PluginsToml, HookError> {
        let path = home.plugins_toml();
        match std::fs::read_to_string(&path) {
            Ok(text) => PluginsToml::from_toml(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PluginsToml::default()),
            Err(source) => Err(HookError::Io { path, source }),
        }
    }

    /// Parses `text`, the contents of `path`: what [`PluginsToml::load`]
    /// makes of the file.
    pub(crate) fn from_toml(path: &Path, text: &str) -> Result<PluginsToml, HookError> {
        toml::from_str(text).map_err(|e| HookError::PluginsToml {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }

    /// Reads, changes and writes back the home's `plugins.toml` while
    /// holding the lock that `plugin enable` and `plugin disable` share
    /// (`plugins.lock`, waited for), so that two of them at once cannot lose
    /// one's change. It is not the home's lock: plugins can be enabled while
    /// the application runs, for its next upgrade.
    pub fn update(home: &Home, change: impl FnOnce(&mut PluginsToml)) -> Result<(), HookError> {
        home.create().map_err(|e| HookError::Io {
            path: home.root().to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        let lock_path = home.root().join("plugins.lock");
        let io = |source| HookError::Io {
            path: lock_path.clone(),
            source,
        };
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        crate::disk::hand_to_home_owner(home.root(), &lock_path).map_err(io)?;
        lock.lock().map_err(io)?;
        let mut toml = PluginsToml::load(home)?;
        change(&mut toml);
        toml.save(home)
    }

    /// Writes the home's `plugins.toml` atomically (a temporary file renamed
    /// over it, the folder synced).
    pub fn save(&self, home: &Home) -> Result<(), HookError> {
        let path = home.plugins_toml();
        let io = |source| HookError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(home.root()).map_err(io)?;
        let text = format!(
            "# Which optional plugins are active; core plugins of the release always are.\n\
             # Edited by `uplift plugin enable NAME` and `uplift plugin disable NAME`.\n{}",
            toml::to_string(self).map_err(|e| HookError::PluginsToml {
                path: path.clone(),
                message: e.to_string(),
            })?
        );
        let mut tmp = tempfile::Builder::new()
            .prefix(".plugins.toml.")
            .tempfile_in(home.root())
            .map_err(io)?;
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        // Keep the owner of the file it replaces (or the home's): the
        // service user must still read it after `sudo uplift plugin ...`.
        let owner = crate::disk::Owner::of(&path)
            .or_else(|_| crate::disk::Owner::for_new_file_in(home.root()))
            .map_err(io)?;
        owner.apply(tmp.path()).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        crate::disk::sync_dir(home.root()).map_err(io)?;
        Ok(())
    }

    /// Whether `name` is enabled.
    pub fn enabled(&self, name: &str) -> bool {
        self.plugins.get(name).copied().unwrap_or(false)
    }
}

/// All plugins of a release and a home.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginSet {
    plugins: Vec<Plugin>,
    /// Enabled in `plugins.toml`, not found.
    missing: Vec<String>,
}

impl PluginSet {
    /// Finds the plugins in `release_plugins_dir` and the home's `plugins/`
    /// (a missing folder holds none), reading only their manifests (a few
    /// small reads per file, see [`manifest::read_manifest_file`]).
    ///
    /// Fails when a file cannot be read or its manifest is missing or
    /// invalid, when two files declare the same plugin name (naming both),
    /// when a name in `core_plugins` is not among the release's plugins, or
    /// when `plugins.toml` is invalid.
    pub fn discover(
        release_plugins_dir: &Path,
        core_plugins: &[String],
        home: &Home,
    ) -> Result<PluginSet, HookError> {
        let toml = PluginsToml::load(home)?;
        let mut plugins: Vec<Plugin> = Vec::new();
        for (dir, origin) in [
            (release_plugins_dir.to_path_buf(), PluginOrigin::Release),
            (home.plugins_dir(), PluginOrigin::Home),
        ] {
            for path in wasm_files(&dir)? {
                let manifest = manifest::read_manifest_file(&path)?;
                if let Some(other) = plugins.iter().find(|p| p.manifest.name == manifest.name) {
                    return Err(HookError::DuplicatePlugin {
                        name: manifest.name,
                        first: other.path.clone(),
                        second: path,
                    });
                }
                let core = origin == PluginOrigin::Release && core_plugins.contains(&manifest.name);
                let active = core || toml.enabled(&manifest.name);
                plugins.push(Plugin {
                    manifest,
                    path,
                    origin,
                    core,
                    active,
                });
            }
        }
        for name in core_plugins {
            if !plugins.iter().any(|p| p.core && &p.manifest.name == name) {
                return Err(HookError::MissingCorePlugin {
                    name: name.clone(),
                    dir: release_plugins_dir.to_path_buf(),
                });
            }
        }
        plugins.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        let missing = toml
            .plugins
            .iter()
            .filter(|(name, enabled)| {
                **enabled && !plugins.iter().any(|p| &p.manifest.name == *name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        Ok(PluginSet { plugins, missing })
    }

    /// Plugins that `plugins.toml` enables but that are in neither the
    /// release's nor the home's `plugins/`: an upgrade refuses to run
    /// without them (their hooks would silently not run).
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// Fails when `plugins.toml` enables a plugin that is not there.
    pub fn ensure_complete(&self, home: &Home) -> Result<(), HookError> {
        match self.missing.first() {
            None => Ok(()),
            Some(name) => Err(HookError::MissingPlugin {
                name: name.clone(),
                home_plugins: home.plugins_dir(),
            }),
        }
    }

    /// One plugin, read from the component at `path` with its `manifest`,
    /// active (`uplift hooks test`).
    pub(crate) fn of_one(manifest: HookManifest, path: &Path) -> PluginSet {
        PluginSet {
            plugins: vec![Plugin {
                manifest,
                path: path.to_path_buf(),
                origin: PluginOrigin::Release,
                core: false,
                active: true,
            }],
            missing: Vec::new(),
        }
    }

    /// Where each active plugin stands against the versions the data
    /// `recorded`. Fails only when an installed plugin's manifest version
    /// does not parse (which reading the manifest already refuses).
    pub fn changes(&self, recorded: &[RecordedPlugin]) -> Result<PluginChanges, HookError> {
        let mut all = Vec::new();
        for plugin in self.plugins.iter().filter(|p| p.active) {
            let to = Version::parse(&plugin.manifest.version).map_err(|e| HookError::Manifest {
                path: plugin.path.clone(),
                source: manifest::invalid("version", e.to_string()),
            })?;
            let from = recorded
                .iter()
                .find(|r| r.name == plugin.name())
                .map(|r| r.version.clone());
            all.push(PluginChange {
                plugin: plugin.name().to_string(),
                from,
                to,
            });
        }
        Ok(PluginChanges::new(all))
    }

    /// Every plugin found, by name.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.plugins.iter().find(|p| p.manifest.name == name)
    }

    /// The active plugins' hooks that match an upgrade of the data from
    /// `old` to `new` while each plugin takes its step of `changes`, within
    /// `scope`, in the order they run: by the lower bound of `old_version`,
    /// then of `new_version` (an unbounded range first), then plugin name,
    /// then declaration order.
    pub fn plan(
        &self,
        old: &Version,
        new: &Version,
        changes: &PluginChanges,
        scope: PlanScope,
    ) -> Vec<PlannedHook> {
        self.plan_where(|plugin, spec| {
            let Some(change) = changes.get(plugin) else {
                return false;
            };
            let considered = match scope {
                PlanScope::Application => true,
                PlanScope::PluginsOnly => change.is_change() && spec.is_plugin_hook(),
            };
            considered && spec.matches(old, new, &change.step())
        })
    }

    /// The active plugins' hooks that `chosen` accepts, in the order
    /// [`PluginSet::plan`] runs them.
    pub(crate) fn plan_where(&self, chosen: impl Fn(&str, &HookSpec) -> bool) -> Vec<PlannedHook> {
        let mut planned = Vec::new();
        for plugin in self.plugins.iter().filter(|p| p.active) {
            for (index, spec) in plugin.manifest.hooks.iter().enumerate() {
                if !chosen(plugin.name(), spec) {
                    continue;
                }
                let key = (
                    spec.old_version.lower_bound(),
                    spec.new_version.lower_bound(),
                    plugin.manifest.name.clone(),
                    index,
                );
                planned.push((
                    key,
                    PlannedHook {
                        plugin: plugin.manifest.name.clone(),
                        plugin_version: plugin.manifest.version.clone(),
                        hook: spec.name.clone(),
                        path: plugin.path.clone(),
                        capabilities: plugin.manifest.capabilities.clone(),
                        old_version: spec.old_version.to_string(),
                        new_version: spec.new_version.to_string(),
                        plugin_old_version: spec
                            .plugin_old_version
                            .as_ref()
                            .map(ToString::to_string),
                        plugin_new_version: spec
                            .plugin_new_version
                            .as_ref()
                            .map(ToString::to_string),
                    },
                ));
            }
        }
        planned.sort_by(|a, b| a.0.cmp(&b.0));
        planned.into_iter().map(|(_, hook)| hook).collect()
    }

    /// Enables the optional plugin `name` in the home's `plugins.toml`.
    /// Fails when no plugin has that name.
    pub fn enable(&self, home: &Home, name: &str) -> Result<(), HookError> {
        let plugin = self.get(name).ok_or_else(|| HookError::UnknownPlugin {
            name: name.to_string(),
        })?;
        if !plugin.core {
            PluginsToml::update(home, |toml| {
                toml.plugins.insert(name.to_string(), true);
            })?;
        }
        Ok(())
    }

    /// Disables the plugin `name`. Fails for a core plugin, and when no
    /// plugin has that name.
    pub fn disable(&self, home: &Home, name: &str) -> Result<(), HookError> {
        // A plugin enabled but no longer installed can still be disabled:
        // that is how an operator answers the upgrade's refusal.
        let missing = self.missing.iter().any(|m| m == name);
        let plugin = self.get(name);
        if plugin.is_none() && !missing {
            return Err(HookError::UnknownPlugin {
                name: name.to_string(),
            });
        }
        if plugin.is_some_and(|p| p.core) {
            return Err(HookError::CorePlugin {
                name: name.to_string(),
            });
        }
        PluginsToml::update(home, |toml| {
            toml.plugins.insert(name.to_string(), false);
        })
    }
}

/// The `*.wasm` files of `dir`, sorted by name; none when `dir` is missing.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, HookError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(HookError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| HookError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

//! `uplift plugin`: the plugins of the release and the home, listed,
//! enabled and disabled.

use uplift::hooks::{CacheOutcome, PluginOrigin, PluginSet};
use uplift::release::Release;
use uplift::upgrade;

use super::Globals;
use super::failure::Outcome;
use super::output::{Bars, outln, print_json};

#[derive(Debug, clap::Subcommand)]
pub(super) enum PluginCommand {
    /// List the plugins of the release and the home, and which are active
    List,
    /// Activate an optional plugin (recorded in the home's plugins.toml)
    Enable {
        /// The plugin's name, as `uplift plugin list` shows it
        #[arg(value_name = "PLUGIN")]
        name: String,
    },
    /// Deactivate an optional plugin; core plugins of the release cannot be
    /// disabled
    Disable {
        /// The plugin's name, as `uplift plugin list` shows it
        #[arg(value_name = "PLUGIN")]
        name: String,
    },
    /// Compile every active plugin into the home's compile cache, so that
    /// the next upgrade compiles nothing (run it after installing a release
    /// or adding a plugin)
    Precompile,
}

/// `uplift plugin ...`.
pub(super) fn plugin(globals: &Globals, cmd: PluginCommand) -> Outcome {
    let out = globals.output();
    let home = globals.home()?;
    if let PluginCommand::Precompile = cmd {
        let release = globals.release()?;
        let mut bars = Bars::new(globals.quiet || globals.json);
        let runs = upgrade::precompile(&home, &release, &mut bars)?;
        if globals.json {
            print_json(&serde_json::json!({ "outcome": "precompiled", "plugins": runs }));
            return Ok(());
        }
        for run in runs {
            let how = match run.cache {
                CacheOutcome::Hit => "already compiled",
                CacheOutcome::Compiled => "compiled",
                CacheOutcome::CompiledUncached => "compiled (the cache could not be written)",
            };
            out.line(format_args!(
                "{} {}: {how} ({:.1} ms)",
                run.plugin, run.version, run.ms
            ));
        }
        return Ok(());
    }
    // Without a release, only the home's plugins are known.
    let (plugins_dir, core) = match globals.release.as_deref() {
        Some(dir) => {
            let release = Release::load(dir)?;
            (release.plugins_dir(), release.core_plugins)
        }
        None => (home.root().join(".no-release"), Vec::new()),
    };
    let set = PluginSet::discover(&plugins_dir, &core, &home)?;
    match cmd {
        PluginCommand::List if globals.json => print_json(set.plugins()),
        PluginCommand::List => {
            if set.plugins().is_empty() {
                out.line("no plugins found");
            }
            for p in set.plugins() {
                let status = if p.core {
                    "core (always active)"
                } else if p.active {
                    "enabled"
                } else {
                    "disabled"
                };
                let origin = match p.origin {
                    PluginOrigin::Release => "release",
                    PluginOrigin::Home => "home",
                };
                outln!(
                    "{} {}  {status}  {} hook(s)  [{origin}] {}",
                    p.manifest.name,
                    p.manifest.version,
                    p.manifest.hooks.len(),
                    p.path.display()
                );
            }
        }
        PluginCommand::Enable { name } => {
            set.enable(&home, &name)?;
            if globals.json {
                print_json(&serde_json::json!({ "outcome": "enabled", "plugin": name }));
            }
            out.line(format_args!("plugin {name} is active"));
        }
        PluginCommand::Disable { name } => {
            set.disable(&home, &name)?;
            if globals.json {
                print_json(&serde_json::json!({ "outcome": "disabled", "plugin": name }));
            }
            out.line(format_args!("plugin {name} is disabled"));
        }
        PluginCommand::Precompile => unreachable!("handled above"),
    }
    Ok(())
}

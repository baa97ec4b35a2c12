//! The manifest parser: the JSON fragments of an `uplift:manifest` section
//! (`HookManifest::from_section`, which reads what a plugin author wrote)
//! and the TOML form `uplift hooks embed-manifest` takes
//! (`HookManifest::from_toml`). Neither panics, whatever the bytes; a
//! manifest either accepts is valid all through (its name, version and
//! every range parse again), and survives being written as a section and
//! read back unchanged.
//!
//! Input: a section's bytes (also read as TOML when they are UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplift::hooks::{HookManifest, PluginStep};
use uplift::version::{Version, VersionRange};

/// Checks what a valid manifest must be, and that it round-trips.
fn check(manifest: &HookManifest) {
    assert!(Version::parse(&manifest.version).is_ok(), "{manifest:?}");
    for hook in &manifest.hooks {
        let plugin_ranges = [&hook.plugin_old_version, &hook.plugin_new_version];
        for range in [&hook.old_version, &hook.new_version]
            .into_iter()
            .chain(plugin_ranges.into_iter().flatten())
        {
            VersionRange::parse(&range.to_string())
                .unwrap_or_else(|e| panic!("a hook's range does not parse again: {e}"));
        }
        let (old, new) = (Version::parse("0.1").unwrap(), Version::parse("1.0rc1").unwrap());
        // First activation (no plugin version recorded) and an upgrade.
        for from in [None, Some(&old)] {
            let _ = hook.matches(&old, &new, &PluginStep { from, to: &new });
        }
    }
    let _ = manifest.to_string();
    let _ = manifest.declared_tables();
    let section = manifest.to_section();
    let again = HookManifest::from_section(&section)
        .unwrap_or_else(|e| panic!("{manifest:?} written as {section:?} cannot be read back: {e}"));
    assert_eq!(again.to_section(), section);
    assert_eq!(again.capabilities, manifest.capabilities);
}

fuzz_target!(|data: &[u8]| {
    match HookManifest::from_section(data) {
        Ok(manifest) => check(&manifest),
        Err(e) => drop(e.to_string()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        match HookManifest::from_toml(text) {
            Ok(manifest) => check(&manifest),
            Err(e) => drop(e.to_string()),
        }
    }
});

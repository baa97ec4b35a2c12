//! The three TOML files uplift reads and an operator or a release author
//! writes: `release.toml`, the home's `uplift.toml` and `plugins.toml`, read
//! through the same code as from disk (`uplift::internals`). None panics,
//! whatever the text; settings accepted are within their ranges and, like
//! `plugins.toml`, read back the same once written out as uplift writes them.
//!
//! Input: the text of a file (each of the three reads it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplift::internals;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match internals::release_from_toml(text) {
        Ok(release) => {
            assert!(!release.app.trim().is_empty());
            let _ = release.adopt.ignores("django_migrations");
            for version in release.adopt.releases.keys() {
                let _ = version.cmp(&release.version);
            }
            for sums in release.accepted_edits.values() {
                assert!(
                    sums.iter()
                        .all(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                );
            }
        }
        Err(e) => drop(e.to_string()),
    }
    match internals::settings_from_toml(text) {
        Ok(settings) => {
            settings
                .hooks
                .validate()
                .expect("accepted settings are in range");
            let _ = settings.hooks.process_memory_mib();
            let written = toml::to_string(&settings).expect("settings serialise");
            let again = internals::settings_from_toml(&written)
                .unwrap_or_else(|e| panic!("{written:?} does not read back: {e}"));
            assert_eq!(again, settings);
        }
        Err(e) => drop(e.to_string()),
    }
    match internals::plugins_from_toml(text) {
        Ok(plugins) => {
            let written = toml::to_string(&plugins).expect("plugins.toml serialises");
            let again = internals::plugins_from_toml(&written)
                .unwrap_or_else(|e| panic!("{written:?} does not read back: {e}"));
            assert_eq!(again, plugins);
        }
        Err(e) => drop(e.to_string()),
    }
});

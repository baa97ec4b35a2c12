//! What uplift and its plugins must agree on, in one small crate: the version
//! grammar and order ([`version`]) and the name rules of a plugin manifest
//! ([`names`], `wit/MANIFEST.md`).
//!
//! Three places check these rules: the host when it reads a plugin's manifest
//! (and parses versions everywhere), the hooks SDK's procedural macros at
//! compile time (`plugin!`, `#[version_upgrade]`), and hooks at run time
//! (the SDK re-exports [`Version`]). They must give the same answer, so the
//! rules live here once and all three depend on this crate. It is called
//! "contract" rather than "version" because it owns both halves of that
//! agreement, and it stays dependency-light (semver, serde, thiserror) so
//! that the macros and wasm plugins can use it without pulling in the host
//! and its wasmtime. The host re-exports [`version`] as `uplift::version`.
//!
//! ```
//! use uplift_contract::{names, Version, VersionRange};
//!
//! let range = VersionRange::parse(">=0.14.0, <0.16.0 || ^2.1")?;
//! assert!(range.matches(&Version::parse("0.15.0rc10")?));
//! assert!(names::check_plugin_name("big-leap").is_ok());
//! assert!(names::check_table_name("uplift_meta").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod names;
pub mod version;

pub use names::NameError;
pub use version::{Version, VersionError, VersionRange};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_match_as_in_the_host() {
        let range = VersionRange::parse(">=0.14.0, <0.16.0 || ^2.1").unwrap();
        assert!(range.matches(&Version::parse("0.15.0rc10").unwrap()));
        assert!(range.matches(&Version::parse("2.3").unwrap()));
        assert!(!range.matches(&Version::parse("1.0").unwrap()));
    }

    #[test]
    fn a_bad_range_is_an_error_quoting_it() {
        let err = VersionRange::parse("<<1.0").unwrap_err();
        assert!(err.to_string().contains("<<1.0"), "{err}");
    }
}

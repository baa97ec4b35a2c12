//! uplift's versions and version ranges, as a small crate of their own.
//!
//! This is the host's `uplift::version` module, compiled from the very same
//! source file (`host/src/version.rs`), so that the hooks SDK's procedural
//! macros can check a hook's ranges at compile time with exactly the grammar
//! the host will parse them with at upgrade time — without depending on the
//! host crate, which pulls in wasmtime. Hooks can also use [`Version`] to
//! compare versions at run time (the SDK re-exports it).
//!
//! ```ignore
//! use uplift_version::{Version, VersionRange};
//!
//! let range = VersionRange::parse(">=0.14.0, <0.16.0 || ^2.1")?;
//! assert!(range.matches(&Version::parse("0.15.0rc10")?));
//! ```

#[path = "../../../host/src/version.rs"]
mod version;

pub use version::*;

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

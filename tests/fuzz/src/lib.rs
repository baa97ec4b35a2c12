//! What uplift's fuzz targets share: how one input is cut into several
//! texts, and the oracles the differential targets compare uplift with.
//!
//! The targets themselves are in `fuzz_targets/`; `README.md` says what
//! each checks and how to run them. The oracles live here, outside the
//! targets, so that `cargo test` runs their own tests on the stable
//! toolchain.

pub mod range_model;

#[cfg(feature = "oracles")]
pub mod wasm_oracle;

#[cfg(feature = "oracles")]
pub mod sqlite_oracle;

/// The UTF-8 texts of `data` separated by newlines, at most `n` of them
/// (the last holds the rest, newlines included); `None` when `data` is not
/// UTF-8. Targets that need several texts (a range and a version, three
/// versions) read them this way, so that a seed is a readable text file.
pub fn texts(data: &[u8], n: usize) -> Option<Vec<&str>> {
    let text = std::str::from_utf8(data).ok()?;
    Some(text.splitn(n, '\n').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_at_the_first_newlines_only() {
        assert_eq!(texts(b"a\nb\nc\nd", 3), Some(vec!["a", "b", "c\nd"]));
        assert_eq!(texts(b"a", 3), Some(vec!["a"]));
        assert_eq!(texts(b"\xff", 3), None);
    }
}

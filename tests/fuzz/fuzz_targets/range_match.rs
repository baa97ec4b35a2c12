//! Ranges, differentially: for any range that parses and any version, the
//! range matches exactly when one of its alternatives has every comparator
//! holding, each comparator read on its own by an independent model of the
//! documented table (`uplift_fuzz::range_model`). A range the model reads
//! must parse, and a range that parses must be one the model reads; the
//! range's lower bound is never above a version it matches.
//!
//! Input: a range, a newline, a version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplift_contract::version::LowerBound;
use uplift_contract::{Version, VersionRange};
use uplift_fuzz::range_model;

fuzz_target!(|data: &[u8]| {
    let Some(texts) = uplift_fuzz::texts(data, 2) else {
        return;
    };
    let (range_text, version_text) = match texts.as_slice() {
        [range, version] => (*range, *version),
        _ => return,
    };
    let range = VersionRange::parse(range_text);
    let Ok(x) = Version::parse(version_text) else {
        let _ = range.map(|r| r.lower_bound());
        return;
    };
    let model = range_model::matches(range_text, &x);
    let range = match (range, model) {
        (Ok(range), Some(expected)) => {
            assert_eq!(
                range.matches(&x),
                expected,
                "{range_text:?} against {version_text:?}: the model says {expected}"
            );
            range
        }
        (Err(e), Some(_)) => panic!("{range_text:?} is refused ({e}) but the model reads it"),
        (Ok(_), None) => panic!("{range_text:?} parses but the model cannot read it"),
        (Err(_), None) => return,
    };
    if range.matches(&x) {
        match range.lower_bound() {
            LowerBound::Unbounded => {}
            LowerBound::Inclusive(low) => {
                assert!(x >= low, "{x:?} matches {range_text:?} below >={low:?}")
            }
            LowerBound::Exclusive(low) => {
                assert!(x > low, "{x:?} matches {range_text:?} below >{low:?}")
            }
        }
    }
});

//! Versions: parsing any text never panics, and the order of whatever
//! parses stays total and consistent, the properties `tests/all/version.rs`
//! states for generated versions: antisymmetric, reflexive, transitive,
//! equal exactly when the normalised forms are, equal versions hash alike,
//! and the normalised form parses back to an equal version.
//!
//! Input: up to three texts separated by newlines.
#![no_main]

use std::cmp::Ordering;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use libfuzzer_sys::fuzz_target;
use uplift_contract::{Version, VersionRange};

fuzz_target!(|data: &[u8]| {
    let Some(texts) = uplift_fuzz::texts(data, 3) else {
        return;
    };
    let versions: Vec<Version> = texts
        .iter()
        .filter_map(|text| {
            // A text that is not a version may still be a range.
            if let Ok(range) = VersionRange::parse(text) {
                assert_eq!(range.to_string(), text.trim());
                let _ = range.lower_bound();
            }
            Version::parse(text).ok()
        })
        .collect();
    let hash = |v: &Version| BuildHasherDefault::<DefaultHasher>::default().hash_one(v);
    for a in &versions {
        assert_eq!(a.cmp(a), Ordering::Equal);
        let normalized = a.normalized();
        let back = Version::parse(&normalized).unwrap_or_else(|e| {
            panic!("{a:?} normalises to {normalized:?}, which does not parse: {e}")
        });
        assert_eq!(&back, a, "{a:?} normalises to {normalized:?}");
        assert_eq!(back.normalized(), normalized);
        assert_eq!(hash(&back), hash(a));
        for b in &versions {
            assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a:?} and {b:?}");
            assert_eq!(a.partial_cmp(b), Some(a.cmp(b)));
            assert_eq!(a == b, a.normalized() == b.normalized(), "{a:?} and {b:?}");
            if a == b {
                assert_eq!(hash(a), hash(b), "{a:?} == {b:?} hash apart");
            }
            for c in &versions {
                if a <= b && b <= c {
                    assert!(a <= c, "{a:?} <= {b:?} <= {c:?} but not {a:?} <= {c:?}");
                }
                if a < b && b <= c {
                    assert!(a < c, "{a:?} < {b:?} <= {c:?} but not {a:?} < {c:?}");
                }
            }
        }
    }
});

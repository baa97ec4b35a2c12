//! Versions and ranges: the order, the range grammar, the errors, and
//! `uplift version match` / `uplift version compare`.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use proptest::prelude::*;
use proptest::sample::select;
use uplift::version::{LowerBound, Version, VersionError, VersionRange};

use crate::support::{run, stderr, stdout};

fn v(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn range(s: &str) -> VersionRange {
    VersionRange::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

// ---------------------------------------------------------------------------
// Order

/// `a OP b` where OP is `<` or `=`; each row is also checked reversed.
const ORDER: &[(&str, &str, &str)] = &[
    // release numbers
    ("0.6.3", "<", "0.6.4"),
    ("0.6.4", "<", "0.15"),
    ("1.2.3", "<", "1.10.0"),
    ("1.9", "<", "1.10"),
    ("0.15", "=", "0.15.0"),
    ("0.15.0", "=", "0.15.0.0"),
    ("1.0", "<", "1.0.0.1"),
    ("01.002", "=", "1.2"),
    ("1.0.0", "<", "2"),
    // leading v, whitespace, build metadata
    ("v1.0.0", "=", "1.0.0"),
    ("V1.0.0", "=", "1.0"),
    (" 1.0.0\n", "=", "1.0"),
    ("1.0.0+build.5", "=", "1.0.0"),
    ("1.0.0+build.5", "=", "1.0.0+build.6"),
    ("0.15.0a5.dev0+git.682.g0be46de2", "=", "0.15.0a5.dev0"),
    // phases of one release
    ("1.1.1.dev0", "<", "1.1.1.dev1"),
    ("1.1.1.dev9", "<", "1.1.1.dev10"),
    ("1.1.1.dev99", "<", "1.1.1-0"),
    ("1.1.1-0.3.7", "<", "1.1.1-x.7.z"),
    ("1.1.1-x.7.z", "<", "1.1.1a0"),
    ("1.1.1.dev0", "<", "1.1.1a0"),
    ("1.1.1.dev0", "<", "1.1.1"),
    ("1.1.0", "<", "1.1.1.dev0"),
    ("1.1.0.post9", "<", "1.1.1.dev0"),
    ("0.15.0a5", "<", "0.15.0b2"),
    ("0.15.0b2", "<", "0.15.0rc1"),
    ("0.15.0rc9", "<", "0.15.0rc10"),
    ("0.15.0rc10", "<", "0.15.0"),
    ("0.15.0", "<", "0.15.0.post1"),
    ("0.1.1", "<", "0.1.1.post1"),
    ("0.1.1.post1", "<", "0.1.1.post2"),
    ("0.1.1.post1", "<", "0.1.2.dev0"),
    // a pre- or post-release's own dev release sits just below it
    ("1.0a1.dev0", "<", "1.0a1"),
    ("1.0a0", "<", "1.0a1.dev0"),
    ("1.0a1", "<", "1.0a1.post1.dev0"),
    ("1.0a1.post1.dev0", "<", "1.0a1.post1"),
    ("1.0a1.post1", "<", "1.0a2"),
    ("1.0rc1.post1", "<", "1.0rc2.dev0"),
    ("1.0", "<", "1.0.post1.dev0"),
    ("1.0.post1.dev0", "<", "1.0.post1"),
    ("1.0.post0", "<", "1.0.post1.dev0"),
    // PEP 440 spellings
    ("1.0a", "=", "1.0a0"),
    ("1.0alpha1", "=", "1.0a1"),
    ("1.0_alpha_1", "=", "1.0a1"),
    ("1.0.a.1", "=", "1.0a1"),
    ("1.0beta2", "=", "1.0b2"),
    ("1.0RC1", "=", "1.0rc1"),
    ("1.0c1", "=", "1.0rc1"),
    ("1.0pre1", "=", "1.0rc1"),
    ("1.0preview1", "=", "1.0rc1"),
    ("1.0rev1", "=", "1.0.post1"),
    ("1.0-r1", "=", "1.0.post1"),
    ("1.0post1", "=", "1.0.post1"),
    ("1.0.post", "=", "1.0.post0"),
    ("1.0-dev", "=", "1.0.dev0"),
    ("1.0_DEV_4", "=", "1.0.dev4"),
    // semver pre-releases map onto the same phases
    ("1.0.0-alpha.1", "=", "1.0.0a1"),
    ("1.0.0-alpha", "=", "1.0.0a0"),
    ("1.0.0-beta.2", "=", "1.0.0b2"),
    ("1.0.0-beta.2", "<", "1.0.0-beta.11"),
    ("1.0.0-rc.1", "=", "1.0.0rc1"),
    ("1.0.0-dev.3", "=", "1.0.0.dev3"),
    ("1.0.0-rc.1+build.1", "=", "1.0.0rc1"),
    ("1.0.0-alpha.1.dev2", "<", "1.0.0-alpha.1"),
    // other semver pre-releases: semver precedence, below alpha
    ("1.0.0-0.3.7", "<", "1.0.0-1"),
    ("1.0.0-1", "<", "1.0.0-alpha.beta"),
    ("1.0.0-alpha.beta", "<", "1.0.0-alpha"),
    ("1.0.0-SNAPSHOT", "<", "1.0.0-snapshot"),
    ("1.0.0-snapshot", "<", "1.0.0-x.7.z"),
    ("1.0.0-x.7.z", "<", "1.0.0-x.7.z.1"),
    ("1.0.0-x.7.z", "=", "1.0-x.7.z+meta"),
    ("0.9.9", "<", "1.0.0-x.7.z"),
    ("1.0.0-rc.1.2", "<", "1.0.0a0"),
    ("1.0.0-beta.x", "<", "1.0.0-alpha"),
    // epochs
    ("0!1.0", "=", "1.0"),
    ("2.0", "<", "1!0.1"),
    ("1!1.0.dev0", "<", "1!1.0"),
    ("1!9.0", "<", "2!0.0.dev0"),
    // huge numbers still compare as numbers
    ("18446744073709551614", "<", "18446744073709551615"),
    ("1.0rc18446744073709551615", "<", "1.0"),
];

#[test]
fn versions_compare_as_the_order_table_says() {
    for (a, op, b) in ORDER {
        let (va, vb) = (v(a), v(b));
        let expected = match *op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            other => panic!("bad table row operator {other:?}"),
        };
        assert_eq!(va.cmp(&vb), expected, "{a:?} {op} {b:?}");
        assert_eq!(vb.cmp(&va), expected.reverse(), "{b:?} against {a:?}");
        assert_eq!(va == vb, expected == Ordering::Equal, "{a:?} == {b:?}");
    }
}

/// Every pair along one long chain, so the rows above are also consistent
/// with each other across phases.
#[test]
fn one_chain_across_every_phase_is_strictly_increasing() {
    let chain = [
        "0.9.9.post3",
        "1.0.0.dev0",
        "1.0.0.dev7",
        "1.0.0-0.3.7",
        "1.0.0-snapshot",
        "1.0.0-x.7.z",
        "1.0.0a0",
        "1.0.0a1.dev0",
        "1.0.0-alpha.1",
        "1.0.0a1.post0",
        "1.0.0a2",
        "1.0.0b1",
        "1.0.0-beta.2",
        "1.0.0rc1.dev0",
        "1.0.0rc1",
        "1.0.0rc10",
        "1.0",
        "1.0.0.post0.dev0",
        "1.0.0.post0",
        "1.0.0.post1",
        "1.0.0.0.1.dev0",
        "1.0.1",
        "1.1",
        "10",
        "1!0.0.dev0",
    ];
    let versions: Vec<Version> = chain.iter().map(|s| v(s)).collect();
    for (i, a) in versions.iter().enumerate() {
        for (j, b) in versions.iter().enumerate() {
            assert_eq!(a.cmp(b), i.cmp(&j), "{a} against {b}");
        }
    }
}

#[test]
fn display_keeps_the_text_and_normalized_is_canonical() {
    let cases = [
        // (input, Display, normalized)
        ("v1.0.0\n", "1.0.0", "1.0.0"),
        ("  0.15 ", "0.15", "0.15.0"),
        ("1.0.0.0", "1.0.0.0", "1.0.0"),
        ("1.2.3.4", "1.2.3.4", "1.2.3.4"),
        ("01.002", "01.002", "1.2.0"),
        ("0.15-RC.1+git.5", "0.15-RC.1+git.5", "0.15.0rc1"),
        ("1.0.0-beta.2+build.5", "1.0.0-beta.2+build.5", "1.0.0b2"),
        ("1.0Alpha", "1.0Alpha", "1.0.0a0"),
        ("1.0-preview_3", "1.0-preview_3", "1.0.0rc3"),
        ("1.0.0-x.7.z", "1.0.0-x.7.z", "1.0.0-x.7.z"),
        ("0!2.0-r", "0!2.0-r", "2.0.0.post0"),
        (
            "3!1.0a1.post2.dev3",
            "3!1.0a1.post2.dev3",
            "3!1.0.0a1.post2.dev3",
        ),
        ("1.1.1-DEV", "1.1.1-DEV", "1.1.1.dev0"),
    ];
    for (input, display, normalized) in cases {
        let version = v(input);
        assert_eq!(version.to_string(), display, "Display of {input:?}");
        assert_eq!(version.normalized(), normalized, "normalized {input:?}");
        assert_eq!(v(normalized), version, "{normalized:?} parses back");
    }
}

#[test]
fn accessors_report_the_parts() {
    let version = v("2!0.15.0a5.dev0+git.682.g0be46de2");
    assert_eq!(version.epoch(), 2);
    assert_eq!(version.release(), &[0, 15, 0]);
    assert_eq!(version.build(), Some("git.682.g0be46de2"));
    assert!(version.is_prerelease());
    assert!(v("1.0.dev1").is_prerelease());
    assert!(v("1.0.0-snapshot").is_prerelease());
    assert!(v("1.0.post1.dev0").is_prerelease());
    assert!(!v("1.0.post1").is_prerelease());
    assert!(!v("1.0+build").is_prerelease());
    assert_eq!(v("1.0").build(), None);
}

#[test]
fn equal_versions_hash_alike() {
    let set: HashSet<Version> = ["0.15", "0.15.0", "v0.15.0.0", "0.15.0+build.1", "0.15.0rc1"]
        .iter()
        .map(|s| v(s))
        .collect();
    assert_eq!(set.len(), 2, "{set:?}");
    assert!(set.contains(&v("0.15.0.0.0")));
    assert!(set.contains(&v("0.15.0-rc.1")));
}

#[test]
fn versions_and_ranges_serialise_as_strings() {
    let version = v("v1.0.0-beta.2+build.5");
    assert_eq!(
        serde_json::to_string(&version).unwrap(),
        "\"1.0.0-beta.2+build.5\""
    );
    let back: Version = serde_json::from_str("\"0.15.0rc10\"").unwrap();
    assert_eq!(back, v("0.15.0rc10"));
    let err = serde_json::from_str::<Version>("\"notaversion\"").unwrap_err();
    assert!(
        err.to_string().contains("invalid version \"notaversion\""),
        "{err}"
    );

    let r = range(" >=0.14, <0.16 ");
    assert_eq!(serde_json::to_string(&r).unwrap(), "\">=0.14, <0.16\"");
    let back: VersionRange = serde_json::from_str("\"^1.2 || 2.*\"").unwrap();
    assert!(back.matches(&v("2.5")));
    assert!(!back.matches(&v("3.0")));
    let err = serde_json::from_str::<VersionRange>("\"1.0,,2.0\"").unwrap_err();
    assert!(
        err.to_string().contains("empty comparator between commas"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Matching

/// (range, version, matches)
const MATCHES: &[(&str, &str, bool)] = &[
    // plain comparators
    ("<0.6.4", "0.6.3", true),
    ("<0.6.4", "0.6.4", false),
    ("<0.6.4", "0.6.4.dev0", true),
    ("<=0.6.4", "0.6.4", true),
    ("<=0.6.4", "0.6.4.post1", false),
    (">0.6.4", "0.6.4", false),
    (">0.6.4", "0.6.4.post1", true),
    (">0.6.4", "0.6.5.dev0", true),
    (">=0.6.4", "0.6.4rc1", false),
    (">=0.6.4", "0.6.4.0", true),
    ("==1.0", "1.0.0", true),
    ("==1.0", "1.0.0+build.5", true),
    ("=1.0", "1.0.0", true),
    ("1.0", "1.0.0", true),
    ("1.0", "1.0.1", false),
    ("v1.0", "1.0", true),
    ("!=1.0", "1.0.0", false),
    ("!=1.0", "1.0.1", true),
    ("!=1.0", "1.0rc1", true),
    // pre-releases match by plain ordering (unlike Cargo)
    ("<0.15.0", "0.15.0a5", true),
    ("<1.1.1", "1.1.1.dev0", true),
    (">=0.15.0rc1", "0.15.0rc10", true),
    (">=0.15.0rc1", "0.15.0b2", false),
    (">=1.0.0-beta.2", "1.0.0b2", true),
    ("<1.0.0", "1.0.0-x.7.z", true),
    (">1.0.0.dev0", "1.0.0-snapshot", true),
    // AND: commas and whitespace
    (">=0.14.0, <0.16.0", "0.15.0rc1", true),
    (">=0.14.0, <0.16.0", "0.16.0", false),
    (">= 0.14.0 , <0.16.0", "0.14", true),
    (">=0.14.0,<0.16.0", "0.13.9", false),
    (">=1.0 <2.0", "1.5", true),
    (">=1.0 <2.0", "2.0", false),
    (">= 1.0 < 2.0", "1.99.post3", true),
    (">=1.0, <2.0 !=1.5", "1.5.0", false),
    // OR
    ("<0.6.4 || >=1.0", "0.6", true),
    ("<0.6.4 || >=1.0", "0.7", false),
    ("<0.6.4 || >=1.0", "1.0", true),
    ("1.0 || 2.0 || 3.0", "2.0.0", true),
    ("1.0||2.0", "1.5", false),
    (">=1, <2 || >=3, <4", "3.5", true),
    (">=1, <2 || >=3, <4", "2.5", false),
    // any
    ("*", "0.0.0.dev0", true),
    ("", "99!1.0", true),
    ("  ", "1.0", true),
    (">=1.0, *", "0.5", false),
    ("1.0 || *", "7.0", true),
    // caret
    ("^1.2", "1.2.0", true),
    ("^1.2", "1.9.9", true),
    ("^1.2", "1.2.0rc1", false),
    ("^1.2", "2.0.0", false),
    ("^1.2", "2.0.0a1", false),
    ("^1.2", "2.0.0.dev0", false),
    ("^1.2", "2.0.0-x.7.z", false),
    ("^1.2.3", "1.2.3", true),
    ("^1.2.3", "1.2.2", false),
    ("^1", "1.99", true),
    ("^0.2.3", "0.2.9", true),
    ("^0.2.3", "0.3.0", false),
    ("^0.2.3", "0.3.0rc1", false),
    ("^0.2.3", "0.2.2", false),
    ("^0.0.3", "0.0.3", true),
    ("^0.0.3", "0.0.3.post1", true),
    ("^0.0.3", "0.0.4", false),
    ("^0.0", "0.0.9", true),
    ("^0.0", "0.1.0", false),
    ("^0", "0.9", true),
    ("^0", "1.0.dev0", false),
    ("^1.2.3-beta.1", "1.2.3b1", true),
    ("^1.2.3-beta.1", "1.2.3a5", false),
    ("^1.2.3-beta.1", "1.5.0", true),
    ("^ 1.2", "1.3", true),
    // tilde
    ("~1.2.3", "1.2.3", true),
    ("~1.2.3", "1.2.9", true),
    ("~1.2.3", "1.3.0", false),
    ("~1.2.3", "1.3.0a1", false),
    ("~1.2", "1.2.0", true),
    ("~1.2", "1.2.99", true),
    ("~1", "1.9", true),
    ("~1", "2.0.dev0", false),
    // PEP 440 compatible release
    ("~=1.4.5", "1.4.5", true),
    ("~=1.4.5", "1.4.9", true),
    ("~=1.4.5", "1.4.4", false),
    ("~=1.4.5", "1.5.0", false),
    ("~=1.4.5", "1.5.0.dev0", false),
    ("~=1.4", "1.9", true),
    ("~=1.4", "2.0", false),
    ("~=1.4", "2.0rc1", false),
    ("~=1.4.5a4", "1.4.5a4", true),
    ("~=1.4.5a4", "1.4.8", true),
    ("~=1.4.5a4", "1.4.5a3", false),
    // wildcards
    ("1.2.*", "1.2.0rc1", true),
    ("1.2.*", "1.2.7", true),
    ("1.2.*", "1.2", true),
    ("1.2.*", "1.2.dev0", true),
    ("1.2.*", "1.2.0-x.7.z", true),
    ("1.2.*", "1.2.99.post1", true),
    ("1.2.*", "1.3.0.dev0", false),
    ("1.2.*", "1.1.9", false),
    ("==1.2.*", "1.2.5", true),
    ("=1.2.*", "1.2.5", true),
    ("!=1.2.*", "1.2.5", false),
    ("!=1.2.*", "1.2.0a1", false),
    ("!=1.2.*", "1.3", true),
    ("!=1.2.*", "1.1.9", true),
    ("1.*", "1.99.99", true),
    ("1.*", "2.0a1", false),
    ("1.0.*", "1.0", true),
    ("1.0.*", "1.0.1", true),
    ("1.0.*", "1.1", false),
    // epochs
    ("1!1.0", "1.0", false),
    (">=1!0", "99.0", false),
    ("<1!0", "99", true),
    ("^1!1.2", "1!1.5", true),
    ("^1!1.2", "1.5", false),
    ("1!1.*", "1!1.3", true),
    ("1!1.*", "1.3", false),
    // largest numbers: the upper bound carries or disappears
    ("^18446744073709551615", "18446744073709551615.9", true),
    ("~1.18446744073709551615", "1.18446744073709551615.3", true),
    ("~1.18446744073709551615", "2.0", false),
    ("~1.18446744073709551615", "2.0.dev0", false),
    ("18446744073709551615.*", "18446744073709551615.1", true),
    ("!=18446744073709551615.*", "18446744073709551615.1", false),
];

#[test]
fn ranges_match_as_the_match_table_says() {
    assert!(MATCHES.len() + ORDER.len() >= 60);
    for (r, version, expected) in MATCHES {
        assert_eq!(
            range(r).matches(&v(version)),
            *expected,
            "{version:?} against {r:?}"
        );
    }
}

/// Found with the `range_match` fuzz target's model (on its seed
/// `max_series_next_epoch`): a series whose every number is `u64::MAX` has
/// no release above it in its epoch, and its upper bound used to be
/// dropped, so `^18446744073709551615` matched every later epoch.
#[test]
fn a_series_of_the_largest_numbers_ends_before_the_next_epoch() {
    let max = "18446744073709551615";
    for r in [
        format!("^{max}"),
        format!("~{max}"),
        format!("~={max}.{max}"),
        format!("{max}.*"),
        format!("=={max}.{max}.*"),
    ] {
        assert!(range(&r).matches(&v(&format!("{max}.{max}.7"))), "{r}");
        for later in ["1!0", "1!0.dev0", &format!("1!{max}")] {
            assert!(!range(&r).matches(&v(later)), "{later} against {r}");
        }
    }
    assert!(range(&format!("!={max}.*")).matches(&v("1!0")));
    // The last epoch has nothing above it at all.
    let last = format!("{max}!{max}");
    assert!(range(&format!("^{last}")).matches(&v(&format!("{last}.{max}"))));
}

#[test]
fn range_display_is_the_trimmed_text() {
    assert_eq!(
        range("  >= 0.14.0 , <0.16.0\n").to_string(),
        ">= 0.14.0 , <0.16.0"
    );
    assert_eq!(range("^1.2 || 2.*").to_string(), "^1.2 || 2.*");
    assert_eq!(VersionRange::any().to_string(), "*");
}

#[test]
fn any_is_written_as_star_or_nothing() {
    for r in ["*", "", " \n", "1.0 || *"] {
        assert!(range(r).is_any(), "{r:?}");
    }
    for r in [">=0", ">=1.0, *", "<1 || >=1", "1.*"] {
        assert!(!range(r).is_any(), "{r:?}");
    }
    let any = VersionRange::any();
    assert!(any.is_any());
    assert!(any.matches(&v("0.0.dev0")));
    assert!(VersionRange::default().is_any());
}

// ---------------------------------------------------------------------------
// Lower bounds (the hook order)

#[test]
fn lower_bounds_are_the_tightest_start_of_the_range() {
    let inc = |s: &str| LowerBound::Inclusive(v(s));
    let exc = |s: &str| LowerBound::Exclusive(v(s));
    let cases = [
        ("*", LowerBound::Unbounded),
        ("", LowerBound::Unbounded),
        ("<2.0", LowerBound::Unbounded),
        ("!=1.0", LowerBound::Unbounded),
        ("!=1.2.*", LowerBound::Unbounded),
        (">=1.0", inc("1.0")),
        ("==1.0", inc("1.0")),
        ("1.0", inc("1.0")),
        (">1.0", exc("1.0")),
        ("^1.2", inc("1.2")),
        ("~=1.4.5", inc("1.4.5")),
        ("1.2.*", inc("1.2.dev0")),
        (">=1.0, >2.0, <3", exc("2.0")),
        (">=1.0 || >=0.5, <0.6", inc("0.5")),
        ("<1 || >=2", LowerBound::Unbounded),
    ];
    for (r, expected) in cases {
        assert_eq!(range(r).lower_bound(), expected, "lower bound of {r:?}");
    }
}

#[test]
fn lower_bounds_sort_unbounded_first_then_by_version_inclusive_first() {
    let mut ranges = vec![
        ">1.0",
        "^1.0.post1",
        "<3",
        ">=1.0",
        ">=0.9rc1",
        "*",
        "1.0.*",
    ];
    ranges.sort_by_key(|r| range(r).lower_bound());
    // The sort is stable, so "<3" stays before "*".
    assert_eq!(
        ranges,
        [
            "<3",
            "*",
            ">=0.9rc1",
            "1.0.*",
            ">=1.0",
            ">1.0",
            "^1.0.post1"
        ]
    );
    assert_eq!(
        LowerBound::Inclusive(v("1.0")),
        LowerBound::Inclusive(v("1.0.0+build"))
    );
    assert!(LowerBound::Unbounded < LowerBound::Inclusive(v("0.0.dev0")));
}

// ---------------------------------------------------------------------------
// Errors

fn version_error(s: &str) -> String {
    match Version::parse(s) {
        Ok(version) => panic!("{s:?} should not parse, got {version:?}"),
        Err(e @ VersionError::Version { .. }) => e.to_string(),
        Err(other) => panic!("{s:?}: wrong error kind {other:?}"),
    }
}

fn range_error(s: &str) -> String {
    match VersionRange::parse(s) {
        Ok(r) => panic!("{s:?} should not parse, got {r:?}"),
        Err(e @ VersionError::Range { .. }) => e.to_string(),
        Err(other) => panic!("{s:?}: wrong error kind {other:?}"),
    }
}

#[test]
fn bad_versions_are_errors_quoting_the_text_and_saying_what_was_expected() {
    let cases = [
        (
            "notaversion",
            r#"invalid version "notaversion": expected digits such as 1.0.0"#,
        ),
        ("", r#"invalid version "": expected digits such as 1.0.0"#),
        ("v", r#"invalid version "v": expected digits such as 1.0.0"#),
        (
            ".1",
            r#"invalid version ".1": expected digits such as 1.0.0"#,
        ),
        (
            "1.0.0-",
            r#"invalid version "1.0.0-": expected a pre-release such as -beta.2 after "1.0.0""#,
        ),
        ("1.0.0+", "after \"+\", found \"+\""),
        ("1.0.0+a..b", "found \"+a..b\""),
        ("1.0.0+a b", "found \"+a b\""),
        ("1..0", r#"unexpected "..0" after "1""#),
        ("1.0.", r#"unexpected "." after "1.0""#),
        ("1.0 beta", r#"unexpected " beta" after "1.0""#),
        ("1.0ab", r#"unexpected "ab" after "1.0""#),
        ("1.0a.", r#"unexpected "a." after "1.0""#),
        ("1.0-1.0.0.01", "nor a semver pre-release"),
        ("1.0.0-foo_bar", r#""-foo_bar" is neither a PEP 440 suffix"#),
        ("1.0-é", r#""-é" is neither"#),
        (
            "99999999999999999999",
            r#"number "99999999999999999999" is too large (the largest is 18446744073709551615)"#,
        ),
        (
            "1.0rc99999999999999999999",
            r#"number "99999999999999999999" is too large"#,
        ),
        ("1.0-beta.99999999999999999999", "is too large"),
        (
            "1!",
            r#"expected release numbers such as 1.0 after the epoch "1!""#,
        ),
        ("1.0!2", r#"unexpected "!2" after "1.0""#),
        ("1.2.*", r#"unexpected ".*" after "1.2""#),
        ("١.٠", "expected digits such as 1.0.0"),
        ("vv1.0", "expected digits such as 1.0.0"),
    ];
    for (input, expected) in cases {
        let message = version_error(input);
        assert!(
            message.contains(expected),
            "{input:?}: message {message:?} should contain {expected:?}"
        );
        assert!(message.starts_with("invalid version "), "{message}");
    }
}

#[test]
fn bad_ranges_are_errors_quoting_the_offending_part() {
    let cases = [
        (
            "notaversion",
            r#"invalid range "notaversion": "notaversion" is not a version: expected digits such as 1.0.0"#,
        ),
        (">=", r#"invalid range ">=": expected a version after ">=""#),
        (
            "<<1.0",
            r#"invalid range "<<1.0": expected a version after "<", found "<1.0""#,
        ),
        (
            "1.0,,2.0",
            r#"invalid range "1.0,,2.0": empty comparator between commas"#,
        ),
        (",1.0", "empty comparator before the first comma"),
        ("1.0,", "empty comparator after the last comma"),
        (
            "1.2.*.3",
            r#"invalid range "1.2.*.3": "*" must be last and follow a dot, as in 1.2.*; found "1.2.*.3""#,
        ),
        ("1.2*", r#"found "1.2*""#),
        ("^", r#"invalid range "^": expected a version after "^""#),
        (
            "1.0 ||",
            r#"invalid range "1.0 ||": empty alternative after "||""#,
        ),
        ("||", r#"invalid range "||": empty alternative before "||""#),
        ("1.0 |||| 2.0", "empty alternative between"),
        (
            "1.0 | 2.0",
            r#""|": a single "|" is not an operator; write || for OR"#,
        ),
        ("1.0|2.0", "write || for OR"),
        (
            ">=1.2.*",
            r#"wildcards go with == or != only, found ">=1.2.*""#,
        ),
        ("^1.*", r#"wildcards go with == or != only, found "^1.*""#),
        ("~=1.*", "wildcards go with == or != only"),
        (
            "1.0a1.*",
            r#"a wildcard follows release numbers only, as in 1.2.*; found "1.0a1.*""#,
        ),
        ("x.*", r#""x" before ".*" is not a version"#),
        (
            "==*",
            r#""*" alone means any version and takes no operator, found "==*""#,
        ),
        ("~=1", r#""~=1" needs at least two release numbers"#),
        ("=== 1.0", r#"expected a version after "==", found "=""#),
        ("!1.0", r#"unknown operator in "!1.0""#),
        (">=1.0<2.0", r#""1.0<2.0" is not a version"#),
        ("1.0 - 2.0", r#""-" is not a version"#),
        (
            ">=1.0, <abc",
            r#""abc" is not a version: expected digits such as 1.0.0"#,
        ),
        ("<99999999999999999999", "is too large"),
    ];
    for (input, expected) in cases {
        let message = range_error(input);
        assert!(
            message.contains(expected),
            "{input:?}: message {message:?} should contain {expected:?}"
        );
        assert!(message.starts_with("invalid range "), "{message}");
    }
}

// ---------------------------------------------------------------------------
// Properties

/// Version texts built from every form the grammar has, with small numbers
/// so that equal and neighbouring versions are frequent.
fn version_text() -> impl Strategy<Value = String> {
    let prefix = select(vec!["", "", "", "v", "V"]);
    let epoch = prop_oneof![4 => Just(String::new()), 1 => (0u64..3).prop_map(|e| format!("{e}!"))];
    let release = prop::collection::vec(0u64..3, 1..5)
        .prop_map(|ns| ns.iter().map(u64::to_string).collect::<Vec<_>>().join("."));
    let sep = || select(vec!["", ".", "-", "_"]);
    let number = || prop_oneof![Just(String::new()), (0u64..12).prop_map(|n| n.to_string())];
    let word = |words: Vec<&'static str>| {
        (sep(), select(words), sep(), number()).prop_map(|(s1, w, s2, n)| {
            if n.is_empty() {
                format!("{s1}{w}")
            } else {
                format!("{s1}{w}{s2}{n}")
            }
        })
    };
    let optional = |s: BoxedStrategy<String>| prop_oneof![2 => Just(String::new()), 1 => s];
    let pep440 = (
        optional(
            word(vec![
                "a", "alpha", "b", "beta", "rc", "c", "pre", "preview", "RC", "Alpha",
            ])
            .boxed(),
        ),
        optional(word(vec!["post", "rev", "r", "POST"]).boxed()),
        optional(word(vec!["dev", "DEV"]).boxed()),
    )
        .prop_map(|(pre, post, dev)| format!("{pre}{post}{dev}"));
    let semver_other = select(vec![
        "-x.7.z",
        "-0.3.7",
        "-1",
        "-0",
        "-snapshot",
        "-SNAPSHOT",
        "-alpha.beta",
        "-x-y",
        "-x.7.z.1",
    ])
    .prop_map(str::to_string);
    let suffix = prop_oneof![4 => pep440, 1 => semver_other];
    let build = optional(
        select(vec!["+build.5", "+git.682.g0be46de2", "+x_y-z", "+1"])
            .prop_map(str::to_string)
            .boxed(),
    );
    (prefix, epoch, release, suffix, build).prop_map(|(p, e, r, s, b)| format!("{p}{e}{r}{s}{b}"))
}

fn version() -> impl Strategy<Value = Version> {
    version_text().prop_map(|text| v(&text))
}

/// The release numbers padded with zeros to `len`.
fn padded(version: &Version, len: usize) -> Vec<u64> {
    (0..len)
        .map(|i| version.release().get(i).copied().unwrap_or(0))
        .collect()
}

/// Whether `version` belongs to a release series starting with `prefix` of
/// `series` (same epoch, same first numbers) — the model of wildcards and of
/// the upper bounds of ^, ~ and ~=.
fn in_series(version: &Version, series: &Version, prefix_len: usize) -> bool {
    version.epoch() == series.epoch() && padded(version, prefix_len) == padded(series, prefix_len)
}

fn hash_of(version: &Version, state: &RandomState) -> u64 {
    state.hash_one(version)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_order_is_total_and_consistent(a in version(), b in version(), c in version()) {
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        prop_assert_eq!(a.cmp(&a), Ordering::Equal);
        prop_assert_eq!(a == b, a.cmp(&b) == Ordering::Equal);
        prop_assert_eq!(a.partial_cmp(&b), Some(a.cmp(&b)));
        if a <= b && b <= c {
            prop_assert!(a <= c, "{} <= {} <= {} but not {} <= {}", a, b, c, a, c);
        }
        if a < b && b <= c {
            prop_assert!(a < c);
        }
        // Equal keys ⇔ Equal: the normalised form is the key written out.
        prop_assert_eq!(a == b, a.normalized() == b.normalized());
    }

    #[test]
    fn equal_versions_have_equal_hashes(a in version(), b in version()) {
        let state = RandomState::new();
        if a == b {
            prop_assert_eq!(hash_of(&a, &state), hash_of(&b, &state));
        }
        // The same version written with other build metadata, a leading v
        // and surrounding whitespace is equal and hashes alike.
        let other = v(&format!(" v{}+other.1\n", a.normalized()));
        prop_assert_eq!(&other, &a);
        prop_assert_eq!(hash_of(&other, &state), hash_of(&a, &state));
    }

    #[test]
    fn the_normalised_form_parses_back_to_an_equal_version(a in version()) {
        let n = a.normalized();
        let back = v(&n);
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.normalized(), n);
        prop_assert_eq!(v(&a.to_string()), a);
    }

    #[test]
    fn comparators_match_exactly_as_the_order_says(a in version(), b in version()) {
        let matches = |r: String| range(&r).matches(&b);
        prop_assert_eq!(matches(format!(">={a}")), b >= a);
        prop_assert_eq!(matches(format!(">{a}")), b > a);
        prop_assert_eq!(matches(format!("<={a}")), b <= a);
        prop_assert_eq!(matches(format!("<{a}")), b < a);
        prop_assert_eq!(matches(format!("=={a}")), b == a);
        prop_assert_eq!(matches(format!("={a}")), b == a);
        prop_assert_eq!(matches(a.to_string()), b == a);
        prop_assert_eq!(matches(format!("!={a}")), b != a);
        prop_assert_eq!(matches(format!(">= {a}")), b >= a);
    }

    #[test]
    fn and_or_combine_like_logic(
        a in version(),
        b in version(),
        x in version(),
        op1 in select(vec!["<", "<=", ">", ">=", "==", "!=", "^", "~", ""]),
        op2 in select(vec!["<", "<=", ">", ">=", "==", "!=", "^", "~", ""]),
    ) {
        let r1 = format!("{op1}{a}");
        let r2 = format!("{op2}{b}");
        let m1 = range(&r1).matches(&x);
        let m2 = range(&r2).matches(&x);
        prop_assert_eq!(range(&format!("{r1}, {r2}")).matches(&x), m1 && m2);
        prop_assert_eq!(range(&format!("{r1},{r2}")).matches(&x), m1 && m2);
        prop_assert_eq!(range(&format!("{r1} {r2}")).matches(&x), m1 && m2);
        prop_assert_eq!(range(&format!("{r1} || {r2}")).matches(&x), m1 || m2);
        prop_assert_eq!(range(&format!("{r1} || {r1}, {r2}")).matches(&x), m1);
        // A lower bound is a lower bound: nothing below it matches.
        let r = range(&format!("{r1}, {r2} || {r2}"));
        if r.matches(&x) {
            match r.lower_bound() {
                LowerBound::Unbounded => {}
                LowerBound::Inclusive(low) => prop_assert!(x >= low),
                LowerBound::Exclusive(low) => prop_assert!(x > low),
            }
        }
    }

    #[test]
    fn wildcards_match_their_release_series(series in version(), x in version(), len in 1usize..4) {
        let prefix = padded(&series, len)
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".");
        let epoch = if series.epoch() == 0 { String::new() } else { format!("{}!", series.epoch()) };
        let wildcard = format!("{epoch}{prefix}.*");
        let inside = in_series(&x, &series, len);
        prop_assert_eq!(range(&wildcard).matches(&x), inside, "{} against {}", x, wildcard);
        prop_assert_eq!(range(&format!("=={wildcard}")).matches(&x), inside);
        prop_assert_eq!(range(&format!("!={wildcard}")).matches(&x), !inside);
    }

    #[test]
    fn caret_tilde_and_compatible_match_their_model(a in version(), x in version()) {
        let written = a.release();
        // ^: same numbers up to the first non-zero one written (or the last).
        let caret = written.iter().position(|&n| n != 0).unwrap_or(written.len() - 1) + 1;
        prop_assert_eq!(
            range(&format!("^{a}")).matches(&x),
            x >= a && in_series(&x, &a, caret),
            "{} against ^{}", x, a
        );
        // ~: same major and minor if written, else same major.
        let tilde = written.len().min(2);
        prop_assert_eq!(
            range(&format!("~{a}")).matches(&x),
            x >= a && in_series(&x, &a, tilde),
            "{} against ~{}", x, a
        );
        // ~=: all but the last number written.
        if written.len() >= 2 {
            prop_assert_eq!(
                range(&format!("~={a}")).matches(&x),
                x >= a && in_series(&x, &a, written.len() - 1),
                "{} against ~={}", x, a
            );
        }
    }

    #[test]
    fn parsing_never_panics_on_any_text(s in any::<String>()) {
        let _ = Version::parse(&s);
        if let Ok(r) = VersionRange::parse(&s) {
            let _ = r.matches(&v("1.0"));
            let _ = r.lower_bound();
        }
    }

    #[test]
    fn parsing_never_panics_on_version_like_text(s in "[0-9a-zA-Z.+!*^~<>=|, _-]{0,24}") {
        let version = Version::parse(&s);
        if let Ok(version) = &version {
            prop_assert_eq!(&v(&version.normalized()), version);
        }
        if let Ok(r) = VersionRange::parse(&s) {
            let _ = r.matches(&v("1.0"));
            let _ = r.lower_bound();
            prop_assert_eq!(r.to_string(), s.trim());
        }
    }
}

// ---------------------------------------------------------------------------
// The command line

#[test]
fn version_match_prints_one_line_per_version_and_exits_1_on_a_mismatch() {
    let out = run(&["version", "match", "<0.6.4", "0.6.3", "0.6.4"]);
    assert_eq!(
        stdout(&out),
        "0.6.3 matches <0.6.4\n0.6.4 does not match <0.6.4\n"
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
}

#[test]
fn version_match_exits_0_when_every_version_matches() {
    let out = run(&[
        "version",
        "match",
        ">=0.14, <0.16",
        "0.15.0rc10",
        "0.15",
        "0.15.0a5.dev0+git.682.g0be46de2",
    ]);
    assert_eq!(
        stdout(&out),
        "0.15.0rc10 matches >=0.14, <0.16\n\
         0.15 matches >=0.14, <0.16\n\
         0.15.0a5.dev0+git.682.g0be46de2 matches >=0.14, <0.16\n"
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}

#[test]
fn version_match_rejects_a_bad_range_with_exit_2_and_nothing_on_stdout() {
    let out = run(&["version", "match", ">=", "1.0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains(r#"invalid range ">=": expected a version after ">=""#),
        "stderr: {}",
        stderr(&out)
    );
}

#[test]
fn version_match_rejects_a_bad_version_before_printing_anything() {
    let out = run(&["version", "match", "<2", "1.0", "notaversion"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains(r#"invalid version "notaversion": expected digits such as 1.0.0"#),
        "stderr: {}",
        stderr(&out)
    );
}

#[test]
fn version_compare_prints_the_sign() {
    for (a, b, sign) in [
        ("0.15.0rc10", "0.15.0rc9", ">"),
        ("1.1.1.dev0", "1.1.1", "<"),
        ("0.15", "v0.15.0+build.1", "="),
    ] {
        let out = run(&["version", "compare", a, b]);
        assert_eq!(stdout(&out), format!("{sign}\n"), "{a} against {b}");
        assert_eq!(out.status.code(), Some(0));
    }
    let out = run(&["version", "compare", "1.0", "<<1.0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains(r#"invalid version "<<1.0""#),
        "{}",
        stderr(&out)
    );
}

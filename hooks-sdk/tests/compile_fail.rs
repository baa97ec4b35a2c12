//! The macros refuse bad plugins at compile time, with an error that points
//! at the offending text (the `.stderr` files pin the messages and spans),
//! and accept the example.
//!
//! Regenerate the expected output after a deliberate change with
//! `TRYBUILD=overwrite cargo test -p uplift-hooks-sdk --test compile_fail`.

#[test]
fn macros_refuse_bad_plugins_and_accept_good_ones() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}

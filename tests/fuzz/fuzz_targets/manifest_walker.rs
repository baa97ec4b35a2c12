//! The manifest section walker, differentially: uplift reads a plugin's
//! `uplift:manifest` sections by walking only the section headers of a
//! binary it did not write (`uplift::hooks::manifest::read_section`), before
//! anything is compiled. It must never panic, and whenever wasmparser
//! parses every section of the same bytes, the walker must agree with it: a
//! core module is refused as one, and a component's sections are exactly
//! those wasmparser finds at the outermost level that has any (or missing
//! when it has none). When the manifest is valid too, replacing it with
//! `embed_manifest` and reading it back gives the same manifest.
//!
//! Input: the bytes of a component (or anything else).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplift::hooks::manifest::{self, ManifestError, SECTION_NAME};
use uplift_fuzz::wasm_oracle::{self, Reading};

fuzz_target!(|wasm: &[u8]| {
    let walked = manifest::read_section(wasm);
    let parsed = manifest::read_manifest(wasm);
    match (&walked, &parsed) {
        (Ok(_), _) | (Err(_), Err(_)) => {}
        (Err(e), Ok(m)) => panic!("no section ({e}) but a manifest: {m:?}"),
    }
    let Some(reading) = wasm_oracle::read(wasm, SECTION_NAME) else {
        return;
    };
    match (&reading, &walked) {
        (Reading::CoreModule, Err(ManifestError::CoreModule)) => {}
        (Reading::Component(Some(expected)), Ok(got)) => assert_eq!(
            got, expected,
            "the walker's sections differ from wasmparser's"
        ),
        (Reading::Component(None), Err(ManifestError::Missing)) => {}
        (expected, got) => panic!("wasmparser reads {expected:?}, the walker {got:?}"),
    }
    if let Ok(manifest) = parsed {
        let embedded = manifest::embed_manifest(wasm, &manifest)
            .unwrap_or_else(|e| panic!("a component wasmparser reads cannot take a manifest: {e}"));
        let again = manifest::read_manifest(&embedded)
            .unwrap_or_else(|e| panic!("an embedded manifest cannot be read back: {e}"));
        assert_eq!(again.to_section(), manifest.to_section());
    }
});

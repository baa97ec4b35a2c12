//! wasmparser's reading of a component's `uplift:manifest` sections: the
//! oracle of the `manifest_walker` target, which compares uplift's own
//! section walker (`uplift::hooks::manifest::read_section`, which reads only
//! section headers) with it.

use wasmparser::{Parser, Payload};

/// What wasmparser makes of a binary, when it parses every section of it
/// (nested modules and components included) without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// A core module, not a component.
    CoreModule,
    /// A component, and its `uplift:manifest` sections by the walker's
    /// rule: those of the outermost level that has any, concatenated in
    /// order, each followed by a newline; `None` when it has none.
    Component(Option<Vec<u8>>),
}

/// wasmparser's reading of `wasm`; `None` when wasmparser refuses it (the
/// walker, which reads less, may then accept it or not).
///
/// wasmparser does not check that a nested module or component lies within
/// the input (its `unchecked_range`, for streaming): at the end of the
/// input it ends the nested one early. This reading does: a nested module
/// or component must end exactly where its section says, and the
/// component exactly at the end of the input.
pub fn read(wasm: &[u8], section_name: &str) -> Option<Reading> {
    let component = Parser::is_component(wasm);
    // (depth, data) of every section with the name; depth 1 is the
    // component itself.
    let mut found: Vec<(usize, &[u8])> = Vec::new();
    // Where the module or component being read must end, outermost first.
    let mut ends = vec![wasm.len()];
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::Version { .. } => depth += 1,
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => ends.push(unchecked_range.end),
            Payload::End(offset) => {
                depth = depth.checked_sub(1)?;
                if ends.pop()? != offset {
                    return None;
                }
            }
            Payload::CustomSection(reader) if reader.name() == section_name => {
                found.push((depth, reader.data()));
            }
            _ => {}
        }
    }
    if !component {
        return Some(Reading::CoreModule);
    }
    let Some(outermost) = found.iter().map(|(d, _)| *d).min() else {
        return Some(Reading::Component(None));
    };
    let mut bytes = Vec::new();
    for (_, data) in found.iter().filter(|(d, _)| *d == outermost) {
        bytes.extend_from_slice(data);
        bytes.push(b'\n');
    }
    Some(Reading::Component(Some(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_sections_win_over_nested_ones() {
        let mut nested = wasm_encoder_like::module_with_custom("uplift:manifest", b"N");
        let mut component = vec![0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        // A nested core module (section 1) holding a section...
        component.push(1);
        component.push(nested.len() as u8);
        component.append(&mut nested);
        assert_eq!(
            read(&component, "uplift:manifest"),
            Some(Reading::Component(Some(b"N\n".to_vec())))
        );
        // ...loses to one of the component itself.
        component.extend(wasm_encoder_like::custom("uplift:manifest", b"T"));
        assert_eq!(
            read(&component, "uplift:manifest"),
            Some(Reading::Component(Some(b"T\n".to_vec())))
        );
        // A nested module cut short is refused, though wasmparser ends it
        // at the end of the input.
        let cut = [&b"\0asm\x0d\0\x01\0\x01\x28"[..], b"\0asm\x01\0\0\0"].concat();
        assert!(Parser::new(0).parse_all(&cut).all(|p| p.is_ok()));
        assert_eq!(read(&cut, "uplift:manifest"), None);
        assert_eq!(read(b"\0asm\x01\0\0\0", "x"), Some(Reading::CoreModule));
        assert_eq!(read(b"\0asm\x0d\0\x01\0\x00", "x"), None);
    }

    /// The few encodings the test needs, written out by hand.
    mod wasm_encoder_like {
        pub fn custom(name: &str, data: &[u8]) -> Vec<u8> {
            let mut body = vec![name.len() as u8];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(data);
            let mut out = vec![0, body.len() as u8];
            out.extend(body);
            out
        }

        pub fn module_with_custom(name: &str, data: &[u8]) -> Vec<u8> {
            let mut out = b"\0asm\x01\0\0\0".to_vec();
            out.extend(custom(name, data));
            out
        }
    }
}

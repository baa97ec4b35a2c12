//! The plugin manifest: what a plugin is called, which hooks it has and for
//! which version ranges, and which tables they may touch. It travels in the
//! component's `uplift:manifest` custom section (see `wit/MANIFEST.md`) and is
//! read by parsing the binary, never by instantiating or running it.

use std::fmt;

use serde::{Deserialize, Serialize};

use uplift_contract::names::{
    check_hook_name, check_owned_prefix, check_plugin_name, check_table_name,
};

use crate::version::{Version, VersionRange};

/// The name of the custom section that holds the manifest.
pub const SECTION_NAME: &str = "uplift:manifest";

/// The manifest format version this uplift reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// Why a manifest could not be read or is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic number)")]
    NotWasm,
    /// The binary could not be parsed.
    #[error("the WebAssembly binary is malformed: {0}")]
    Malformed(String),
    /// A core module where a component is expected.
    #[error(
        "a core WebAssembly module, not a component: build for wasm32-wasip2 (or wrap it with \
         `wasm-tools component new`)"
    )]
    CoreModule,
    /// No `uplift:manifest` section.
    #[error(
        "no `uplift:manifest` custom section: build the plugin with the uplift hooks SDK, or add one \
         with `uplift hooks embed-manifest`"
    )]
    Missing,
    /// The section is not UTF-8 JSON objects.
    #[error("the manifest is not valid JSON: {0}")]
    Json(String),
    /// A fragment has a format version this uplift does not know.
    #[error(
        "manifest format version {found} is not supported (this uplift reads version {FORMAT_VERSION}): \
         upgrade uplift or rebuild the plugin with a matching SDK"
    )]
    FormatVersion { found: String },
    /// A TOML manifest (for `embed-manifest`) could not be parsed.
    #[error("the manifest is not valid TOML: {0}")]
    Toml(String),
    /// A key that must appear once is missing or repeated.
    #[error("{0}")]
    Structure(String),
    /// A field's value is not valid.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A plugin's manifest, merged from all fragments and validated.
#[derive(Debug, Clone, Serialize)]
pub struct HookManifest {
    /// The plugin's name: 1–64 of `a-z 0-9 - _`, starting with a letter.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// What the plugin's hooks may touch.
    pub capabilities: Capabilities,
    /// The hooks, in declaration order.
    pub hooks: Vec<HookSpec>,
}

/// The tables a plugin's hooks may read, write or own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Tables the hooks may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Tables the hooks may read, insert into, update and delete from.
    #[serde(default)]
    pub write: Vec<String>,
    /// A table-name prefix: the hooks may create tables, indexes and views
    /// whose names start with it, and then alter, drop, read and write them.
    /// They own only what they created (recorded in `uplift_plugin_tables`):
    /// an existing table that merely matches the prefix is not theirs (see
    /// [`crate::hooks::authorizer::Ownership`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owns: Option<String>,
}

impl Capabilities {
    /// Whether `table` (case-insensitive, as SQL names are) starts with the
    /// owned prefix. Matching is necessary for ownership, not sufficient:
    /// the plugin must also have created the table
    /// ([`crate::hooks::authorizer::Ownership::owns`]).
    pub fn under_owned_prefix(&self, table: &str) -> bool {
        match &self.owns {
            Some(prefix) => {
                table.len() >= prefix.len()
                    && table.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            }
            None => false,
        }
    }

    /// Whether the manifest declares `table` for reading or writing (owned
    /// tables aside).
    pub fn declares_read(&self, table: &str) -> bool {
        self.read.iter().any(|t| t.eq_ignore_ascii_case(table)) || self.declares_write(table)
    }

    /// Whether the manifest declares `table` for writing (insert, update,
    /// delete; owned tables aside).
    pub fn declares_write(&self, table: &str) -> bool {
        self.write.iter().any(|t| t.eq_ignore_ascii_case(table))
    }
}

/// One hook of a plugin.
#[derive(Debug, Clone)]
pub struct HookSpec {
    /// The hook's name, unique in the plugin.
    pub name: String,
    /// The range the data version before the upgrade must match.
    pub old_version: VersionRange,
    /// The range the release version must match.
    pub new_version: VersionRange,
}

impl HookSpec {
    /// Whether this hook runs for an upgrade from `old` to `new`.
    pub fn matches(&self, old: &Version, new: &Version) -> bool {
        self.old_version.matches(old) && self.new_version.matches(new)
    }
}

impl Serialize for HookSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("HookSpec", 3)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("old_version", &self.old_version.to_string())?;
        s.serialize_field("new_version", &self.new_version.to_string())?;
        s.end()
    }
}

/// One JSON fragment of the section, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    uplift_manifest: serde_json::Value,
    name: Option<String>,
    version: Option<String>,
    capabilities: Option<Capabilities>,
    hooks: Option<Vec<HookDoc>>,
    hook: Option<HookDoc>,
}

/// A hook as written in JSON or TOML.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct HookDoc {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    old_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    order: Option<i64>,
}

/// The TOML form accepted by `uplift hooks embed-manifest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlManifest {
    name: String,
    version: String,
    #[serde(default)]
    capabilities: Option<Capabilities>,
    #[serde(default)]
    hooks: Vec<HookDoc>,
}

impl HookManifest {
    /// Parses the contents of an `uplift:manifest` section: one or more JSON
    /// objects one after the other, merged in order. Fails on invalid JSON,
    /// an unknown format version, a missing or repeated `name`/`version`, or
    /// any invalid field (names, ranges, capabilities).
    pub fn from_section(bytes: &[u8]) -> Result<HookManifest, ManifestError> {
        let mut name = None;
        let mut version = None;
        let mut capabilities = None;
        let mut hooks: Vec<HookDoc> = Vec::new();
        let mut fragments = 0;
        let stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Fragment>();
        for fragment in stream {
            let fragment = fragment.map_err(|e| ManifestError::Json(e.to_string()))?;
            fragments += 1;
            if fragment.uplift_manifest.as_u64() != Some(FORMAT_VERSION) {
                return Err(ManifestError::FormatVersion {
                    found: fragment.uplift_manifest.to_string(),
                });
            }
            set_once(&mut name, fragment.name, "name")?;
            set_once(&mut version, fragment.version, "version")?;
            set_once(&mut capabilities, fragment.capabilities, "capabilities")?;
            hooks.extend(fragment.hooks.unwrap_or_default());
            hooks.extend(fragment.hook);
        }
        if fragments == 0 {
            return Err(ManifestError::Json("the section is empty".into()));
        }
        let name =
            name.ok_or_else(|| ManifestError::Structure("no fragment gives `name`".into()))?;
        let version = version
            .ok_or_else(|| ManifestError::Structure("no fragment gives `version`".into()))?;
        // A stable sort: hooks without `order` keep their place among equals.
        hooks.sort_by_key(|h| h.order.unwrap_or(i64::MIN));
        build(name, version, capabilities.unwrap_or_default(), hooks)
    }

    /// Parses the TOML form of a manifest (`wit/MANIFEST.md`): the same keys
    /// as one JSON fragment, without `uplift_manifest`.
    pub fn from_toml(text: &str) -> Result<HookManifest, ManifestError> {
        let doc: TomlManifest =
            toml::from_str(text).map_err(|e| ManifestError::Toml(e.message().to_string()))?;
        build(
            doc.name,
            doc.version,
            doc.capabilities.unwrap_or_default(),
            doc.hooks,
        )
    }

    /// The manifest as one JSON fragment, as stored in the section.
    pub fn to_section(&self) -> Vec<u8> {
        let hooks: Vec<HookDoc> = self
            .hooks
            .iter()
            .map(|h| HookDoc {
                name: h.name.clone(),
                old_version: Some(h.old_version.to_string()),
                new_version: Some(h.new_version.to_string()),
                order: None,
            })
            .collect();
        let value = serde_json::json!({
            "uplift_manifest": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "capabilities": self.capabilities,
            "hooks": hooks,
        });
        value.to_string().into_bytes()
    }

    /// The hook called `name`.
    pub fn hook(&self, name: &str) -> Option<&HookSpec> {
        self.hooks.iter().find(|h| h.name == name)
    }

    /// Every table the manifest names for reading or writing (not the owned
    /// prefix), without repetitions, in the order they appear.
    pub fn declared_tables(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = Vec::new();
        for t in self
            .capabilities
            .read
            .iter()
            .chain(&self.capabilities.write)
        {
            if !tables.iter().any(|s| s.eq_ignore_ascii_case(t)) {
                tables.push(t);
            }
        }
        tables
    }
}

impl fmt::Display for HookManifest {
    /// A human-readable summary, as `uplift hooks inspect` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plugin {} {}", self.name, self.version)?;
        let caps = &self.capabilities;
        let list = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(", ")
            }
        };
        writeln!(f, "  reads:  {}", list(&caps.read))?;
        writeln!(f, "  writes: {}", list(&caps.write))?;
        match &caps.owns {
            Some(prefix) => writeln!(f, "  owns:   tables named {prefix}*")?,
            None => writeln!(f, "  owns:   (nothing)")?,
        }
        writeln!(f, "  hooks:")?;
        if self.hooks.is_empty() {
            writeln!(f, "    (none)")?;
        }
        for hook in &self.hooks {
            writeln!(
                f,
                "    {}  old_version {}  new_version {}",
                hook.name, hook.old_version, hook.new_version
            )?;
        }
        Ok(())
    }
}

fn set_once<T>(slot: &mut Option<T>, value: Option<T>, key: &str) -> Result<(), ManifestError> {
    if let Some(value) = value {
        if slot.is_some() {
            return Err(ManifestError::Structure(format!(
                "`{key}` is given by more than one fragment; it must appear exactly once"
            )));
        }
        *slot = Some(value);
    }
    Ok(())
}

fn build(
    name: String,
    version: String,
    capabilities: Capabilities,
    hooks: Vec<HookDoc>,
) -> Result<HookManifest, ManifestError> {
    check_plugin_name(&name).map_err(|e| invalid("name", e.to_string()))?;
    Version::parse(&version).map_err(|e| invalid("version", e.to_string()))?;
    for (key, tables) in [("read", &capabilities.read), ("write", &capabilities.write)] {
        for table in tables {
            check_table_name(table)
                .map_err(|e| invalid(format!("capabilities.{key}"), e.to_string()))?;
        }
    }
    if let Some(prefix) = &capabilities.owns {
        check_owned_prefix(prefix).map_err(|e| invalid("capabilities.owns", e.to_string()))?;
    }
    let mut specs: Vec<HookSpec> = Vec::with_capacity(hooks.len());
    for doc in hooks {
        check_hook_name(&doc.name).map_err(|e| invalid("hooks", e.to_string()))?;
        if specs.iter().any(|s| s.name == doc.name) {
            return Err(invalid(
                format!("hook {}", doc.name),
                "two hooks have this name; hook names must be unique in a plugin",
            ));
        }
        let range = |which: &str, text: Option<&str>| {
            let text = text.unwrap_or("*");
            VersionRange::parse(text).map_err(|e| {
                invalid(
                    format!("hook {} {which}", doc.name),
                    format!("invalid range {text:?}: {e}"),
                )
            })
        };
        specs.push(HookSpec {
            old_version: range("old_version", doc.old_version.as_deref())?,
            new_version: range("new_version", doc.new_version.as_deref())?,
            name: doc.name,
        });
    }
    Ok(HookManifest {
        name,
        version,
        capabilities,
        hooks: specs,
    })
}

/// The bytes of every `uplift:manifest` section of a component, concatenated
/// in order. Sections of the component itself win over sections of the core
/// modules nested inside it (so `embed-manifest` can replace what a compiler
/// put in); sections at the same level are concatenated in order.
///
/// Fails when the bytes are not a component, or no section is found.
pub fn read_section(wasm: &[u8]) -> Result<Vec<u8>, ManifestError> {
    if !wasm.starts_with(b"\0asm") {
        return Err(ManifestError::NotWasm);
    }
    if !wasmparser::Parser::is_component(wasm) {
        if wasmparser::Parser::is_core_wasm(wasm) {
            return Err(ManifestError::CoreModule);
        }
        return Err(ManifestError::Malformed(
            "unknown WebAssembly version or layer".into(),
        ));
    }
    let mut depth = 0usize;
    // (depth, bytes) of every section found, in order.
    let mut found: Vec<(usize, Vec<u8>)> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ManifestError::Malformed(e.to_string()))?;
        match payload {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::CustomSection(reader) if reader.name() == SECTION_NAME => {
                found.push((depth, reader.data().to_vec()));
            }
            _ => {}
        }
    }
    let Some(outermost) = found.iter().map(|(d, _)| *d).min() else {
        return Err(ManifestError::Missing);
    };
    let mut bytes = Vec::new();
    for (_, data) in found.iter().filter(|(d, _)| *d == outermost) {
        bytes.extend_from_slice(data);
        bytes.push(b'\n');
    }
    Ok(bytes)
}

/// Reads and validates the manifest of a component's bytes.
pub fn read_manifest(wasm: &[u8]) -> Result<HookManifest, ManifestError> {
    HookManifest::from_section(&read_section(wasm)?)
}

/// Returns a copy of the component `wasm` whose top-level `uplift:manifest`
/// sections are replaced by one holding `manifest`. Every other section is
/// copied byte for byte. Fails when `wasm` is not a component.
pub fn embed_manifest(wasm: &[u8], manifest: &HookManifest) -> Result<Vec<u8>, ManifestError> {
    if !wasm.starts_with(b"\0asm") {
        return Err(ManifestError::NotWasm);
    }
    if !wasmparser::Parser::is_component(wasm) {
        return Err(ManifestError::CoreModule);
    }
    let mut out = wasm_encoder::Component::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ManifestError::Malformed(e.to_string()))?;
        match &payload {
            wasmparser::Payload::Version { .. } => {
                depth += 1;
                continue;
            }
            wasmparser::Payload::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            wasmparser::Payload::CustomSection(reader)
                if depth == 1 && reader.name() == SECTION_NAME =>
            {
                continue;
            }
            _ => {}
        }
        if depth != 1 {
            continue; // inside a nested module or component: copied whole below
        }
        if let Some((id, range)) = payload.as_section() {
            out.section(&wasm_encoder::RawSection {
                id,
                data: &wasm[range],
            });
        }
    }
    let data = manifest.to_section();
    out.section(&wasm_encoder::CustomSection {
        name: SECTION_NAME.into(),
        data: data.into(),
    });
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"uplift_manifest": 1, "name": "big-leap", "version": "1.0.0",
 "capabilities": {"read": ["facility"], "write": ["facility"], "owns": "bigleap_"},
 "hooks": [{"name": "big_leap_upgrade", "old_version": "<0.6.4", "new_version": ">=1.0.0"}]}"#;

    #[test]
    fn the_documented_example_parses() {
        let m = HookManifest::from_section(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(m.name, "big-leap");
        assert_eq!(m.capabilities.owns.as_deref(), Some("bigleap_"));
        assert_eq!(m.hooks.len(), 1);
        assert!(m.hooks[0].matches(
            &Version::parse("0.6.3").unwrap(),
            &Version::parse("1.0.0").unwrap()
        ));
        assert!(!m.hooks[0].matches(
            &Version::parse("0.6.4").unwrap(),
            &Version::parse("1.0.0").unwrap()
        ));
    }

    #[test]
    fn fragments_merge_in_order_and_order_keys_sort_stably() {
        let text = r#"{"uplift_manifest":1,"name":"p","version":"1"}
            {"uplift_manifest":1,"hook":{"name":"b","order":20}}
            {"uplift_manifest":1,"hook":{"name":"a","order":10}}
            {"uplift_manifest":1,"capabilities":{"owns":"p_"}}"#;
        let m = HookManifest::from_section(text.as_bytes()).unwrap();
        let names: Vec<_> = m.hooks.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(m.capabilities.under_owned_prefix("P_things"));
    }

    #[test]
    fn repeated_name_and_unknown_format_version_are_refused() {
        let twice =
            r#"{"uplift_manifest":1,"name":"p","version":"1"}{"uplift_manifest":1,"name":"q"}"#;
        assert!(matches!(
            HookManifest::from_section(twice.as_bytes()),
            Err(ManifestError::Structure(_))
        ));
        let v2 = r#"{"uplift_manifest":2,"name":"p","version":"1"}"#;
        assert!(matches!(
            HookManifest::from_section(v2.as_bytes()),
            Err(ManifestError::FormatVersion { .. })
        ));
    }

    #[test]
    fn reserved_and_malformed_table_names_are_refused() {
        for bad in ["uplift_meta", "sqlite_schema", "1abc", "a-b", "", "up"] {
            let text = format!(
                r#"{{"uplift_manifest":1,"name":"p","version":"1","capabilities":{{"owns":"{bad}"}}}}"#
            );
            assert!(
                HookManifest::from_section(text.as_bytes()).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn toml_and_json_forms_round_trip() {
        let toml = r#"
name = "big-leap"
version = "1.0.0"
[capabilities]
read = ["facility"]
owns = "bigleap_"
[[hooks]]
name = "h"
old_version = "<0.6.4"
"#;
        let m = HookManifest::from_toml(toml).unwrap();
        let again = HookManifest::from_section(&m.to_section()).unwrap();
        assert_eq!(again.name, "big-leap");
        assert_eq!(again.capabilities, m.capabilities);
        assert_eq!(again.hooks[0].old_version.to_string(), "<0.6.4");
        assert_eq!(again.hooks[0].new_version.to_string(), "*");
    }
}

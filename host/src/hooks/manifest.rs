//! The plugin manifest: what a plugin is called, which hooks it has and for
//! which version ranges, and which tables they may touch. It travels in the
//! component's `uplift:manifest` custom section (see `wit/MANIFEST.md`) and is
//! read by parsing the binary, never by instantiating or running it.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use uplift_contract::names::{
    check_hook_name, check_owned_prefix, check_plugin_name, check_table_name,
};

use crate::hooks::HookError;
use crate::version::{Version, VersionRange};

/// The name of the custom section that holds the manifest.
pub const SECTION_NAME: &str = "uplift:manifest";

/// The manifest format version this uplift reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// Why a manifest could not be read or is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
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
    FormatVersion {
        /// The format version the fragment gives, as written.
        found: String,
    },
    /// A TOML manifest (for `embed-manifest`) could not be parsed.
    #[error("the manifest is not valid TOML: {0}")]
    Toml(String),
    /// A key that must appear once is missing or repeated.
    #[error("{0}")]
    Structure(String),
    /// A field's value is not valid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, such as `name` or `capabilities.owns`.
        field: String,
        /// What is wrong with its value.
        message: String,
    },
}

impl ManifestError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them): `manifest` for all of them.
    pub fn code(&self) -> &'static str {
        "manifest"
    }
}

/// A [`ManifestError::Invalid`] for `field`.
pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ManifestError {
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
    /// [`crate::engine::sqlite::authorizer::Ownership`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owns: Option<String>,
}

impl Capabilities {
    /// Whether `table` (case-insensitive, as SQL names are) starts with the
    /// owned prefix. Matching is necessary for ownership, not sufficient:
    /// the plugin must also have created the table
    /// ([`crate::engine::sqlite::authorizer::Ownership::owns`]).
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
///
/// A hook is selected by the application's versions (`old_version`, the
/// data version before the upgrade; `new_version`, the release's) and, when
/// it says so, by its plugin's own versions (`plugin_old_version`, the
/// plugin version the data was last upgraded with; `plugin_new_version`, the
/// installed plugin's). A hook that names neither plugin range is an
/// *application hook*: it runs only when the application's version moves,
/// exactly as before plugins had versions of their own. A hook that names
/// one is a *plugin hook*: it also runs when only its plugin changed (see
/// [`crate::hooks::PluginSet::plan`]).
#[derive(Debug, Clone)]
pub struct HookSpec {
    /// The hook's name, unique in the plugin.
    pub name: String,
    /// The range the data version before the upgrade must match.
    pub old_version: VersionRange,
    /// The range the release version must match.
    pub new_version: VersionRange,
    /// The range the plugin's recorded version must match; `None`: any,
    /// and also no recorded version at all (the plugin's first activation).
    /// A range never matches a first activation.
    pub plugin_old_version: Option<VersionRange>,
    /// The range the installed plugin's version must match; `None`: any.
    pub plugin_new_version: Option<VersionRange>,
}

/// How a plugin's version moves in an upgrade: from the version the data
/// was last upgraded with (`None`: never, the plugin's first activation) to
/// the installed plugin's. Equal versions are a plugin that did not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStep<'a> {
    /// The plugin version recorded in the data, if any.
    pub from: Option<&'a Version>,
    /// The installed plugin's version.
    pub to: &'a Version,
}

impl HookSpec {
    /// Whether this hook names a plugin range, and so is a plugin hook.
    pub fn is_plugin_hook(&self) -> bool {
        self.plugin_old_version.is_some() || self.plugin_new_version.is_some()
    }

    /// Whether this hook runs for an upgrade of the data from `old` to `new`
    /// while its plugin moves by `plugin`: every range it names matches, and
    /// a first activation (no recorded plugin version) matches only when
    /// `plugin_old_version` is not given.
    pub fn matches(&self, old: &Version, new: &Version, plugin: &PluginStep<'_>) -> bool {
        let plugin_old = match (&self.plugin_old_version, plugin.from) {
            (None, _) => true,
            (Some(range), Some(from)) => range.matches(from),
            (Some(_), None) => false,
        };
        let plugin_new = self
            .plugin_new_version
            .as_ref()
            .is_none_or(|range| range.matches(plugin.to));
        self.old_version.matches(old) && self.new_version.matches(new) && plugin_old && plugin_new
    }
}

impl Serialize for HookSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("HookSpec", 5)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("old_version", &self.old_version.to_string())?;
        s.serialize_field("new_version", &self.new_version.to_string())?;
        let text = |range: &Option<VersionRange>| range.as_ref().map(ToString::to_string);
        if self.plugin_old_version.is_some() {
            s.serialize_field("plugin_old_version", &text(&self.plugin_old_version))?;
        } else {
            s.skip_field("plugin_old_version")?;
        }
        if self.plugin_new_version.is_some() {
            s.serialize_field("plugin_new_version", &text(&self.plugin_new_version))?;
        } else {
            s.skip_field("plugin_new_version")?;
        }
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
    plugin_old_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugin_new_version: Option<String>,
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
                plugin_old_version: h.plugin_old_version.as_ref().map(ToString::to_string),
                plugin_new_version: h.plugin_new_version.as_ref().map(ToString::to_string),
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
            write!(
                f,
                "    {}  old_version {}  new_version {}",
                hook.name, hook.old_version, hook.new_version
            )?;
            if let Some(range) = &hook.plugin_old_version {
                write!(f, "  plugin_old_version {range}")?;
            }
            if let Some(range) = &hook.plugin_new_version {
                write!(f, "  plugin_new_version {range}")?;
            }
            writeln!(f)?;
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
        let range = |which: &str, text: &str| {
            VersionRange::parse(text).map_err(|e| {
                invalid(
                    format!("hook {} {which}", doc.name),
                    format!("invalid range {text:?}: {e}"),
                )
            })
        };
        let optional = |which: &str, text: Option<&str>| text.map(|t| range(which, t)).transpose();
        specs.push(HookSpec {
            old_version: range("old_version", doc.old_version.as_deref().unwrap_or("*"))?,
            new_version: range("new_version", doc.new_version.as_deref().unwrap_or("*"))?,
            plugin_old_version: optional("plugin_old_version", doc.plugin_old_version.as_deref())?,
            plugin_new_version: optional("plugin_new_version", doc.plugin_new_version.as_deref())?,
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
/// Only the framing of the sections is read (see [`read_manifest_file`]);
/// the rest of the binary is validated when the component is compiled.
///
/// Fails when the bytes are not a component, their sections are malformed,
/// or no section is found.
pub fn read_section(wasm: &[u8]) -> Result<Vec<u8>, ManifestError> {
    let len = wasm.len() as u64;
    collect_sections(std::io::Cursor::new(wasm), len).map_err(|err| match err {
        WalkError::Manifest(err) => err,
        // A cursor over memory never fails to read; ending early is
        // reported as `Malformed` by the walk itself.
        WalkError::Io(err) => ManifestError::Malformed(err.to_string()),
    })
}

/// Reads and validates the manifest of a component's bytes.
pub fn read_manifest(wasm: &[u8]) -> Result<HookManifest, ManifestError> {
    HookManifest::from_section(&read_section(wasm)?)
}

/// Reads and validates the manifest of the component file at `path`, with
/// the rules of [`read_section`], without reading the whole file: only the
/// header of each section is read, every section other than an
/// `uplift:manifest` custom section or a nested module or component is
/// skipped with a seek, and nested modules and components are walked the
/// same way. A 20 MB component costs a few dozen small reads.
///
/// Fails with [`HookError::Io`] when the file cannot be opened or read, and
/// [`HookError::Manifest`] when it is not a component, its sections are
/// malformed or truncated, or the manifest is missing or invalid.
pub fn read_manifest_file(path: &Path) -> Result<HookManifest, HookError> {
    let io = |source| HookError::Io {
        path: path.to_path_buf(),
        source,
    };
    let manifest = |source| HookError::Manifest {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let section =
        collect_sections(std::io::BufReader::new(file), len).map_err(|err| match err {
            WalkError::Manifest(err) => manifest(err),
            WalkError::Io(err) => io(err),
        })?;
    HookManifest::from_section(&section).map_err(manifest)
}

/// Why a walk over a component's sections stopped.
enum WalkError {
    /// Not a component, malformed, or no manifest section.
    Manifest(ManifestError),
    /// Reading failed (not because the input ended: that is `Malformed`).
    Io(std::io::Error),
}

fn malformed(message: impl fmt::Display, offset: u64) -> WalkError {
    WalkError::Manifest(ManifestError::Malformed(format!(
        "{message} (at offset {offset:#x})"
    )))
}

/// Whether a module or component's sections are those of a component (whose
/// sections 1 and 4 nest a core module and a component) or a core module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Component,
    Module,
}

/// The id of a custom section.
const CUSTOM_SECTION: u8 = 0;
/// In a component, the id of a section holding a nested core module.
const COMPONENT_MODULE_SECTION: u8 = 1;
/// In a component, the id of a section holding a nested component.
const COMPONENT_COMPONENT_SECTION: u8 = 4;
/// The length of a module's or component's header: magic number, version,
/// layer.
const HEADER_LEN: u64 = 8;

/// A position in `len` bytes of WebAssembly that only moves forward, by
/// reading a few bytes or seeking past many. Every read is bounded by an end
/// the caller has checked against `len`, so a truncated or hostile input
/// gives an error, never a read past its end or an allocation larger than it.
struct Walk<R> {
    source: R,
    pos: u64,
}

impl<R: std::io::Read + std::io::Seek> Walk<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), WalkError> {
        self.source.read_exact(buf).map_err(|err| {
            if err.kind() == std::io::ErrorKind::UnexpectedEof {
                malformed("the file ended early (was it truncated?)", self.pos)
            } else {
                WalkError::Io(err)
            }
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn byte(&mut self, end: u64) -> Result<u8, WalkError> {
        if self.pos >= end {
            return Err(malformed("unexpected end of a section", self.pos));
        }
        let mut byte = [0u8];
        self.fill(&mut byte)?;
        Ok(byte[0])
    }

    /// An unsigned LEB128 `u32`, at most 5 bytes, as the binary format
    /// defines it.
    fn var_u32(&mut self, end: u64) -> Result<u32, WalkError> {
        let start = self.pos;
        let mut value = 0u32;
        for i in 0..5 {
            let byte = self.byte(end)?;
            if i == 4 && byte & 0x70 != 0 && byte & 0x80 == 0 {
                return Err(malformed("invalid var_u32: integer too large", start));
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(
            "invalid var_u32: integer representation too long",
            start,
        ))
    }

    /// Moves forward to `target` (at most the end the caller checked).
    fn skip_to(&mut self, target: u64) -> Result<(), WalkError> {
        let delta = i64::try_from(target - self.pos)
            .map_err(|_| malformed("section too large", self.pos))?;
        self.source.seek_relative(delta).map_err(WalkError::Io)?;
        self.pos = target;
        Ok(())
    }

    /// The `end - pos` bytes up to `end`; the buffer grows with what is
    /// actually read.
    fn bytes_to(&mut self, end: u64) -> Result<Vec<u8>, WalkError> {
        let wanted = end - self.pos;
        let mut data = Vec::new();
        std::io::Read::take(&mut self.source, wanted)
            .read_to_end(&mut data)
            .map_err(WalkError::Io)?;
        self.pos += data.len() as u64;
        if (data.len() as u64) < wanted {
            return Err(malformed(
                "the file ended early (was it truncated?)",
                self.pos,
            ));
        }
        Ok(data)
    }
}

/// Walks the component in `source` (`len` bytes) and collects its
/// `uplift:manifest` sections with the rules of [`read_section`].
fn collect_sections<R: std::io::Read + std::io::Seek>(
    source: R,
    len: u64,
) -> Result<Vec<u8>, WalkError> {
    let mut walk = Walk { source, pos: 0 };
    let mut header = [0u8; HEADER_LEN as usize];
    let header = &mut header[..len.min(HEADER_LEN) as usize];
    walk.fill(header)?;
    if !header.starts_with(b"\0asm") {
        return Err(WalkError::Manifest(ManifestError::NotWasm));
    }
    if !wasmparser::Parser::is_component(header) {
        return Err(WalkError::Manifest(
            if wasmparser::Parser::is_core_wasm(header) {
                ManifestError::CoreModule
            } else {
                ManifestError::Malformed("unknown WebAssembly version or layer".into())
            },
        ));
    }
    // The end and layer of the component and of each module or component
    // nested in it that the walk is inside; its length is the depth.
    let mut open: Vec<(u64, Layer)> = vec![(len, Layer::Component)];
    // (depth, bytes) of every section found, in order.
    let mut found: Vec<(usize, Vec<u8>)> = Vec::new();
    while let Some(&(end, layer)) = open.last() {
        if walk.pos == end {
            open.pop();
            continue;
        }
        let id_at = walk.pos;
        let id = walk.byte(end)?;
        if id & 0x80 != 0 {
            return Err(malformed("malformed section id", id_at));
        }
        let size = walk.var_u32(end)?;
        let section_end = walk.pos + u64::from(size);
        if section_end > end {
            return Err(malformed(
                format!("section {id} of {size} bytes runs past the end of its module or file"),
                id_at,
            ));
        }
        match (layer, id) {
            (_, CUSTOM_SECTION) => {
                let name_len = walk.var_u32(section_end)?;
                let name_end = walk.pos + u64::from(name_len);
                if name_end > section_end {
                    return Err(malformed(
                        "a custom section's name runs past the end of the section",
                        id_at,
                    ));
                }
                if name_len as usize == SECTION_NAME.len() {
                    let mut name = [0u8; SECTION_NAME.len()];
                    walk.fill(&mut name)?;
                    if name == SECTION_NAME.as_bytes() {
                        found.push((open.len(), walk.bytes_to(section_end)?));
                        continue;
                    }
                }
                walk.skip_to(section_end)?;
            }
            (Layer::Component, COMPONENT_MODULE_SECTION | COMPONENT_COMPONENT_SECTION) => {
                if u64::from(size) < HEADER_LEN {
                    return Err(malformed(
                        "a nested module or component is shorter than its header",
                        id_at,
                    ));
                }
                let mut header = [0u8; HEADER_LEN as usize];
                walk.fill(&mut header)?;
                let nested = if wasmparser::Parser::is_component(&header) {
                    Layer::Component
                } else if wasmparser::Parser::is_core_wasm(&header) {
                    Layer::Module
                } else {
                    return Err(malformed(
                        "a nested module or component has an unknown header",
                        id_at,
                    ));
                };
                open.push((section_end, nested));
            }
            _ => walk.skip_to(section_end)?,
        }
    }
    let Some(outermost) = found.iter().map(|(d, _)| *d).min() else {
        return Err(WalkError::Manifest(ManifestError::Missing));
    };
    let mut bytes = Vec::new();
    for (_, data) in found.iter().filter(|(d, _)| *d == outermost) {
        bytes.extend_from_slice(data);
        bytes.push(b'\n');
    }
    Ok(bytes)
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
        let same = v("1.0.0");
        let unchanged = PluginStep {
            from: Some(&same),
            to: &same,
        };
        assert!(m.hooks[0].matches(&v("0.6.3"), &v("1.0.0"), &unchanged));
        assert!(!m.hooks[0].matches(&v("0.6.4"), &v("1.0.0"), &unchanged));
        assert!(!m.hooks[0].is_plugin_hook());
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    /// `hook` with the plugin ranges `plugin_ranges` (JSON keys), parsed.
    fn hook_with(plugin_ranges: &str) -> Result<HookSpec, ManifestError> {
        let text = format!(
            r#"{{"uplift_manifest":1,"name":"notes","version":"2.0.0",
               "hooks":[{{"name":"h"{plugin_ranges}}}]}}"#
        );
        HookManifest::from_section(text.as_bytes()).map(|m| m.hooks[0].clone())
    }

    #[test]
    fn a_first_activation_matches_only_hooks_without_plugin_old_version() {
        let (one, two) = (v("1.0.0"), v("2.0.0"));
        let first = PluginStep {
            from: None,
            to: &two,
        };
        let upgrade = PluginStep {
            from: Some(&one),
            to: &two,
        };
        let unchanged = PluginStep {
            from: Some(&two),
            to: &two,
        };
        let app = v("1.0.0");
        let cases = [
            (r#","plugin_new_version":">=2.0.0""#, [true, true, true]),
            (
                r#","plugin_old_version":"<2.0.0","plugin_new_version":">=2.0.0""#,
                [false, true, false],
            ),
            (r#","plugin_old_version":"*""#, [false, true, true]),
            (r#","plugin_new_version":"<2.0.0""#, [false, false, false]),
            ("", [true, true, true]),
        ];
        for (ranges, [on_first, on_upgrade, on_unchanged]) in cases {
            let hook = hook_with(ranges).unwrap();
            assert_eq!(hook.is_plugin_hook(), !ranges.is_empty(), "{ranges}");
            assert_eq!(hook.matches(&app, &app, &first), on_first, "{ranges}");
            assert_eq!(hook.matches(&app, &app, &upgrade), on_upgrade, "{ranges}");
            assert_eq!(
                hook.matches(&app, &app, &unchanged),
                on_unchanged,
                "{ranges}"
            );
        }
    }

    #[test]
    fn plugin_ranges_round_trip_and_a_bad_one_names_the_hook_and_the_key() {
        let hook =
            hook_with(r#","plugin_old_version":"<2.0","plugin_new_version":">=2.0""#).unwrap();
        let manifest = HookManifest {
            name: "notes".into(),
            version: "2.0.0".into(),
            capabilities: Capabilities::default(),
            hooks: vec![hook],
        };
        let again = HookManifest::from_section(&manifest.to_section()).unwrap();
        let ranges = |h: &HookSpec| {
            (
                h.plugin_old_version.as_ref().map(ToString::to_string),
                h.plugin_new_version.as_ref().map(ToString::to_string),
            )
        };
        assert_eq!(
            ranges(&again.hooks[0]),
            (Some("<2.0".into()), Some(">=2.0".into()))
        );
        assert!(manifest.to_string().contains("plugin_old_version <2.0"));

        let err = hook_with(r#","plugin_new_version":">=two""#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("hook h plugin_new_version: invalid range \">=two\""),
            "{err}"
        );
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

    // ------------------------------------------------ reading the section

    use proptest::prelude::*;

    const COMPONENT_HEADER: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

    fn custom(name: &str, data: &[u8]) -> wasm_encoder::CustomSection<'static> {
        wasm_encoder::CustomSection {
            name: name.to_string().into(),
            data: data.to_vec().into(),
        }
    }

    /// A core module holding one `uplift:manifest` section with `data`.
    fn module_with(data: &str) -> wasm_encoder::Module {
        let mut module = wasm_encoder::Module::new();
        module.section(&custom(SECTION_NAME, data.as_bytes()));
        module
    }

    /// A length a component is cut at, and what reading the cut gives.
    type Cut = (usize, Result<&'static str, ManifestError>);

    /// A component with, in order: a core module holding section `N`, an
    /// unrelated custom section, a top-level section `T1`, a nested
    /// component holding section `C`, a top-level section `T2`. Also the
    /// length after the header and after each section, with what
    /// `read_section` must give for the component cut there.
    fn sample() -> (Vec<u8>, Vec<Cut>) {
        let mut c = wasm_encoder::Component::new();
        let mut cuts = vec![(c.as_slice().len(), Err(ManifestError::Missing))];
        c.section(&wasm_encoder::ModuleSection(&module_with("N")));
        cuts.push((c.as_slice().len(), Ok("N\n")));
        c.section(&custom("producers", b"not ours"));
        cuts.push((c.as_slice().len(), Ok("N\n")));
        c.section(&custom(SECTION_NAME, b"T1"));
        cuts.push((c.as_slice().len(), Ok("T1\n")));
        let mut nested = wasm_encoder::Component::new();
        nested.section(&custom(SECTION_NAME, b"C"));
        c.section(&wasm_encoder::NestedComponentSection(&nested));
        cuts.push((c.as_slice().len(), Ok("T1\n")));
        c.section(&custom(SECTION_NAME, b"T2"));
        cuts.push((c.as_slice().len(), Ok("T1\nT2\n")));
        (c.finish(), cuts)
    }

    fn read_text(wasm: &[u8]) -> Result<String, ManifestError> {
        read_section(wasm).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn top_level_sections_win_and_sections_of_one_level_are_concatenated() {
        let (bytes, _) = sample();
        assert_eq!(read_text(&bytes).unwrap(), "T1\nT2\n");

        let mut c = wasm_encoder::Component::new();
        c.section(&wasm_encoder::ModuleSection(&module_with("A")));
        c.section(&wasm_encoder::ModuleSection(&module_with("B")));
        assert_eq!(read_text(&c.finish()).unwrap(), "A\nB\n");
    }

    #[test]
    fn every_truncation_is_refused_unless_it_ends_between_sections() {
        let (bytes, cuts) = sample();
        assert_eq!(cuts.last().map(|(n, _)| *n), Some(bytes.len()));
        for n in 0..=bytes.len() {
            let got = read_text(&bytes[..n]);
            match cuts.iter().find(|(at, _)| *at == n) {
                Some((_, expected)) => {
                    assert_eq!(got, expected.clone().map(String::from), "cut at {n}")
                }
                None if n < 4 => assert_eq!(got, Err(ManifestError::NotWasm), "cut at {n}"),
                None => assert!(
                    matches!(got, Err(ManifestError::Malformed(_))),
                    "cut at {n}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn hostile_sizes_and_encodings_are_malformed_not_panics_or_huge_buffers() {
        let with = |tail: &[u8]| [&COMPONENT_HEADER[..], tail].concat();
        let name = SECTION_NAME.as_bytes();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "a 4 GiB custom section",
                with(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            ),
            ("a 4 GiB manifest section", {
                let mut b = with(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f, name.len() as u8]);
                b.extend_from_slice(name);
                b
            }),
            (
                "a size of six bytes",
                with(&[0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            ),
            (
                "a size over 32 bits",
                with(&[0, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            ),
            ("a section id over 127", with(&[0x80, 0])),
            ("a section header cut short", with(&[0, 0x80])),
            (
                "a custom section's name longer than it",
                with(&[0, 2, 5, b'a']),
            ),
            (
                "a nested module shorter than a header",
                with(&[1, 4, 0, b'a', b's', b'm']),
            ),
            (
                "a nested module with a bad header",
                with(&[1, 8, 1, 2, 3, 4, 5, 6, 7, 8]),
            ),
            ("a nested module longer than the file", {
                let mut b = with(&[1, 40]);
                b.extend_from_slice(&wasm_encoder::Module::new().finish());
                b
            }),
            ("an unknown version", b"\0asm\x02\0\0\0".to_vec()),
            ("a header cut short", b"\0asm\x0d\0".to_vec()),
        ];
        for (what, bytes) in cases {
            let got = read_section(&bytes);
            assert!(
                matches!(got, Err(ManifestError::Malformed(_))),
                "{what}: {got:?}"
            );
        }
        assert_eq!(read_section(b""), Err(ManifestError::NotWasm));
        assert_eq!(read_section(b"#!/bin/sh"), Err(ManifestError::NotWasm));
        let core = wasm_encoder::Module::new().finish();
        assert_eq!(read_section(&core), Err(ManifestError::CoreModule));
        assert_eq!(read_section(&COMPONENT_HEADER), Err(ManifestError::Missing));
    }

    #[test]
    fn deeply_nested_components_are_walked_without_recursion() {
        // 100,000 components, each the only section of the one around it,
        // the innermost holding the manifest: written outside in, each
        // level's size computed from the inside out.
        let depth = 100_000;
        let leb = |mut n: u64| {
            let mut out = Vec::new();
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(byte);
                    return out;
                }
                out.push(byte | 0x80);
            }
        };
        let mut innermost = COMPONENT_HEADER.to_vec();
        innermost.push(CUSTOM_SECTION); // `encode` writes size, name and data
        wasm_encoder::Encode::encode(&custom(SECTION_NAME, b"deep"), &mut innermost);
        // sizes[k]: the length of the component k levels above the innermost.
        let mut sizes = vec![innermost.len() as u64];
        for k in 1..depth {
            let inner = sizes[k - 1];
            sizes.push(HEADER_LEN + 1 + leb(inner).len() as u64 + inner);
        }
        let mut bytes = Vec::new();
        for k in (1..depth).rev() {
            bytes.extend_from_slice(&COMPONENT_HEADER);
            bytes.push(COMPONENT_COMPONENT_SECTION);
            bytes.extend_from_slice(&leb(sizes[k - 1]));
        }
        bytes.extend_from_slice(&innermost);
        assert_eq!(bytes.len() as u64, sizes[depth - 1]);
        assert_eq!(read_text(&bytes).unwrap(), "deep\n");
    }

    proptest! {
        #[test]
        fn random_sections_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let got = read_section(&[&COMPONENT_HEADER[..], &tail].concat());
            prop_assert!(
                matches!(got, Ok(_) | Err(ManifestError::Malformed(_) | ManifestError::Missing)),
                "{got:?}"
            );
        }

        #[test]
        fn a_changed_byte_never_panics(index in any::<usize>(), value in any::<u8>()) {
            let (mut bytes, _) = sample();
            // Any byte after the header (a changed header is not a component).
            let len = bytes.len();
            bytes[8 + index % (len - 8)] = value;
            let got = read_section(&bytes);
            prop_assert!(
                matches!(got, Ok(_) | Err(ManifestError::Malformed(_) | ManifestError::Missing)),
                "{got:?}"
            );
        }
    }

    /// A reader that counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: std::io::Read> std::io::Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    impl<R: std::io::Seek> std::io::Seek for Counting<R> {
        fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn a_big_component_file_is_read_by_its_section_headers_only() {
        // 48 MiB: a core module with 32 MiB of names, then 16 MiB of
        // another custom section, then the manifest.
        let mut module = module_with("nested");
        module.section(&custom("name", &vec![7u8; 32 << 20]));
        let mut c = wasm_encoder::Component::new();
        c.section(&wasm_encoder::ModuleSection(&module));
        c.section(&custom("filler", &vec![9u8; 16 << 20]));
        c.section(&custom(
            SECTION_NAME,
            br#"{"uplift_manifest":1,"name":"big","version":"1.0.0"}"#,
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.wasm");
        std::fs::write(&path, c.finish()).unwrap();

        assert_eq!(read_manifest_file(&path).unwrap().name, "big");

        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let file = std::fs::File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let counting = Counting {
            inner: file,
            read: read.clone(),
        };
        assert!(collect_sections(std::io::BufReader::new(counting), len).is_ok());
        assert!(read.get() < 64 << 10, "{} bytes read of {len}", read.get());
    }

    #[test]
    fn a_missing_or_truncated_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.wasm");
        let err = read_manifest_file(&missing).unwrap_err();
        assert!(matches!(err, HookError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.wasm"), "{err}");

        let (bytes, _) = sample();
        let cut = dir.path().join("cut.wasm");
        std::fs::write(&cut, &bytes[..bytes.len() - 1]).unwrap();
        let err = read_manifest_file(&cut).unwrap_err();
        assert!(
            matches!(
                &err,
                HookError::Manifest {
                    source: ManifestError::Malformed(_),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("cut.wasm"), "{err}");
    }
}

//! The name rules of `wit/MANIFEST.md`, checked at compile time.

/// A plugin name: 1–64 of `a-z 0-9 - _`, starting with a letter.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid plugin name {name:?}: use 1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter"
        ))
    }
}

/// A hook name: 1–64 of `a-z A-Z 0-9 _ -`.
pub fn check_hook_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid hook name {name:?}: a hook's name is its function's name, which must be 1 to 64 ASCII letters, digits and `_`"
        ))
    }
}

fn is_identifier(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_") || lower.starts_with("uplift_")
}

/// A declared table: an SQL identifier, not one of SQLite's or uplift's own.
pub fn check_table_name(name: &str) -> Result<(), String> {
    if !is_identifier(name) {
        return Err(format!(
            "invalid table name {name:?}: a table name is a letter or `_`, then letters, digits and `_` (at most 128)"
        ));
    }
    if reserved(name) {
        return Err(format!(
            "table {name:?} cannot be declared: names starting with `sqlite_` or `uplift_` belong to SQLite and uplift"
        ));
    }
    Ok(())
}

/// An owned prefix: the start of an SQL identifier, not one of SQLite's or
/// uplift's own.
pub fn check_owned_prefix(prefix: &str) -> Result<(), String> {
    if !is_identifier(prefix) {
        return Err(format!(
            "invalid owned prefix {prefix:?}: it must start a table name (a letter or `_`, then letters, digits and `_`), e.g. \"myplugin_\""
        ));
    }
    if reserved(prefix) {
        return Err(format!(
            "prefix {prefix:?} cannot be owned: names starting with `sqlite_` or `uplift_` belong to SQLite and uplift"
        ));
    }
    Ok(())
}

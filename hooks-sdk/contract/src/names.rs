//! The name rules of a plugin manifest (`wit/MANIFEST.md`): what a plugin, a
//! hook, a declared table and an owned table prefix may be called. The host
//! checks them when it reads a manifest, the SDK's macros at compile time;
//! both call these functions, so they cannot disagree.
//!
//! ```
//! use uplift_contract::names::{self, NameError};
//!
//! assert!(names::check_plugin_name("big-leap").is_ok());
//! assert!(names::check_owned_prefix("bigleap_").is_ok());
//! let err = names::check_table_name("uplift_meta").unwrap_err();
//! assert_eq!(err, NameError::ReservedTable("uplift_meta".into()));
//! ```

/// The prefix of every table uplift owns in an application database. No
/// plugin may declare or own such a table.
pub const UPLIFT_TABLE_PREFIX: &str = "uplift_";

/// The prefix of SQLite's own tables (`sqlite_schema`, `sqlite_sequence`...).
pub const SQLITE_TABLE_PREFIX: &str = "sqlite_";

/// The longest plugin or hook name, in bytes (all allowed characters are
/// ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// The longest table name or owned prefix, in bytes.
pub const MAX_TABLE_NAME_LEN: usize = 128;

/// A name that breaks the manifest's rules. Each message quotes the name and
/// says what is allowed instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a plugin name.
    #[error(
        "invalid plugin name {0:?}: use 1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter"
    )]
    Plugin(String),
    /// Not a hook name.
    #[error("invalid hook name {0:?}: use 1 to 64 ASCII letters, digits, `_` and `-`")]
    Hook(String),
    /// Not an SQL identifier, so not a table name a manifest may declare.
    #[error(
        "invalid table name {0:?}: a table name is a letter or `_`, then letters, digits and `_` (at most 128)"
    )]
    Table(String),
    /// A table of SQLite's or uplift's own.
    #[error(
        "table {0:?} cannot be declared: names starting with `sqlite_` or `uplift_` belong to SQLite and uplift"
    )]
    ReservedTable(String),
    /// Not the start of an SQL identifier.
    #[error(
        "invalid owned prefix {0:?}: it must start a table name (a letter or `_`, then letters, digits and `_`, at most 128), e.g. \"myplugin_\""
    )]
    Prefix(String),
    /// A prefix of SQLite's or uplift's own tables.
    #[error(
        "prefix {0:?} cannot be owned: names starting with `sqlite_` or `uplift_` belong to SQLite and uplift"
    )]
    ReservedPrefix(String),
    /// A prefix so short that the tables it covers include SQLite's or
    /// uplift's (`sql`, `upl`, `u`).
    #[error(
        "prefix {0:?} cannot be owned: it is too short, the tables it covers would include `sqlite_` or `uplift_` ones; use a longer prefix such as \"myplugin_\""
    )]
    PrefixTooShort(String),
}

/// Checks a plugin name: 1 to 64 of `a-z 0-9 - _`, starting with a letter.
/// Fails with [`NameError::Plugin`].
pub fn check_plugin_name(name: &str) -> Result<(), NameError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(NameError::Plugin(name.to_string()))
    }
}

/// Checks a hook name: 1 to 64 of `a-z A-Z 0-9 _ -`. Fails with
/// [`NameError::Hook`].
pub fn check_hook_name(name: &str) -> Result<(), NameError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NameError::Hook(name.to_string()))
    }
}

/// Checks a table name declared for reading or writing: an SQL identifier
/// (a letter or `_`, then letters, digits and `_`, at most 128 characters)
/// that does not start with `sqlite_` or `uplift_` in any case. Fails with
/// [`NameError::Table`] or [`NameError::ReservedTable`].
pub fn check_table_name(name: &str) -> Result<(), NameError> {
    if !is_identifier(name) {
        return Err(NameError::Table(name.to_string()));
    }
    if is_reserved(name) {
        return Err(NameError::ReservedTable(name.to_string()));
    }
    Ok(())
}

/// Checks an owned table prefix: it must start a table name (the same
/// characters as [`check_table_name`]), and no table it covers may be one
/// of SQLite's or uplift's, so it may neither start with `sqlite_` or
/// `uplift_` nor be the start of one (`sql`, `upl`). Fails with
/// [`NameError::Prefix`], [`NameError::ReservedPrefix`] or
/// [`NameError::PrefixTooShort`].
pub fn check_owned_prefix(prefix: &str) -> Result<(), NameError> {
    if !is_identifier(prefix) {
        return Err(NameError::Prefix(prefix.to_string()));
    }
    if is_reserved(prefix) {
        return Err(NameError::ReservedPrefix(prefix.to_string()));
    }
    let lower = prefix.to_ascii_lowercase();
    if SQLITE_TABLE_PREFIX.starts_with(&lower) || UPLIFT_TABLE_PREFIX.starts_with(&lower) {
        return Err(NameError::PrefixTooShort(prefix.to_string()));
    }
    Ok(())
}

/// Whether `name` starts with `sqlite_` or `uplift_`, in any case (SQL names
/// are case-insensitive).
pub fn is_reserved(name: &str) -> bool {
    [SQLITE_TABLE_PREFIX, UPLIFT_TABLE_PREFIX].iter().any(|p| {
        name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    })
}

/// An SQL identifier: a letter or `_`, then letters, digits and `_`, 1 to
/// 128 characters.
fn is_identifier(name: &str) -> bool {
    (1..=MAX_TABLE_NAME_LEN).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_lowercase_and_start_with_a_letter() {
        for good in ["big-leap", "p", "a_1", &"x".repeat(64)] {
            assert_eq!(check_plugin_name(good), Ok(()), "{good:?}");
        }
        for bad in ["", "Big Leap", "1abc", "-a", "café", &"x".repeat(65)] {
            assert_eq!(
                check_plugin_name(bad),
                Err(NameError::Plugin(bad.to_string()))
            );
        }
        let message = check_plugin_name("Bad").unwrap_err().to_string();
        assert!(
            message.starts_with("invalid plugin name \"Bad\": use 1 to 64"),
            "{message}"
        );
    }

    #[test]
    fn hook_names_allow_letters_digits_underscore_and_dash() {
        for good in ["big_leap_upgrade", "H-1", "9"] {
            assert_eq!(check_hook_name(good), Ok(()), "{good:?}");
        }
        for bad in ["", "a b", "größe", &"h".repeat(65)] {
            assert_eq!(check_hook_name(bad), Err(NameError::Hook(bad.to_string())));
        }
    }

    #[test]
    fn tables_must_be_identifiers_and_not_reserved_in_any_case() {
        for good in ["facility", "_x", "up", "sql", &"t".repeat(128)] {
            assert_eq!(check_table_name(good), Ok(()), "{good:?}");
        }
        for bad in ["", "1abc", "learner-list", "a b", &"t".repeat(129)] {
            assert_eq!(
                check_table_name(bad),
                Err(NameError::Table(bad.to_string()))
            );
        }
        for reserved in [
            "uplift_meta",
            "UPLIFT_Meta",
            "sqlite_schema",
            "Sqlite_sequence",
        ] {
            assert_eq!(
                check_table_name(reserved),
                Err(NameError::ReservedTable(reserved.to_string()))
            );
        }
    }

    #[test]
    fn an_owned_prefix_may_not_cover_reserved_tables() {
        for good in ["bigleap_", "p_", "x", "upx"] {
            assert_eq!(check_owned_prefix(good), Ok(()), "{good:?}");
        }
        for bad in ["", "a-b", "1abc"] {
            assert_eq!(
                check_owned_prefix(bad),
                Err(NameError::Prefix(bad.to_string()))
            );
        }
        for reserved in ["uplift_", "sqlite_x", "Uplift_mine"] {
            assert_eq!(
                check_owned_prefix(reserved),
                Err(NameError::ReservedPrefix(reserved.to_string()))
            );
        }
        for short in ["u", "s", "up", "UPL", "sqlite", "sq"] {
            assert_eq!(
                check_owned_prefix(short),
                Err(NameError::PrefixTooShort(short.to_string()))
            );
        }
    }
}

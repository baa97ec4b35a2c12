//! Table names as uplift compares them: ASCII case-insensitively, as SQL
//! does, and uplift's own tables among them.

/// The prefix of every table uplift owns in the application database.
pub(crate) const UPLIFT_TABLE_PREFIX: &str = uplift_contract::names::UPLIFT_TABLE_PREFIX;

/// Whether `name` starts with `prefix`, ignoring ASCII case.
pub(crate) fn starts_with_ignore_case(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Whether `name` is one of uplift's own tables: it starts with
/// [`UPLIFT_TABLE_PREFIX`], in any case.
pub(crate) fn is_uplift_table(name: &str) -> bool {
    starts_with_ignore_case(name, UPLIFT_TABLE_PREFIX)
}

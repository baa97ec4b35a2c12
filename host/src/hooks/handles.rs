//! The handles a hook holds on the database: its prepared statements and
//! open cursors (the `statement` and `cursor` resources of `wit/hooks.wit`).
//! They are `pub` because the generated bindings name them in public
//! signatures; the module itself is private.
#![allow(unreachable_pub)]

use crate::hooks::raw::RawStatement;

/// A prepared statement the guest holds.
pub struct StatementEntry {
    pub(crate) stmt: RawStatement,
    pub(crate) sql: String,
}

/// A cursor the guest holds: a running statement.
pub struct CursorEntry {
    pub(crate) stmt: RawStatement,
    /// The statement is positioned on a row not yet returned.
    pub(crate) row_ready: bool,
    pub(crate) done: bool,
}

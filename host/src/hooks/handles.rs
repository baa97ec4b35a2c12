//! The handles a hook holds on the database: its prepared statements and
//! open cursors (the `statement` and `cursor` resources of `wit/hooks.wit`),
//! each an engine's [`Handle`]. They are
//! `pub` because the generated bindings name them in public signatures; the
//! module itself is private.
#![allow(unreachable_pub)]

use std::any::Any;

/// A prepared statement or an open cursor an engine made for a hook; only
/// the engine that made it looks inside.
pub(crate) type Handle = Box<dyn Any + Send + Sync>;

/// A prepared statement the guest holds.
pub struct StatementEntry(pub(crate) Handle);

/// A cursor the guest holds: a running statement.
pub struct CursorEntry(pub(crate) Handle);

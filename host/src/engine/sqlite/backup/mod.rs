//! Backups on SQLite: plain SQL dumps that the `sqlite3` shell can restore,
//! written from one read snapshot ([`dump`]), and restored into a new file
//! that is checked ([`check`], [`indexes`]) before it replaces the database
//! ([`restore`]); [`sqlparse`] reads dumps quickly. What is not SQLite's
//! (the backup folder, the dump's header, retention) is [`crate::backup`]'s.

pub(crate) mod check;
pub(crate) mod dump;
mod indexes;
pub(crate) mod restore;
pub(crate) mod sqlparse;

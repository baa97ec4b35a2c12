//! Backups on SQLite: plain SQL dumps that the `sqlite3` shell can restore,
//! written from one read snapshot ([`dump`], with [`snapshot`], [`rows`],
//! [`literal`], [`writer`] and [`direct`]), and restored into a new file that is
//! checked ([`check`], [`indexes`]) before it replaces the database
//! ([`restore`]); [`sqlparse`] reads dumps quickly. What is not SQLite's
//! (the backup folder, the dump's header, retention) is [`crate::backup`]'s.

use crate::backup::error::BackupError;

pub(crate) mod check;
mod direct;
pub(crate) mod dump;
mod indexes;
mod literal;
pub(crate) mod restore;
mod rows;
mod snapshot;
pub(crate) mod sqlparse;
mod writer;

/// The error of a failed read of the database: what was being read, and
/// SQLite's error.
fn sql_err(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Sqlite {
        what,
        source: source.into(),
    }
}

/// [`sql_err`] with the description built only if there is an error (the
/// row loop must not format a string per row).
fn sql_err_with(what: &dyn Fn() -> String) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite {
        what: what(),
        source: source.into(),
    }
}

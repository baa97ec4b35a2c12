//! The one COMMIT of an upgrade on SQLite, and nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::Connection;

use crate::engine::{CommitError, EngineError};

/// The one COMMIT of an upgrade. SQLite ends a transaction by itself when a
/// statement fails with a full disk, an I/O error or no memory (among
/// others); whoever carries on then runs in autocommit mode, each statement
/// committing alone: half an upgrade. While the gate is installed, SQLite's
/// commit hook turns every commit into a rollback except the one
/// [`CommitGate::commit`] makes, so nothing a migration or a hook does after
/// losing the transaction can reach the file. (Hooks are also stopped at
/// the first call that finds the transaction gone.)
pub(crate) struct CommitGate {
    open: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl CommitGate {
    pub(super) fn install(conn: &Connection) -> CommitGate {
        let open = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let (is_open, count) = (Arc::clone(&open), Arc::clone(&refused));
        conn.commit_hook(Some(move || {
            if is_open.load(Ordering::SeqCst) {
                return false;
            }
            count.fetch_add(1, Ordering::SeqCst);
            true // roll back instead
        }));
        CommitGate { open, refused }
    }

    /// Commits the upgrade's transaction, which must still be open. Returns
    /// a warning when the commit took effect but could not be made durable.
    pub(super) fn commit(&self, conn: &Connection) -> Result<Option<String>, CommitError> {
        let refused = self.refused.load(Ordering::SeqCst);
        if conn.is_autocommit() || refused > 0 {
            return Err(CommitError::Lost { refused });
        }
        self.open.store(true, Ordering::SeqCst);
        let result = conn.execute_batch("COMMIT");
        self.open.store(false, Ordering::SeqCst);
        match result {
            Ok(()) => Ok(None),
            // The journal was deleted (that is the commit) and only the sync
            // of its folder failed: the upgrade is done, but a power cut
            // before the folder is written out could undo it. Saying it was
            // rolled back would be false.
            Err(e)
                if conn.is_autocommit()
                    && matches!(&e, rusqlite::Error::SqliteFailure(f, _)
                        if f.extended_code == rusqlite::ffi::SQLITE_IOERR_DIR_FSYNC) =>
            {
                Ok(Some(format!(
                    "the upgrade is committed, but syncing the database's folder failed ({e}): \
                     until the system writes the folder out, a power cut could undo it (run `sync`)"
                )))
            }
            Err(source) => Err(CommitError::Failed(EngineError::new(source))),
        }
    }
}

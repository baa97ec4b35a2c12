//! Background writeback of what the upgrade's transaction wrote.

use std::path::{Path, PathBuf};

/// Writes to disk, in the background, what the upgrade's transaction has
/// written so far to the database and its rollback journal, and makes it
/// durable (`fdatasync`, which also empties the disk's own write cache).
/// SQLite writes database pages only once the journal protecting them is
/// synced, so a database page made durable early is always covered by a
/// durable journal, and a crash still rolls it back: this changes nothing
/// about what a crash can leave. It lets the disk work while the next hook
/// or the foreign-key check uses the processor, so that the syncs SQLite
/// must do (before writing pages out, and in COMMIT) find little left,
/// instead of the disk taking everything at once while the upgrade waits.
/// Requests are carried out by a thread of its own, started at the first
/// one; requests that arrive while one is carried out are served together.
/// Best effort (Linux only): a file that cannot be opened or synced is
/// skipped.
///
/// The thread keeps one descriptor of the database file open until the
/// `Writeback` is dropped. Closing any descriptor of a file drops every
/// POSIX lock the process holds on it, SQLite's own included, so the
/// descriptor is never closed while the transaction runs, and a
/// `Writeback` must be dropped only after the connection using the
/// database is closed (declare it before the connection).
pub(crate) struct Writeback {
    db_path: PathBuf,
    worker: std::sync::Mutex<Option<WritebackWorker>>,
}

/// The thread of a [`Writeback`] and where to send it requests (each with,
/// for tests, where to say it is done).
struct WritebackWorker {
    requests: std::sync::mpsc::Sender<Option<std::sync::mpsc::Sender<()>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Writeback {
    /// Nothing is opened or started until the first request.
    pub(crate) fn new(db_path: &Path) -> Writeback {
        Writeback {
            db_path: db_path.to_path_buf(),
            worker: std::sync::Mutex::new(None),
        }
    }

    /// Starts writing out and syncing what is written so far, without
    /// waiting.
    pub(crate) fn request(&self) {
        self.send(None);
    }

    /// Writes out and syncs what is written so far, and waits until it is
    /// done.
    #[cfg(test)]
    fn request_and_wait(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        self.send(Some(done));
        let _ = wait.recv();
    }

    fn send(&self, done: Option<std::sync::mpsc::Sender<()>>) {
        if !cfg!(target_os = "linux") {
            return;
        }
        let Ok(mut worker) = self.worker.lock() else {
            return;
        };
        if worker.is_none() {
            *worker = self.start();
        }
        if let Some(worker) = worker.as_ref() {
            let _ = worker.requests.send(done);
        }
    }

    fn start(&self) -> Option<WritebackWorker> {
        let database = std::fs::File::open(&self.db_path).ok()?;
        let journal = crate::disk::sibling(&self.db_path, "-journal");
        let (requests, received) =
            std::sync::mpsc::channel::<Option<std::sync::mpsc::Sender<()>>>();
        let thread = std::thread::Builder::new()
            .name("uplift-writeback".into())
            .spawn(move || {
                while let Ok(first) = received.recv() {
                    // Requests that came meanwhile are served by this round.
                    let waiting: Vec<_> = std::iter::once(first)
                        .chain(received.try_iter())
                        .flatten()
                        .collect();
                    // The database's pages start on their way while the
                    // journal is synced. SQLite holds no lock on its
                    // journal: this descriptor may come and go.
                    start_file_writeback(&database);
                    if let Ok(file) = std::fs::File::open(&journal) {
                        let _ = file.sync_data();
                    }
                    let _ = database.sync_data();
                    for done in waiting {
                        let _ = done.send(());
                    }
                }
            })
            .ok()?;
        Some(WritebackWorker { requests, thread })
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        let worker = self.worker.get_mut().ok().and_then(Option::take);
        if let Some(WritebackWorker { requests, thread }) = worker {
            drop(requests);
            let _ = thread.join();
        }
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` of the whole file: starts the
/// writeback of its dirty pages.
fn start_file_writeback(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor stays open for the whole call, and
        // SYNC_FILE_RANGE_WRITE only starts writeback of dirty pages.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// Whether another process can start a write transaction on `db`
    /// right now (the sqlite3 shell, without waiting).
    fn another_process_can_write(db: &Path) -> bool {
        let out = std::process::Command::new("sqlite3")
            .arg(db)
            .arg("BEGIN IMMEDIATE; COMMIT;")
            .output()
            .expect("the sqlite3 shell runs (scripts/setup installs it)");
        out.status.success()
    }

    /// The writeback's own descriptor of the database must not make the
    /// process lose SQLite's locks (closing any descriptor of a file drops
    /// all of the process's POSIX locks on it).
    #[test]
    fn a_writeback_during_a_transaction_keeps_the_database_locked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite3");
        let writeback = Writeback::new(&db);
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        assert!(
            !another_process_can_write(&db),
            "the transaction holds the lock"
        );
        for _ in 0..3 {
            writeback.request_and_wait();
            assert!(
                !another_process_can_write(&db),
                "a writeback request released SQLite's lock"
            );
        }
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        drop(writeback);
        assert!(another_process_can_write(&db));
    }
}

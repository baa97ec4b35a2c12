//! A home of several SQLite databases upgraded as one: one connection, the
//! other databases attached under their release names, one transaction.
//!
//! SQLite commits a transaction over attached databases atomically (its
//! super-journal) only when none of them is in WAL mode: in WAL mode each
//! database commits on its own. So before the transaction begins, the
//! journal mode of every database is recorded in [`RECORD_FILE`] in the home
//! (written, synced, its folder synced), and each WAL database is
//! checkpointed and switched to `journal_mode=DELETE` (which removes its
//! `-wal` and `-shm`). After COMMIT (or the rollback) each is switched back
//! and the record removed. A crash in between leaves the record behind:
//! [`recover`], which every uplift command that reads the home's databases
//! calls first, opens each database (SQLite rolls back a hot journal whose
//! super-journal still exists, and keeps the commit of one whose
//! super-journal is gone), restores the recorded journal modes, then
//! removes the record. See `docs/architecture.md`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::sql::quote_ident;
use crate::disk;

/// The record of the databases' journal modes, in the home, while a
/// transaction over several databases may be open.
pub(crate) const RECORD_FILE: &str = "uplift-journal-modes.json";

/// Why the journal modes could not be recorded, switched or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalModeError {
    /// The record could not be written, read or removed.
    #[error(transparent)]
    Io(#[from] disk::IoError),
    /// The record is not what uplift writes.
    #[error(
        "{path} is not a record of journal modes uplift wrote ({message}): \
         if no upgrade was interrupted, remove it"
    )]
    BadRecord {
        /// The record.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// SQLite refused to read or change a database's journal mode.
    #[error("could not set the journal mode of {path} to {mode}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The mode asked for.
        mode: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Another process has the database open (in WAL mode, every
    /// connection keeps a lock on it), and leaving or entering WAL mode
    /// needs it alone.
    #[error(
        "{path} is open in another process, and switching its journal mode for the upgrade \
         (to {mode}) needs it alone: stop the application using it, then run uplift again"
    )]
    InUse {
        /// The database file.
        path: PathBuf,
        /// The mode asked for.
        mode: String,
    },
    /// SQLite kept another mode (another process has the database open:
    /// leaving WAL mode needs it alone).
    #[error(
        "{path} stayed in journal mode {kept} instead of {mode}: another process has it open \
         (stop the application, then run uplift again)"
    )]
    Kept {
        /// The database file.
        path: PathBuf,
        /// The mode asked for.
        mode: String,
        /// The mode SQLite kept.
        kept: String,
    },
}

/// The record's contents.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    databases: Vec<RecordedMode>,
}

/// One database's journal mode before the transaction.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedMode {
    /// Its name (`main`, or what it is attached as).
    name: String,
    /// Its file, a name in the home.
    file: String,
    /// `wal`, `delete`, `truncate`, `persist`.
    journal_mode: String,
}

/// Journal modes switched for one transaction over several databases: what
/// [`switch_to_rollback`] returns and [`Switched::restore`] undoes.
#[derive(Debug)]
pub(crate) struct Switched {
    record: PathBuf,
    modes: Vec<(String, PathBuf, String)>,
}

/// Records the journal mode of each of `databases` (name as the connection
/// knows it, file) durably in `home`'s [`RECORD_FILE`], then switches every
/// database in WAL mode to `journal_mode=DELETE` on `conn` (which has them
/// all attached, and must be the only connection to them). On failure,
/// those already switched are switched back.
pub(crate) fn switch_to_rollback(
    conn: &Connection,
    home: &Path,
    databases: &[(String, PathBuf)],
) -> Result<Switched, JournalModeError> {
    let record = home.join(RECORD_FILE);
    let mut modes = Vec::new();
    for (name, path) in databases {
        let mode = journal_mode(conn, name, None).map_err(|source| JournalModeError::Sqlite {
            path: path.clone(),
            mode: "(read)".into(),
            source,
        })?;
        modes.push((name.clone(), path.clone(), mode));
    }
    let written = Record {
        databases: modes
            .iter()
            .map(|(name, path, mode)| RecordedMode {
                name: name.clone(),
                file: file_name(path),
                journal_mode: mode.clone(),
            })
            .collect(),
    };
    write_record(&record, &written)?;
    let switched = Switched { record, modes };
    let switch = || -> Result<(), JournalModeError> {
        for (name, path, mode) in &switched.modes {
            if mode == "wal" {
                set_mode(conn, name, path, "delete")?;
            }
        }
        Ok(())
    };
    if let Err(err) = switch() {
        // Those already switched go back; the record goes with them (or
        // stays for the next command when that fails too).
        let _ = switched.restore(conn);
        return Err(err);
    }
    Ok(switched)
}

impl Switched {
    /// The journal mode database `name` had before the switch.
    pub(crate) fn mode_of(&self, name: &str) -> Option<&str> {
        self.modes
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, mode)| mode.as_str())
    }

    /// Switches every database back to the journal mode it had, then
    /// removes the record (its folder synced). `conn` must be out of any
    /// transaction. On failure the record stays, for [`recover`].
    pub(crate) fn restore(self, conn: &Connection) -> Result<(), JournalModeError> {
        for (name, path, mode) in &self.modes {
            if mode != "delete" {
                set_mode(conn, name, path, mode)?;
            }
        }
        remove_record(&self.record)
    }
}

/// What [`recover`] did.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The databases whose journal mode it set back, as (file, mode).
    pub restored: Vec<(PathBuf, String)>,
}

/// When `home` holds a [`RECORD_FILE`] (a transaction over several
/// databases was interrupted), opens each recorded database alone (SQLite
/// rolls back, or keeps, what the interrupted transaction left, by its
/// super-journal), sets its recorded journal mode back, and removes the
/// record. The caller holds the home's lock exclusively. Returns `None`
/// when there was no record (one `stat`).
pub(crate) fn recover(home: &Path) -> Result<Option<Recovered>, JournalModeError> {
    let record_path = home.join(RECORD_FILE);
    let text = match std::fs::read_to_string(&record_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(disk::io_err("could not read", &record_path)(e).into()),
    };
    let record: Record = serde_json::from_str(&text).map_err(|e| JournalModeError::BadRecord {
        path: record_path.clone(),
        message: e.to_string(),
    })?;
    let mut recovered = Recovered::default();
    for entry in &record.databases {
        if entry.file.contains('/') || entry.file.starts_with('.') {
            return Err(JournalModeError::BadRecord {
                path: record_path.clone(),
                message: format!("{:?} is not a file of the home", entry.file),
            });
        }
        let path = home.join(&entry.file);
        if !path.exists() {
            continue;
        }
        let sqlite = |source| JournalModeError::Sqlite {
            path: path.clone(),
            mode: entry.journal_mode.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sqlite)?;
        // The first read plays back a hot journal.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(sqlite)?;
        let now = journal_mode(&conn, "main", None).map_err(sqlite)?;
        if now != entry.journal_mode {
            set_mode(&conn, "main", &path, &entry.journal_mode)?;
            recovered
                .restored
                .push((path.clone(), entry.journal_mode.clone()));
        }
        conn.close().map_err(|(_, e)| sqlite(e))?;
        if entry.journal_mode == "wal" {
            remove_cold_journal(&path)?;
        }
    }
    if let Some(main) = record.databases.first() {
        remove_orphan_super_journals(home, &main.file)?;
    }
    remove_record(&record_path)?;
    Ok(Some(recovered))
}

/// Removes the `-journal` a killed transaction can leave beside a
/// database that is back in WAL mode: SQLite played it back (and removed
/// it) on the first read if it was hot; what stays is a journal whose
/// header was never completed (SQLite writes its magic number only once the
/// journal is synced, before the database file is touched), which nothing
/// reads in WAL mode and which would only confuse an operator.
fn remove_cold_journal(database: &Path) -> Result<(), JournalModeError> {
    let journal = disk::sibling(database, "-journal");
    match std::fs::remove_file(&journal) {
        Ok(()) => disk::sync_dir(disk::parent_of(database))
            .map_err(disk::io_err("could not sync", disk::parent_of(database)))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(disk::io_err("could not remove", &journal)(e).into()),
    }
    Ok(())
}

/// Removes the super-journals (`<main file>-mjXXXXXX9XX`, hexadecimal) a killed commit
/// left in `home` without any journal naming them: SQLite writes the
/// super-journal before it names it in each database's journal, so a crash
/// in between leaves one that nothing will ever read or remove. Called once
/// every database of the record has been opened (each hot journal played
/// back, and with it the super-journal it named removed).
fn remove_orphan_super_journals(home: &Path, main_file: &str) -> Result<(), JournalModeError> {
    let prefix = format!("{main_file}-mj");
    let entries = std::fs::read_dir(home).map_err(disk::io_err("could not list", home))?;
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(disk::io_err("could not list", home))?;
        let name = entry.file_name();
        let is_super = name.to_str().is_some_and(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| rest.len() == 9 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        if is_super {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(disk::io_err("could not remove", &path))?;
            removed = true;
        }
    }
    if removed {
        disk::sync_dir(home).map_err(disk::io_err("could not sync", home))?;
    }
    Ok(())
}

/// Whether the file at `path` is an empty database: no bytes, or no schema
/// object at all (what a rolled-back transaction leaves of a database it
/// created: SQLite keeps the first page it wrote).
pub(crate) fn is_empty_database(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => return true,
        Ok(meta) if meta.is_file() => {}
        _ => return false,
    }
    let Ok(conn) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .is_ok_and(|n| n == 0)
}

/// Whether `home` holds a record of an interrupted transaction over
/// several databases.
pub(crate) fn interrupted(home: &Path) -> bool {
    home.join(RECORD_FILE).exists()
}

/// `PRAGMA "schema".journal_mode` (`= mode` when given): the mode after it.
fn journal_mode(conn: &Connection, schema: &str, mode: Option<&str>) -> rusqlite::Result<String> {
    let sql = match mode {
        Some(mode) => format!("PRAGMA {}.journal_mode = {mode}", quote_ident(schema)),
        None => format!("PRAGMA {}.journal_mode", quote_ident(schema)),
    };
    let mode: String = conn.query_row(&sql, [], |r| r.get(0))?;
    Ok(mode.to_ascii_lowercase())
}

/// Sets database `schema`'s journal mode to `mode`, refusing a mode SQLite
/// did not take.
fn set_mode(
    conn: &Connection,
    schema: &str,
    path: &Path,
    mode: &str,
) -> Result<(), JournalModeError> {
    let valid = ["delete", "truncate", "persist", "wal", "memory", "off"];
    if !valid.contains(&mode) {
        return Err(JournalModeError::BadRecord {
            path: path.to_path_buf(),
            message: format!("{mode:?} is not a journal mode"),
        });
    }
    let kept = journal_mode(conn, schema, Some(mode)).map_err(|source| {
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                JournalModeError::InUse {
                    path: path.to_path_buf(),
                    mode: mode.to_string(),
                }
            }
            _ => JournalModeError::Sqlite {
                path: path.to_path_buf(),
                mode: mode.to_string(),
                source,
            },
        }
    })?;
    if kept != mode {
        return Err(JournalModeError::Kept {
            path: path.to_path_buf(),
            mode: mode.to_string(),
            kept,
        });
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes `record` to `path` durably: a temporary file, synced, renamed,
/// the folder synced.
fn write_record(path: &Path, record: &Record) -> Result<(), JournalModeError> {
    use std::io::Write;
    let temp = disk::sibling(path, ".tmp");
    let text = serde_json::to_string_pretty(record).map_err(|e| JournalModeError::BadRecord {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    };
    write().map_err(disk::io_err("could not write", &temp))?;
    disk::rename_durably(&temp, path).map_err(disk::io_err("could not write", path))?;
    Ok(())
}

/// Removes the record, its folder synced.
fn remove_record(path: &Path) -> Result<(), JournalModeError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(disk::io_err("could not remove", path)(e).into()),
    }
    disk::sync_dir(disk::parent_of(path))
        .map_err(disk::io_err("could not sync", disk::parent_of(path)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_db(path: &Path) {
        let conn = Connection::open(path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
    }

    /// The record is written before any mode changes, each WAL database
    /// leaves WAL mode (its -wal gone), and restoring puts WAL back and
    /// removes the record.
    #[test]
    fn switching_records_first_and_restoring_removes_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.sqlite3"), dir.path().join("b.sqlite3"));
        wal_db(&a);
        wal_db(&b);
        let conn = Connection::open(&a).unwrap();
        conn.execute("ATTACH ?1 AS b", [b.to_str().unwrap()])
            .unwrap();
        let dbs = vec![
            ("main".to_string(), a.clone()),
            ("b".to_string(), b.clone()),
        ];
        let switched = switch_to_rollback(&conn, dir.path(), &dbs).unwrap();
        assert!(interrupted(dir.path()));
        assert_eq!(journal_mode(&conn, "b", None).unwrap(), "delete");
        assert!(!dir.path().join("b.sqlite3-wal").exists());
        switched.restore(&conn).unwrap();
        assert!(!interrupted(dir.path()));
        assert_eq!(journal_mode(&conn, "main", None).unwrap(), "wal");
        assert_eq!(journal_mode(&conn, "b", None).unwrap(), "wal");
    }

    /// A record left by a crash: recovery sets the recorded modes back.
    #[test]
    fn recovery_restores_the_recorded_modes_and_removes_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.sqlite3");
        wal_db(&a);
        let conn = Connection::open(&a).unwrap();
        let switched =
            switch_to_rollback(&conn, dir.path(), &[("main".to_string(), a.clone())]).unwrap();
        drop(conn);
        std::mem::forget(switched); // the process "died" here
        let recovered = recover(dir.path()).unwrap().unwrap();
        assert_eq!(recovered.restored, vec![(a.clone(), "wal".to_string())]);
        assert!(!interrupted(dir.path()));
        let conn = Connection::open(&a).unwrap();
        assert_eq!(journal_mode(&conn, "main", None).unwrap(), "wal");
        assert!(recover(dir.path()).unwrap().is_none());
    }

    /// A super-journal no journal names (a crash before the commit named it
    /// in the journals) is removed by the recovery; other files stay.
    #[test]
    fn recovery_removes_an_orphan_super_journal() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.sqlite3");
        wal_db(&a);
        let conn = Connection::open(&a).unwrap();
        let switched =
            switch_to_rollback(&conn, dir.path(), &[("main".to_string(), a.clone())]).unwrap();
        drop(conn);
        std::mem::forget(switched);
        let orphan = dir.path().join("a.sqlite3-mj1A2B3C9D4");
        std::fs::write(&orphan, "/some/journal\0").unwrap();
        let other = dir.path().join("a.sqlite3-mjnotes");
        std::fs::write(&other, "kept").unwrap();
        recover(dir.path()).unwrap().unwrap();
        assert!(!orphan.exists());
        assert!(other.exists());
    }

    /// A damaged record is refused by name, and left for the operator.
    #[test]
    fn a_damaged_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RECORD_FILE), "{not json").unwrap();
        let err = recover(dir.path()).unwrap_err();
        assert!(err.to_string().contains(RECORD_FILE), "{err}");
        assert!(interrupted(dir.path()));
    }
}

//! A fresh install on SQLite: the whole schema is built in a temporary file
//! next to where the database will be, which is renamed into place only
//! when it is complete. A crash leaves no database rather than half of one.

use std::path::Path;

use super::SqliteDatabase;
use crate::disk;
use crate::engine::Database;
use crate::upgrade::error::UpgradeError;

/// Builds a new database for `db_path` with `build` (which runs the
/// install's transaction on it) in a temporary file, gives it to the owner
/// of `home` (the service user that runs the application must be able to
/// open it, even when root installed it), makes it durable, and moves it
/// into place. Returns what `build` returned and what the operator should
/// know about files moved aside.
pub(crate) fn install_new<T>(
    db_path: &Path,
    home: &Path,
    build: impl FnOnce(&mut dyn Database) -> Result<T, UpgradeError>,
) -> Result<(T, Vec<String>), UpgradeError> {
    // The files SQLite kept beside a database that is gone: a process that
    // still has them open (the application, with the database moved away
    // under it) would go on using them beside the new database.
    let users = disk::processes_using(&disk::database_files(db_path));
    if !users.is_empty() {
        return Err(UpgradeError::InUse {
            path: db_path.to_path_buf(),
            users,
        });
    }
    let temp_path = disk::sibling(db_path, ".installing");
    // A killed install's file and its journal are ours alone (the home is
    // locked): start over.
    for path in disk::database_files(&temp_path) {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("could not remove", &path)(e));
            }
            _ => {}
        }
    }
    let built = SqliteDatabase::create(&temp_path)
        .map_err(|source| UpgradeError::Open {
            path: temp_path.clone(),
            source,
        })
        .and_then(|db| {
            let mut db = db.with_writeback();
            let done = build(&mut db)?;
            db.close().map_err(|source| UpgradeError::Open {
                path: temp_path.clone(),
                source,
            })?;
            Ok(done)
        });
    let done = match built {
        Ok(done) => done,
        Err(cause) => {
            for path in disk::database_files(&temp_path) {
                let _ = std::fs::remove_file(path);
            }
            return Err(UpgradeError::InstallFailed {
                cause: Box::new(cause),
                database: db_path.to_path_buf(),
            });
        }
    };
    disk::Owner::for_new_file_in(home)
        .and_then(|owner| owner.apply(&temp_path))
        .map_err(io("could not give the home's owner", &temp_path))?;
    std::fs::File::open(&temp_path)
        .and_then(|f| f.sync_all())
        .map_err(io("could not sync", &temp_path))?;
    // SQLite would apply a -wal or hot journal it finds beside the new
    // file to it: leftovers of the database that was there go first.
    let set_aside = disk::clear_leftovers(db_path)
        .map_err(io("could not move aside the journal files beside", db_path))?;
    disk::rename_durably(&temp_path, db_path)
        .map_err(io("could not move the new database into place at", db_path))?;
    let warnings = set_aside
        .iter()
        .map(|m| {
            format!(
                "{} was left by a database that is no longer there (it may hold that database's last writes); \
                 it was moved to {} and not applied to the new database",
                m.from.display(),
                m.to.display()
            )
        })
        .collect();
    Ok((done, warnings))
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UpgradeError {
    let io = disk::io_err(what, path);
    move |source| UpgradeError::Io(io(source))
}

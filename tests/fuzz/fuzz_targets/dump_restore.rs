//! The whole restore of a dump uplift did not write (one planted in
//! `backups/`, say), through the public API (`uplift::backup::restore`), in
//! a home of its own on a temporary folder that is also the process's
//! working folder:
//!
//! - it never panics, hangs or grows without bound (libFuzzer's `-timeout`
//!   and `-rss_limit_mb`), and refuses or restores;
//! - it touches nothing but the new database: afterwards the folder holds
//!   the dump, a bystander database beside it (unchanged, byte for byte: an
//!   `ATTACH 'victim.sqlite3'` would reach it) and the home with at most its
//!   `db.sqlite3`, nothing else (no `VACUUM INTO` file, no temporary file
//!   left behind);
//! - differentially: when uplift restores the dump, the `sqlite3` command
//!   line shell (`sqlite3 -safe new.db < dump`) restores it too, without an
//!   error, with the same schema and the same rows, bit for bit. The
//!   differences allowed: the shell's age (`unistr()` texts need sqlite3
//!   3.50, which an older shell refuses), and the dump's own `BEGIN` and
//!   `COMMIT`, which the restore sets aside for its one transaction (a
//!   `COMMIT` without `BEGIN` is an error for the shell only).
//!
//! Input: the dump's text.
#![no_main]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rusqlite::{Connection, OpenFlags};
use uplift::backup::{self, NoProgress, RestoreOptions};
use uplift::home::Home;
use uplift_fuzz::sqlite_oracle;

/// The shell's errors about a dump's own `BEGIN` and `COMMIT` (one without
/// the other): the restore runs a dump in one transaction of its own and
/// sets the dump's aside, so these are the one difference allowed, as long
/// as the data is the same.
const TRANSACTION_ERRORS: [&str; 2] = [
    "cannot commit - no transaction is active",
    "cannot start a transaction within a transaction",
];

/// The bystander database's bytes, made once.
fn victim() -> &'static [u8] {
    static VICTIM: OnceLock<Vec<u8>> = OnceLock::new();
    VICTIM.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("victim.sqlite3");
        let conn = Connection::open(&path).expect("the bystander database");
        conn.execute_batch("CREATE TABLE secret(x); INSERT INTO secret VALUES('untouched');")
            .expect("the bystander's table");
        drop(conn);
        std::fs::read(&path).expect("the bystander's bytes")
    })
}

/// Every file and folder under `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(&folder)
            .expect("a readable folder")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            out.push(
                path.strip_prefix(dir)
                    .expect("under the folder")
                    .to_path_buf(),
            );
        }
    }
    out.sort();
    out
}

fn open_read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("a database to compare")
}

fuzz_target!(|dump: &[u8]| {
    // tmpfs when there is one: nothing of this needs a disk.
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("uplift-fuzz-restore-")
        .tempdir_in(base)
        .expect("a temporary folder");
    let root = dir.path();
    let cwd = std::env::current_dir().expect("the working folder");
    std::env::set_current_dir(root).expect("into the temporary folder");
    std::fs::write(root.join("victim.sqlite3"), victim()).expect("the bystander");
    let dump_path = root.join("dump.sql");
    std::fs::write(&dump_path, dump).expect("the dump");
    let home = Home::new(root.join("home"));
    home.create().expect("the home");

    let options = RestoreOptions {
        safety_backup: false,
        max_statement_bytes: 1 << 20,
        ..RestoreOptions::default()
    };
    let restored = backup::restore(&home, &dump_path, &options, &mut NoProgress);
    if let Err(e) = &restored {
        let _ = uplift::error_text(e);
    }

    let mut allowed: Vec<PathBuf> = ["dump.sql", "home", "victim.sqlite3"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if restored.is_ok() {
        allowed.push(PathBuf::from("home/db.sqlite3"));
        allowed.sort();
    }
    assert_eq!(
        tree(root),
        allowed,
        "the restore ({restored:?}) left the folder otherwise"
    );
    assert!(
        std::fs::read(root.join("victim.sqlite3")).expect("the bystander") == victim(),
        "the restore ({restored:?}) changed the bystander database"
    );

    if restored.is_ok() {
        let ours = sqlite_oracle::contents(&open_read_only(&home.db_path()))
            .expect("the restored database reads");
        let shell = root.join("shell.sqlite3");
        // Without -bail: the shell goes on after an error, so that the
        // errors it reports can be judged one by one.
        let output = Command::new("sqlite3")
            .arg("-safe")
            .arg(&shell)
            .stdin(std::fs::File::open(&dump_path).expect("the dump"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("the sqlite3 command line shell (scripts/setup installs it)");
        let errors = String::from_utf8_lossy(&output.stderr);
        if !errors.contains("no such function: unistr") {
            for error in errors.lines().filter(|line| !line.trim().is_empty()) {
                assert!(
                    TRANSACTION_ERRORS
                        .iter()
                        .any(|allowed| error.contains(allowed)),
                    "uplift restores the dump, sqlite3 refuses it: {errors}"
                );
            }
            let theirs = sqlite_oracle::contents(&open_read_only(&shell))
                .expect("the shell's database reads");
            if let Some(difference) = sqlite_oracle::difference(&ours, &theirs) {
                panic!("uplift and sqlite3 restore different data: {difference}");
            }
        }
    }
    std::env::set_current_dir(cwd).expect("back to the working folder");
});

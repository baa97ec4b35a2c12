//! Restoring a dump over the home's database, safely: verify the dump,
//! back up the current database, build the restored one in a temporary file
//! next to it (journal off, statements checked by an authorizer so that a
//! dump cannot do anything but create and fill tables), check it, and only
//! then rename it over the old one.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};

use super::check::{self, IntegrityCheck, RowBytes};
use super::sqlparse::{Bytes, Literal, ParsedInsert, SplitError, StatementReader, parse_insert};
use crate::backup::error::{BackupFileError, RestoreError};
use crate::backup::files::{self, DumpHeader};
use crate::backup::{
    BackupError, BackupFile, BackupKind, BackupOptions, Progress, ProgressUnit, io_err, sync_dir,
};
use crate::engine::sqlite::sql::is_schema_table;
use crate::errors::chain_text;
use crate::home::Home;

/// How a restore behaves.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Back up the current database (kind `pre-restore`) before replacing
    /// it. On by default; turning it off is for callers that just made a
    /// backup themselves.
    pub safety_backup: bool,
    /// Compress that safety backup.
    pub compress_safety_backup: bool,
    /// The longest statement accepted, in bytes. The default (2.1 GB) fits
    /// the largest value SQLite stores (1 GB) written in hexadecimal.
    pub max_statement_bytes: usize,
    /// How thoroughly the restored database is checked before it replaces
    /// the current one.
    pub check: IntegrityCheck,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            safety_backup: true,
            compress_safety_backup: false,
            max_statement_bytes: 2_100_000_000,
            check: IntegrityCheck::Full,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The dump restored.
    pub source: PathBuf,
    /// The database replaced (or created).
    pub database: PathBuf,
    /// The dump's header; `None` for a foreign dump.
    pub header: Option<DumpHeader>,
    /// Whether the dump's checksum was verified.
    pub verified: bool,
    /// The backup made of the database that was replaced; `None` when
    /// there was none (or it was turned off).
    pub safety_backup: Option<BackupFile>,
    /// The data version of the restored database.
    pub data_version: Option<String>,
    /// Statements executed.
    pub statements: u64,
    /// Rows inserted.
    pub rows: u64,
    /// Things the operator should know (an unverifiable dump, a data
    /// version different from the header's).
    pub warnings: Vec<String>,
}

/// Restores `file` over the home's database (`db.sqlite3`), which may not
/// exist yet (the home folder is created if needed). Does not take the
/// home's lock: the caller holds it.
///
/// The sequence: verify the dump's checksum (or, for a dump without
/// uplift's header, that it looks complete) before anything else; back the
/// current database up into the home's backups folder (kind `pre-restore`);
/// build the restored database in a temporary file next to the database,
/// refusing statements a dump never needs (`ATTACH`, `VACUUM`, pragmas but
/// `foreign_keys`, `writable_schema`, `user_version` and `application_id`,
/// `load_extension`...); check it with `PRAGMA integrity_check` and
/// `PRAGMA foreign_key_check` (split into pieces run side by side, see
/// [`IntegrityCheck::Full`]) while it is synced; rename it over the
/// database; sync the folder. Any failure leaves the current database as it
/// was.
pub fn restore(
    home: &Home,
    file: &Path,
    options: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, RestoreError> {
    if home.settings()?.database.is_some() {
        return Err(RestoreError::NotOnPostgres {
            path: file.to_path_buf(),
        });
    }
    if let Ok(Some(header)) = files::read_header(file)
        && header.is_postgres()
    {
        return Err(RestoreError::OtherEngine {
            path: file.to_path_buf(),
            dump: header.engine.unwrap_or_default(),
            home: "SQLite",
        });
    }
    // What an interrupted upgrade of several databases left is finished
    // first: a hot journal beside the database must never meet the
    // restored one.
    crate::engine::sqlite::multi::recover(home.root())?;
    let database = home.db_path();
    let dir = database.parent().unwrap_or(Path::new(".")).to_path_buf();
    // With no database to replace (a new machine, a lost disk) and the home
    // folder already there, the build writes nothing but its own temporary
    // file until the checks pass: it runs while the dump is verified, and
    // a dump that does not verify is refused as before, its temporary file
    // removed. Otherwise the dump is verified before anything else.
    let overlap = !database.exists() && home.root().is_dir();
    // Checked first so that nothing is done in vain, and again right before
    // the rename.
    ensure_unused(&database)?;
    let mut early = None;
    if !overlap {
        early = Some(files::verify_with_progress(file, progress)?);
        home.create()?;
    }
    let safety_backup = match &early {
        Some(_) if options.safety_backup && database.exists() => {
            Some(safety_backup(home, &database, options, progress)?)
        }
        _ => None,
    };

    let temp = tempfile::Builder::new()
        .prefix(".db.sqlite3.restoring-")
        .tempfile_in(&dir)
        .map_err(io_err("could not create a temporary database in", &dir))?;
    let temp_path = temp.path().to_path_buf();
    // For the progress bar only: a file that cannot be read is reported by
    // the verification.
    let file_size = std::fs::metadata(file).map_or(0, |m| m.len());
    let (checked, built) = match early {
        Some(checked) => (
            checked,
            build(&temp_path, file, file_size, options, progress),
        ),
        None => {
            let (verified, built) = std::thread::scope(|scope| {
                let verify = scope.spawn(|| files::verify(file));
                let built = build(&temp_path, file, file_size, options, progress);
                let verified = verify
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (verified, built)
            });
            // A dump that does not verify is refused as such, whatever its
            // statements did to the temporary database.
            (verified?, built)
        }
    };
    let Built {
        statements,
        rows,
        row_bytes,
    } = built?;
    let mut warnings = Vec::new();
    if !checked.is_verified() {
        warnings.push(format!(
            "{} has no uplift header or checksum (a dump made by `sqlite3 .dump`?): it cannot be verified, only checked to end with COMMIT",
            file.display()
        ));
    }
    // The file is complete: its sync (a write of the whole database when
    // it was built without syncs) runs while the check reads it.
    let (checked_version, synced) = std::thread::scope(|scope| {
        let sync = scope.spawn(|| temp.as_file().sync_all());
        let checked = check::check(&temp_path, file, options.check, &row_bytes, progress);
        let synced = sync
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
        (checked, synced)
    });
    let data_version = checked_version?;
    synced.map_err(io_err("could not sync", &temp_path))?;

    if let (Some(header), Some(restored)) = (&checked.header, &data_version)
        && header.data_version.as_deref() != Some(restored.as_str())
    {
        warnings.push(format!(
            "the dump's header records data version {} but its data says {restored}",
            header.data_version.as_deref().unwrap_or("none")
        ));
    }

    // The restored database keeps the journal mode of the original (WAL is
    // recorded in the file itself), and the owner and mode of the file it
    // replaces, or of the home for a new one: the application's service
    // user must still be able to open it.
    let journal_mode = checked
        .header
        .as_ref()
        .and_then(|h| h.journal_mode.clone())
        .or_else(|| current_journal_mode(&database));
    if journal_mode.as_deref() == Some("wal") {
        set_wal_mode(&temp_path)?;
    }
    let owner = match crate::disk::Owner::of(&database) {
        Ok(owner) => owner,
        Err(_) => crate::disk::Owner::for_new_file_in(&dir)
            .map_err(io_err("could not read the owner of", &dir))?,
    };
    owner.apply(&temp_path).map_err(io_err(
        "could not give the restored database the owner and mode of",
        &database,
    ))?;

    // Nobody may have the database open while it is replaced: whatever they
    // wrote afterwards would go to the file renamed away, and be lost.
    ensure_unused(&database)?;
    let set_aside = crate::disk::clear_leftovers(&database).map_err(io_err(
        "could not move aside the journal files beside",
        &database,
    ))?;
    for moved in &set_aside {
        warnings.push(format!(
            "{} was left beside the database (by a process that stopped before finishing); it was moved to {}",
            moved.from.display(),
            moved.to.display()
        ));
    }
    temp.persist(&database)
        .map_err(|e| io_err("could not rename the restored database over", &database)(e.error))?;
    // The restore has happened: a folder that cannot be synced now does not
    // undo it, but a power cut before the system writes the folder could.
    if let Err(e) = sync_dir(&dir) {
        warnings.push(format!(
            "the restored database is in place, but {}: until the system writes the folder out, \
             a power cut could bring the old database back (run `sync`)",
            chain_text(&e)
        ));
    }

    Ok(RestoreReport {
        source: file.to_path_buf(),
        database,
        header: checked.header,
        verified: checked.sha256.is_some(),
        safety_backup,
        data_version,
        statements,
        rows,
        warnings,
    })
}

/// Backs up the database about to be replaced (kind `pre-restore`).
fn safety_backup(
    home: &Home,
    database: &Path,
    options: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<BackupFile, RestoreError> {
    let backup = (|| {
        // One thread uses the connection: no need for SQLite's per-call
        // mutex, which costs a dump of many rows dearly.
        let conn = Connection::open_with_flags(
            database,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| BackupError::Sqlite {
            what: "open".into(),
            source: source.into(),
        })?;
        let mut backup_options = BackupOptions::new(BackupKind::PreRestore);
        backup_options.compress = options.compress_safety_backup;
        super::dump::write_backup(
            &conn,
            &home.backups_dir(),
            &backup_options,
            super::dump::OpenTransaction::MayHaveWritten,
            progress,
        )
    })();
    backup.map_err(|cause| RestoreError::SafetyBackup {
        database: database.to_path_buf(),
        cause,
    })
}

/// Refuses to replace a database another process uses: one holding
/// SQLite's lock on it (any process, even on another host sharing the
/// file), or one that merely has it open (`/proc`, see
/// [`crate::disk::processes_using`]; a connection in rollback-journal mode
/// holds no lock between transactions, and one in WAL mode that has only
/// read leaves nothing on disk). A process that opens the database in the
/// instant between this check and the rename is not seen; an application
/// started with `uplift run` holds the home's lock for its whole life, so
/// the restore never starts beside it.
fn ensure_unused(database: &Path) -> Result<(), RestoreError> {
    let in_use = |evidence: String| RestoreError::InUse {
        database: database.to_path_buf(),
        evidence,
    };
    let holders = crate::disk::processes_using(&crate::disk::database_files(database));
    if !holders.is_empty() {
        let list: Vec<String> = holders.iter().map(ToString::to_string).collect();
        return Err(in_use(list.join("; ")));
    }
    if database.exists() {
        let conn = Connection::open_with_flags(
            database,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| in_use(format!("it could not be opened to check its lock: {e}")))?;
        // EXCLUSIVE locking mode takes the database file's own exclusive
        // lock even in WAL mode, which any other connection's lock blocks.
        conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; ROLLBACK;")
            .map_err(|e| in_use(format!("another connection holds SQLite's lock on it: {e}")))?;
        conn.close().map_err(|(_, e)| {
            in_use(format!(
                "it could not be closed after checking its lock: {e}"
            ))
        })?;
    }
    Ok(())
}

/// The journal mode recorded in a database file's header: `wal` when bytes
/// 18 and 19 (the read and write format versions) say 2; `None` otherwise
/// or when it cannot be read.
fn current_journal_mode(database: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(database)
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()?;
    (head[18] == 2 && head[19] == 2).then(|| "wal".to_string())
}

/// Puts the (closed, checked) database at `path` into WAL mode, durably.
fn set_wal_mode(path: &Path) -> Result<(), RestoreError> {
    let build_err = |cause: rusqlite::Error| RestoreError::Build {
        path: path.to_path_buf(),
        cause: cause.into(),
    };
    let conn = Connection::open(path).map_err(build_err)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .map_err(build_err)?;
    // Closing checkpoints and removes the -wal and -shm it made.
    conn.close().map_err(|(_, e)| build_err(e))?;
    Ok(())
}

/// A literal's value, bound without copying.
struct Bound<'a>(ValueRef<'a>);

impl ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(self.0))
    }
}

/// Pragmas a dump may use.
const ALLOWED_PRAGMAS: [&str; 4] = [
    "foreign_keys",
    "writable_schema",
    "user_version",
    "application_id",
];
/// Functions a dump may never call.
const DENIED_FUNCTIONS: [&str; 6] = [
    "load_extension",
    "fts3_tokenizer",
    "readfile",
    "writefile",
    "edit",
    "sqlite_dbpage",
];
/// Virtual-table modules a dump may create directly.
const ALLOWED_MODULES: [&str; 6] = ["fts3", "fts4", "fts5", "rtree", "rtree_i32", "geopoly"];

/// What the statement being run is, for the authorizer: SQLite reports its
/// own bookkeeping (the `sqlite_schema` rows a `CREATE` writes, the
/// `sqlite_stat1` rows `ANALYZE` replaces) as ordinary writes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Running {
    /// Anything else.
    Other = 0,
    /// A `CREATE` statement.
    Create = 1,
    /// `ANALYZE`.
    Analyze = 2,
    /// A checked `INSERT INTO sqlite_schema` declaring a virtual table.
    SchemaInsert = 3,
    /// `DROP TABLE IF EXISTS sqlite_stat4`, which a dump of a database
    /// without that table writes after `ANALYZE` (which creates it).
    DropStat4 = 4,
}

/// Whether `stmt` is exactly `DROP TABLE IF EXISTS sqlite_stat4` (any case
/// and spacing, an optional `;`).
fn is_stat4_drop(stmt: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stmt);
    let words: Vec<String> = text
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    words == ["drop", "table", "if", "exists", "sqlite_stat4"]
}

/// The restore's authorizer: what SQL from a dump may do. Returns why an
/// action is refused.
fn judge(action: &AuthAction<'_>, running: u8) -> Option<String> {
    // CREATE writes its schema row; ANALYZE creates sqlite_stat1.
    let create = running == Running::Create as u8 || running == Running::Analyze as u8;
    match action {
        AuthAction::Attach { .. } => Some("attaches another database".into()),
        AuthAction::Detach { .. } => Some("detaches a database".into()),
        AuthAction::Pragma { pragma_name, .. } => (!ALLOWED_PRAGMAS.iter().any(|p| pragma_name.eq_ignore_ascii_case(p)))
            .then(|| format!("uses PRAGMA {pragma_name}, which a dump never needs")),
        AuthAction::Function { function_name } => DENIED_FUNCTIONS
            .iter()
            .any(|f| function_name.eq_ignore_ascii_case(f))
            .then(|| format!("calls {function_name}()")),
        AuthAction::Insert { table_name } if is_schema_table(table_name) => {
            (!create && running != Running::SchemaInsert as u8)
                .then(|| format!("writes {table_name} other than to declare a virtual table"))
        }
        AuthAction::Update { table_name, .. } | AuthAction::Delete { table_name } if is_schema_table(table_name) => {
            (!create && running != Running::DropStat4 as u8).then(|| format!("changes {table_name}"))
        }
        AuthAction::DropTable { table_name } => (running != Running::DropStat4 as u8
            || !table_name.eq_ignore_ascii_case("sqlite_stat4"))
        .then(|| format!("drops table {table_name}")),
        AuthAction::Insert { .. } => None,
        AuthAction::Delete { table_name } => {
            let allowed = table_name.eq_ignore_ascii_case("sqlite_sequence")
                || (running == Running::Analyze as u8 && table_name.to_ascii_lowercase().starts_with("sqlite_stat"))
                // Dropping a table also clears its rows in the statistics
                // tables.
                || (running == Running::DropStat4 as u8 && table_name.to_ascii_lowercase().starts_with("sqlite_stat"));
            (!allowed).then(|| format!("deletes from {table_name}"))
        }
        AuthAction::Update { table_name, .. } => Some(format!("updates {table_name}")),
        AuthAction::CreateVtable { module_name, .. } => (!ALLOWED_MODULES.iter().any(|m| module_name.eq_ignore_ascii_case(m)))
            .then(|| format!("creates a virtual table using module {module_name}")),
        AuthAction::CreateIndex { .. }
        | AuthAction::CreateTable { .. }
        | AuthAction::CreateTrigger { .. }
        | AuthAction::CreateView { .. }
        | AuthAction::Read { .. }
        | AuthAction::Select
        | AuthAction::Recursive
        | AuthAction::Analyze { .. }
        // CREATE INDEX reports itself as a reindex too; a REINDEX
        // statement is refused before it reaches SQLite.
        | AuthAction::Reindex { .. } => None,
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. } => Some("creates a temporary object".into()),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Some("manages transactions".into()),
        other => Some(format!("does something a dump never needs ({other:?})")),
    }
}

fn excerpt(stmt: &[u8]) -> String {
    let text = String::from_utf8_lossy(&stmt[..stmt.len().min(120)]);
    let mut text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if stmt.len() > 120 {
        text.push_str("...");
    }
    text
}

/// The first word of a statement, upper-cased into `out` (which is
/// reused from statement to statement: this runs once per row).
fn first_keyword<'a>(stmt: &[u8], out: &'a mut String) -> &'a str {
    out.clear();
    for &c in stmt.iter().take_while(|c| c.is_ascii_alphabetic()).take(16) {
        out.push(c.to_ascii_uppercase() as char);
    }
    out.as_str()
}

/// Whether `stmt` is one of the transaction statements a dump wraps itself
/// in (`BEGIN TRANSACTION;`, `COMMIT;`...), which the restore replaces by
/// its own.
fn is_plain_transaction(stmt: &[u8]) -> bool {
    let words: Vec<String> = String::from_utf8_lossy(stmt)
        .trim_end_matches(';')
        .split_ascii_whitespace()
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    matches!(
        words.as_slice(),
        ["BEGIN"]
            | ["BEGIN", "TRANSACTION"]
            | ["BEGIN", "DEFERRED" | "IMMEDIATE" | "EXCLUSIVE"]
            | [
                "BEGIN",
                "DEFERRED" | "IMMEDIATE" | "EXCLUSIVE",
                "TRANSACTION"
            ]
            | ["COMMIT"]
            | ["COMMIT", "TRANSACTION"]
            | ["END"]
            | ["END", "TRANSACTION"]
    )
}

/// What building the restored database did.
struct Built {
    /// Statements run.
    statements: u64,
    /// Rows inserted.
    rows: u64,
    /// Bytes of `INSERT` text run into each table (by the fast path).
    row_bytes: RowBytes,
}

/// Runs the dump's statements into a new database at `target`.
fn build(
    target: &Path,
    dump: &Path,
    file_size: u64,
    options: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<Built, RestoreError> {
    let build_err = |cause: rusqlite::Error| RestoreError::Build {
        path: target.to_path_buf(),
        cause: cause.into(),
    };
    let conn = Connection::open(target).map_err(build_err)?;
    // The file is temporary until checked and renamed: no journal, no
    // syncs (one sync of the finished file instead).
    conn.pragma_update(None, "journal_mode", "OFF")
        .map_err(build_err)?;
    // An 8 MB page cache; two sorter threads build the indexes, each in
    // cache-sized runs, so memory does not grow with the database.
    conn.execute_batch(
        "PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE; PRAGMA cache_size=-8192;
         PRAGMA threads=2; PRAGMA foreign_keys=OFF; PRAGMA temp_store=FILE; BEGIN;",
    )
    .map_err(build_err)?;

    let running = Arc::new(AtomicU8::new(Running::Other as u8));
    let refusal: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    {
        let running = running.clone();
        let refusal = refusal.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if ctx.database_name.is_some_and(|db| db != "main")
                && !matches!(ctx.action, AuthAction::Pragma { .. })
            {
                if let Ok(mut r) = refusal.lock() {
                    *r = Some(format!(
                        "touches database {:?}",
                        ctx.database_name.unwrap_or_default()
                    ));
                }
                return Authorization::Deny;
            }
            match judge(&ctx.action, running.load(Ordering::Relaxed)) {
                None => Authorization::Allow,
                Some(reason) => {
                    if let Ok(mut r) = refusal.lock() {
                        *r = Some(reason);
                    }
                    Authorization::Deny
                }
            }
        }));
    }
    // A dump is data: restoring it takes work in proportion to its text.
    // A statement that computes without end (a recursive query, a table
    // joined with itself many times) is stopped once the restore has run
    // more SQLite instructions than WORK_PER_BYTE for each byte of the
    // statements read so far (and WORK_FLOOR): hundreds of times what
    // creating, filling, indexing and analysing its tables takes (a few
    // instructions a byte).
    let text_read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let text_read = text_read.clone();
        let refusal = refusal.clone();
        let mut work = 0u64;
        conn.progress_handler(
            WORK_STEP as i32,
            Some(move || {
                work += WORK_STEP;
                let budget = text_read
                    .load(Ordering::Relaxed)
                    .saturating_mul(WORK_PER_BYTE)
                    .saturating_add(WORK_FLOOR);
                let over = work > budget;
                if over && let Ok(mut r) = refusal.lock() {
                    *r = Some(
                        "does more work than a dump of its size can need (a query without end?)"
                            .into(),
                    );
                }
                over
            }),
        );
    }

    let reader = files::open_dump(dump)?;
    let consumed = reader.consumed.clone();
    let compressed = reader.compressed;
    let statements_reader = StatementReader::new(
        BufReader::with_capacity(1 << 20, reader.text),
        options.max_statement_bytes,
    );
    progress.begin("restoring", Some(file_size), ProgressUnit::Bytes);

    let path = dump.to_path_buf();
    let refused = |line: u64, reason: String, stmt: &[u8]| RestoreError::Refused {
        path: path.clone(),
        line,
        reason,
        excerpt: excerpt(stmt),
    };
    let take_refusal = || refusal.lock().ok().and_then(|mut r| r.take());
    // A failed statement: the authorizer's reason when it refused it, else
    // SQLite's error.
    let failed = |line: u64, stmt: &[u8], source: rusqlite::Error| match take_refusal() {
        Some(reason) => refused(line, reason, stmt),
        None => RestoreError::Statement {
            path: path.clone(),
            line,
            excerpt: excerpt(stmt),
            cause: source.into(),
        },
    };
    let split_err = |e: SplitError| match e {
        SplitError::Io(e) => match files::read_failure(dump, compressed, e) {
            BackupFileError::Io(e) => RestoreError::Io(e),
            other => RestoreError::Verify(other),
        },
        other => RestoreError::Split {
            path: dump.to_path_buf(),
            cause: other,
        },
    };

    let mut inserter = Inserter::default();
    let mut keyword_buf = String::new();
    let mut statements = 0u64;
    let mut rows = 0u64;

    // Reading, splitting and parsing run in a second thread, a batch of
    // statements ahead of SQLite.
    std::thread::scope(|scope| -> Result<(), RestoreError> {
        let (tx, rx) = mpsc::sync_channel::<Result<Batch, SplitError>>(2);
        let (free_tx, free_rx) = mpsc::channel::<Batch>();
        scope.spawn(move || parse_statements(statements_reader, tx, free_rx));
        for message in rx.iter() {
            let batch = message.map_err(split_err)?;
            for item in &batch.items {
                let stmt = &batch.text[item.text.0..item.text.1];
                let line = item.line;
                statements += 1;
                text_read.fetch_add(stmt.len() as u64, Ordering::Relaxed);
                if statements.is_multiple_of(4096) {
                    progress.update(consumed.load(Ordering::Relaxed), rows);
                }
                let keyword = first_keyword(stmt, &mut keyword_buf);
                match keyword {
                    "INSERT" => {
                        if let Some(parsed) = &item.insert {
                            let values = &batch.values[parsed.values.0..parsed.values.1];
                            let scratch = &batch.scratch[parsed.scratch.0..parsed.scratch.1];
                            rows += inserter
                                .insert(&conn, stmt, &parsed.insert, values, scratch, &running)
                                .map_err(|e| match e {
                                    InsertError::Refused(reason) => refused(line, reason, stmt),
                                    InsertError::Sqlite(source) => failed(line, stmt, source),
                                })?;
                            continue;
                        }
                    }
                    "CREATE" | "DELETE" | "PRAGMA" | "ANALYZE" => {}
                    "DROP" if is_stat4_drop(stmt) => {}
                    "BEGIN" | "COMMIT" | "END" if is_plain_transaction(stmt) => continue,
                    "ROLLBACK" => {
                        return Err(RestoreError::RolledBack {
                            path: dump.to_path_buf(),
                            line,
                        });
                    }
                    _ => {
                        let what = if keyword.is_empty() {
                            "a statement"
                        } else {
                            keyword
                        };
                        return Err(refused(
                            line,
                            format!("is {what}, which a dump never needs"),
                            stmt,
                        ));
                    }
                }
                // Everything else goes to SQLite as written, under the
                // authorizer.
                let text = std::str::from_utf8(stmt)
                    .map_err(|_| refused(line, "is not valid UTF-8".into(), stmt))?;
                let kind = match keyword {
                    "CREATE" => Running::Create,
                    "ANALYZE" => Running::Analyze,
                    "DROP" => Running::DropStat4,
                    _ => Running::Other,
                };
                running.store(kind as u8, Ordering::Relaxed);
                let result = conn.execute_batch(text);
                running.store(Running::Other as u8, Ordering::Relaxed);
                result.map_err(|source| failed(line, stmt, source))?;
                if keyword == "INSERT" {
                    rows += conn.changes();
                }
            }
            let _ = free_tx.send(batch);
        }
        Ok(())
    })?;
    let row_bytes = inserter.finish();
    progress.update(consumed.load(Ordering::Relaxed), rows);
    progress.end();
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    conn.progress_handler(0, None::<fn() -> bool>);
    conn.execute_batch("PRAGMA writable_schema=OFF; COMMIT;")
        .map_err(build_err)?;
    conn.close().map_err(|(_, source)| build_err(source))?;
    Ok(Built {
        statements,
        rows,
        row_bytes,
    })
}

/// The fast path for the `INSERT`s the parser understood: a statement
/// prepared for their head (`INSERT INTO t(columns)` and the number of
/// values a row), kept while the statements that follow share it, and each
/// row's values bound to it.
#[derive(Default)]
struct Inserter<'c> {
    current: Option<(Vec<u8>, usize, rusqlite::Statement<'c>)>,
    sql: String,
    /// The bytes of text inserted into each table so far.
    row_bytes: RowBytes,
}

/// Why the fast path did not insert a statement's rows.
enum InsertError {
    /// The statement is not one a dump may hold.
    Refused(String),
    /// SQLite failed (or its authorizer refused).
    Sqlite(rusqlite::Error),
}

impl<'c> Inserter<'c> {
    /// Inserts the rows of `stmt`, parsed as `parsed` into `values` and
    /// `scratch`; returns how many.
    fn insert(
        &mut self,
        conn: &'c Connection,
        stmt: &[u8],
        parsed: &ParsedInsert,
        values: &[Literal],
        scratch: &[u8],
        running: &AtomicU8,
    ) -> Result<u64, InsertError> {
        let head = &stmt[..parsed.head_end];
        let target = &stmt[parsed.target.0..parsed.target.1];
        let per_row = parsed.per_row;
        *self.row_bytes.entry(unquote(target)).or_default() += stmt.len() as u64;
        // The statement prepared for the previous head serves as long as
        // the head is the same (it never is for sqlite_schema: see below).
        let same = self
            .current
            .as_ref()
            .is_some_and(|(h, n, _)| h.as_slice() == head && *n == per_row);
        let to_schema = !same && is_schema_table(unquote(target).as_str());
        if to_schema {
            check_schema_insert(stmt, head, values, scratch).map_err(InsertError::Refused)?;
            running.store(Running::SchemaInsert as u8, Ordering::Relaxed);
        }
        if !same {
            self.prepare(conn, head, per_row)?;
        }
        let (_, _, prepared) = self.current.as_mut().expect("prepared above");
        let bytes = |b: Bytes| match b {
            Bytes::Stmt(a, e) => &stmt[a..e],
            Bytes::Scratch(a, e) => &scratch[a..e],
        };
        let result = values.chunks_exact(per_row).try_for_each(|row| {
            for (i, value) in row.iter().enumerate() {
                let v = match *value {
                    Literal::Null => ValueRef::Null,
                    Literal::Integer(n) => ValueRef::Integer(n),
                    Literal::Real(f) => ValueRef::Real(f),
                    Literal::Text(b) => ValueRef::Text(bytes(b)),
                    Literal::Blob(b) => ValueRef::Blob(bytes(b)),
                };
                prepared.raw_bind_parameter(i + 1, Bound(v))?;
            }
            prepared.raw_execute().map(drop)
        });
        if to_schema {
            running.store(Running::Other as u8, Ordering::Relaxed);
            self.current = None;
        }
        result.map_err(InsertError::Sqlite)?;
        Ok((values.len() / per_row) as u64)
    }

    /// Ends the fast path (its statement is finalized): the bytes of text
    /// inserted into each table.
    fn finish(self) -> RowBytes {
        self.row_bytes
    }

    /// Prepares `head VALUES(?,...)` with `per_row` parameters.
    fn prepare(
        &mut self,
        conn: &'c Connection,
        head: &[u8],
        per_row: usize,
    ) -> Result<(), InsertError> {
        drop(self.current.take());
        let head_text = std::str::from_utf8(head).map_err(|_| {
            InsertError::Refused("names its table in text that is not UTF-8".into())
        })?;
        self.sql.clear();
        self.sql.push_str(head_text);
        self.sql.push_str(" VALUES(");
        for i in 0..per_row {
            self.sql.push_str(if i == 0 { "?" } else { ",?" });
        }
        self.sql.push(')');
        let prepared = conn.prepare(&self.sql).map_err(InsertError::Sqlite)?;
        self.current = Some((head.to_vec(), per_row, prepared));
        Ok(())
    }
}

/// SQLite instructions between two looks at the restore's work.
const WORK_STEP: u64 = 10_000;
/// SQLite instructions a restore may run for each byte of its statements.
const WORK_PER_BYTE: u64 = 1_000;
/// SQLite instructions any restore may run (about a second's work).
const WORK_FLOOR: u64 = 100_000_000;

/// Statements read and parsed ahead of SQLite.
#[derive(Default)]
struct Batch {
    /// The statements' text, one after the other.
    text: Vec<u8>,
    /// Bytes the parser unescaped or decoded, for all statements.
    scratch: Vec<u8>,
    /// Literal values, for all statements.
    values: Vec<Literal>,
    items: Vec<BatchItem>,
}

/// One statement of a [`Batch`].
struct BatchItem {
    /// The line it starts on.
    line: u64,
    /// Its text: a range of `Batch::text`.
    text: (usize, usize),
    /// Its values, when it is an `INSERT` the parser understood.
    insert: Option<BatchInsert>,
}

struct BatchInsert {
    insert: ParsedInsert,
    /// A range of `Batch::values`.
    values: (usize, usize),
    /// A range of `Batch::scratch`, which the values' scratch offsets are
    /// relative to.
    scratch: (usize, usize),
}

/// Bytes of statement text per batch (a few batches are alive at once:
/// small enough to keep memory down, large enough that handing them over
/// costs nothing).
const BATCH_BYTES: usize = 256 << 10;

/// The parsing thread: splits the dump into statements, parses the
/// `INSERT`s and sends them in batches; stops at the end, at an error
/// (which it sends) or when the receiver is gone.
fn parse_statements<R: std::io::BufRead>(
    mut reader: StatementReader<R>,
    tx: SyncSender<Result<Batch, SplitError>>,
    free: Receiver<Batch>,
) {
    let mut values = Vec::new();
    let mut scratch = Vec::new();
    let mut keyword = String::new();
    let mut batch = Batch::default();
    loop {
        let (line, stmt) = match reader.next_statement() {
            Ok(Some(next)) => next,
            Ok(None) => {
                if !batch.items.is_empty() {
                    let _ = tx.send(Ok(batch));
                }
                return;
            }
            Err(e) => {
                if !batch.items.is_empty() && tx.send(Ok(batch)).is_err() {
                    return;
                }
                let _ = tx.send(Err(e));
                return;
            }
        };
        let start = batch.text.len();
        batch.text.extend_from_slice(stmt);
        let insert = if first_keyword(stmt, &mut keyword) == "INSERT" {
            parse_insert(stmt, &mut values, &mut scratch).map(|insert| {
                let v = batch.values.len();
                batch.values.extend_from_slice(&values);
                let s = batch.scratch.len();
                batch.scratch.extend_from_slice(&scratch);
                BatchInsert {
                    insert,
                    values: (v, batch.values.len()),
                    scratch: (s, batch.scratch.len()),
                }
            })
        } else {
            None
        };
        batch.items.push(BatchItem {
            line,
            text: (start, batch.text.len()),
            insert,
        });
        if batch.text.len() + batch.scratch.len() >= BATCH_BYTES {
            let mut next = free.try_recv().unwrap_or_default();
            next.text.clear();
            next.scratch.clear();
            next.values.clear();
            next.items.clear();
            if tx.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
                return;
            }
        }
    }
}

/// The text of an identifier without its quotes.
fn unquote(ident: &[u8]) -> String {
    let text = String::from_utf8_lossy(ident);
    match text.as_bytes().first() {
        Some(q @ (b'"' | b'`')) if text.len() >= 2 => {
            let q = *q as char;
            text[1..text.len() - 1].replace(&format!("{q}{q}"), &q.to_string())
        }
        Some(b'[') if text.len() >= 2 => text[1..text.len() - 1].to_string(),
        _ => text.into_owned(),
    }
}

/// A write to `sqlite_schema` is allowed only in the form sqlite3's `.dump`
/// and uplift use to declare a virtual table: the five columns in order,
/// type `table`, the same name and table name, root page 0 and
/// `CREATE VIRTUAL TABLE` text.
fn check_schema_insert(
    stmt: &[u8],
    head: &[u8],
    values: &[Literal],
    scratch: &[u8],
) -> Result<(), String> {
    let refusal = || "writes sqlite_schema other than to declare a virtual table".to_string();
    let head: String = String::from_utf8_lossy(head)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '"')
        .collect::<String>()
        .to_ascii_lowercase();
    let columns = head.split_once('(').map(|(_, c)| c.trim_end_matches(')'));
    if columns != Some("type,name,tbl_name,rootpage,sql") {
        return Err(refusal());
    }
    let text = |v: &Literal| -> Option<Vec<u8>> {
        match *v {
            Literal::Text(Bytes::Scratch(a, e)) => Some(scratch[a..e].to_vec()),
            Literal::Text(Bytes::Stmt(a, e)) => Some(stmt[a..e].to_vec()),
            _ => None,
        }
    };
    let [kind, name, tbl, root, sql] = values else {
        return Err(refusal());
    };
    let (Some(kind), Some(name), Some(tbl), Some(sql)) =
        (text(kind), text(name), text(tbl), text(sql))
    else {
        return Err(refusal());
    };
    let virtual_sql = sql
        .get(..20)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"CREATE VIRTUAL TABLE"));
    if kind != b"table" || name != tbl || *root != Literal::Integer(0) || !virtual_sql {
        return Err(refusal());
    }
    Ok(())
}

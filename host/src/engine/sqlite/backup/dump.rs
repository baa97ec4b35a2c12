//! The dump writer: one consistent read snapshot of a database turned into
//! SQL text (see the format in the [module documentation](super)), written
//! atomically — temporary file in the destination folder, fsync, rename
//! without overwriting, fsync of the folder.
//!
//! The text is, in order: uplift's header, `BEGIN TRANSACTION`, every
//! table's `CREATE TABLE`, each table's rows ([`super::rows`]) followed by
//! its indexes, the virtual tables, statistics and AUTOINCREMENT counters,
//! the triggers and views, the two header pragmas, `COMMIT`, and the
//! checksum trailer. When
//! a second connection can read the same snapshot
//! ([`super::snapshot::second_reader`]), two threads dump the tables, the
//! largest first, each table whole by one of them; their statements reach
//! the file in whole chunks, interleaved.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;

use super::direct::{self, DumpFile};
use super::literal::push_text;
use super::rows::{TablePlan, Tally, dump_rows};
use super::snapshot::{Hold, Snapshot, second_reader};
use super::sql_err;
use super::writer::{self, Finished, Out, Sink};
use crate::backup::error::{BackupError, BackupFileError};
use crate::backup::files::{self, DumpHeader, TRAILER_PREFIX};
use crate::backup::{BackupFile, BackupOptions};
use crate::backup::{FORMAT_VERSION, Progress, ProgressUnit, io_err, sync_dir};
use crate::engine::sqlite::meta;
use crate::engine::sqlite::sql::quote_ident;

/// Dumps the database at `database` into a new file in `dir` (created if
/// missing) and returns it: `uplift dbbackup`. The database is only read,
/// in one snapshot, so the application may go on using it meanwhile.
pub fn back_up_file(
    database: &Path,
    dir: &Path,
    options: &BackupOptions,
    progress: &mut dyn Progress,
) -> Result<BackupFile, BackupError> {
    let conn = Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| BackupError::Open {
        path: database.to_path_buf(),
        source: source.into(),
    })?;
    write_backup(
        &conn,
        dir,
        options,
        OpenTransaction::MayHaveWritten,
        progress,
    )
}

/// What a caller's transaction, open on the dump's connection, has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenTransaction {
    /// It may have changed the database (or there is none, and the dump
    /// opens its own): the dump reads with a second connection only on a
    /// snapshot of its own.
    MayHaveWritten,
    /// It holds the write lock and has changed nothing yet: no other
    /// connection can commit until it ends, so a second one reads exactly
    /// what it reads.
    Unwritten,
}

/// Dumps the database behind `conn` into a new file in `dir` (created if
/// missing) and returns it.
///
/// The dump is taken from one read snapshot: when `conn` is outside a
/// transaction, this opens a read transaction for the duration of the dump
/// (other connections keep writing in WAL mode; in rollback-journal mode they
/// wait for it), and a second connection may read the same snapshot beside
/// it; inside a caller's transaction it reads that transaction's view, with
/// a second connection too when `open` says the transaction holds the write
/// lock and has changed nothing. The file is written to a temporary file in `dir`, synced,
/// read back and compared (when `options.verify`), renamed to
/// `db-v{data version}_{UTC time}.dump` (`.dump.zst` when compressed; `-2`,
/// `-3`... when the name is taken, never overwriting) and the folder synced.
///
/// Fails on any read or write error (a full disk, a file-size limit), in
/// which case the temporary file is removed and nothing else changed.
pub(crate) fn write_backup(
    conn: &Connection,
    dir: &Path,
    options: &BackupOptions,
    open: OpenTransaction,
    progress: &mut dyn Progress,
) -> Result<BackupFile, BackupError> {
    if crate::disk::create_dir_durably(dir)
        .map_err(io_err("could not create backup folder", dir))?
    {
        // A backups folder made by root in a service user's home stays the
        // service user's.
        crate::disk::hand_to_home_owner(crate::disk::parent_of(dir), dir)
            .map_err(io_err("could not give its folder's owner", dir))?;
    }
    let snapshot = Snapshot::begin(conn)?;
    let hold = match (snapshot.is_own(), open) {
        (true, _) => Some(Hold::Read),
        (false, OpenTransaction::Unwritten) => Some(Hold::UnwrittenWrite),
        (false, OpenTransaction::MayHaveWritten) => None,
    };
    let result = write_in_snapshot(conn, hold, dir, options, progress);
    snapshot.end(conn, result)
}

/// One object of the schema, as `sqlite_schema` lists it.
struct SchemaEntry {
    kind: String,
    name: String,
    /// The table it belongs to (its own name for a table).
    table: String,
    sql: Option<String>,
}

impl SchemaEntry {
    /// Whether this is an index of a plain table, written right after the
    /// table's rows.
    fn indexes_plain_table(&self, schema: &[SchemaEntry]) -> bool {
        self.kind == "index"
            && self.sql.is_some()
            && schema
                .iter()
                .any(|t| t.name == self.table && is_plain_table(t))
    }
}

/// A table to dump, how many rows it has, and its indexes.
struct Job {
    plan: TablePlan,
    rows: u64,
    /// Each index's `CREATE INDEX` statement, written right after the
    /// rows: the restore builds it while the table is still in its cache.
    indexes: Vec<String>,
}

impl Job {
    /// About how much text the table makes, to dump the largest first.
    fn weight(&self) -> u64 {
        self.rows.saturating_mul(self.plan.values_per_row() as u64)
    }
}

/// What the header records and the dump reads, before any row.
struct Prepared {
    header: DumpHeader,
    schema: Vec<SchemaEntry>,
    /// Every plain table, the largest first.
    jobs: Vec<Job>,
    total_rows: u64,
}

/// Reads the header's facts, the schema and how to dump each table.
fn prepare(
    conn: &Connection,
    dir: &Path,
    options: &BackupOptions,
) -> Result<Prepared, BackupError> {
    let data_version = match &options.data_version {
        Some(v) => Some(v.clone()),
        None => meta::data_version(conn)?.map(|v| v.to_string()),
    };
    let app = match &options.app {
        Some(a) => Some(a.clone()),
        None => meta::app_name(conn)?,
    };
    let header = DumpHeader {
        format: FORMAT_VERSION,
        app,
        data_version,
        kind: options.kind,
        created: jiff::Timestamp::now(),
        sqlite_version: rusqlite::version().to_string(),
        sequence: Some(files::next_sequence(dir)?),
        journal_mode: Some(match &options.journal_mode {
            Some(mode) => mode.clone(),
            None => current_journal_mode(conn)?,
        }),
        engine: None,
    };
    let schema = read_schema(conn)?;
    let mut jobs = Vec::new();
    for entry in schema.iter().filter(|e| is_plain_table(e)) {
        let sql = format!("SELECT count(*) FROM main.{}", quote_ident(&entry.name));
        let rows: i64 = conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(sql_err(format!("counting rows of {}", entry.name)))?;
        let indexes = schema
            .iter()
            .filter(|e| e.table == entry.name && e.indexes_plain_table(&schema))
            .filter_map(|e| e.sql.clone())
            .collect();
        jobs.push(Job {
            plan: TablePlan::read(conn, &entry.name)?,
            rows: rows.max(0) as u64,
            indexes,
        });
    }
    jobs.sort_by_key(|job| std::cmp::Reverse(job.weight()));
    let total_rows = jobs.iter().map(|job| job.rows).sum();
    Ok(Prepared {
        header,
        schema,
        jobs,
        total_rows,
    })
}

/// The journal mode of `conn`'s main database, in lowercase.
fn current_journal_mode(conn: &Connection) -> Result<String, BackupError> {
    Ok(conn
        .query_row("PRAGMA main.journal_mode", [], |r| r.get::<_, String>(0))
        .map_err(sql_err("read the journal mode"))?
        .to_ascii_lowercase())
}

/// Writes the dump; `hold` says how `conn` holds its snapshot when a
/// second connection may read it too.
fn write_in_snapshot(
    conn: &Connection,
    hold: Option<Hold>,
    dir: &Path,
    options: &BackupOptions,
    progress: &mut dyn Progress,
) -> Result<BackupFile, BackupError> {
    let prepared = prepare(conn, dir, options)?;
    let journal_mode = current_journal_mode(conn)?;
    let helper = hold.and_then(|hold| second_reader(conn, &journal_mode, hold));
    let connections = 1 + usize::from(helper.is_some());

    let temp = tempfile::Builder::new()
        .prefix(".uplift-backup-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err("could not create a temporary file in", dir))?;
    let temp_path = temp.path().to_path_buf();
    let file = temp
        .as_file()
        .try_clone()
        .map_err(io_err("could not open", &temp_path))?;
    let (finished, rows) =
        write_file(conn, helper, &prepared, options, file, &temp_path, progress)?;
    drop(finished.file);

    let size = std::fs::metadata(&temp_path)
        .map_err(io_err("could not read", &temp_path))?
        .len();
    // A backup made by root in a service user's home stays readable by
    // the service user (it is theirs to restore).
    crate::disk::hand_to_home_owner(dir, &temp_path)
        .map_err(io_err("could not give its folder's owner", &temp_path))?;
    let path = files::persist(temp, dir, &prepared.header, options.compress)?;
    sync_dir(dir)?;
    Ok(BackupFile {
        path,
        size,
        text_size: finished.text_size,
        sha256: finished.sha256,
        header: prepared.header,
        rows,
        connections,
    })
}

/// Writes the dump into `file` (the temporary file at `path`), synced and,
/// when `options.verify`, read back; returns it and the number of rows.
///
/// Four threads: the dump's connection and `helper` (if any) read and
/// format the rows; the writer hashes and writes the text; the read-back
/// reads each run back as it is written. The sync and the end of the
/// read-back run side by side.
fn write_file(
    conn: &Connection,
    helper: Option<Connection>,
    prepared: &Prepared,
    options: &BackupOptions,
    file: File,
    path: &Path,
    progress: &mut dyn Progress,
) -> Result<(Finished, u64), BackupError> {
    let (regions, written_regions) = if options.verify {
        let (tx, rx) = mpsc::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let bytes = DumpFile::new(file, path, regions);
    let sink = if options.compress {
        let encoder = zstd::stream::write::Encoder::new(bytes, 3)
            .map_err(io_err("could not compress into", path))?;
        Sink::Zstd(encoder)
    } else {
        Sink::Plain(bytes)
    };
    let connections = 1 + usize::from(helper.is_some());
    let (outs, chunks) = writer::channel(connections, path);
    std::thread::scope(|scope| {
        let reader = written_regions.map(|rx| scope.spawn(move || direct::read_back(path, rx)));
        let writer = scope.spawn(|| writer::write_chunks(chunks, sink, path));
        let rows = generate(conn, helper, prepared, outs, progress);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // A failed read stops the writer too: its error is the one to
        // report. Whatever fails, the file's end is dropped on the way out,
        // which ends the read-back.
        let rows = rows?;
        let finished = written?.finish(
            |sha256| {
                let mut trailer = TRAILER_PREFIX.to_vec();
                trailer.extend_from_slice(sha256.as_bytes());
                trailer.push(b'\n');
                trailer
            },
            path,
        )?;
        progress.end();
        let synced = finished.file.sync_all();
        if let Some(reader) = reader {
            let read = reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            verify_read_back(path, read, finished.file_sum)?;
        }
        synced.map_err(io_err("could not sync", path))?;
        Ok((finished, rows))
    })
}

/// Checks that the file read back (`read`: the XXH3-128 of its bytes, or
/// why reading failed) holds exactly the bytes written (`written`).
fn verify_read_back(path: &Path, read: io::Result<u128>, written: u128) -> Result<(), BackupError> {
    let failure = match read {
        Ok(sum) if sum == written => return Ok(()),
        Ok(_) => None,
        Err(e) => Some(BackupFileError::Io(io_err("could not read back", path)(e))),
    };
    Err(BackupError::NotVerified {
        path: path.to_path_buf(),
        failure,
    })
}

/// Writes the whole dump text (header to `COMMIT;`) through `outs` (one
/// for `conn`, one for `helper` when there is one); returns the number of
/// rows.
fn generate(
    conn: &Connection,
    helper: Option<Connection>,
    prepared: &Prepared,
    outs: Vec<Out>,
    progress: &mut dyn Progress,
) -> Result<u64, BackupError> {
    let mut outs = outs.into_iter();
    let mut out = outs.next().expect("one output for the dump's connection");
    progress.begin("dumping", Some(prepared.total_rows), ProgressUnit::Rows);
    prepared.header.write(&mut out.buf);
    out.buf
        .extend_from_slice(b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n");
    // Every table first, so that rows of any table may follow in any order.
    for entry in prepared.schema.iter().filter(|e| is_plain_table(e)) {
        if let Some(sql) = &entry.sql {
            out.buf.extend_from_slice(sql.as_bytes());
            out.buf.extend_from_slice(b";\n");
        }
    }
    out.flush()?;

    let rows = AtomicU64::new(0);
    let queue = Queue::new(&prepared.jobs);
    match (helper, outs.next()) {
        (Some(helper), Some(mut helper_out)) => std::thread::scope(|scope| {
            let (rows, queue) = (&rows, &queue);
            let second = scope
                .spawn(move || queue.work(&helper, &mut helper_out, &mut Tally::new(rows, None)));
            let first = queue.work(conn, &mut out, &mut Tally::new(rows, Some(&mut *progress)));
            let second = second
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            first.and(second)
        })?,
        _ => queue.work(conn, &mut out, &mut Tally::new(&rows, Some(&mut *progress)))?,
    }
    let mut tally = Tally::new(&rows, Some(&mut *progress));
    write_tail(conn, &prepared.schema, &mut out, &mut tally)?;
    tally.report();
    out.flush()?;
    Ok(rows.load(Ordering::Relaxed))
}

/// The tables still to dump, taken one at a time by each connection.
struct Queue<'a> {
    jobs: &'a [Job],
    next: AtomicUsize,
    failed: AtomicBool,
}

impl<'a> Queue<'a> {
    fn new(jobs: &'a [Job]) -> Self {
        Queue {
            jobs,
            next: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        }
    }

    /// Dumps tables with `conn` into `out` until none is left (or the other
    /// connection failed), then hands over what `out` holds.
    fn work(
        &self,
        conn: &Connection,
        out: &mut Out,
        tally: &mut Tally<'_>,
    ) -> Result<(), BackupError> {
        let result = (|| {
            while !self.failed.load(Ordering::Relaxed) {
                let Some(job) = self.jobs.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                dump_rows(conn, &job.plan, out, tally)?;
                for sql in &job.indexes {
                    out.buf.extend_from_slice(sql.as_bytes());
                    out.buf.extend_from_slice(b";\n");
                    out.statement_done()?;
                }
            }
            out.flush()
        })();
        if result.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        result
    }
}

/// Everything after the tables' rows: virtual tables, statistics,
/// AUTOINCREMENT counters, indexes, triggers, views, the header pragmas and
/// `COMMIT`.
fn write_tail(
    conn: &Connection,
    schema: &[SchemaEntry],
    out: &mut Out,
    tally: &mut Tally<'_>,
) -> Result<(), BackupError> {
    let has = |name: &str| schema.iter().any(|e| e.kind == "table" && e.name == name);
    // Virtual tables go in as schema rows, the way sqlite3's .dump does it:
    // their shadow tables (above) already hold their content.
    let virtual_tables: Vec<&SchemaEntry> = schema
        .iter()
        .filter(|e| e.kind == "table" && is_virtual(e))
        .collect();
    if !virtual_tables.is_empty() {
        out.buf.extend_from_slice(b"PRAGMA writable_schema=ON;\n");
        for entry in virtual_tables {
            let sql = entry.sql.as_deref().unwrap_or_default();
            out.buf.extend_from_slice(
                b"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table',",
            );
            push_text(&mut out.buf, entry.name.as_bytes());
            out.buf.push(b',');
            push_text(&mut out.buf, entry.name.as_bytes());
            out.buf.extend_from_slice(b",0,");
            push_text(&mut out.buf, sql.as_bytes());
            out.buf.extend_from_slice(b");\n");
        }
        out.buf.extend_from_slice(b"PRAGMA writable_schema=OFF;\n");
    }
    if has("sqlite_stat1") {
        out.buf.extend_from_slice(b"ANALYZE sqlite_schema;\n");
        let table = TablePlan::internal("sqlite_stat1", &["tbl", "idx", "stat"]);
        dump_rows(conn, &table, out, tally)?;
        if !has("sqlite_stat4") {
            // ANALYZE creates sqlite_stat4 too where SQLite is built with
            // STAT4 (as uplift's is): a database that had none gets none.
            out.buf
                .extend_from_slice(b"DROP TABLE IF EXISTS sqlite_stat4;\n");
        }
    }
    if has("sqlite_sequence") {
        out.buf.extend_from_slice(b"DELETE FROM sqlite_sequence;\n");
        let table = TablePlan::internal("sqlite_sequence", &["name", "seq"]);
        dump_rows(conn, &table, out, tally)?;
    }

    // Triggers and views after the data (triggers do not fire on restored
    // rows), and any index not written after its table's rows.
    for entry in schema {
        if matches!(entry.kind.as_str(), "index" | "trigger" | "view")
            && !entry.name.starts_with("sqlite_")
            && !entry.indexes_plain_table(schema)
            && let Some(sql) = &entry.sql
        {
            out.buf.extend_from_slice(sql.as_bytes());
            out.buf.extend_from_slice(b";\n");
            out.statement_done()?;
        }
    }
    let user_version: i64 = conn
        .query_row("PRAGMA main.user_version", [], |r| r.get(0))
        .map_err(sql_err("user_version"))?;
    let application_id: i64 = conn
        .query_row("PRAGMA main.application_id", [], |r| r.get(0))
        .map_err(sql_err("application_id"))?;
    out.buf.extend_from_slice(
        format!(
            "PRAGMA user_version={user_version};\nPRAGMA application_id={application_id};\nCOMMIT;\n"
        )
        .as_bytes(),
    );
    Ok(())
}

fn read_schema(conn: &Connection) -> Result<Vec<SchemaEntry>, BackupError> {
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM main.sqlite_schema ORDER BY rowid")
        .map_err(sql_err("sqlite_schema"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(SchemaEntry {
                kind: r.get(0)?,
                name: r.get(1)?,
                table: r.get(2)?,
                sql: r.get(3)?,
            })
        })
        .map_err(sql_err("sqlite_schema"))?;
    rows.collect::<Result<_, _>>()
        .map_err(sql_err("sqlite_schema"))
}

fn is_virtual(entry: &SchemaEntry) -> bool {
    entry.sql.as_deref().is_some_and(|sql| {
        sql.get(..20)
            .is_some_and(|start| start.eq_ignore_ascii_case("CREATE VIRTUAL TABLE"))
    })
}

/// An ordinary table whose rows are dumped as they are (not one of SQLite's
/// own, not virtual).
fn is_plain_table(entry: &SchemaEntry) -> bool {
    entry.kind == "table" && !entry.name.starts_with("sqlite_") && !is_virtual(entry)
}

//! The dump writer: one consistent read snapshot of a database turned into
//! SQL text (see the format in the [module documentation](super)), written
//! atomically — temporary file in the destination folder, fsync, rename
//! without overwriting, fsync of the folder.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};

use crate::backup::error::BackupError;
use crate::backup::files::{self, DumpHeader, TRAILER_PREFIX};
use crate::backup::{BackupFile, BackupOptions};
use crate::backup::{FORMAT_VERSION, Progress, ProgressUnit, io_err, sync_dir};
use crate::engine::sqlite::meta;
use crate::engine::sqlite::sql::quote_ident;

/// Bytes of SQL text gathered before they are hashed and written.
const CHUNK: usize = 1 << 20;

/// How often (in rows) progress is reported.
const PROGRESS_EVERY: u64 = 8192;

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
    write_backup(&conn, dir, options, progress)
}

/// Dumps the database behind `conn` into a new file in `dir` (created if
/// missing) and returns it.
///
/// The dump is taken from one read snapshot: when `conn` is outside a
/// transaction, this opens a read transaction for the duration of the dump
/// (other connections keep writing in WAL mode; in rollback-journal mode they
/// wait for it); inside a caller's transaction it reads that transaction's
/// view. The file is written to a temporary file in `dir`, synced, verified
/// (when `options.verify`), renamed to `db-v{data version}_{UTC time}.dump`
/// (`.dump.zst` when compressed; `-2`, `-3`... when the name is taken, never
/// overwriting) and the folder synced.
///
/// Fails on any read or write error (a full disk, a file-size limit), in
/// which case the temporary file is removed and nothing else changed.
pub(crate) fn write_backup(
    conn: &Connection,
    dir: &Path,
    options: &BackupOptions,
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
    let result = write_in_snapshot(conn, dir, options, progress);
    snapshot.end(conn, result)
}

/// A read transaction opened (or not) for the dump.
struct Snapshot {
    opened: bool,
}

impl Snapshot {
    fn begin(conn: &Connection) -> Result<Snapshot, BackupError> {
        let opened = conn.is_autocommit();
        if opened {
            conn.execute_batch("BEGIN DEFERRED")
                .map_err(sql_err("begin a read transaction"))?;
        }
        // The first read fixes the snapshot.
        conn.query_row("SELECT count(*) FROM main.sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(sql_err("sqlite_schema"))?;
        Ok(Snapshot { opened })
    }

    fn end<T>(self, conn: &Connection, result: Result<T, BackupError>) -> Result<T, BackupError> {
        if self.opened {
            let ended = conn
                .execute_batch("ROLLBACK")
                .map_err(sql_err("end the read transaction"));
            let value = result?;
            ended?;
            Ok(value)
        } else {
            result
        }
    }
}

/// One object of the schema, as `sqlite_schema` lists it.
struct SchemaEntry {
    kind: String,
    name: String,
    sql: Option<String>,
}

/// A table's rows to dump: the `SELECT` that reads them and the start of the
/// `INSERT` that writes each.
struct TableDump {
    name: String,
    select: String,
    insert_prefix: Vec<u8>,
    columns: usize,
}

impl TableDump {
    /// One of SQLite's own tables, whose rows the dump restores (statistics,
    /// AUTOINCREMENT counters): `columns` in order.
    fn internal(name: &str, columns: &[&str]) -> TableDump {
        TableDump {
            name: name.into(),
            select: format!("SELECT {} FROM main.{name}", columns.join(", ")),
            insert_prefix: format!("INSERT INTO {name} VALUES(").into_bytes(),
            columns: columns.len(),
        }
    }
}

fn write_in_snapshot(
    conn: &Connection,
    dir: &Path,
    options: &BackupOptions,
    progress: &mut dyn Progress,
) -> Result<BackupFile, BackupError> {
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
        journal_mode: Some(
            conn.query_row("PRAGMA main.journal_mode", [], |r| r.get::<_, String>(0))
                .map_err(sql_err("read the journal mode"))?
                .to_ascii_lowercase(),
        ),
    };

    let schema = read_schema(conn)?;
    let mut tables = Vec::new();
    for entry in &schema {
        if entry.kind == "table" && is_plain_table(entry) {
            tables.push(table_dump(conn, &entry.name)?);
        }
    }
    let mut total_rows = 0u64;
    for table in &tables {
        let sql = format!("SELECT count(*) FROM main.{}", quote_ident(&table.name));
        let n: i64 = conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(sql_err(format!("counting rows of {}", table.name)))?;
        total_rows += n.max(0) as u64;
    }

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
    let sink = if options.compress {
        let encoder = zstd::stream::write::Encoder::new(file, 3)
            .map_err(io_err("could not compress into", &temp_path))?;
        Sink::Zstd(encoder)
    } else {
        Sink::Plain(file)
    };
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(3);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let (rows, sha256, text_size, sink) = std::thread::scope(|scope| {
        // Hashing and writing (and compressing) run beside the SQLite reads.
        let writer = scope.spawn(|| write_chunks(rx, free_tx, sink, &temp_path));
        let mut out = Out {
            buf: Vec::with_capacity(CHUNK + 64 * 1024),
            tx: Some(tx),
            free: free_rx,
            path: temp_path.clone(),
        };
        let generated = generate(
            conn, &schema, &tables, &header, total_rows, &mut out, progress,
        )
        .and_then(|rows| out.flush().map(|()| rows));
        out.tx = None;
        let written = writer.join().unwrap_or_else(|_| {
            Err(io_err("could not write", &temp_path)(io::Error::other(
                "the writer thread panicked",
            ))
            .into())
        });
        let (hasher, mut sink, mut text_size) = written?;
        let rows = generated?;
        let sha256 = files::hex(&hasher.finalize());
        let mut trailer = TRAILER_PREFIX.to_vec();
        trailer.extend_from_slice(sha256.as_bytes());
        trailer.push(b'\n');
        sink.write_all(&trailer)
            .map_err(io_err("could not write", &temp_path))?;
        text_size += trailer.len() as u64;
        Ok::<_, BackupError>((rows, sha256, text_size, sink))
    })?;
    let file = sink
        .finish()
        .map_err(io_err("could not write", &temp_path))?;
    progress.end();

    // The sync (writing the whole file out) and the verification (reading
    // it back and hashing it) run side by side: one waits on the disk, the
    // other on the processor. The file is renamed only after both.
    let (synced, verified) = std::thread::scope(|scope| {
        let sync = scope.spawn(|| file.sync_all());
        let verified = if options.verify {
            verify_written(&temp_path, &sha256, progress)
        } else {
            Ok(())
        };
        let synced = sync
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the sync thread panicked")));
        (synced, verified)
    });
    synced.map_err(io_err("could not sync", &temp_path))?;
    verified?;
    drop(file);

    let size = std::fs::metadata(&temp_path)
        .map_err(io_err("could not read", &temp_path))?
        .len();
    // A backup made by root in a service user's home stays readable by
    // the service user (it is theirs to restore).
    crate::disk::hand_to_home_owner(dir, &temp_path)
        .map_err(io_err("could not give its folder's owner", &temp_path))?;
    let path = persist(temp, dir, &header, options.compress)?;
    sync_dir(dir)?;
    Ok(BackupFile {
        path,
        size,
        text_size,
        sha256,
        header,
        rows,
    })
}

/// Reads the file just written back and checks that its checksum is the
/// one written.
fn verify_written(
    path: &Path,
    sha256: &str,
    progress: &mut dyn Progress,
) -> Result<(), BackupError> {
    let checked =
        files::verify_with_progress(path, progress).map_err(|e| BackupError::NotVerified {
            path: path.to_path_buf(),
            failure: Some(e),
        })?;
    if checked.sha256.as_deref() != Some(sha256) {
        return Err(BackupError::NotVerified {
            path: path.to_path_buf(),
            failure: None,
        });
    }
    Ok(())
}

/// Writes the whole dump text (header to `COMMIT;`) into `out`; returns the
/// number of rows.
fn generate(
    conn: &Connection,
    schema: &[SchemaEntry],
    tables: &[TableDump],
    header: &DumpHeader,
    total_rows: u64,
    out: &mut Out,
    progress: &mut dyn Progress,
) -> Result<u64, BackupError> {
    progress.begin("dumping", Some(total_rows), ProgressUnit::Rows);
    let mut rows = 0u64;
    header.write(&mut out.buf);
    out.buf
        .extend_from_slice(b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n");

    // Tables and their rows, in creation order.
    let mut table_iter = tables.iter();
    let mut virtual_tables = Vec::new();
    let mut sequence = false;
    let mut stat1 = false;
    let mut stat4 = false;
    for entry in schema {
        if entry.kind != "table" {
            continue;
        }
        if entry.name == "sqlite_sequence" {
            sequence = true;
        } else if entry.name == "sqlite_stat1" {
            stat1 = true;
        } else if entry.name == "sqlite_stat4" {
            stat4 = true;
        } else if is_virtual(entry) {
            virtual_tables.push(entry);
        } else if is_plain_table(entry) {
            let table = table_iter
                .next()
                .expect("one TableDump per plain table, in order");
            if let Some(sql) = &entry.sql {
                out.buf.extend_from_slice(sql.as_bytes());
                out.buf.extend_from_slice(b";\n");
            }
            dump_rows(conn, table, out, &mut rows, progress)?;
        }
    }

    // Virtual tables go in as schema rows, the way sqlite3's .dump does it:
    // their shadow tables (above) already hold their content.
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
    if stat1 {
        out.buf.extend_from_slice(b"ANALYZE sqlite_schema;\n");
        let table = TableDump::internal("sqlite_stat1", &["tbl", "idx", "stat"]);
        dump_rows(conn, &table, out, &mut rows, progress)?;
        if !stat4 {
            // ANALYZE creates sqlite_stat4 too where SQLite is built with
            // STAT4 (as uplift's is): a database that had none gets none.
            out.buf
                .extend_from_slice(b"DROP TABLE IF EXISTS sqlite_stat4;\n");
        }
    }
    if sequence {
        out.buf.extend_from_slice(b"DELETE FROM sqlite_sequence;\n");
        let table = TableDump::internal("sqlite_sequence", &["name", "seq"]);
        dump_rows(conn, &table, out, &mut rows, progress)?;
    }

    // Indexes, triggers and views after the data: indexes are built once,
    // triggers do not fire on restored rows.
    for entry in schema {
        if matches!(entry.kind.as_str(), "index" | "trigger" | "view")
            && !entry.name.starts_with("sqlite_")
            && let Some(sql) = &entry.sql
        {
            out.buf.extend_from_slice(sql.as_bytes());
            out.buf.extend_from_slice(b";\n");
            out.maybe_flush()?;
        }
    }
    let user_version: i64 = conn
        .query_row("PRAGMA main.user_version", [], |r| r.get(0))
        .map_err(sql_err("user_version"))?;
    let application_id: i64 = conn
        .query_row("PRAGMA main.application_id", [], |r| r.get(0))
        .map_err(sql_err("application_id"))?;
    write!(
        out.buf,
        "PRAGMA user_version={user_version};\nPRAGMA application_id={application_id};\nCOMMIT;\n"
    )
    .map_err(io_err("could not write", &out.path))?;

    Ok(rows)
}

/// Renames the finished temporary file to the first free name.
fn persist(
    mut temp: tempfile::NamedTempFile,
    dir: &Path,
    header: &DumpHeader,
    compress: bool,
) -> Result<PathBuf, BackupError> {
    let stem = files::file_stem(header.data_version.as_deref(), header.created);
    let ext = if compress { "dump.zst" } else { "dump" };
    for n in 1..10_000u32 {
        let name = if n == 1 {
            format!("{stem}.{ext}")
        } else {
            format!("{stem}-{n}.{ext}")
        };
        let path = dir.join(name);
        match temp.persist_noclobber(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => temp = e.file,
            Err(e) => {
                let temp_path = e.file.path().to_path_buf();
                return Err(io_err("could not rename", &temp_path)(e.error).into());
            }
        }
    }
    Err(BackupError::NoFreeName {
        dir: dir.to_path_buf(),
    })
}

fn read_schema(conn: &Connection) -> Result<Vec<SchemaEntry>, BackupError> {
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM main.sqlite_schema ORDER BY rowid")
        .map_err(sql_err("sqlite_schema"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(SchemaEntry {
                kind: r.get(0)?,
                name: r.get(1)?,
                sql: r.get(2)?,
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

/// Works out how to read and write the rows of one table: which columns
/// (generated ones are left out), and whether the rowid must be written
/// explicitly (a rowid table without an `INTEGER PRIMARY KEY` alias).
fn table_dump(conn: &Connection, name: &str) -> Result<TableDump, BackupError> {
    let qname = quote_ident(name);
    let what = || format!("columns of table {name}");
    let mut columns = Vec::new();
    let mut pk_columns = Vec::new();
    let mut generated = false;
    {
        let mut stmt = conn
            .prepare(&format!("PRAGMA main.table_xinfo({qname})"))
            .map_err(sql_err_with(&what))?;
        let mut rows = stmt.query([]).map_err(sql_err_with(&what))?;
        while let Some(row) = rows.next().map_err(sql_err_with(&what))? {
            let col: String = row.get(1).map_err(sql_err_with(&what))?;
            let pk: i64 = row.get(5).map_err(sql_err_with(&what))?;
            let hidden: i64 = row.get(6).map_err(sql_err_with(&what))?;
            if hidden == 2 || hidden == 3 {
                generated = true;
                continue;
            }
            if pk > 0 {
                pk_columns.push(col.clone());
            }
            columns.push(col);
        }
    }
    let without_rowid: bool = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_err(format!("kind of table {name}")))?
        != 0;
    let mut rowid_name = None;
    let mut aliased = false;
    if !without_rowid {
        aliased = pk_columns.len() == 1 && is_rowid_alias(conn, &qname, &pk_columns[0])?;
        if !aliased {
            rowid_name = ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|r| !columns.iter().any(|c| c.eq_ignore_ascii_case(r)));
        }
    }
    let mut select = String::from("SELECT ");
    let mut list = Vec::new();
    if let Some(r) = rowid_name {
        list.push(r.to_string());
    }
    list.extend(columns.iter().map(|c| quote_ident(c)));
    select.push_str(&list.join(","));
    select.push_str(" FROM main.");
    select.push_str(&qname);
    // Rows in rowid order, so that the restore appends to its b-tree.
    if let Some(r) = rowid_name {
        select.push_str(" ORDER BY ");
        select.push_str(r);
    } else if aliased {
        select.push_str(" ORDER BY ");
        select.push_str(&quote_ident(&pk_columns[0]));
    }
    let mut insert_prefix = b"INSERT INTO ".to_vec();
    insert_prefix.extend_from_slice(qname.as_bytes());
    if rowid_name.is_some() || generated {
        insert_prefix.push(b'(');
        insert_prefix.extend_from_slice(list.join(",").as_bytes());
        insert_prefix.push(b')');
    }
    insert_prefix.extend_from_slice(b" VALUES(");
    Ok(TableDump {
        name: name.to_string(),
        select,
        columns: list.len(),
        insert_prefix,
    })
}

/// Whether `column` of table `qname` is an alias of the rowid. Declared type
/// rules have exceptions (`INTEGER PRIMARY KEY DESC` is not an alias), so ask
/// SQLite: reading an alias compiles to the `Rowid` opcode.
fn is_rowid_alias(conn: &Connection, qname: &str, column: &str) -> Result<bool, BackupError> {
    let sql = format!("EXPLAIN SELECT {} FROM main.{qname}", quote_ident(column));
    let what = || format!("plan for {qname}");
    let mut stmt = conn.prepare(&sql).map_err(sql_err_with(&what))?;
    let mut rows = stmt.query([]).map_err(sql_err_with(&what))?;
    while let Some(row) = rows.next().map_err(sql_err_with(&what))? {
        let opcode: String = row.get(1).map_err(sql_err_with(&what))?;
        if opcode == "Rowid" || opcode == "IdxRowid" {
            return Ok(true);
        }
    }
    Ok(false)
}

fn dump_rows(
    conn: &Connection,
    table: &TableDump,
    out: &mut Out,
    rows_done: &mut u64,
    progress: &mut dyn Progress,
) -> Result<(), BackupError> {
    let what = || format!("rows of table {}", table.name);
    let mut stmt = conn.prepare(&table.select).map_err(sql_err_with(&what))?;
    let mut rows = stmt.query([]).map_err(sql_err_with(&what))?;
    while let Some(row) = rows.next().map_err(sql_err_with(&what))? {
        out.buf.extend_from_slice(&table.insert_prefix);
        for i in 0..table.columns {
            if i > 0 {
                out.buf.push(b',');
            }
            let value = row.get_ref(i).map_err(sql_err_with(&what))?;
            push_value(&mut out.buf, value);
        }
        out.buf.extend_from_slice(b");\n");
        out.maybe_flush()?;
        *rows_done += 1;
        if rows_done.is_multiple_of(PROGRESS_EVERY) {
            progress.update(*rows_done, *rows_done);
        }
    }
    progress.update(*rows_done, *rows_done);
    Ok(())
}

/// Appends one value as an SQL literal that evaluates to exactly it.
pub(crate) fn push_value(buf: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => buf.extend_from_slice(b"NULL"),
        ValueRef::Integer(i) => buf.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        ValueRef::Real(f) => push_real(buf, f),
        ValueRef::Text(t) => push_text(buf, t),
        ValueRef::Blob(b) => push_blob(buf, b),
    }
}

/// Floats as an expression SQLite evaluates to exactly the same bits.
///
/// SQLite's decimal-to-float conversion is not correctly rounded (neither
/// the 3.40 shell's nor the 3.50 library's: `8.09810263174847e+128`, the
/// shortest form of a double, reads back one unit in the last place off).
/// So a float is written as `m.0`, `m` its integer significand, followed by
/// multiplications or divisions by powers of two up to 2^62 written as
/// integers: every step is exact in IEEE arithmetic, whatever the parser.
/// Integral values below 2^53 need no step (`3.0`, `-0.0`); the infinities
/// are `9.0e+999` and `-9.0e+999` as sqlite3's own `.dump` writes them.
pub(crate) fn push_real(buf: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        // SQLite never stores a NaN (it becomes NULL); keep it that way.
        buf.extend_from_slice(b"NULL");
        return;
    }
    if f.is_infinite() {
        buf.extend_from_slice(if f > 0.0 { b"9.0e+999" } else { b"-9.0e+999" });
        return;
    }
    let bits = f.to_bits();
    if bits >> 63 == 1 {
        buf.push(b'-');
    }
    let exponent_bits = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut m, mut e) = if exponent_bits == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), exponent_bits - 1075)
    };
    if m == 0 {
        buf.extend_from_slice(b"0.0");
        return;
    }
    let zeros = m.trailing_zeros() as i32;
    m >>= zeros;
    e += zeros;
    // Integral and exactly representable as an integer: no steps needed.
    if e >= 0 && e <= 52 - (64 - m.leading_zeros() as i32) + 1 {
        buf.extend_from_slice(itoa::Buffer::new().format(m << e).as_bytes());
        buf.extend_from_slice(b".0");
        return;
    }
    buf.extend_from_slice(itoa::Buffer::new().format(m).as_bytes());
    buf.extend_from_slice(b".0");
    let op = if e > 0 { b'*' } else { b'/' };
    let mut left = e.unsigned_abs();
    while left > 0 {
        let step = left.min(62);
        buf.push(op);
        buf.extend_from_slice(itoa::Buffer::new().format(1u64 << step).as_bytes());
        left -= step;
    }
}

/// Text: `'...'` with quotes doubled; runs of NUL, CR and LF as
/// `char(...)` joined by `||` (the shell's line reader would drop a CR
/// before LF and stop at NUL); text that is not UTF-8 as raw bytes cast
/// to text.
pub(crate) fn push_text(buf: &mut Vec<u8>, t: &[u8]) {
    if std::str::from_utf8(t).is_err() {
        buf.extend_from_slice(b"CAST(");
        push_blob(buf, t);
        buf.extend_from_slice(b" AS TEXT)");
        return;
    }
    if memchr::memchr3(b'\n', b'\r', 0, t).is_none() {
        push_quoted(buf, t);
        return;
    }
    let is_control = |c: u8| c == b'\n' || c == b'\r' || c == 0;
    let mut rest = t;
    let mut first = true;
    while !rest.is_empty() {
        if !first {
            buf.extend_from_slice(b"||");
        }
        first = false;
        let control = is_control(rest[0]);
        let end = rest
            .iter()
            .position(|&c| is_control(c) != control)
            .unwrap_or(rest.len());
        if control {
            buf.extend_from_slice(b"char(");
            for (i, &c) in rest[..end].iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(itoa::Buffer::new().format(c).as_bytes());
            }
            buf.push(b')');
        } else {
            push_quoted(buf, &rest[..end]);
        }
        rest = &rest[end..];
    }
}

fn push_quoted(buf: &mut Vec<u8>, t: &[u8]) {
    buf.push(b'\'');
    let mut rest = t;
    while let Some(i) = memchr::memchr(b'\'', rest) {
        buf.extend_from_slice(&rest[..=i]);
        buf.push(b'\'');
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
    buf.push(b'\'');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Each byte's two hexadecimal digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

pub(crate) fn push_blob(buf: &mut Vec<u8>, b: &[u8]) {
    buf.reserve(b.len() * 2 + 3);
    buf.extend_from_slice(b"X'");
    let start = buf.len();
    buf.resize(start + 2 * b.len(), 0);
    for (pair, &byte) in buf[start..].chunks_exact_mut(2).zip(b) {
        pair.copy_from_slice(&HEX_PAIRS[byte as usize]);
    }
    buf.push(b'\'');
}

/// Where the dump text goes: the temporary file, through zstd or not.
enum Sink {
    Plain(File),
    Zstd(zstd::stream::write::Encoder<'static, File>),
}

impl Sink {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(f) => f.write_all(data),
            Sink::Zstd(z) => z.write_all(data),
        }
    }

    fn finish(self) -> io::Result<File> {
        match self {
            Sink::Plain(mut f) => {
                f.flush()?;
                Ok(f)
            }
            Sink::Zstd(z) => z.finish(),
        }
    }
}

/// The text being written: gathered in a buffer and passed in large chunks
/// to the writer thread, which hashes and writes them.
struct Out {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    free: Receiver<Vec<u8>>,
    path: PathBuf,
}

impl Out {
    #[inline]
    fn maybe_flush(&mut self) -> Result<(), BackupError> {
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackupError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK + 64 * 1024));
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.tx.as_ref().map(|tx| tx.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            // The writer stopped on an error, which the caller reports.
            _ => Err(
                io_err("could not write", &self.path)(io::Error::other("the writer stopped"))
                    .into(),
            ),
        }
    }
}

/// The writer thread: hashes and writes each chunk, hands the buffer back.
fn write_chunks(
    rx: Receiver<Vec<u8>>,
    free: Sender<Vec<u8>>,
    mut sink: Sink,
    path: &Path,
) -> Result<(Sha256, Sink, u64), BackupError> {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    for mut chunk in rx {
        hasher.update(&chunk);
        sink.write_all(&chunk)
            .map_err(io_err("could not write", path))?;
        bytes += chunk.len() as u64;
        chunk.clear();
        let _ = free.send(chunk);
    }
    Ok((hasher, sink, bytes))
}

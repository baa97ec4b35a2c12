//! Backup files on disk: their names, the header at their top, checking the
//! checksum trailer at their end, listing a folder of them, retention, and
//! picking the newest one a release can restore.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::error::{BackupError, BackupFileError};
use super::{BackupKind, FORMAT_VERSION, IoError, NoProgress, Progress, ProgressUnit, io_err};
use crate::version::Version;

/// The first bytes of every dump uplift writes.
pub(crate) const HEADER_MAGIC: &[u8] = b"-- uplift-dump-format: ";
/// The start of the last line of every dump uplift writes.
pub(crate) const TRAILER_PREFIX: &[u8] = b"-- uplift-sha256: ";
/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Bytes at the end of the text held back from hashing until the trailer
/// is found (the trailer line is 83 bytes).
const TAIL: usize = 256;
/// Bytes at the start of the text kept to read the header.
const HEAD: usize = 4096;

/// The comment lines at the top of a dump made by uplift.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DumpHeader {
    /// The dump format version ([`FORMAT_VERSION`] when written by this uplift).
    pub format: u32,
    /// The application name recorded in the database, if any.
    pub app: Option<String>,
    /// The data version of the database when dumped; `None` for a database
    /// uplift never upgraded.
    pub data_version: Option<String>,
    /// Why the backup was made.
    pub kind: BackupKind,
    /// When the dump was taken (UTC); backups are ordered by this, never by
    /// file name.
    #[serde(serialize_with = "serialize_timestamp")]
    pub created: jiff::Timestamp,
    /// The SQLite library version that wrote it.
    pub sqlite_version: String,
    /// Its place among the backups of its folder: one more than the
    /// highest there when it was written. Backups are ordered by this, which
    /// a clock set back cannot reorder; `None` in dumps of older uplifts,
    /// which sort before every numbered one, by time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// The database's journal mode when it was dumped (`wal`, `delete`...),
    /// which a restore gives the restored database; `None` in dumps of older
    /// uplifts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_mode: Option<String>,
    /// The engine and server version of a dump of another engine than
    /// SQLite (`postgresql 15.18`); `None` in SQLite dumps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

fn serialize_timestamp<S: serde::Serializer>(t: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// Header values are single-line: control characters become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl DumpHeader {
    /// Whether the dump is of a PostgreSQL database (`-- engine:
    /// postgresql ...`): restored by `psql`, not by uplift's SQLite restore.
    pub fn is_postgres(&self) -> bool {
        self.engine
            .as_deref()
            .is_some_and(|e| e.split(' ').next() == Some("postgresql"))
    }

    /// Appends the header lines to `buf`.
    pub(crate) fn write(&self, buf: &mut Vec<u8>) {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "-- uplift-dump-format: {}", self.format);
        if let Some(app) = &self.app {
            let _ = writeln!(s, "-- app: {}", one_line(app));
        }
        let version = self.data_version.as_deref().map(one_line);
        let _ = writeln!(
            s,
            "-- data-version: {}",
            version.as_deref().unwrap_or("none")
        );
        let _ = writeln!(s, "-- kind: {}", self.kind);
        let _ = writeln!(s, "-- created: {}", self.created);
        if let Some(engine) = &self.engine {
            let _ = writeln!(s, "-- engine: {}", one_line(engine));
        }
        if !self.sqlite_version.is_empty() {
            let _ = writeln!(s, "-- sqlite-version: {}", one_line(&self.sqlite_version));
        }
        if let Some(sequence) = self.sequence {
            let _ = writeln!(s, "-- sequence: {sequence}");
        }
        if let Some(mode) = &self.journal_mode {
            let _ = writeln!(s, "-- journal-mode: {}", one_line(mode));
        }
        buf.extend_from_slice(s.as_bytes());
    }

    /// Reads the header from the first bytes of a dump. `Ok(None)` when the
    /// text does not start with uplift's header (a foreign dump);
    /// `Err(detail)` when it does but the header is damaged or incomplete
    /// (`complete` says whether `head` holds the whole file).
    fn parse(head: &[u8], complete: bool) -> Result<Option<DumpHeader>, HeaderProblem> {
        if !head.starts_with(HEADER_MAGIC) {
            return Ok(None);
        }
        let mut format = None;
        let mut app = None;
        let mut data_version = None;
        let mut kind = None;
        let mut created = None;
        let mut sqlite_version = None;
        let mut sequence = None;
        let mut journal_mode = None;
        let mut engine = None;
        let mut finished = false;
        let mut rest = head;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let line = &rest[..end];
            rest = &rest[end + 1..];
            let Some(line) = line.strip_prefix(b"-- ") else {
                finished = true;
                break;
            };
            let line = std::str::from_utf8(line)
                .map_err(|_| HeaderProblem::Damaged("header is not UTF-8".into()))?;
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            match key {
                "uplift-dump-format" => format = value.parse::<u32>().ok(),
                "app" => app = Some(value.to_string()),
                "data-version" => data_version = (value != "none").then(|| value.to_string()),
                "kind" => kind = BackupKind::parse(value),
                "created" => created = value.parse::<jiff::Timestamp>().ok(),
                "sqlite-version" => sqlite_version = Some(value.to_string()),
                "sequence" => sequence = value.parse::<u64>().ok(),
                "journal-mode" => journal_mode = Some(value.to_ascii_lowercase()),
                "engine" => engine = Some(value.to_string()),
                _ => {}
            }
        }
        if !finished {
            return Err(if complete {
                HeaderProblem::Truncated
            } else {
                HeaderProblem::Damaged("the header is too long".into())
            });
        }
        let format = format.ok_or_else(|| HeaderProblem::Damaged("bad format version".into()))?;
        if format > FORMAT_VERSION {
            return Err(HeaderProblem::Newer(format));
        }
        Ok(Some(DumpHeader {
            format,
            app,
            data_version,
            kind: kind.ok_or_else(|| HeaderProblem::Damaged("missing or unknown kind".into()))?,
            created: created
                .ok_or_else(|| HeaderProblem::Damaged("missing or bad creation time".into()))?,
            sqlite_version: sqlite_version.unwrap_or_default(),
            sequence,
            journal_mode,
            engine,
        }))
    }
}

enum HeaderProblem {
    Truncated,
    Damaged(String),
    Newer(u32),
}

/// The file name (without extension) of a backup: `db-v{version}_{time}`
/// or `db-unversioned_{time}`, the time in UTC to the second.
pub(crate) fn file_stem(data_version: Option<&str>, created: jiff::Timestamp) -> String {
    let time = created.strftime("%Y-%m-%d_%H-%M-%S");
    match data_version {
        Some(v) => {
            let v: String = v
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("db-v{v}_{time}")
        }
        None => format!("db-unversioned_{time}"),
    }
}

/// Renames the finished temporary file of a backup to the first free name
/// in `dir` (`db-v{version}_{time}.dump`, then `-2`, `-3`...), never
/// overwriting one; the caller syncs the folder.
pub(crate) fn persist(
    mut temp: tempfile::NamedTempFile,
    dir: &Path,
    header: &DumpHeader,
    compress: bool,
) -> Result<PathBuf, BackupError> {
    let stem = file_stem(header.data_version.as_deref(), header.created);
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
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => temp = e.file,
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

/// What checking a dump file found.
#[derive(Debug, Clone)]
pub struct VerifiedDump {
    /// uplift's header; `None` for a foreign dump (such as `sqlite3 .dump`
    /// output), which cannot be verified, only checked for plausibility.
    pub header: Option<DumpHeader>,
    /// The checksum, when the file carries one (and it matched).
    pub sha256: Option<String>,
    /// Size of the file on disk.
    pub file_size: u64,
    /// Size of the SQL text (after decompression).
    pub text_size: u64,
    /// Whether the file is zstd-compressed.
    pub compressed: bool,
}

impl VerifiedDump {
    /// Whether the checksum was checked (an uplift dump, not a foreign one).
    pub fn is_verified(&self) -> bool {
        self.sha256.is_some()
    }
}

/// A reader counting the bytes taken from the file (compressed bytes for a
/// compressed dump), for progress.
pub(crate) struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An open dump: its text, decompressed if needed.
pub(crate) struct DumpReader {
    pub(crate) text: Box<dyn Read + Send>,
    pub(crate) compressed: bool,
    pub(crate) file_size: u64,
    /// Bytes of the file consumed so far.
    pub(crate) consumed: Arc<AtomicU64>,
}

/// Opens a dump, recognising compression by its magic bytes (not its name).
pub(crate) fn open_dump(path: &Path) -> Result<DumpReader, IoError> {
    // Checked before opening: opening a FIFO blocks until a writer comes,
    // and a device such as /dev/zero never ends.
    let meta = std::fs::metadata(path).map_err(io_err("could not open", path))?;
    if !meta.is_file() {
        return Err(io_err("could not read", path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file (a folder, a device or a pipe): give the path of a dump file",
        )));
    }
    let mut file = File::open(path).map_err(io_err("could not open", path))?;
    let file_size = file
        .metadata()
        .map_err(io_err("could not read", path))?
        .len();
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("could not read", path)(e)),
        }
    }
    let consumed = Arc::new(AtomicU64::new(got as u64));
    let prefix = io::Cursor::new(magic[..got].to_vec());
    let counting = Counting {
        inner: file,
        count: consumed.clone(),
    };
    let raw = prefix.chain(counting);
    let compressed = got == 4 && magic == ZSTD_MAGIC;
    let text: Box<dyn Read + Send> = if compressed {
        Box::new(
            zstd::stream::read::Decoder::new(raw).map_err(io_err("could not decompress", path))?,
        )
    } else {
        Box::new(raw)
    };
    Ok(DumpReader {
        text,
        compressed,
        file_size,
        consumed,
    })
}

/// Maps an error met while reading a dump's text: errors of the
/// decompressor mean a damaged file, others are I/O errors.
pub(crate) fn read_failure(path: &Path, compressed: bool, e: io::Error) -> BackupFileError {
    if compressed
        && matches!(
            e.kind(),
            io::ErrorKind::Other | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
        )
    {
        BackupFileError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("bad compressed data: {e}"),
        }
    } else {
        BackupFileError::Io(io_err("could not read", path)(e))
    }
}

/// Checks a dump file end to end without touching anything: uplift's dumps
/// must carry a header and a trailer whose SHA-256 matches every byte
/// before it; a dump without the header (a foreign one) must look like SQL
/// (no NUL bytes, a first statement a dump would start with) and end with
/// `COMMIT;`, or it is taken as truncated.
pub fn verify(path: &Path) -> Result<VerifiedDump, BackupFileError> {
    verify_with_progress(path, &mut NoProgress)
}

/// [`verify`], reporting progress in bytes of the file.
pub(crate) fn verify_with_progress(
    path: &Path,
    progress: &mut dyn Progress,
) -> Result<VerifiedDump, BackupFileError> {
    let mut reader = open_dump(path)?;
    progress.begin("verifying", Some(reader.file_size), ProgressUnit::Bytes);
    let mut hasher = Sha256::new();
    let mut head: Vec<u8> = Vec::with_capacity(HEAD);
    let mut held: Vec<u8> = Vec::with_capacity(2 * TAIL);
    let mut chunk = vec![0u8; 1 << 20];
    let mut text_size = 0u64;
    let mut has_nul = false;
    loop {
        let n = match reader.text.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_failure(path, reader.compressed, e)),
        };
        let data = &chunk[..n];
        text_size += n as u64;
        has_nul |= memchr::memchr(0, data).is_some();
        if head.len() < HEAD {
            let take = (HEAD - head.len()).min(n);
            head.extend_from_slice(&data[..take]);
        }
        // Hash all but the last TAIL bytes seen so far.
        let total = held.len() + n;
        if total <= TAIL {
            held.extend_from_slice(data);
        } else {
            let to_hash = total - TAIL;
            if to_hash <= held.len() {
                hasher.update(&held[..to_hash]);
                held.drain(..to_hash);
                held.extend_from_slice(data);
            } else {
                hasher.update(&held);
                let from_data = to_hash - held.len();
                hasher.update(&data[..from_data]);
                held.clear();
                held.extend_from_slice(&data[from_data..]);
            }
        }
        progress.update(reader.consumed.load(Ordering::Relaxed), 0);
    }
    progress.end();
    let file_size = reader.file_size;
    let compressed = reader.compressed;
    let whole = text_size as usize <= HEAD;
    if text_size == 0 || (!compressed && head.iter().all(u8::is_ascii_whitespace)) {
        return Err(BackupFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    let header = match DumpHeader::parse(&head, whole) {
        Ok(h) => h,
        Err(HeaderProblem::Truncated) => {
            return Err(BackupFileError::Truncated {
                path: path.to_path_buf(),
                detail: "it ends inside its header".into(),
            });
        }
        Err(HeaderProblem::Damaged(detail)) => {
            return Err(BackupFileError::Corrupt {
                path: path.to_path_buf(),
                detail,
            });
        }
        Err(HeaderProblem::Newer(format)) => {
            return Err(BackupFileError::NewerFormat {
                path: path.to_path_buf(),
                format,
            });
        }
    };
    let trailer = find_trailer(&held);
    match header {
        Some(header) => {
            let (start, expected) = match trailer {
                Trailer::Complete(start, expected) => (start, expected),
                Trailer::Partial => {
                    return Err(BackupFileError::Truncated {
                        path: path.to_path_buf(),
                        detail: "its checksum line is cut short".into(),
                    });
                }
                Trailer::Damaged => {
                    return Err(BackupFileError::Corrupt {
                        path: path.to_path_buf(),
                        detail: "its checksum line is damaged".into(),
                    });
                }
                Trailer::Absent => {
                    return Err(BackupFileError::Truncated {
                        path: path.to_path_buf(),
                        detail: "its checksum line is missing".into(),
                    });
                }
            };
            hasher.update(&held[..start]);
            let actual = hex(&hasher.finalize());
            if actual != expected {
                return Err(BackupFileError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("checksum {actual} does not match the recorded {expected}"),
                });
            }
            Ok(VerifiedDump {
                header: Some(header),
                sha256: Some(actual),
                file_size,
                text_size,
                compressed,
            })
        }
        None => {
            if matches!(trailer, Trailer::Complete(..)) {
                return Err(BackupFileError::Corrupt {
                    path: path.to_path_buf(),
                    detail: "it has uplift's checksum line but its header is damaged".into(),
                });
            }
            check_foreign(path, &head, &held, has_nul)?;
            Ok(VerifiedDump {
                header: None,
                sha256: None,
                file_size,
                text_size,
                compressed,
            })
        }
    }
}

/// What the last line of a dump's text is.
enum Trailer {
    /// A complete trailer: the offset of its line and the recorded checksum.
    Complete(usize, String),
    /// The start of a trailer, cut short.
    Partial,
    /// A whole trailer line whose checksum is not 64 hex digits: damaged.
    Damaged,
    /// No trailer.
    Absent,
}

/// Finds the trailer in the last bytes of the text.
fn find_trailer(tail: &[u8]) -> Trailer {
    let Some(body) = tail.strip_suffix(b"\n") else {
        // No final newline: a trailer line, if any, was cut.
        let start = memchr::memrchr(b'\n', tail).map(|i| i + 1).unwrap_or(0);
        return if tail[start..]
            .starts_with(&TRAILER_PREFIX[..TRAILER_PREFIX.len().min(tail.len() - start)])
            && start < tail.len()
        {
            Trailer::Partial
        } else {
            Trailer::Absent
        };
    };
    let start = memchr::memrchr(b'\n', body).map(|i| i + 1).unwrap_or(0);
    let Some(hex) = body[start..].strip_prefix(TRAILER_PREFIX) else {
        return Trailer::Absent;
    };
    if hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit) {
        Trailer::Complete(start, String::from_utf8_lossy(hex).into_owned())
    } else if hex.len() == 64 {
        Trailer::Damaged
    } else {
        Trailer::Partial
    }
}

/// Plausibility checks for a dump without uplift's header.
fn check_foreign(
    path: &Path,
    head: &[u8],
    tail: &[u8],
    has_nul: bool,
) -> Result<(), BackupFileError> {
    let not_a_dump = |detail: &str| BackupFileError::NotADump {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if head.starts_with(b"SQLite format 3\0") {
        return Err(not_a_dump(
            "it is an SQLite database file; copy it over db.sqlite3 instead, or dump it with `sqlite3 FILE .dump`",
        ));
    }
    if has_nul {
        return Err(not_a_dump("it contains NUL bytes, which no SQL dump does"));
    }
    let first = first_word(head);
    const STARTS: [&str; 5] = ["PRAGMA", "BEGIN", "CREATE", "INSERT", "COMMIT"];
    if !STARTS.iter().any(|w| first.eq_ignore_ascii_case(w)) {
        return Err(not_a_dump(
            "it does not start like an SQL dump (PRAGMA, BEGIN, CREATE or INSERT)",
        ));
    }
    let end = trim_ascii_end(tail);
    let ends_with_commit = end.len() >= 7 && end[end.len() - 7..].eq_ignore_ascii_case(b"COMMIT;");
    if !ends_with_commit {
        return Err(BackupFileError::Truncated {
            path: path.to_path_buf(),
            detail: "it does not end with COMMIT; as a complete dump does".into(),
        });
    }
    Ok(())
}

fn trim_ascii_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map(|i| i + 1)
        .unwrap_or(0);
    &s[..end]
}

/// The first word of SQL text, after whitespace and comments.
fn first_word(text: &[u8]) -> String {
    let mut rest = text;
    loop {
        let start = rest
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        rest = &rest[start..];
        if rest.starts_with(b"--") {
            match memchr::memchr(b'\n', rest) {
                Some(i) => rest = &rest[i + 1..],
                None => return String::new(),
            }
        } else if rest.starts_with(b"/*") {
            match memchr::memmem::find(rest, b"*/") {
                Some(i) => rest = &rest[i + 2..],
                None => return String::new(),
            }
        } else {
            let end = rest
                .iter()
                .position(|c| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            return String::from_utf8_lossy(&rest[..end]).into_owned();
        }
    }
}

/// `bytes` in lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Reads only the header of a dump (cheap: the first few kilobytes).
/// `Ok(None)` for a file without uplift's header.
pub(crate) fn read_header(path: &Path) -> Result<Option<DumpHeader>, BackupFileError> {
    let reader = open_dump(path)?;
    let compressed = reader.compressed;
    let mut head = Vec::with_capacity(HEAD);
    reader
        .text
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|e| read_failure(path, compressed, e))?;
    let whole = head.len() < HEAD;
    match DumpHeader::parse(&head, whole) {
        Ok(h) => Ok(h),
        Err(HeaderProblem::Truncated) => Err(BackupFileError::Truncated {
            path: path.to_path_buf(),
            detail: "it ends inside its header".into(),
        }),
        Err(HeaderProblem::Damaged(detail)) => Err(BackupFileError::Corrupt {
            path: path.to_path_buf(),
            detail,
        }),
        Err(HeaderProblem::Newer(format)) => Err(BackupFileError::NewerFormat {
            path: path.to_path_buf(),
            format,
        }),
    }
}

/// Whether a backup file could be checked.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupStatus {
    /// An uplift dump whose checksum matches.
    Verified,
    /// A plausible SQL dump without uplift's header and checksum (such as
    /// `sqlite3 .dump` output): restorable, but nothing proves it complete
    /// beyond its final `COMMIT;`.
    Unverified,
    /// Truncated, damaged, not a dump, or of a newer format; the reason
    /// says which.
    Corrupt(String),
    /// Only the header was read (see [`list_headers`]).
    NotChecked,
}

impl BackupStatus {
    /// A one-word description: `verified`, `unverified` or `corrupt`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackupStatus::Verified => "verified",
            BackupStatus::Unverified => "unverified",
            BackupStatus::Corrupt(_) => "corrupt",
            BackupStatus::NotChecked => "not checked",
        }
    }
}

/// One file of a backups folder.
#[derive(Debug, Clone)]
pub struct BackupEntry {
    /// Its path.
    pub path: PathBuf,
    /// Its file name.
    pub file_name: String,
    /// Its size on disk in bytes.
    pub size: u64,
    /// What checking it found.
    pub status: BackupStatus,
    /// Its header, when it is an uplift dump whose header could be read.
    pub header: Option<DumpHeader>,
}

impl BackupEntry {
    /// The data version recorded in the header.
    pub fn data_version(&self) -> Option<&str> {
        self.header.as_ref().and_then(|h| h.data_version.as_deref())
    }

    /// The time recorded in the header.
    pub fn created(&self) -> Option<jiff::Timestamp> {
        self.header.as_ref().map(|h| h.created)
    }

    /// The kind recorded in the header.
    pub fn kind(&self) -> Option<BackupKind> {
        self.header.as_ref().map(|h| h.kind)
    }
}

/// Files of `dir` that look like dumps by name: `*.dump` and `*.dump.zst`,
/// not hidden (temporary files are hidden).
fn dump_files(dir: &Path) -> Result<Vec<(PathBuf, String, u64)>, IoError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("could not list", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("could not list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !(name.ends_with(".dump") || name.ends_with(".dump.zst")) {
            continue;
        }
        let meta = entry
            .metadata()
            .map_err(io_err("could not read", &entry.path()))?;
        if meta.is_file() {
            out.push((entry.path(), name, meta.len()));
        }
    }
    Ok(out)
}

/// Where a backup stands among its folder's, oldest first: by the sequence
/// its header records (a clock set back cannot reorder those), then, for
/// dumps of older uplifts without one, by recorded time; ties by name,
/// shorter first (`X.dump` before `X-2.dump`, written after it).
fn age_order(a: &BackupEntry, b: &BackupEntry) -> std::cmp::Ordering {
    let key = |e: &BackupEntry| {
        let h = e.header.as_ref();
        (
            h.and_then(|h| h.sequence),
            h.map(|h| h.created),
            e.file_name.len(),
        )
    };
    match (a.header.is_some(), b.header.is_some()) {
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => key(a)
            .cmp(&key(b))
            .then_with(|| a.file_name.cmp(&b.file_name)),
    }
}

/// Orders entries oldest first (see [`age_order`]); entries without a
/// header last, by name.
fn sort_entries(entries: &mut [BackupEntry]) {
    entries.sort_by(age_order);
}

/// The sequence number the next backup written into `dir` gets: one more
/// than the highest recorded there (headers only are read).
pub(crate) fn next_sequence(dir: &Path) -> Result<u64, BackupError> {
    let headers = list_headers(dir)?;
    let highest = headers
        .iter()
        .filter_map(|e| e.header.as_ref().and_then(|h| h.sequence))
        .max()
        .unwrap_or(0);
    // Dumps without a sequence (older uplifts) count as the first ones.
    let unnumbered = headers
        .iter()
        .filter(|e| e.header.as_ref().is_some_and(|h| h.sequence.is_none()))
        .count() as u64;
    Ok(highest.max(unnumbered) + 1)
}

fn entry_for(path: PathBuf, file_name: String, size: u64) -> Result<BackupEntry, BackupError> {
    let (status, header) = match verify(&path) {
        Ok(v) if v.is_verified() => (BackupStatus::Verified, v.header),
        Ok(v) => (BackupStatus::Unverified, v.header),
        Err(BackupFileError::Io(e)) => return Err(e.into()),
        Err(e) => {
            // Keep what the header says, if it can be read, to show it.
            let header = read_header(&path).ok().flatten();
            (BackupStatus::Corrupt(e.to_string()), header)
        }
    };
    Ok(BackupEntry {
        path,
        file_name,
        size,
        status,
        header,
    })
}

/// Every dump in `dir` (`*.dump`, `*.dump.zst`), each verified end to end,
/// oldest first by the time recorded in its header. An absent folder lists
/// as empty. Fails only when the folder or a file cannot be read.
pub fn list(dir: &Path) -> Result<Vec<BackupEntry>, BackupError> {
    let mut entries = Vec::new();
    for (path, name, size) in dump_files(dir)? {
        entries.push(entry_for(path, name, size)?);
    }
    sort_entries(&mut entries);
    Ok(entries)
}

/// Every uplift dump in `dir` with only its header read (status
/// [`BackupStatus::NotChecked`]), oldest first by recorded time: the cheap
/// listing for `uplift status`. Files without a readable header are left
/// out. Fails only when the folder or a file cannot be read.
pub fn list_headers(dir: &Path) -> Result<Vec<BackupEntry>, BackupError> {
    let mut entries = Vec::new();
    for (path, file_name, size) in dump_files(dir)? {
        let header = match read_header(&path) {
            Ok(Some(h)) => h,
            Err(BackupFileError::Io(e)) => return Err(e.into()),
            Ok(None) | Err(_) => continue,
        };
        entries.push(BackupEntry {
            path,
            file_name,
            size,
            status: BackupStatus::NotChecked,
            header: Some(header),
        });
    }
    sort_entries(&mut entries);
    Ok(entries)
}

/// Removes the backups of the given kinds beyond the newest `keep` of each
/// kind and returns the removed paths. Whatever `keep` says, the newest
/// backup of each data version is kept (the one `dbrestore --latest` picks
/// to downgrade to a release of that version), and so is each path in
/// `protect` (the backup an upgrade just made). Ages come from headers (see
/// [`age_order`]). Only files with an uplift header count and are removed:
/// foreign and unreadable files are never touched.
///
/// Only headers are read, not whole files: retention runs after every
/// upgrade, and re-reading gigabytes of older backups there would cost more
/// than the upgrade. (Every backup was verified when it was written, before
/// it got its name; `uplift backups list` verifies them all end to end.)
pub fn prune(
    dir: &Path,
    keep: usize,
    kinds: &[BackupKind],
    protect: &[PathBuf],
) -> Result<Vec<PathBuf>, BackupError> {
    let mut all = list_headers(dir)?;
    sort_entries(&mut all);
    // The newest backup of each data version: a downgrade to that version
    // restores it (`dbrestore --latest` passes over safety backups, so the
    // newest that is not one is kept too).
    let mut needed: Vec<&Path> = Vec::new();
    for safety_too in [false, true] {
        let mut versions_seen: Vec<Option<&str>> = Vec::new();
        for entry in all.iter().rev() {
            if !safety_too && entry.kind() == Some(BackupKind::PreRestore) {
                continue;
            }
            let version = entry.data_version();
            if !versions_seen.contains(&version) {
                versions_seen.push(version);
                needed.push(&entry.path);
            }
        }
    }
    let mut removed = Vec::new();
    for kind in kinds {
        let of_kind: Vec<&BackupEntry> = all.iter().filter(|e| e.kind() == Some(*kind)).collect();
        let excess = of_kind.len().saturating_sub(keep);
        for entry in &of_kind[..excess] {
            if needed.contains(&entry.path.as_path()) || protect.contains(&entry.path) {
                continue;
            }
            std::fs::remove_file(&entry.path).map_err(io_err("could not remove", &entry.path))?;
            removed.push(entry.path.clone());
        }
    }
    if !removed.is_empty() {
        super::sync_dir(dir)?;
    }
    Ok(removed)
}

/// Removes automatic backups beyond the newest `keep`, except those
/// [`prune`] always keeps; manual and pre-restore backups, and files without
/// an uplift header, are never touched. Returns the removed paths.
pub fn prune_automatic(
    dir: &Path,
    keep: usize,
    protect: &[PathBuf],
) -> Result<Vec<PathBuf>, BackupError> {
    prune(dir, keep, &[BackupKind::Automatic], protect)
}

/// Which backups [`latest_restorable`] may pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Candidates {
    /// Automatic and manual backups: not the safety backups restores make
    /// of the database they replace, or restoring `--latest` twice would
    /// undo itself (each restore's safety backup being the newest).
    #[default]
    Backups,
    /// Safety backups too.
    IncludingPreRestore,
}

/// The newest verified backup in `dir` (see [`age_order`]) whose data
/// version `release` can run (data version <= release version; a backup of
/// a database without a data version counts as older than any release).
/// With `release` `None`, the newest verified backup. `Ok(None)` when there
/// is none. Foreign dumps are never picked (they record no time).
pub fn latest_restorable(
    dir: &Path,
    release: Option<&Version>,
    candidates: Candidates,
) -> Result<Option<BackupEntry>, BackupError> {
    let mut entries = list_headers(dir)?;
    entries.retain(|e| {
        let Some(header) = &e.header else {
            return false;
        };
        if header.kind == BackupKind::PreRestore && candidates == Candidates::Backups {
            return false;
        }
        match (release, &header.data_version) {
            (None, _) | (Some(_), None) => true,
            (Some(release), Some(v)) => Version::parse(v).is_ok_and(|v| &v <= release),
        }
    });
    sort_entries(&mut entries);
    for entry in entries.into_iter().rev() {
        let entry = entry_for(entry.path, entry.file_name, entry.size)?;
        if entry.status == BackupStatus::Verified {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::{TRAILER_PREFIX, Trailer, find_trailer};

    fn tail(checksum: &str, newline: bool) -> Vec<u8> {
        let mut t = b"COMMIT;\n".to_vec();
        t.extend_from_slice(TRAILER_PREFIX);
        t.extend_from_slice(checksum.as_bytes());
        if newline {
            t.push(b'\n');
        }
        t
    }

    #[test]
    fn a_whole_checksum_line_with_a_damaged_digit_is_damaged_not_cut_short() {
        let good = "a".repeat(64);
        assert!(matches!(
            find_trailer(&tail(&good, true)),
            Trailer::Complete(8, _)
        ));
        let damaged = format!("g{}", "a".repeat(63));
        assert!(matches!(
            find_trailer(&tail(&damaged, true)),
            Trailer::Damaged
        ));
        assert!(matches!(
            find_trailer(&tail(&"a".repeat(30), true)),
            Trailer::Partial
        ));
        assert!(matches!(
            find_trailer(&tail(&good, false)),
            Trailer::Partial
        ));
    }
}

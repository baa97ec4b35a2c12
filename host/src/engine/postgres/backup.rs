//! Backups of a PostgreSQL database: `pg_dump`'s plain SQL, which `psql`
//! restores, framed by uplift's header and checksum as `--` comment lines
//! (see [`crate::backup`] for the frame), written as SQLite's backups are:
//! a temporary file in the backups folder, synced, read back and checked,
//! renamed to `db-v{version}_{time}.dump` without overwriting, the folder
//! synced.
//!
//! Inside an upgrade, `pg_dump` reads the snapshot the upgrade's
//! transaction exported (`pg_export_snapshot()`, `pg_dump --snapshot`)
//! after it locked the application's tables: the dump is exactly the data
//! being upgraded.
//!
//! `pg_dump` 15.18 and later frame their output with `\restrict KEY` …
//! `\unrestrict KEY` (psql refuses meta-commands in between), with a
//! random key unless one is given. uplift gives a fixed one
//! ([`RESTRICT_KEY`]), so that two dumps of the same data are the same
//! text, and checks that the dump holds exactly one `\restrict` and one
//! `\unrestrict` line of that key, so that no data can end the
//! restriction early: such a dump is refused.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use postgres::Client;
use sha2::{Digest, Sha256};

use super::connect::PgTarget;
use super::error::PgError;
use super::meta;
use crate::backup::error::BackupError;
use crate::backup::files::{self, DumpHeader};
use crate::backup::{
    BackupFile, BackupOptions, FORMAT_VERSION, Progress, ProgressUnit, io_err, sync_dir,
};
use crate::engine::EngineError;

/// The `\restrict` key uplift gives `pg_dump`.
pub(crate) const RESTRICT_KEY: &str = "uplift";

/// Dumps the PostgreSQL database `[database]` of the settings file
/// `settings_path` names into a new file in `dir`, from a snapshot of
/// `pg_dump`'s own (`uplift dbbackup`: the application goes on meanwhile).
pub(crate) fn back_up_database(
    settings: &crate::home::DatabaseSettings,
    settings_path: &Path,
    dir: &Path,
    options: &BackupOptions,
    progress: &mut dyn Progress,
) -> Result<BackupFile, BackupError> {
    let open = |e: PgError| BackupError::Open {
        path: settings_path.to_path_buf(),
        source: EngineError::new(e),
    };
    let target = PgTarget::from_settings(settings, settings_path).map_err(open)?;
    let mut client = target.connect().map_err(open)?;
    write_backup(&mut client, &target, None, dir, options, progress)
}

/// Dumps the database `client` is connected to (as `target`) into a new
/// file in `dir`, from `snapshot` when one is given (an exported snapshot
/// of the caller's open transaction), else from a snapshot of `pg_dump`'s
/// own. Nothing is left behind on failure.
pub(crate) fn write_backup(
    client: &mut Client,
    target: &PgTarget,
    snapshot: Option<&str>,
    dir: &Path,
    options: &BackupOptions,
    progress: &mut dyn Progress,
) -> Result<BackupFile, BackupError> {
    let read = |what: &str| {
        let what = what.to_string();
        move |e: PgError| BackupError::Sqlite {
            what,
            source: EngineError::new(e),
        }
    };
    let data_version = match &options.data_version {
        Some(v) => Some(v.clone()),
        None => meta::get(client, "data_version").map_err(read("uplift.meta"))?,
    };
    let app = match &options.app {
        Some(a) => Some(a.clone()),
        None => meta::get(client, "app").map_err(read("uplift.meta"))?,
    };
    let server_version: String = client
        .query_one("SELECT current_setting('server_version')", &[])
        .map_err(|e| BackupError::Sqlite {
            what: "the server's version".into(),
            source: EngineError::new(e),
        })?
        .get(0);
    let server_version = server_version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let major = server_version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    let pg_dump = find_tool("pg_dump", major).map_err(read("find pg_dump"))?;

    if crate::disk::create_dir_durably(dir)
        .map_err(io_err("could not create backup folder", dir))?
    {
        crate::disk::hand_to_home_owner(crate::disk::parent_of(dir), dir)
            .map_err(io_err("could not give its folder's owner", dir))?;
    }
    let header = DumpHeader {
        format: FORMAT_VERSION,
        app,
        data_version,
        kind: options.kind,
        created: jiff::Timestamp::now(),
        sqlite_version: String::new(),
        sequence: Some(files::next_sequence(dir)?),
        journal_mode: None,
        engine: Some(format!("postgresql {server_version}")),
    };
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

    let mut command = Command::new(&pg_dump);
    command
        .arg("--format=plain")
        .arg(format!("--restrict-key={RESTRICT_KEY}"))
        .arg("--no-password")
        .arg("--lock-wait-timeout=30s")
        .arg(format!("--dbname={}", target.conninfo()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(snapshot) = snapshot {
        command.arg(format!("--snapshot={snapshot}"));
    }
    if let Some(password) = target.password() {
        command.env("PGPASSWORD", password);
    }
    let mut child = command.spawn().map_err(|e| BackupError::Dumper {
        tool: pg_dump.clone(),
        message: format!("could not start it: {e}"),
    })?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = child.stdout.take().expect("stdout is piped");

    progress.begin("dumping", None, ProgressUnit::Bytes);
    let written = copy_dump(&header, &mut stdout, file, options.compress, progress);
    progress.end();
    drop(stdout);
    let status = child.wait().map_err(|e| BackupError::Dumper {
        tool: pg_dump.clone(),
        message: format!("could not wait for it: {e}"),
    });
    let errors = errors.join().unwrap_or_default();
    let status = status?;
    if !status.success() {
        return Err(BackupError::Dumper {
            tool: pg_dump,
            message: format!("{status}: {}", errors.trim()),
        });
    }
    let written = written.map_err(|e| match e {
        CopyError::Io(e) => BackupError::from(io_err("could not write", &temp_path)(e)),
        CopyError::Restrict(found) => BackupError::Dumper {
            tool: pg_dump.clone(),
            message: format!(
                "its output holds {found} lines ending the \\restrict of key {RESTRICT_KEY:?} \
                 where there must be one: the data would end psql's restriction early"
            ),
        },
    })?;

    let verified = files::verify(&temp_path).map_err(|failure| BackupError::NotVerified {
        path: temp_path.clone(),
        failure: Some(failure),
    })?;
    if verified.sha256.as_deref() != Some(written.sha256.as_str()) {
        return Err(BackupError::NotVerified {
            path: temp_path,
            failure: None,
        });
    }
    let size = std::fs::metadata(&temp_path)
        .map_err(io_err("could not read", &temp_path))?
        .len();
    crate::disk::hand_to_home_owner(dir, &temp_path)
        .map_err(io_err("could not give its folder's owner", &temp_path))?;
    let path = files::persist(temp, dir, &header, options.compress)?;
    sync_dir(dir)?;
    Ok(BackupFile {
        path,
        size,
        text_size: written.text_size,
        sha256: written.sha256,
        header,
        rows: written.rows,
        connections: 1,
    })
}

/// What [`copy_dump`] wrote.
struct Written {
    sha256: String,
    text_size: u64,
    rows: u64,
}

enum CopyError {
    Io(std::io::Error),
    /// The dump held this many `\unrestrict KEY` lines (not one).
    Restrict(usize),
}

impl From<std::io::Error> for CopyError {
    fn from(e: std::io::Error) -> Self {
        CopyError::Io(e)
    }
}

/// Writes the header, `pg_dump`'s output and the checksum trailer into
/// `file` (compressed as one zstd frame when `compress`), then syncs it.
fn copy_dump(
    header: &DumpHeader,
    dump: &mut impl Read,
    file: std::fs::File,
    compress: bool,
    progress: &mut dyn Progress,
) -> Result<Written, CopyError> {
    let mut out: Box<dyn Write> = if compress {
        Box::new(
            zstd::stream::Encoder::new(std::io::BufWriter::new(file.try_clone()?), 3)?
                .auto_finish(),
        )
    } else {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            file.try_clone()?,
        ))
    };
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    header.write(&mut head);
    hasher.update(&head);
    out.write_all(&head)?;
    let mut text_size = head.len() as u64;
    let mut lines = Lines::default();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = match dump.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let data = &chunk[..n];
        hasher.update(data);
        out.write_all(data)?;
        lines.scan(data);
        text_size += n as u64;
        progress.update(text_size, lines.rows);
    }
    lines.scan(b"\n");
    if lines.restricts != 1 || lines.unrestricts != 1 {
        return Err(CopyError::Restrict(lines.unrestricts));
    }
    let sha256 = files::hex(&hasher.finalize());
    let trailer = format!("-- uplift-sha256: {sha256}\n");
    out.write_all(trailer.as_bytes())?;
    out.flush()?;
    drop(out);
    file.sync_all()?;
    Ok(Written {
        sha256,
        text_size: text_size + trailer.len() as u64,
        rows: lines.rows,
    })
}

/// Reads `pg_dump`'s lines as they stream by: counts the rows of its
/// `COPY … FROM stdin;` blocks and its `\restrict` lines.
#[derive(Default)]
pub(super) struct Lines {
    /// The start of the current line (enough to tell the lines looked for).
    start: Vec<u8>,
    /// The end of the current line.
    end: Vec<u8>,
    in_copy: bool,
    /// The rows of the `COPY` blocks seen so far.
    pub(super) rows: u64,
    restricts: usize,
    unrestricts: usize,
}

const KEPT: usize = 32;

impl Lines {
    pub(super) fn scan(&mut self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(at) => {
                    self.take(&rest[..at]);
                    self.line_ended();
                    rest = &rest[at + 1..];
                }
                None => {
                    self.take(rest);
                    rest = &[];
                }
            }
        }
    }

    fn take(&mut self, part: &[u8]) {
        if self.start.len() < KEPT {
            let n = (KEPT - self.start.len()).min(part.len());
            self.start.extend_from_slice(&part[..n]);
        }
        self.end
            .extend_from_slice(&part[part.len().saturating_sub(KEPT)..]);
        if self.end.len() > KEPT {
            self.end.drain(..self.end.len() - KEPT);
        }
    }

    fn line_ended(&mut self) {
        let line = &self.start[..];
        if self.in_copy {
            if line == b"\\." {
                self.in_copy = false;
            } else {
                self.rows += 1;
            }
        } else if line.starts_with(b"COPY ") && self.end.ends_with(b" FROM stdin;") {
            self.in_copy = true;
        } else if line.strip_prefix(b"\\restrict ") == Some(RESTRICT_KEY.as_bytes()) {
            self.restricts += 1;
        } else if line.strip_prefix(b"\\unrestrict ") == Some(RESTRICT_KEY.as_bytes()) {
            self.unrestricts += 1;
        }
        self.start.clear();
        self.end.clear();
    }
}

/// Finds a PostgreSQL client tool: that of the server's major version
/// (`/usr/lib/postgresql/MAJOR/bin`), else `pg_config --bindir`'s, else on
/// `PATH`, else the newest under `/usr/lib/postgresql`.
pub(crate) fn find_tool(tool: &'static str, major: Option<u32>) -> Result<PathBuf, PgError> {
    let mut looked = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(major) = major {
        candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    let mut installed: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    installed.sort();
    candidates.extend(installed.into_iter().rev().map(|(_, dir)| dir));
    for dir in candidates {
        let path = dir.join(tool);
        if path.is_file() {
            return Ok(path);
        }
        looked.push(dir.display().to_string());
    }
    looked.dedup();
    Err(PgError::ToolMissing {
        tool,
        looked: looked.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_copy_rows_and_restrict_lines_across_chunks() {
        let text = b"\\restrict uplift\nCOPY public.t (id) FROM stdin;\n1\n2\n\\.\nSELECT 1;\n\\unrestrict uplift\n";
        for split in 1..text.len() {
            let mut lines = Lines::default();
            lines.scan(&text[..split]);
            lines.scan(&text[split..]);
            lines.scan(b"\n");
            assert_eq!((lines.rows, lines.restricts, lines.unrestricts), (2, 1, 1));
        }
    }

    #[test]
    fn an_unrestrict_inside_copy_data_is_a_row() {
        let mut lines = Lines::default();
        lines.scan(b"COPY t (x) FROM stdin;\n\\unrestrict uplift\n\\.\n");
        assert_eq!((lines.rows, lines.unrestricts), (1, 0));
    }
}

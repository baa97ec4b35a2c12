//! The dump file's bytes on their way to the disk and back.
//!
//! A dump is written once and not read again soon, so where the file
//! system allows it (Linux, `O_DIRECT`), its bytes go from the process
//! straight to the disk: no copy into the page cache, and no write-back
//! work left for the sync, which together cost a buffered writer more than
//! formatting the SQL. Whole blocks are written that way, in large runs
//! from a block-aligned buffer; the last partial block through the page
//! cache. Every byte written is summed with XXH3-128 ([`DumpFile`]); as
//! each run is written, [`read_back`] reads it back (from the disk, with
//! direct I/O) and sums it too, so that the dump is verified against what
//! the disk returns, beside the writing rather than after it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};

use xxhash_rust::xxh3::Xxh3;

/// What direct I/O is aligned to: offsets, lengths and buffer addresses.
const BLOCK: usize = 4096;

/// Bytes gathered before they are written.
const RUN: usize = 1 << 20;

/// A part of the file that was written: offset and length.
pub(super) type Region = (u64, usize);

/// A buffer whose contents start on a [`BLOCK`] boundary.
struct Aligned {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// An empty buffer of `capacity` bytes (a multiple of [`BLOCK`]).
    fn new(capacity: usize) -> Self {
        let buf = vec![0u8; capacity + BLOCK];
        let start = buf.as_ptr().align_offset(BLOCK);
        assert!(start < BLOCK, "a byte buffer can always be aligned");
        Aligned { buf, start, len: 0 }
    }

    fn capacity(&self) -> usize {
        self.buf.len() - BLOCK
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Appends as much of `data` as fits; returns how much.
    fn fill(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.capacity() - self.len);
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    /// Drops the first `n` bytes, moving the rest to the start.
    fn consume(&mut self, n: usize) {
        let start = self.start;
        self.buf.copy_within(start + n..start + self.len, start);
        self.len -= n;
    }

    /// The whole buffer, to read into.
    fn space(&mut self) -> &mut [u8] {
        let (start, capacity) = (self.start, self.capacity());
        &mut self.buf[start..start + capacity]
    }
}

/// Opens `path` again with direct I/O (`O_DIRECT`), for reading or for
/// writing; `None` where the system or the file system does not have it.
fn open_direct(path: &Path, write: bool) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, write);
        None
    }
}

/// Whether a direct read or write failed only for being direct (a file
/// system that accepts `O_DIRECT` when opening but not when writing).
fn refused_direct(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput
}

/// The temporary dump file being written: whole blocks with direct I/O
/// when the file system allows it, the rest through the page cache; every
/// byte summed with XXH3-128, and every run written announced to the
/// read-back.
pub(super) struct DumpFile {
    /// The file as it was created (buffered).
    file: File,
    /// The same file opened with direct I/O.
    direct: Option<File>,
    staged: Aligned,
    offset: u64,
    sum: Xxh3,
    written: Option<Sender<Region>>,
}

impl DumpFile {
    /// Writes into `file`, created at `path`; announces each region
    /// written to `written` (for [`read_back`]) when given.
    pub(super) fn new(file: File, path: &Path, written: Option<Sender<Region>>) -> Self {
        DumpFile {
            file,
            direct: open_direct(path, true),
            staged: Aligned::new(RUN),
            offset: 0,
            sum: Xxh3::new(),
            written,
        }
    }

    /// Writes the staged whole blocks.
    fn write_blocks(&mut self) -> io::Result<()> {
        let whole = self.staged.len / BLOCK * BLOCK;
        if whole == 0 {
            return Ok(());
        }
        let data = &self.staged.data()[..whole];
        let direct = match &self.direct {
            Some(direct) => match direct.write_all_at(data, self.offset) {
                Ok(()) => true,
                Err(e) if refused_direct(&e) => false,
                Err(e) => return Err(e),
            },
            None => false,
        };
        if !direct {
            self.direct = None;
            self.file.write_all_at(data, self.offset)?;
        }
        self.announce(whole);
        self.staged.consume(whole);
        Ok(())
    }

    /// Tells the read-back that `len` bytes at the current offset are
    /// written, and moves past them.
    fn announce(&mut self, len: usize) {
        if let Some(written) = &self.written {
            // A read-back that stopped reports its own error.
            let _ = written.send((self.offset, len));
        }
        self.offset += len as u64;
    }

    /// Writes what is left (the last partial block through the page
    /// cache); returns the file and the XXH3-128 of every byte written.
    pub(super) fn finish(mut self) -> io::Result<(File, u128)> {
        self.write_blocks()?;
        let tail = self.staged.len;
        if tail > 0 {
            self.file.write_all_at(self.staged.data(), self.offset)?;
            self.announce(tail);
        }
        Ok((self.file, self.sum.digest128()))
    }
}

impl Write for DumpFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.sum.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.staged.fill(rest);
            rest = &rest[n..];
            if self.staged.len == self.staged.capacity() {
                self.write_blocks()?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads back each region of the file at `path` as [`DumpFile`] announces
/// it (with direct I/O where it can, so from the disk), until the writer
/// is done; returns the XXH3-128 of the bytes read.
pub(super) fn read_back(path: &Path, written: Receiver<Region>) -> io::Result<u128> {
    let buffered = File::open(path)?;
    let mut direct = open_direct(path, false);
    let mut buf = Aligned::new(RUN);
    let mut sum = Xxh3::new();
    for (mut offset, mut len) in written {
        while len > 0 {
            // Direct reads are whole blocks (a region's last one may end
            // the file, and read short).
            let want = len.min(RUN).next_multiple_of(BLOCK);
            let space = &mut buf.space()[..want];
            let read = match &direct {
                Some(file) => match file.read_at(space, offset) {
                    Err(e) if refused_direct(&e) => {
                        direct = None;
                        continue;
                    }
                    other => other?,
                },
                None => buffered.read_at(&mut space[..len.min(RUN)], offset)?,
            };
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than what was written to it",
                ));
            }
            let n = read.min(len);
            sum.update(&space[..n]);
            offset += n as u64;
            len -= n;
        }
    }
    Ok(sum.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_the_same_whatever_its_length() {
        for size in [
            0,
            1,
            BLOCK - 1,
            BLOCK,
            RUN - 1,
            RUN + 3 * BLOCK + 17,
            3 * RUN,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("dump");
            let file = File::create(&path).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let reader = {
                let path = path.clone();
                std::thread::spawn(move || read_back(&path, rx))
            };
            let text: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let mut out = DumpFile::new(file, &path, Some(tx));
            // In uneven pieces, as the writer thread hands them over.
            for piece in text.chunks(65_537) {
                out.write_all(piece).unwrap();
            }
            let (_, written) = out.finish().unwrap();
            let read = reader.join().unwrap().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), text, "{size} bytes");
            assert_eq!(written, read, "{size} bytes");
            assert_eq!(written, xxhash_rust::xxh3::xxh3_128(&text));
        }
    }

    #[test]
    fn a_file_cut_short_under_the_writer_does_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        let file = File::create(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut out = DumpFile::new(file, &path, Some(tx));
        out.write_all(&vec![b'x'; 3 * BLOCK]).unwrap();
        let _ = out.finish().unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(BLOCK as u64)
            .unwrap();
        let err = read_back(&path, rx).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}

//! The dump text's way into its file. Each connection reading the database
//! gathers complete statements in a buffer of its own ([`Out`]) and hands
//! it, once large, to one writer thread ([`write_chunks`]), which hashes the
//! text (the SHA-256 of the dump's trailer) and writes it, through zstd when
//! compressed, into the [`DumpFile`] (which sums the file's bytes for the
//! read-back).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use sha2::{Digest, Sha256};

use super::direct::DumpFile;
use crate::backup::error::BackupError;
use crate::backup::io_err;

/// Bytes of SQL text gathered before they are handed to the writer.
const CHUNK: usize = 1 << 20;

/// Chunks on their way to the writer, at most (besides the one it writes).
const IN_FLIGHT: usize = 3;

/// A buffer of complete statements, and which [`Out`] filled it (to give
/// it back once written).
struct Chunk {
    producer: usize,
    text: Vec<u8>,
}

/// One producer's dump text: statements are appended to `buf`, and the
/// buffer goes to the writer once it holds [`CHUNK`] bytes and the last
/// statement is complete ([`Out::statement_done`]). Chunks of different
/// producers reach the file in the order they were handed over, each
/// whole.
pub(super) struct Out {
    /// The text not yet handed over.
    pub(super) buf: Vec<u8>,
    producer: usize,
    tx: SyncSender<Chunk>,
    free: Receiver<Vec<u8>>,
    path: PathBuf,
}

impl Out {
    /// A statement ends here: hands the buffer over if it is full.
    #[inline]
    pub(super) fn statement_done(&mut self) -> Result<(), BackupError> {
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands over whatever the buffer holds (which must end with a
    /// complete statement).
    pub(super) fn flush(&mut self) -> Result<(), BackupError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self.free.try_recv().unwrap_or_else(|_| new_buffer());
        let text = std::mem::replace(&mut self.buf, next);
        let chunk = Chunk {
            producer: self.producer,
            text,
        };
        self.tx.send(chunk).map_err(|_| {
            // The writer stopped on an error, which the caller reports.
            io_err("could not write", &self.path)(io::Error::other("the writer stopped")).into()
        })
    }
}

fn new_buffer() -> Vec<u8> {
    Vec::with_capacity(CHUNK + 64 * 1024)
}

/// The writer's end of the producers' buffers.
pub(super) struct Chunks {
    rx: Receiver<Chunk>,
    give_back: Vec<Sender<Vec<u8>>>,
}

/// `producers` buffers writing into one [`Chunks`]; the writer's input ends
/// when every [`Out`] is dropped.
pub(super) fn channel(producers: usize, path: &Path) -> (Vec<Out>, Chunks) {
    let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
    let mut outs = Vec::with_capacity(producers);
    let mut give_back = Vec::with_capacity(producers);
    for producer in 0..producers {
        let (free_tx, free_rx) = mpsc::channel();
        give_back.push(free_tx);
        outs.push(Out {
            buf: new_buffer(),
            producer,
            tx: tx.clone(),
            free: free_rx,
            path: path.to_path_buf(),
        });
    }
    (outs, Chunks { rx, give_back })
}

/// Where the dump text goes: the temporary file, through zstd or not.
pub(super) enum Sink {
    /// Plain SQL text.
    Plain(DumpFile),
    /// zstd-compressed SQL text.
    Zstd(zstd::stream::write::Encoder<'static, DumpFile>),
}

impl Sink {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(f) => f.write_all(data),
            Sink::Zstd(z) => z.write_all(data),
        }
    }

    /// Ends the stream: the file, and the XXH3-128 of every byte written to
    /// it.
    fn finish(self) -> io::Result<(File, u128)> {
        match self {
            Sink::Plain(f) => f.finish(),
            Sink::Zstd(z) => z.finish()?.finish(),
        }
    }
}

/// What the writer thread wrote.
pub(super) struct Written {
    sha256: Sha256,
    text_size: u64,
    sink: Sink,
}

impl Written {
    /// Ends the text with `trailer(hex SHA-256 of the text so far)` and
    /// the stream: returns the file, the SHA-256 of the text before the
    /// trailer, the size of the whole text, and the XXH3-128 of the file's
    /// bytes.
    pub(super) fn finish(
        mut self,
        trailer: impl FnOnce(&str) -> Vec<u8>,
        path: &Path,
    ) -> Result<Finished, BackupError> {
        let sha256 = crate::backup::files::hex(&self.sha256.finalize());
        let trailer = trailer(&sha256);
        self.sink
            .write_all(&trailer)
            .map_err(io_err("could not write", path))?;
        let (file, file_sum) = self
            .sink
            .finish()
            .map_err(io_err("could not write", path))?;
        Ok(Finished {
            file,
            sha256,
            text_size: self.text_size + trailer.len() as u64,
            file_sum,
        })
    }
}

/// A dump file written in full, not yet synced.
pub(super) struct Finished {
    /// The file.
    pub(super) file: File,
    /// The SHA-256 of the text, as the trailer records it.
    pub(super) sha256: String,
    /// Bytes of text, the trailer included.
    pub(super) text_size: u64,
    /// The XXH3-128 of the file's bytes.
    pub(super) file_sum: u128,
}

/// The writer thread: hashes and writes each chunk in the order they come,
/// gives the buffer back to its producer; ends when every producer is gone.
pub(super) fn write_chunks(
    chunks: Chunks,
    mut sink: Sink,
    path: &Path,
) -> Result<Written, BackupError> {
    let mut sha256 = Sha256::new();
    let mut text_size = 0u64;
    for Chunk { producer, mut text } in chunks.rx {
        sha256.update(&text);
        sink.write_all(&text)
            .map_err(io_err("could not write", path))?;
        text_size += text.len() as u64;
        text.clear();
        // A producer that is gone needs no buffer.
        let _ = chunks.give_back[producer].send(text);
    }
    Ok(Written {
        sha256,
        text_size,
        sink,
    })
}

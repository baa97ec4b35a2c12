//! A hook's log: the `log` import and the guest's stdout and stderr, folded
//! into one capped log whose lines go to the operator as they are written.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::hooks::{Limit, LimitHit, LogLevel, LogLine, LogSink, LogSource, escape_untrusted};

/// How many of the last stderr lines an error quotes.
const STDERR_TAIL: usize = 12;

/// The log shared by the `log` import and the WASI streams.
pub(crate) type SharedLog = Arc<Mutex<HookLog>>;

/// A hook's log: forwards lines to the sink, counts bytes against the cap,
/// keeps the last stderr lines for error messages.
pub(crate) struct HookLog {
    sink: Arc<dyn LogSink>,
    plugin: String,
    hook: String,
    written: usize,
    max: usize,
    max_kib: u64,
    capped: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stderr_tail: VecDeque<String>,
}

impl HookLog {
    /// A log for `plugin/hook` capped at `max_kib` KiB.
    pub(crate) fn new(sink: Arc<dyn LogSink>, plugin: &str, hook: &str, max_kib: u64) -> SharedLog {
        Arc::new(Mutex::new(HookLog {
            sink,
            plugin: plugin.to_string(),
            hook: hook.to_string(),
            written: 0,
            max: usize::try_from(max_kib.saturating_mul(1024)).unwrap_or(usize::MAX),
            max_kib,
            capped: false,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stderr_tail: VecDeque::new(),
        }))
    }

    /// Writes `message` (one or more lines). Fails once the cap is reached;
    /// the line that would cross it is replaced by a note saying so.
    pub(crate) fn write(
        &mut self,
        level: LogLevel,
        source: LogSource,
        message: &str,
    ) -> Result<(), Limit> {
        let limit = Limit::Log { kib: self.max_kib };
        if self.capped {
            return Err(limit);
        }
        for line in message.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            self.written = self.written.saturating_add(line.len() + 1);
            if self.written > self.max {
                self.capped = true;
                self.emit(
                    LogLevel::Error,
                    LogSource::Sandbox,
                    &format!("log stopped: {limit}"),
                );
                return Err(limit);
            }
            if source == LogSource::Stderr {
                if self.stderr_tail.len() == STDERR_TAIL {
                    self.stderr_tail.pop_front();
                }
                self.stderr_tail
                    .push_back(escape_untrusted(line).into_owned());
            }
            self.emit(level, source, line);
        }
        Ok(())
    }

    /// A note from the sandbox itself (a refused statement); counted against
    /// the cap like everything else.
    pub(crate) fn sandbox(&mut self, level: LogLevel, message: &str) -> Result<(), Limit> {
        self.write(level, LogSource::Sandbox, message)
    }

    /// Sends one line to the sink, its control characters escaped: it is
    /// the plugin's text (or quotes it), bound for the operator's terminal.
    fn emit(&self, level: LogLevel, source: LogSource, message: &str) {
        self.sink.line(&LogLine {
            level,
            source,
            plugin: self.plugin.clone(),
            hook: self.hook.clone(),
            message: escape_untrusted(message).into_owned(),
        });
    }

    /// Bytes written to stdout or stderr: complete lines are logged, the rest
    /// waits for its newline (or [`HookLog::finish`]).
    fn write_stream(&mut self, source: LogSource, bytes: &[u8]) -> Result<(), Limit> {
        let buffer = match source {
            LogSource::Stderr => &mut self.stderr,
            _ => &mut self.stdout,
        };
        buffer.extend_from_slice(bytes);
        let Some(last_newline) = buffer.iter().rposition(|b| *b == b'\n') else {
            if buffer.len() > self.max {
                let text = String::from_utf8_lossy(&std::mem::take(buffer)).into_owned();
                return self.write(stream_level(source), source, &text);
            }
            return Ok(());
        };
        let rest = buffer.split_off(last_newline + 1);
        let complete = std::mem::replace(buffer, rest);
        let text = String::from_utf8_lossy(&complete[..complete.len() - 1]).into_owned();
        self.write(stream_level(source), source, &text)
    }

    /// Logs what is left of stdout and stderr without a final newline.
    pub(crate) fn finish(&mut self) {
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let buffer = match source {
                LogSource::Stderr => std::mem::take(&mut self.stderr),
                _ => std::mem::take(&mut self.stdout),
            };
            if !buffer.is_empty() && !self.capped {
                let text = String::from_utf8_lossy(&buffer).into_owned();
                let _ = self.write(stream_level(source), source, &text);
            }
        }
    }

    /// The last lines written to stderr.
    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        self.stderr_tail.iter().cloned().collect()
    }

    /// Bytes logged so far.
    pub(crate) fn written(&self) -> usize {
        self.written
    }
}

fn stream_level(source: LogSource) -> LogLevel {
    match source {
        LogSource::Stderr => LogLevel::Warn,
        _ => LogLevel::Info,
    }
}

/// The guest's stdout or stderr: into the hook's log.
#[derive(Clone)]
pub(crate) struct LogStream {
    pub(crate) log: SharedLog,
    pub(crate) source: LogSource,
}

impl LogStream {
    fn write_bytes(&self, bytes: &[u8]) -> Result<(), Limit> {
        match self.log.lock() {
            Ok(mut log) => log.write_stream(self.source, bytes),
            Err(_) => Ok(()),
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes)
            .map_err(|limit| StreamError::Trap(wasmtime::Error::new(LimitHit(limit))))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.write_bytes(buf)
                .map(|()| buf.len())
                .map_err(|limit| std::io::Error::other(limit.to_string())),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

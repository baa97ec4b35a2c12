//! The home's log of upgrade attempts: one file per attempt in `logs/`
//! (`upgrade-<UTC time>.log`), saying what the attempt did or why it
//! failed, with every line its hooks logged. The database's own history
//! (`uplift history`) keeps the facts; this keeps the story, for the
//! operator who collects it from a site. The newest [`KEPT`] are kept.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::disk::{IoError, io_err};
use crate::home::Home;
use crate::hooks::{LogLine, LogSink};
use crate::release::Release;

/// How many attempt logs the home keeps.
pub(super) const KEPT: usize = 50;

/// The most hook lines one log keeps (the first ones: a hook that logs
/// without end cannot fill the disk through it).
const MAX_LINES: usize = 20_000;

/// The hooks' log lines of one attempt, gathered as they are written.
#[derive(Default, Clone)]
pub(super) struct HookLines(Arc<Mutex<Vec<String>>>);

impl HookLines {
    /// A sink that hands each line to `inner` and keeps a copy.
    pub(super) fn tee(&self, inner: Arc<dyn LogSink>) -> Arc<dyn LogSink> {
        let lines = Arc::clone(&self.0);
        Arc::new(move |line: &LogLine| {
            inner.line(line);
            if let Ok(mut lines) = lines.lock()
                && lines.len() < MAX_LINES
            {
                lines.push(line.to_string());
            }
        })
    }

    fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// How an attempt ended, for its log.
pub(super) enum Ending {
    /// It committed: `what` it was (`installed`, `upgraded`) and its
    /// outcome as `uplift upgrade --json` prints it.
    Done { what: &'static str, json: String },
    /// It failed: the failure's code and its message with its causes.
    Failed { code: &'static str, message: String },
}

/// Writes the attempt's log into the home's `logs/` and removes the
/// oldest beyond [`KEPT`]; returns the file.
pub(super) fn write(
    home: &Home,
    release: &Release,
    started: jiff::Timestamp,
    ending: &Ending,
    lines: &HookLines,
) -> Result<PathBuf, IoError> {
    let dir = home.root().join("logs");
    std::fs::create_dir_all(&dir).map_err(io_err("could not create", &dir))?;
    let path = dir.join(format!(
        "upgrade-{}.log",
        started.strftime("%Y%m%dT%H%M%S%.3fZ")
    ));
    let text = render(home, release, started, ending, &lines.take());
    let mut file = std::fs::File::create(&path).map_err(io_err("could not create", &path))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err("could not write", &path))?;
    prune(&dir);
    Ok(path)
}

fn render(
    home: &Home,
    release: &Release,
    started: jiff::Timestamp,
    ending: &Ending,
    lines: &[String],
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "uplift {}: {} {} into {}",
        env!("CARGO_PKG_VERSION"),
        release.app,
        release.version,
        home.db_path().display()
    );
    let _ = writeln!(text, "release  {}", release.dir.display());
    let _ = writeln!(
        text,
        "started  {}",
        started.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    let _ = writeln!(
        text,
        "ended    {}",
        jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    let _ = match ending {
        Ending::Done { what, json } => writeln!(text, "outcome  {what}\n\n{json}"),
        Ending::Failed { code, message } => writeln!(text, "outcome  failed ({code})\n\n{message}"),
    };
    if !lines.is_empty() {
        let _ = writeln!(text, "\nthe hooks' log:");
        for line in lines {
            let _ = writeln!(text, "{line}");
        }
    }
    text
}

/// Removes the oldest attempt logs beyond [`KEPT`] (their names sort by
/// time). Best effort: a log that cannot be removed stays.
fn prune(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("upgrade-") && n.ends_with(".log"))
        })
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(KEPT);
    for old in &logs[..excess] {
        let _ = std::fs::remove_file(old);
    }
}

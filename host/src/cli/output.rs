//! What the commands share about the terminal: the `--quiet` switch, progress
//! bars on stderr, warnings and sizes.

use std::io::IsTerminal;

use uplift::backup::{Progress, ProgressUnit};

/// Prints human-readable results unless --quiet.
pub(super) struct Output {
    pub quiet: bool,
}

impl Output {
    /// Prints `text` and a newline on stdout, unless --quiet.
    pub(super) fn line(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            println!("{text}");
        }
    }
}

/// Warnings go to stderr even with --quiet: each says something an
/// operator must know.
pub(super) fn warn_all(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

/// Progress bars on stderr, drawn only on a terminal and without --quiet.
pub(super) struct Bars {
    bar: Option<indicatif::ProgressBar>,
    enabled: bool,
}

impl Bars {
    pub(super) fn new(quiet: bool) -> Self {
        Bars {
            bar: None,
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bars {
    fn begin(&mut self, phase: &str, total: Option<u64>, unit: ProgressUnit) {
        if !self.enabled {
            return;
        }
        let bar = match total {
            Some(total) => indicatif::ProgressBar::new(total),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let template = match (unit, total.is_some()) {
            (ProgressUnit::Bytes, true) => {
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {prefix}"
            }
            (ProgressUnit::Rows, true) => {
                "{msg:>10} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}"
            }
            _ => "{msg:>10} {spinner} {elapsed}",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(phase.to_string());
        self.bar = Some(bar);
    }

    fn update(&mut self, done: u64, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if rows > 0 && bar.length().is_some() {
                bar.set_prefix(format!("{rows} rows"));
            }
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// `bytes` in decimal units with one decimal: `512 B`, `1.5 MB`.
pub(super) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

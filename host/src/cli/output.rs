//! What the commands share about the terminal: standard output (a reader
//! that goes away ends nothing but the output; with `--json`, one JSON
//! document and nothing else), the `--quiet` switch, progress bars on
//! stderr, warnings and sizes.

use std::io::{IsTerminal, Write};

use indicatif::{HumanCount, ProgressState, ProgressStyle};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use uplift::backup::{Progress, ProgressUnit};

use super::failure::{CommandError, Failure, Outcome};

/// Set when writing to stdout first fails: nothing more is written there.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// Set by `--json`: stdout holds the one JSON document ([`print_json`]),
/// and the text commands write for people goes to stderr.
static JSON_MODE: AtomicBool = AtomicBool::new(false);
/// Why writing to stdout failed, unless its reader merely went away.
static STDOUT_ERROR: OnceLock<String> = OnceLock::new();

/// Writes text for people to stdout (with `--json`, to stderr: stdout is
/// the JSON document's alone). Its reader going away (`uplift status |
/// head -1`: EPIPE) is no error: the rest of the output is dropped and the
/// command finishes what it does, quietly. Any other failure to write is
/// reported once the command is done ([`finish_stdout`]).
pub(super) fn write_stdout(text: std::fmt::Arguments<'_>) {
    if json_mode() {
        eprint!("{text}");
        return;
    }
    write_stdout_raw(text);
}

fn write_stdout_raw(text: std::fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_fmt(text) {
        stdout_failed(err);
    }
}

/// Turns `--json` on or off for the rest of the process.
pub(super) fn set_json_mode(on: bool) {
    JSON_MODE.store(on, Ordering::Relaxed);
}

/// Whether `--json` was given.
pub(super) fn json_mode() -> bool {
    JSON_MODE.load(Ordering::Relaxed)
}

/// Whether `args` ask for JSON (`--json` before any `--`): read before
/// clap parses them, so that its own usage errors are printed as JSON too.
pub(super) fn json_requested(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .map(|arg| arg.to_str())
        .take_while(|arg| *arg != Some("--"))
        .any(|arg| arg == Some("--json"))
}

/// Prints `document` on stdout, pretty, as the one JSON document of the
/// command (or its failure object).
pub(super) fn print_json<T: serde::Serialize + ?Sized>(document: &T) {
    match serde_json::to_string_pretty(document) {
        Ok(text) => write_stdout_raw(format_args!("{text}\n")),
        // Only a map with keys that are not strings fails, which no
        // command's document has.
        Err(err) => eprintln!("error: could not write the JSON result: {err}"),
    }
}

/// With `--json`, what a command that checks something ends with: its
/// `document` printed when `problem` is `None`, else the failure with the
/// document as its details (printed by [`Failure::report`]).
pub(super) fn json_outcome<T: serde::Serialize + ?Sized>(
    document: &T,
    problem: Option<Failure>,
) -> Outcome {
    match problem {
        None => {
            print_json(document);
            Ok(())
        }
        Some(failure) => Err(failure.with_details(serde_json::to_value(document)?)),
    }
}

fn stdout_failed(err: std::io::Error) {
    STDOUT_CLOSED.store(true, Ordering::Relaxed);
    if err.kind() != std::io::ErrorKind::BrokenPipe {
        let _ = STDOUT_ERROR.set(err.to_string());
    }
}

/// Flushes stdout once the command is done; a command that succeeded but
/// could not write its output (a full disk, not a closed pipe) fails.
pub(super) fn finish_stdout(outcome: Outcome) -> Outcome {
    if !STDOUT_CLOSED.load(Ordering::Relaxed)
        && let Err(err) = std::io::stdout().lock().flush()
    {
        stdout_failed(err);
    }
    match (outcome, STDOUT_ERROR.get()) {
        (Ok(()), Some(err)) => Err(CommandError::Stdout(err.clone()).into()),
        (outcome, _) => outcome,
    }
}

/// `println!` for the commands: [`write_stdout`], which a closed pipe does
/// not make panic.
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the commands: [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!($($arg)*))
    };
}

pub(super) use {out, outln};

/// The `--color` given in `args` (the last one, before any `--`), read
/// before clap parses them so that its own help and errors obey it;
/// `auto` when none is given or its value is not one clap accepts (which
/// clap then reports). `auto` colours only a terminal, and not when
/// `NO_COLOR` is set.
pub(super) fn color_choice(args: &[std::ffi::OsString]) -> clap::ColorChoice {
    use clap::ValueEnum;
    let mut choice = clap::ColorChoice::Auto;
    let mut args = args.iter().skip(1).map(|arg| arg.to_str());
    while let Some(arg) = args.next() {
        let value = match arg {
            Some("--") => break,
            Some("--color") => args.next().flatten(),
            Some(arg) => arg.strip_prefix("--color="),
            None => None,
        };
        if let Some(value) = value.and_then(|v| clap::ColorChoice::from_str(v, false).ok()) {
            choice = value;
        }
    }
    choice
}

/// Prints human-readable results unless --quiet.
pub(super) struct Output {
    pub quiet: bool,
    /// `-v`: more detail (what was read from the compile cache, which
    /// hooks were skipped and why).
    pub verbose: bool,
}

impl Output {
    /// Prints `text` like [`Output::line`], only with `-v`.
    pub(super) fn detail(&self, text: impl std::fmt::Display) {
        if self.verbose {
            self.line(text);
        }
    }

    /// Prints `text` and a newline on stdout, unless --quiet.
    pub(super) fn line(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            outln!("{text}");
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
    /// Bars are drawn: on a terminal, unless quiet.
    enabled: bool,
    /// Step lines are printed: unless quiet (a pipe or a file gets them as
    /// plain lines).
    lines: bool,
}

impl Bars {
    pub(super) fn new(quiet: bool) -> Self {
        Bars {
            bar: None,
            enabled: !quiet && std::io::stderr().is_terminal(),
            lines: !quiet,
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
        bar.set_style(bar_style(unit, total.is_some()));
        bar.set_message(phase.to_string());
        if total.is_none() {
            // A phase of unknown length (a compilation) may see no update
            // for a minute: the spinner moves on its own.
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        self.bar = Some(bar);
    }

    fn update(&mut self, done: u64, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if rows > 0 && bar.length().is_some() {
                bar.set_prefix(format!("{} rows", HumanCount(rows)));
            }
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn step(&mut self, what: &str) {
        if !self.lines {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(what),
            None => eprintln!("{what}"),
        }
    }
}

/// A bar's look: sizes in decimal units with one decimal, as
/// [`human_size`] writes them (`41.2 MB/176.0 MB 144.3 MB/s`), counts and
/// rates as whole numbers (`12,345/80,000 rows 9,120 rows/s`), a spinner
/// for work of unknown size.
fn bar_style(unit: ProgressUnit, sized: bool) -> ProgressStyle {
    let template = match (unit, sized) {
        (ProgressUnit::Bytes, true) => {
            "{msg:>10} [{bar:30}] {done}/{total} {bytes_rate} eta {eta} {prefix}"
        }
        (ProgressUnit::Rows, true) => {
            "{msg:>10} [{bar:30}] {human_pos}/{human_len} rows {rows_rate} eta {eta}"
        }
        _ => "{msg:>10} {spinner} {elapsed}",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "done",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&human_size(state.pos()));
            },
        )
        .with_key(
            "total",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&human_size(state.len().unwrap_or(0)));
            },
        )
        .with_key(
            "bytes_rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", human_size(whole(state.per_sec())));
            },
        )
        .with_key(
            "rows_rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{} rows/s", HumanCount(whole(state.per_sec())));
            },
        );
    style.progress_chars("=> ")
}

/// A rate rounded to a whole number (0 before there is one).
fn whole(rate: f64) -> u64 {
    if rate.is_finite() && rate > 0.0 {
        rate.round() as u64
    } else {
        0
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

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(args: &[&str]) -> clap::ColorChoice {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        color_choice(&args)
    }

    #[test]
    fn color_is_the_last_one_given_before_the_command_to_run() {
        use clap::ColorChoice::{Always, Auto, Never};
        assert_eq!(choice(&["uplift", "status"]), Auto);
        assert_eq!(choice(&["uplift", "--color", "never", "status"]), Never);
        assert_eq!(choice(&["uplift", "status", "--color=always"]), Always);
        assert_eq!(
            choice(&["uplift", "--color=never", "--color", "always"]),
            Always
        );
        assert_eq!(choice(&["uplift", "--color", "sometimes"]), Auto);
        assert_eq!(
            choice(&["uplift", "run", "--", "app", "--color", "never"]),
            Auto
        );
    }

    #[test]
    fn json_is_asked_for_before_the_command_to_run() {
        let asks = |args: &[&str]| {
            let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            json_requested(&args)
        };
        assert!(asks(&["uplift", "--json", "status"]));
        assert!(asks(&["uplift", "status", "--json"]));
        assert!(!asks(&["uplift", "status"]));
        assert!(!asks(&["uplift", "run", "--", "app", "--json"]));
        assert!(!asks(&["uplift", "--jsonx", "status"]));
    }

    #[test]
    fn rates_are_whole_numbers_and_sizes_have_one_unit() {
        assert_eq!(whole(154_140.947), 154_141);
        assert_eq!(whole(f64::NAN), 0);
        assert_eq!(whole(-1.0), 0);
        assert_eq!(format!("{}", HumanCount(whole(154_140.947))), "154,141");
        assert_eq!(human_size(144_310_000), "144.3 MB");
        assert_eq!(human_size(512), "512 B");
    }
}

//! The `uplift` command line. This is the only module that knows about the
//! terminal: argument parsing, output formats, progress bars and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::version::{Version, VersionRange};

/// Exit code for a usage error or invalid input.
const EXIT_USAGE: u8 = 2;

/// uplift upgrades an application's SQLite database when a new release is
/// installed: backup, migrations, sandboxed plugin hooks, all or nothing.
#[derive(Debug, Parser)]
#[command(name = "uplift", version, about, max_term_width = 100)]
struct Cli {
    /// The home folder holding the database, backups and plugins
    /// [default: ~/.uplift]
    #[arg(long, global = true, env = "UPLIFT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// The installed release: a folder with release.toml, migrations/ and plugins/
    #[arg(long, global = true, env = "UPLIFT_RELEASE", value_name = "DIR")]
    release: Option<PathBuf>,

    /// Print nothing but errors (and the results a command exists to print)
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare versions and check version ranges, as hooks use them
    #[command(subcommand)]
    Version(VersionCommand),
}

#[derive(Debug, Subcommand)]
enum VersionCommand {
    /// Print one line per VERSION saying whether it matches RANGE; exit 0 if
    /// all match, 1 if any does not, 2 on invalid input
    Match {
        /// A range such as "<0.6.4", ">=0.14, <0.16" or "^1.2 || 2.*"
        range: String,
        /// Versions such as 1.0.0, 0.15, 0.15.0rc10, 1.1.1.dev0
        #[arg(required = true)]
        versions: Vec<String>,
    },
    /// Print <, = or > comparing version A with version B
    Compare { a: String, b: String },
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version(cmd) => version_command(cmd),
    }
}

fn version_command(cmd: VersionCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VersionCommand::Match { range, versions } => {
            let range = VersionRange::parse(&range)?;
            let versions = versions
                .iter()
                .map(|v| Version::parse(v))
                .collect::<Result<Vec<_>, _>>()?;
            let mut all = true;
            for version in &versions {
                if range.matches(version) {
                    println!("{version} matches {range}");
                } else {
                    println!("{version} does not match {range}");
                    all = false;
                }
            }
            Ok(if all { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        VersionCommand::Compare { a, b } => {
            let a = Version::parse(&a)?;
            let b = Version::parse(&b)?;
            let sign = match a.cmp(&b) {
                std::cmp::Ordering::Less => "<",
                std::cmp::Ordering::Equal => "=",
                std::cmp::Ordering::Greater => ">",
            };
            println!("{sign}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! The `uplift` command line: the clap model and the dispatch to one module
//! per command group. Only this module knows about the terminal (arguments,
//! output formats, progress bars, exit codes); each command parses, calls
//! the library and prints, and returns an [`Outcome`] whose failure picks
//! the exit code ([`failure`]).

mod backups;
mod failure;
mod hooks;
mod migrations;
mod output;
mod plugin;
mod upgrade;
mod version;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use uplift::home::{Home, HomeError};
use uplift::release::{Release, ReleaseError};

use failure::{Failure, Outcome};

/// uplift upgrades an application's SQLite database when a new release is
/// installed: backup, migrations, sandboxed plugin hooks, all or nothing.
#[derive(Debug, Parser)]
#[command(name = "uplift", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    globals: Globals,

    #[command(subcommand)]
    command: Command,
}

/// The options every command takes.
#[derive(Debug, clap::Args)]
struct Globals {
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
}

impl Globals {
    /// The home: --home, UPLIFT_HOME or ~/.uplift. None of them given
    /// (and no $HOME), an empty one, or one naming something that is not a
    /// folder, is a usage error.
    fn home(&self) -> Result<Home, Failure> {
        if let Some(dir) = &self.home {
            if dir.as_os_str().is_empty() {
                return Err(Failure::usage(
                    "--home (or UPLIFT_HOME) is empty: give the home folder",
                ));
            }
            if dir.exists() && !dir.is_dir() {
                return Err(Failure::usage(format_args!(
                    "--home {} is not a folder: give the home folder (it is created if missing)",
                    dir.display()
                )));
            }
        }
        Home::resolve(self.home.clone()).map_err(|err| match err {
            HomeError::NoDefault => Failure::usage(err),
            err => err.into(),
        })
    }

    /// The installed release: --release or UPLIFT_RELEASE; neither given is
    /// a usage error, a folder that is not a release a failure.
    fn release(&self) -> Result<Release, Failure> {
        Release::resolve(self.release.as_deref()).map_err(|err| match err {
            ReleaseError::NotGiven => Failure::usage(err),
            err => err.into(),
        })
    }

    /// Where human-readable results go, silenced by --quiet.
    fn output(&self) -> output::Output {
        output::Output { quiet: self.quiet }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the database to the installed release's version: backup,
    /// migrations, plugin hooks and the new version, all or nothing
    Upgrade(upgrade::UpgradeArgs),
    /// Upgrade if needed, then replace this process with CMD (for use on
    /// every start of the application)
    Run(upgrade::RunArgs),
    /// Show the release and data versions and what an upgrade would do
    ///
    /// With --quiet, print only the state: up to date, upgrade needed, not
    /// installed, data newer than release or not managed by uplift.
    Status(upgrade::StatusArgs),
    /// Inspect schema migrations
    #[command(subcommand)]
    Migrations(migrations::MigrationsCommand),
    /// Check every upgrade path between an application's releases: data
    /// created at each release, upgraded directly to each later one, must have
    /// the schema of a fresh install (for CI); exit 1 on any difference
    VerifyPaths(migrations::VerifyPathsArgs),
    /// Compare versions and check version ranges, as hooks use them
    #[command(subcommand)]
    Version(version::VersionCommand),
    /// Back the database up as an SQL dump (that `sqlite3 new.db < FILE`
    /// also restores) and print its path
    Dbbackup(backups::BackupArgs),
    /// Restore the database from a dump; the current database is backed up
    /// first and replaced only once the restored one checks out
    #[command(group = clap::ArgGroup::new("which").required(true).args(["file", "latest", "select"]))]
    Dbrestore(backups::RestoreArgs),
    /// List or prune the home's backups
    #[command(subcommand)]
    Backups(backups::BackupsCommand),
    /// Inspect, validate and prepare plugin components
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
    /// List, enable and disable plugins
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Parses the command line and runs the command. Usage errors clap finds
/// end the process here (exit 2), as clap does.
pub(crate) fn run() -> Outcome {
    ignore_file_size_signal();
    // This process does nothing but the command: its memory and open files
    // are the running hook's to account for, and when a hook or a
    // compilation is stuck past its limit inside a call nothing can
    // interrupt, ending the process is the way to stop it (hooks::bounds).
    uplift::hooks::supervise_whole_process();
    // Before anything opens a database: SQLite takes an allocator only then.
    uplift::hooks::install_sqlite_allocator();
    let Cli { globals, command } = Cli::parse();
    output::finish_stdout(dispatch(&globals, command))
}

/// Runs one command.
fn dispatch(globals: &Globals, command: Command) -> Outcome {
    match command {
        Command::Upgrade(args) => upgrade::upgrade(globals, args),
        Command::Run(args) => upgrade::run(globals, args),
        Command::Status(args) => upgrade::status(globals, args),
        Command::Migrations(cmd) => migrations::migrations(globals, cmd),
        Command::VerifyPaths(args) => migrations::verify_paths(globals, args),
        Command::Version(cmd) => version::version(cmd),
        Command::Dbbackup(args) => backups::dbbackup(globals, args),
        Command::Dbrestore(args) => backups::dbrestore(globals, args),
        Command::Backups(cmd) => backups::backups(globals, cmd),
        Command::Hooks(cmd) => hooks::hooks(globals, cmd),
        Command::Plugin(cmd) => plugin::plugin(globals, cmd),
    }
}

/// A write beyond the file-size limit (`ulimit -f`) must fail with an error
/// the backup can clean up after, not kill the process with SIGXFSZ and
/// leave a temporary file behind.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // code; it only makes write(2) return EFBIG instead of raising SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

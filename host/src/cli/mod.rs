//! The `uplift` command line: the clap model and the dispatch to one module
//! per command group. Only this module knows about the terminal (arguments,
//! output formats, progress bars, exit codes); each command parses, calls
//! the library and prints, and returns an [`Outcome`] whose failure picks
//! the exit code ([`failure`]).

mod adopt;
mod backups;
mod docs;
mod failure;
mod history;
mod hooks;
mod migrations;
mod output;
mod plugin;
mod report;
mod upgrade;
mod version;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use uplift::home::{Home, HomeError};
use uplift::release::{Release, ReleaseError};

use failure::{Failure, Outcome};

/// uplift upgrades an application's SQLite database when a new release is
/// installed: backup, migrations, sandboxed plugin hooks, all or nothing.
#[derive(Debug, Parser)]
#[command(
    name = "uplift",
    version,
    about,
    max_term_width = 100,
    after_help = "Examples:
  uplift --home /var/lib/learnhub --release /opt/learnhub/current status
  UPLIFT_HOME=/var/lib/learnhub UPLIFT_RELEASE=/opt/learnhub/current uplift upgrade

Exit codes: 0 done (or nothing to do), 1 the operation failed (and changed nothing), 2 invalid usage."
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,

    #[command(subcommand)]
    command: Command,
}

/// The options every command takes.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
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

    /// Print more detail: what was compiled or read from the compile cache,
    /// which hooks were skipped and why
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    verbose: bool,

    /// When to colour the output; auto: only on a terminal, and not when
    /// NO_COLOR is set
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    color: clap::ColorChoice,

    /// Print the result as one JSON document on stdout, and on failure a
    /// JSON object with a stable error code (docs/json.md, docs/errors.md)
    #[arg(long, global = true)]
    json: bool,
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
            HomeError::NoDefault => Failure::usage_error(err),
            err => err.into(),
        })
    }

    /// The installed release: --release or UPLIFT_RELEASE; neither given is
    /// a usage error, a folder that is not a release a failure.
    fn release(&self) -> Result<Release, Failure> {
        Release::resolve(self.release.as_deref()).map_err(|err| match err {
            ReleaseError::NotGiven => Failure::usage_error(err),
            err => err.into(),
        })
    }

    /// Where human-readable results go, silenced by --quiet and by
    /// --json (whose document is the result).
    fn output(&self) -> output::Output {
        output::Output {
            quiet: self.quiet || self.json,
            verbose: self.verbose,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the database to the installed release's version: backup,
    /// migrations, plugin hooks and the new version, all or nothing
    #[command(after_help = "Examples:
  uplift upgrade --plan    # what an upgrade would do; changes nothing
  uplift upgrade --wait    # queue behind another uplift working on this home")]
    Upgrade(upgrade::UpgradeArgs),
    /// Upgrade if needed, then replace this process with CMD (for use on
    /// every start of the application)
    #[command(after_help = "Example:
  uplift run --wait -- /opt/learnhub/current/bin/learnhub serve")]
    Run(upgrade::RunArgs),
    /// Take a database uplift did not create under its management, once its
    /// schema is found to be exactly a release's (backed up first; no row is
    /// touched)
    #[command(after_help = "Examples:
  uplift status                    # on an unmanaged database: which release it matches
  uplift adopt --as 0.6.4          # then `uplift upgrade` brings it to the installed release
  uplift adopt --as 0.6.4 --force  # adopt despite differences, recorded in its history")]
    Adopt(adopt::AdoptArgs),
    /// Show the release and data versions and what an upgrade would do
    ///
    /// With --quiet, print only the state: up to date, upgrade needed, not
    /// installed, data newer than release, not managed by uplift or blocked
    /// by drift.
    #[command(after_help = "Examples:
  uplift status
  uplift status --quiet    # prints e.g. \"upgrade needed\"")]
    Status,
    /// Report on this site for a fleet: uplift's build, the application,
    /// data and plugin versions, the last upgrade, every backup (read
    /// through and checked), free disk and drift
    #[command(after_help = "Example:
  uplift report --json > /var/tmp/learnhub-site-report.json")]
    Report,
    /// Show what uplift did to the database (adoptions, accepted migration
    /// edits), as the database records it
    #[command(after_help = "Example:
  uplift history --json")]
    History,
    /// Inspect schema migrations
    #[command(
        subcommand,
        after_help = "Example:
  uplift migrations list --json"
    )]
    Migrations(migrations::MigrationsCommand),
    /// Check every upgrade path between an application's releases: data
    /// created at each release, upgraded directly to each later one, must have
    /// the schema of a fresh install (for CI); exit 1 on any difference
    #[command(after_help = "Example:
  uplift verify-paths releases/0.1.0 releases/0.6.4 releases/1.0.0")]
    VerifyPaths(migrations::VerifyPathsArgs),
    /// Build a database at the installed release with its fixtures
    /// (fixtures/*.sql), for `hooks test` and development; the home is not
    /// touched
    #[command(after_help = "Example:
  uplift --release releases/0.6.4 testdb old.sqlite3
  uplift --release releases/1.0.0 hooks test my_plugin.wasm --db old.sqlite3 --from 0.6.4")]
    Testdb(migrations::TestdbArgs),
    /// Compare versions and check version ranges, as hooks use them
    #[command(
        subcommand,
        after_help = "Examples:
  uplift version match \"<0.6.4\" 0.6.3 0.6.4       # one line per version
  uplift version compare 0.15.0rc10 0.15.0rc9     # prints >"
    )]
    Version(version::VersionCommand),
    /// Back the database up as an SQL dump (that `sqlite3 new.db < FILE`
    /// also restores) and print its path
    #[command(after_help = "Examples:
  uplift dbbackup
  uplift dbbackup --compress --dest /mnt/offsite")]
    Dbbackup(backups::BackupArgs),
    /// Restore the database from a dump; the current database is backed up
    /// first and replaced only once the restored one checks out
    #[command(group = clap::ArgGroup::new("which").required(true).args(["file", "latest", "select"]))]
    #[command(after_help = "Examples:
  uplift dbrestore --latest    # the newest backup the installed release can run
  uplift dbrestore ~/.uplift/backups/db-v1.0.0_20250101T120000Z.dump")]
    Dbrestore(backups::RestoreArgs),
    /// List or prune the home's backups
    #[command(
        subcommand,
        after_help = "Examples:
  uplift backups list
  uplift backups prune --keep 5"
    )]
    Backups(backups::BackupsCommand),
    /// Inspect, validate and prepare plugin components
    #[command(
        subcommand,
        after_help = "Examples:
  uplift hooks new my-plugin --lang python
  uplift hooks validate --release releases/1.0.0 my_plugin.wasm
  uplift --release releases/1.0.0 hooks test my_plugin.wasm --db app.sqlite3 --from 0.6.3"
    )]
    Hooks(hooks::HooksCommand),
    /// List, enable and disable plugins
    #[command(
        subcommand,
        after_help = "Examples:
  uplift plugin list
  uplift plugin enable audit-log"
    )]
    Plugin(plugin::PluginCommand),
    /// Print the completion script for a shell
    #[command(after_help = "Examples:
  uplift completions bash > /etc/bash_completion.d/uplift
  uplift completions zsh > ~/.zfunc/_uplift    # with fpath+=~/.zfunc in .zshrc
  uplift completions fish > ~/.config/fish/completions/uplift.fish")]
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff)
    #[command(after_help = "Example:
  uplift man > /usr/local/share/man/man1/uplift.1")]
    Man,
}

/// Parses the command line and runs the command: the process's exit code.
/// Usage errors clap finds exit 2, as clap does (with `--json`, after the
/// failure object on stdout).
pub(crate) fn run() -> ExitCode {
    ignore_file_size_signal();
    // This process does nothing but the command: its memory and open files
    // are the running hook's to account for, and when a hook or a
    // compilation is stuck past its limit inside a call nothing can
    // interrupt, ending the process is the way to stop it (hooks::bounds).
    uplift::hooks::supervise_whole_process();
    // Before anything opens a database: SQLite takes an allocator only then.
    uplift::hooks::install_sqlite_allocator();
    let args: Vec<OsString> = std::env::args_os().collect();
    // Read before parsing, so that clap's own errors are printed as JSON.
    output::set_json_mode(output::json_requested(&args));
    let mut cli = Cli::command()
        .color(output::color_choice(&args))
        .long_version(long_version().leak() as &'static str);
    let parsed = cli
        .try_get_matches_from_mut(&args)
        .and_then(|matches| Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut cli)));
    let Cli { globals, command } = match parsed {
        Ok(cli) => cli,
        Err(err) => return parse_error(err),
    };
    output::set_json_mode(globals.json);
    match output::finish_stdout(dispatch(&globals, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// What clap found while parsing: help and `--version` (exit 0), or a
/// usage error (exit 2). With `--json`, the help and the versions are a
/// JSON object, and a usage error is printed as a failure object on stdout
/// with the code `usage` as well as by clap on stderr.
fn parse_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if !output::json_mode() {
        err.exit();
    }
    match err.kind() {
        ErrorKind::DisplayVersion => {
            output::print_json(&versions_json());
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelp => {
            output::print_json(&serde_json::json!({ "help": err.render().to_string() }));
            ExitCode::SUCCESS
        }
        _ => {
            let failure = serde_json::json!({
                "outcome": "failed",
                "error": { "code": failure::USAGE, "message": clap_message(&err) },
            });
            output::print_json(&failure);
            let _ = err.print();
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
        }
    }
}

/// The first paragraph of clap's error, without its `error: ` prefix: what
/// is wrong, without the usage line and the hint that follow.
fn clap_message(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let first = text.split("\n\n").next().unwrap_or_default().trim();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// `uplift --json --version`: uplift's version and those of the engines it
/// runs plugins and databases with.
fn versions_json() -> serde_json::Value {
    serde_json::json!({
        "uplift": env!("CARGO_PKG_VERSION"),
        "wasmtime": wasmtime_environ::VERSION,
        "sqlite": uplift::sqlite_version(),
    })
}

/// What `--version` prints after "uplift ": its version and those of the
/// engines it runs plugins and databases with.
fn long_version() -> String {
    format!(
        "{}\nwasmtime {}\nSQLite {}",
        env!("CARGO_PKG_VERSION"),
        wasmtime_environ::VERSION,
        uplift::sqlite_version()
    )
}

/// Runs one command.
fn dispatch(globals: &Globals, command: Command) -> Outcome {
    match command {
        Command::Upgrade(args) => upgrade::upgrade(globals, args),
        Command::Run(args) => upgrade::run(globals, args),
        Command::Adopt(args) => adopt::adopt(globals, args),
        Command::Status => upgrade::status(globals),
        Command::History => history::history(globals),
        Command::Report => report::report(globals),
        Command::Migrations(cmd) => migrations::migrations(globals, cmd),
        Command::VerifyPaths(args) => migrations::verify_paths(globals, args),
        Command::Testdb(args) => migrations::testdb(globals, args),
        Command::Version(cmd) => version::version(cmd, globals.json),
        Command::Dbbackup(args) => backups::dbbackup(globals, args),
        Command::Dbrestore(args) => backups::dbrestore(globals, args),
        Command::Backups(cmd) => backups::backups(globals, cmd),
        Command::Hooks(cmd) => hooks::hooks(globals, cmd),
        Command::Plugin(cmd) => plugin::plugin(globals, cmd),
        Command::Completions(args) => docs::completions(args, globals.json),
        Command::Man => docs::man(globals.json),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command of the clap model, as its path of names (clap's own
    /// `help` left out).
    fn commands(cmd: &clap::Command, path: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            path.push(sub.get_name().to_string());
            found.push(path.clone());
            commands(sub, path, found);
            path.pop();
        }
    }

    #[test]
    fn every_command_of_the_model_accepts_json_before_and_after_its_name() {
        let mut model = Cli::command();
        model.build();
        let mut found = Vec::new();
        commands(&model, &mut Vec::new(), &mut found);
        assert!(found.len() > 20, "{found:?}");
        for path in &found {
            let mut sub = &model;
            for name in path {
                sub = sub.find_subcommand(name).expect("a subcommand found above");
            }
            assert!(
                sub.get_arguments().any(|a| a.get_id() == "json"),
                "uplift {} does not take --json",
                path.join(" ")
            );
            // Parsing goes past --json whichever side of the name it is:
            // what fails, if anything, is a missing argument of the command.
            for args in [
                [vec!["uplift".to_string(), "--json".into()], path.clone()].concat(),
                [
                    vec!["uplift".to_string()],
                    path.clone(),
                    vec!["--json".into()],
                ]
                .concat(),
            ] {
                if let Err(err) = Cli::command().try_get_matches_from(&args) {
                    use clap::error::ErrorKind;
                    assert!(
                        matches!(
                            err.kind(),
                            ErrorKind::MissingRequiredArgument
                                | ErrorKind::MissingSubcommand
                                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                        ),
                        "{args:?}: {err}"
                    );
                }
            }
        }
    }
}

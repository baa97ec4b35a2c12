//! `uplift hooks`: plugin components inspected, validated, scaffolded, tried
//! on a copy of a database, and given a manifest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use uplift::home::{Home, HookLimits};
use uplift::hook_test::{self, TrialError, TrialOptions, TrialReport};
use uplift::hooks::scaffold::{self, Lang, SdkSource};
use uplift::hooks::validate::Validator;
use uplift::hooks::{LogLine, escape_untrusted, manifest};
use uplift::release::Release;
use uplift::upgrade::MigrationRun;
use uplift::version::Version;

use super::Globals;
use super::failure::{CommandError, Failure, Outcome, reported_unless};
use super::output::{Output, json_outcome, out, outln, print_json, warn_all};

#[derive(Debug, clap::Subcommand)]
pub(super) enum HooksCommand {
    /// Print a component's manifest (read from its custom section; nothing
    /// is run)
    Inspect {
        /// The plugin component (.wasm)
        file: PathBuf,
    },
    /// Check plugin components for CI without running them: a component of
    /// the upgrade-hook world, importing only what uplift provides, with a
    /// valid manifest; with --release, the tables it names exist in that
    /// release's schema. Exit 0 if all are valid, 1 if any is not, 2 on a
    /// usage error
    Validate {
        /// A release later than --release's that hooks may be meant for
        /// (repeat for several): a hook whose new_version matches none of
        /// them, nor --release, is warned of
        #[arg(long, value_name = "V", value_parser = parse_version)]
        later: Vec<Version>,
        /// Plugin components (.wasm)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Create a new plugin that builds and passes `hooks validate` as
    /// generated: a Rust crate using uplift-hooks-sdk, or a Python app.py
    New(NewArgs),
    /// Run a plugin's hooks against a copy of a database (the original is
    /// never written) inside the real sandbox, and print their log and the
    /// rows they inserted, updated and deleted per table. With --release, the
    /// release's pending migrations are applied to the copy first, as the
    /// upgrade would. The sandbox's limits are the home's ([hooks] in
    /// uplift.toml). Exit 0 if every hook succeeded, 1 if one failed or was
    /// refused or a migration failed, 2 on a usage error
    Test(TestArgs),
    /// Add or replace the manifest of a component (for languages without
    /// the SDK)
    EmbedManifest {
        /// The manifest, as TOML (see wit/MANIFEST.md)
        #[arg(long, value_name = "TOML")]
        manifest: PathBuf,
        /// The component to read
        input: PathBuf,
        /// Where to write the component with the manifest
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub(super) struct NewArgs {
    /// The plugin's name: 1 to 64 of a-z 0-9 - _, starting with a letter
    name: String,
    /// The plugin's language
    #[arg(long, value_enum, default_value = "rust")]
    lang: LangArg,
    /// The folder to create it in (must not exist or be empty)
    /// [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Where a Rust plugin takes uplift-hooks-sdk from: a version
    /// requirement (=0.1.2), path:DIR (the hooks-sdk folder of a checkout),
    /// checkout (that of the checkout this uplift was built from) or
    /// git:URL#REV [default: $UPLIFT_HOOKS_SDK, or else the SDK released
    /// with this uplift, from crates.io]
    #[arg(long, value_name = "SOURCE")]
    sdk: Option<String>,
}

/// The language of `hooks new`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LangArg {
    Rust,
    Python,
}

#[derive(Debug, clap::Args)]
pub(super) struct TestArgs {
    /// The plugin component (.wasm)
    plugin: PathBuf,
    /// The database to copy
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// The data version before the upgrade [default: the version the
    /// database records]
    #[arg(long, value_name = "V")]
    from: Option<String>,
    /// The release version upgraded to [default: the version of
    /// --release]
    #[arg(long, value_name = "V")]
    to: Option<String>,
    /// Run only this hook, whatever its ranges
    #[arg(long, value_name = "NAME")]
    hook: Option<String>,
    /// Fail (exit 1) when no hook of the plugin matches the upgrade: for
    /// CI, so that a hook whose ranges went wrong is noticed
    #[arg(long)]
    require_match: bool,
}

/// `uplift hooks ...`.
pub(super) fn hooks(globals: &Globals, cmd: HooksCommand) -> Outcome {
    let out = globals.output();
    let json = globals.json;
    match cmd {
        HooksCommand::Inspect { file } => inspect(&file, json),
        HooksCommand::Validate { later, files } => validate(globals, &out, later, &files),
        HooksCommand::New(args) => new(&out, json, args),
        HooksCommand::Test(args) => test(globals, &out, args),
        HooksCommand::EmbedManifest {
            manifest,
            input,
            output,
        } => embed_manifest(&out, json, &manifest, &input, &output),
    }
}

fn inspect(file: &Path, json: bool) -> Outcome {
    let bytes = read_file(file)?;
    let manifest = manifest::read_manifest(&bytes).map_err(|cause| CommandError::Manifest {
        path: file.to_path_buf(),
        cause,
    })?;
    if json {
        print_json(&manifest);
    } else {
        out!("{manifest}");
    }
    Ok(())
}

/// The home, when there is a folder there: `hooks validate` and `hooks
/// test` then get its limits, as in the upgrade; without one, the defaults.
/// The user's compile cache for `hooks test` run without a home:
/// `$XDG_CACHE_HOME/uplift`, else `~/.cache/uplift`.
fn user_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("uplift"))
}

/// The bytes of `path`, a file given on the command line.
fn read_file(path: &Path) -> Result<Vec<u8>, CommandError> {
    std::fs::read(path).map_err(|cause| CommandError::File {
        what: "read",
        path: path.to_path_buf(),
        cause,
    })
}

fn existing_home(globals: &Globals) -> Option<Home> {
    globals.home().ok().filter(|h| h.root().is_dir())
}

fn parse_version(text: &str) -> Result<Version, String> {
    Version::parse(text).map_err(|e| e.to_string())
}

fn validate(globals: &Globals, out: &Output, later: Vec<Version>, files: &[PathBuf]) -> Outcome {
    let compile_seconds = match existing_home(globals) {
        Some(home) => home.settings()?.hooks.compile_seconds,
        None => HookLimits::default().compile_seconds,
    };
    let validator = Validator::new(globals.release.as_deref())
        .map_err(Failure::usage_error)?
        .with_compile_seconds(compile_seconds)
        .with_later(later);
    let reports: Vec<_> = files.iter().map(|f| validator.validate(f)).collect();
    let invalid = reports.iter().filter(|r| !r.valid).count();
    let found = || {
        Failure::found(
            "invalid-plugin",
            format!(
                "{invalid} of {} plugin component{} not valid",
                reports.len(),
                if reports.len() == 1 { " is" } else { "s are" }
            ),
        )
    };
    if globals.json {
        return json_outcome(&reports, (invalid > 0).then(found));
    }
    for report in &reports {
        let name = match (&report.plugin, &report.version) {
            (Some(p), Some(v)) => format!(" (plugin {p} {v})"),
            _ => String::new(),
        };
        if report.valid {
            out.line(format_args!("ok   {}{name}", report.file.display()));
        } else {
            outln!("FAIL {}{name}", report.file.display());
            for error in &report.errors {
                outln!("     {error}");
            }
        }
        for warning in &report.warnings {
            outln!("     warning: {warning}");
        }
    }
    reported_unless(invalid == 0, found)
}

fn new(out: &Output, json: bool, args: NewArgs) -> Outcome {
    let lang = match args.lang {
        LangArg::Rust => Lang::Rust,
        LangArg::Python => Lang::Python,
    };
    let name = args.name;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&name));
    let checkout = scaffold::repo_root();
    let made = match args.sdk {
        Some(value) => {
            let sdk = SdkSource::named("--sdk", &value, &checkout).map_err(Failure::usage_error)?;
            scaffold::scaffold_with(&name, lang, &dir, &sdk)
        }
        None => scaffold::scaffold(&name, lang, &dir, &checkout),
    }
    .map_err(Failure::usage_error)?;
    if json {
        print_json(&serde_json::json!({
            "outcome": "created",
            "plugin": name,
            "dir": made.dir,
            "files": made.files,
            "build": made.build,
        }));
        return Ok(());
    }
    out.line(format_args!(
        "created plugin {name} in {}:",
        made.dir.display()
    ));
    for file in &made.files {
        out.line(format_args!("  {}", file.display()));
    }
    out.line(format_args!(
        "build it with, in that folder:\n  {}",
        made.build
    ));
    Ok(())
}

/// `uplift hooks test`.
fn test(globals: &Globals, out: &Output, args: TestArgs) -> Outcome {
    // A compile cache spares recompiling the plugin on every run: the
    // home's, or without one the user's.
    let home = existing_home(globals);
    let limits = match &home {
        Some(home) => home.settings()?.hooks,
        None => HookLimits::default(),
    };
    let cache = home.map(|h| h.cache_dir()).or_else(user_cache_dir);
    let release = globals
        .release
        .as_deref()
        .map(Release::load)
        .transpose()
        .map_err(Failure::usage_error)?;
    let from = args
        .from
        .as_deref()
        .map(|from| {
            Version::parse(from)
                .map_err(|e| Failure::usage_because(&e, format!("--from {from}: {e}")))
        })
        .transpose()?;
    let to = match (&args.to, &release) {
        (Some(to), _) => {
            Version::parse(to).map_err(|e| Failure::usage_because(&e, format!("--to {to}: {e}")))?
        }
        (None, Some(release)) => release.version.clone(),
        (None, None) => {
            return Err(Failure::usage(
                "give the release version upgraded to with --to V, or the release with --release DIR",
            ));
        }
    };
    let app = release
        .as_ref()
        .map_or_else(|| "test".to_string(), |r| r.app.clone());
    let opts = TrialOptions {
        plugin: args.plugin,
        db: args.db,
        from,
        to,
        hook: args.hook,
        app,
        limits,
        release,
        cache,
    };
    let json = globals.json;
    let quiet_log = json || out.quiet;
    let log = Arc::new(move |line: &LogLine| {
        if !quiet_log {
            outln!("  {line}");
        }
    });
    // Printed as they are applied, before any hook's log: the order they
    // happen in.
    let migrated = |run: &MigrationRun| {
        if !json {
            outln!("migrated the copy first: {} ({:.0} ms)", run.file, run.ms);
        }
    };
    let report = hook_test::run_trial(&opts, log, &migrated).map_err(|err| match err {
        // The upgrade would fail the same way: not a usage error.
        TrialError::Migrations { .. } => Failure::from(err),
        err => Failure::usage_error(err),
    })?;
    let problem = trial_problem(&report, args.require_match);
    if json {
        warn_all(&report.warnings);
        return json_outcome(&report, problem);
    }
    print_trial(&opts, &report);
    warn_all(&report.warnings);
    problem.map_or(Ok(()), Err)
}

/// Why `hooks test` fails when the trial ran: a hook that failed or was
/// refused (`hook`), rows that break foreign keys (`foreign-keys`), or,
/// with --require-match, no hook that matched (`no-hook-matched`).
fn trial_problem(report: &TrialReport, require_match: bool) -> Option<Failure> {
    let failed: Vec<&str> = report
        .hooks
        .iter()
        .filter(|h| !h.ok)
        .map(|h| h.hook.as_str())
        .collect();
    if !failed.is_empty() {
        return Some(Failure::found(
            "hook",
            format!("hook(s) of {} failed: {}", report.plugin, failed.join(", ")),
        ));
    }
    if !report.foreign_key_violations.is_empty() {
        return Some(Failure::found(
            "foreign-keys",
            format!(
                "the hooks of {} left {} row(s) that break foreign keys",
                report.plugin,
                report.foreign_key_violations.len()
            ),
        ));
    }
    if require_match && report.hooks.is_empty() {
        return Some(
            CommandError::NoHookMatched {
                plugin: report.plugin.clone(),
                from: report.from.to_string(),
                to: report.to.to_string(),
            }
            .into(),
        );
    }
    None
}

/// `uplift hooks test`'s report as text (the migrations were printed as
/// they were applied, the hooks' log lines as they were written).
fn print_trial(opts: &TrialOptions, report: &TrialReport) {
    if let Some(release) = &opts.release
        && report.migrations.is_empty()
    {
        outln!(
            "no migration of release {} was pending: the copy kept its schema",
            release.version
        );
    }
    if report.hooks.is_empty() {
        outln!(
            "no hook of plugin {} {} matches an upgrade from {} to {}",
            report.plugin,
            report.plugin_version,
            report.from,
            report.to
        );
    } else {
        for h in &report.hooks {
            if h.ok {
                outln!("ok   {}/{} ({} ms)", report.plugin, h.hook, h.ms);
            } else {
                outln!("FAIL {}/{} ({} ms)", report.plugin, h.hook, h.ms);
                for line in h.error.as_deref().unwrap_or("").lines() {
                    outln!("     {line}");
                }
            }
            if h.ok {
                // A failed hook's error already lists them.
                for r in &h.refused {
                    outln!("     the sandbox refused (the hook went on): {r}");
                }
            }
            if h.ok && h.changes.is_empty() {
                outln!("     no rows changed");
            }
            for t in &h.changes {
                outln!(
                    "     {}: {} inserted, {} updated, {} deleted",
                    escape_untrusted(&t.table),
                    t.inserted,
                    t.updated,
                    t.deleted
                );
                for example in &t.examples {
                    outln!("       {}", hook_test::describe_change(example));
                }
            }
        }
        outln!("(a copy of {} was used and discarded)", opts.db.display());
    }
    if !report.foreign_key_violations.is_empty() {
        outln!("FAIL foreign keys: the upgrade would be rolled back, these rows break them:");
        for v in &report.foreign_key_violations {
            outln!("     {v}");
        }
    }
}

fn embed_manifest(
    out: &Output,
    json: bool,
    toml_path: &Path,
    input: &Path,
    output: &Path,
) -> Outcome {
    let text = String::from_utf8(read_file(toml_path)?).map_err(|e| CommandError::File {
        what: "read",
        path: toml_path.to_path_buf(),
        cause: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
    })?;
    let in_file = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| CommandError::Manifest { path, cause }
    };
    let parsed = manifest::HookManifest::from_toml(&text).map_err(in_file(toml_path))?;
    let bytes = read_file(input)?;
    let embedded = manifest::embed_manifest(&bytes, &parsed).map_err(in_file(input))?;
    std::fs::write(output, embedded).map_err(|cause| CommandError::File {
        what: "write",
        path: output.to_path_buf(),
        cause,
    })?;
    if json {
        print_json(&serde_json::json!({
            "outcome": "written",
            "output": output,
            "plugin": parsed.name,
            "version": parsed.version,
        }));
        return Ok(());
    }
    out.line(format_args!(
        "wrote {} with the manifest of plugin {} {}",
        output.display(),
        parsed.name,
        parsed.version
    ));
    Ok(())
}

//! `uplift completions` and `uplift man`: shell completions and the man
//! page, generated from the clap model, so they always match the commands.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;
use super::failure::Outcome;
use super::output::{out, print_json};

#[derive(Debug, clap::Args)]
pub(super) struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// `uplift completions SHELL`: the script on stdout (with `json`, in an
/// object).
pub(super) fn completions(args: CompletionsArgs, json: bool) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "uplift", &mut script);
    let script = String::from_utf8_lossy(&script);
    if json {
        print_json(&serde_json::json!({ "shell": args.shell.to_string(), "script": script }));
    } else {
        out!("{script}");
    }
    Ok(())
}

/// `uplift man`: the man page, in roff, on stdout (with `json`, in an
/// object).
pub(super) fn man(json: bool) -> Outcome {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    let page = String::from_utf8_lossy(&page);
    if json {
        print_json(&serde_json::json!({ "format": "roff", "page": page }));
    } else {
        out!("{page}");
    }
    Ok(())
}

//! `uplift completions` and `uplift man`: shell completions and the man
//! page, generated from the clap model, so they always match the commands.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;
use super::failure::Outcome;
use super::output::out;

#[derive(Debug, clap::Args)]
pub(super) struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// `uplift completions SHELL`: the script on stdout.
pub(super) fn completions(args: CompletionsArgs) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "uplift", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(())
}

/// `uplift man`: the man page, in roff, on stdout.
pub(super) fn man() -> Outcome {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    out!("{}", String::from_utf8_lossy(&page));
    Ok(())
}

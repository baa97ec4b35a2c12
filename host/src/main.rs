//! The `uplift` command: a thin layer over the library that knows about
//! the terminal (arguments, progress bars, exit codes); see [`cli`].

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

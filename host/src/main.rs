fn main() -> std::process::ExitCode {
    uplift::cli::main()
}

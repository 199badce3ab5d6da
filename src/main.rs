fn main() -> std::process::ExitCode {
    scepd::cli::main()
}

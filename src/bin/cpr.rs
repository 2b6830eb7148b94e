//! cpr(1): parse, call the library, print an error once, exit.

fn main() -> std::process::ExitCode {
    eprintln!("cpr: the command line is not built yet");
    std::process::ExitCode::from(2)
}

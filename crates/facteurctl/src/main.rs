//! facteurctl: parse arguments and hand over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = facteurctl::cli::Cli::parse();
    match facteurctl::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("facteurctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

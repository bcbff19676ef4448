//! The `cdrflow` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cdrflow::cli::Cli::parse();
    cdrflow::telemetry::init_tracing();
    match actix_rt::System::new().block_on(cdrflow::cli::dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

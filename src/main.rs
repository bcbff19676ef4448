//! The `cdrflow` binary: read the settings (file, environment, flags), set up logging,
//! hand over to the library.

use cdrflow::cli::config::FileSettings;
use cdrflow::cli::Cli;
use clap::{CommandFactory, FromArgMatches};
use std::ffi::OsString;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let command = match FileSettings::load(&args).and_then(|f| f.apply(Cli::command())) {
        Ok(command) => command,
        Err(error) => {
            // The same status as a bad flag.
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let matches = command.get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cdrflow::telemetry::init_tracing();
    match actix_rt::System::new().block_on(cdrflow::cli::dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `cdrflow` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;
use std::process::ExitCode;

/// Mediation allocates per record (JSON values, strings, output messages) on several
/// threads at once; mimalloc spends a fraction of glibc's time on that (measured: malloc
/// and free were a fifth of the daemon's CPU profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

//! The `cdrflow` binary: read the settings (file, environment, flags), set up logging,
//! hand over to the library.

use cdrflow::cli::config::FileSettings;
use cdrflow::cli::Cli;
use clap::{CommandFactory, FromArgMatches};
use std::ffi::OsString;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (15 in both its v2 and v3 headers; libmimalloc-sys
/// has no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Give freed memory back to the OS only after 10 s without use instead of mimalloc's
/// default 1 s. Each batch frees and reallocates megabytes; purged right away, they come
/// back as transparent huge pages that the kernel zeroes on the page fault, a cost paid
/// again for every batch. `MIMALLOC_PURGE_DELAY` in the environment still decides.
fn set_allocator_options() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator; any value is valid.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    }
}

/// Rust ignores SIGPIPE, so a print into a pipe whose reader is gone (`| head`) fails,
/// and `println!` panics on it. A report command ends quietly instead, as other Unix
/// tools do, by taking back the signal's default action.
fn end_with_the_reader() {
    // SAFETY: sets the disposition of one signal to its default; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn main() -> ExitCode {
    set_allocator_options();
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
    if cli.command.ends_with_its_reader() {
        end_with_the_reader();
    }
    cdrflow::telemetry::init_tracing();
    match actix_rt::System::new().block_on(cdrflow::cli::dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

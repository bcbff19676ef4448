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

/// Keep the resident memory close to what the heap holds. With transparent huge pages a
/// 2 MiB page stays resident as long as one block on it lives, and the pipeline's
/// long-lived cache entries sit among each batch's short-lived records: on bench.sh's
/// backlog the resident heap was twice the live one. So the process uses 4 KiB pages
/// (`PR_SET_THP_DISABLE`; mimalloc asks for huge pages before `main` runs), and freed
/// memory goes back to the OS after 250 ms (mimalloc's default is 1 s). Neither costs
/// measurable CPU per record. `MIMALLOC_ALLOW_THP` and `MIMALLOC_PURGE_DELAY` in the
/// environment still decide.
fn set_allocator_options() {
    let unset = |name: &str| std::env::var_os(name).is_none();
    if unset("MIMALLOC_ALLOW_THP") {
        // SAFETY: sets a flag of this process; no memory is touched.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    if unset("MIMALLOC_PURGE_DELAY") {
        // SAFETY: sets one integer option of the allocator; any value is valid.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 250) };
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

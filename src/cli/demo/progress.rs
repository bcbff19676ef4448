//! The demo's numbered progress lines on stderr (`[3/8] Creating …`), a step's progress
//! while it runs, and each step's time for the summary.

use crate::render::summary::StepTiming;
use std::fmt::Display;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// The demo's steps, for the `[n/8]` of each line.
const STEPS: usize = 8;

/// The numbered progress lines on stderr, and each step's time.
pub(super) struct Steps {
    tty: bool,
    n: usize,
    current: &'static str,
    started: Instant,
    last_progress: Instant,
    /// A progress line is on the terminal without its newline.
    in_place: bool,
    pub(super) timings: Vec<StepTiming>,
}

impl Steps {
    pub(super) fn new() -> Steps {
        Steps {
            tty: std::io::stderr().is_terminal(),
            n: 0,
            current: "",
            started: Instant::now(),
            last_progress: Instant::now(),
            in_place: false,
            timings: Vec::new(),
        }
    }

    pub(super) fn begin(&mut self, key: &'static str, what: impl Display) {
        self.n += 1;
        self.current = key;
        self.started = Instant::now();
        self.last_progress = Instant::now();
        eprintln!("[{}/{STEPS}] {what}", self.n);
    }

    /// Rewritten in place about once a second on a terminal; a line every five seconds
    /// in a log, which stays readable.
    pub(super) fn progress(&mut self, what: impl Display) {
        let every = Duration::from_millis(if self.tty { 900 } else { 4900 });
        if self.last_progress.elapsed() < every {
            return;
        }
        self.last_progress = Instant::now();
        let secs = self.started.elapsed().as_secs_f64();
        if self.tty {
            eprint!("\r\x1b[K      {what} [{secs:.0} s]");
            self.in_place = true;
        } else {
            eprintln!("      {what} [{secs:.0} s]");
        }
    }

    /// Ends the step with what it did and its time; returns the time in seconds.
    pub(super) fn done(&mut self, what: impl Display) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if std::mem::take(&mut self.in_place) {
            eprint!("\r\x1b[K");
        }
        eprintln!("      {what} ({secs:.1} s)");
        self.timings.push(StepTiming {
            step: self.current,
            secs: (secs * 10.0).round() / 10.0,
        });
        secs
    }
}

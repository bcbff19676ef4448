//! The faults of the chaos test and the instances they hit: the seeded schedule, the
//! group's instances restarted as a service manager would, the broker and Postgres
//! broken on purpose, and the record of every fault and of what an instance did that it
//! should not have (a SIGTERM not served in time, an exit 0 of its own).

use super::infra::PgCluster;
use super::Knobs;
use crate::helpers::OwnBroker;
use crate::helpers::{Daemon, DaemonConfig};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Fault {
    Kill,
    GracefulRestart,
    BrokerRestart,
    PostgresRestart,
    PostgresOutage,
}

impl Fault {
    pub(super) fn name(self) -> &'static str {
        match self {
            Fault::Kill => "SIGKILL",
            Fault::GracefulRestart => "graceful restart",
            Fault::BrokerRestart => "broker restart",
            Fault::PostgresRestart => "Postgres restart",
            Fault::PostgresOutage => "Postgres outage",
        }
    }
}

/// `faults` instance faults, kills and graceful restarts in equal odds, with the broker
/// restart, the Postgres restart and the Postgres outage at random places among them but
/// never first (the instances should have work in flight), each after a pause drawn
/// around `gap`.
pub(super) fn schedule(rng: &mut StdRng, faults: usize, gap: Duration) -> Vec<(Duration, Fault)> {
    let mut kinds: Vec<Fault> = (0..faults)
        .map(|_| {
            if rng.random_bool(0.5) {
                Fault::Kill
            } else {
                Fault::GracefulRestart
            }
        })
        .collect();
    for f in [
        Fault::BrokerRestart,
        Fault::PostgresRestart,
        Fault::PostgresOutage,
    ] {
        let at = rng.random_range(kinds.len().min(1)..=kinds.len());
        kinds.insert(at, f);
    }
    kinds
        .into_iter()
        .map(|k| (gap.mul_f64(rng.random_range(0.3..1.7)), k))
        .collect()
}

/// One instance's place: the running process, if any, and when to start it again.
pub(super) struct Slot {
    pub(super) daemon: Option<Daemon>,
    pub(super) restart_at: Option<Instant>,
    pub(super) lives: u32,
}

/// The instances of the group and the infrastructure under them, with the record of
/// what was done to them and what they did that they should not have.
pub(super) struct Chaos<'a> {
    pub(super) knobs: &'a Knobs,
    pub(super) rng: StdRng,
    pub(super) t0: Instant,
    pub(super) pg: &'a PgCluster,
    pub(super) broker: &'a mut OwnBroker,
    pub(super) topic: &'a str,
    pub(super) group: &'a str,
    pub(super) url: &'a str,
    pub(super) slots: Vec<Slot>,
    pub(super) postgres_back_at: Option<Instant>,
    pub(super) injected: BTreeMap<Fault, u32>,
    pub(super) self_exits: Vec<String>,
    pub(super) violations: Vec<String>,
}

/// The flags of every instance, the reference's included: small batches for many
/// commits to interleave, and a short session so that a killed member's partitions
/// move on within seconds.
pub(super) fn daemon_flags() -> Vec<String> {
    ["--batch-size", "500", "--kafka-session-timeout-ms", "3000"]
        .map(String::from)
        .to_vec()
}

/// The last `lines` lines of a daemon log, without its colour codes, indented.
pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("    | {}", strip_colours(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every thread's stack of a process that does not answer, through gdb when the machine
/// has it: the frames of cdrflow's own code say where it is stuck. The whole dump goes
/// next to the daemon's log.
fn stacks(pid: u32, log: &Path) -> String {
    let Ok(out) = Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output()
    else {
        return "    (no gdb: no stacks)".into();
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let path = log.with_extension("stacks.txt");
    let _ = std::fs::write(&path, &text);
    let mut own: Vec<String> = Vec::new();
    let mut thread = "";
    for line in text.lines() {
        if line.starts_with("Thread ") {
            thread = line;
        } else if let Some((frame, place)) = line.split_once(" at src/") {
            // "#5  0x… in wait_idle () at src/kafka/context.rs:135". Dependencies' frames
            // can read "at src/…" too: only files of this crate are cdrflow's code.
            let file = place.split(':').next().unwrap_or(place);
            if !Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src")
                .join(file)
                .is_file()
            {
                continue;
            }
            let function = match frame.split_once(" in ") {
                Some((_, f)) => f,
                None => frame.trim_start_matches(|c: char| c == '#' || c.is_ascii_digit()),
            }
            .trim();
            own.push(format!(
                "    {}: {function} at src/{place}",
                thread.split(" (").next().unwrap_or(thread)
            ));
        }
    }
    own.dedup();
    own.truncate(12);
    format!(
        "    stacks in {}; frames in cdrflow's code:\n{}",
        path.display(),
        own.join("\n")
    )
}

impl Chaos<'_> {
    pub(super) fn say(&self, what: &str) {
        eprintln!("chaos [{:>7.1} s] {what}", self.t0.elapsed().as_secs_f64());
    }

    fn state(&self) -> &'static str {
        if self.postgres_back_at.is_some() {
            "Postgres was down"
        } else {
            "Postgres and the broker were up"
        }
    }

    fn start(&mut self, i: usize) {
        let d = Daemon::start_on(
            &self.broker.address,
            &DaemonConfig {
                topic: self.topic,
                group: self.group,
                database_url: self.url,
                idle_secs: None,
                extra: daemon_flags(),
            },
        );
        let slot = &mut self.slots[i];
        slot.lives += 1;
        let what = format!(
            "start instance {i} (life {}, pid {}, log {})",
            slot.lives,
            d.child.id(),
            d.log.display()
        );
        slot.daemon = Some(d);
        slot.restart_at = None;
        self.say(&what);
    }

    /// What happens between faults: the outage ends when due, an instance that exited
    /// by itself is noted and started again (as a service manager would), and stopped
    /// instances are started when due.
    fn tick(&mut self) {
        let now = Instant::now();
        if self.postgres_back_at.is_some_and(|at| now >= at) {
            self.pg.start_again();
            self.postgres_back_at = None;
            self.say("Postgres is back after the outage");
        }
        for i in 0..self.slots.len() {
            let exited = match &mut self.slots[i].daemon {
                Some(d) => d.child.try_wait().unwrap(),
                None => None,
            };
            if let Some(status) = exited {
                let d = self.slots[i].daemon.take().unwrap();
                let what = format!(
                    "instance {i} exited by itself ({status}) while {} (log {})\n{}",
                    self.state(),
                    d.log.display(),
                    tail(&d.log_text(), 4)
                );
                self.say(&what);
                // Restart=on-failure would leave an instance that exits 0 down for good.
                if status.success() {
                    self.violations.push(what.clone());
                }
                self.self_exits.push(what);
                self.slots[i].restart_at = Some(now + Duration::from_secs(1));
            }
            if self.slots[i].daemon.is_none()
                && self.slots[i].restart_at.is_some_and(|at| now >= at)
            {
                self.start(i);
            }
        }
    }

    pub(super) fn wait(&mut self, pause: Duration) {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            self.tick();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn running(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].daemon.is_some())
            .collect()
    }

    pub(super) fn inject(&mut self, fault: Fault) {
        *self.injected.entry(fault).or_default() += 1;
        match fault {
            Fault::Kill | Fault::GracefulRestart => {
                let running = self.running();
                if running.is_empty() {
                    self.say(&format!(
                        "{}: no instance is running; skipped",
                        fault.name()
                    ));
                    *self.injected.get_mut(&fault).unwrap() -= 1;
                    return;
                }
                let i = running[self.rng.random_range(0..running.len())];
                if fault == Fault::Kill {
                    let mut d = self.slots[i].daemon.take().unwrap();
                    self.say(&format!(
                        "SIGKILL instance {i} (pid {}) while {}",
                        d.child.id(),
                        self.state()
                    ));
                    d.kill9();
                } else {
                    self.stop(i);
                }
                let after = Duration::from_millis(self.rng.random_range(0..2_000));
                self.slots[i].restart_at = Some(Instant::now() + after);
            }
            Fault::BrokerRestart => {
                let began = Instant::now();
                self.say("broker restart begins (SIGTERM tansu, same port and storage)");
                self.broker.restart();
                self.say(&format!(
                    "broker restarted in {:.1} s",
                    began.elapsed().as_secs_f64()
                ));
            }
            Fault::PostgresRestart => {
                while self.postgres_back_at.is_some() {
                    self.wait(Duration::from_millis(200));
                }
                let began = Instant::now();
                self.say("Postgres restart begins (pg_ctl restart -m fast)");
                self.pg.restart();
                self.say(&format!(
                    "Postgres restarted in {:.1} s",
                    began.elapsed().as_secs_f64()
                ));
            }
            Fault::PostgresOutage => {
                self.say(&format!(
                    "Postgres outage begins (pg_ctl stop -m fast) for {} s",
                    self.knobs.outage.as_secs()
                ));
                self.pg.stop();
                self.postgres_back_at = Some(Instant::now() + self.knobs.outage);
            }
        }
    }

    /// SIGTERM: the instance must exit 0 within the bound, or it is a violation (and it
    /// is SIGKILLed so the test goes on).
    pub(super) fn stop(&mut self, i: usize) {
        let mut d = self.slots[i].daemon.take().unwrap();
        self.slots[i].restart_at = None;
        let state = self.state();
        self.say(&format!(
            "SIGTERM instance {i} (pid {}) while {state}",
            d.child.id()
        ));
        let _ = Command::new("kill")
            .args(["-TERM", &d.child.id().to_string()])
            .status();
        let asked = Instant::now();
        let status = loop {
            if let Some(s) = d.child.try_wait().unwrap() {
                break Some(s);
            }
            if asked.elapsed() > self.knobs.stop_within {
                break None;
            }
            self.tick();
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = asked.elapsed().as_secs_f64();
        match status {
            Some(s) if s.success() => {
                self.say(&format!("instance {i} stopped gracefully in {took:.1} s"))
            }
            // Killed by the signal itself: it came before the daemon installed its
            // handler (or after it removed it, everything committed), so nothing was in
            // flight; systemd counts this as a clean stop too.
            Some(s) if s.signal() == Some(15) => self.say(&format!(
                "instance {i} was ended by the SIGTERM itself after {took:.1} s: the daemon had not installed its handler yet"
            )),
            Some(s) => {
                let what = format!(
                    "instance {i} ended with {s} {took:.1} s after SIGTERM, sent while {state} (log {})\n{}",
                    d.log.display(),
                    tail(&d.log_text(), 4)
                );
                self.say(&what);
                self.violations.push(what);
            }
            None => {
                let what = format!(
                    "instance {i} had not exited {} s after SIGTERM, sent while {state}; SIGKILLed (log {})\n{}\n{}",
                    self.knobs.stop_within.as_secs(),
                    d.log.display(),
                    tail(&d.log_text(), 4),
                    stacks(d.child.id(), &d.log)
                );
                self.say(&what);
                self.violations.push(what);
                d.kill9();
            }
        }
    }

    /// Every instance that is down starts now.
    pub(super) fn start_stopped(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].daemon.is_none() {
                self.slots[i].restart_at = Some(Instant::now());
            }
        }
        self.tick();
    }

    pub(super) fn stop_all(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].daemon.is_some() {
                self.stop(i);
            }
            self.slots[i].restart_at = None;
        }
    }
}

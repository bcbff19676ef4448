//! What happens when an actor fails. actix's `Supervisor` restarts an actor only when it
//! stops itself: a panic in a handler would end it, mailbox and all, for good. So every
//! handler runs its work under [`catch`] or [`catch_future`]. A panic becomes an error
//! answer for the batch in hand (the source reads the batch again from the stored offset,
//! so it is neither lost nor stored twice), the actor stops, and its supervisor restarts
//! it with its state read again, after a back-off that grows with each restart.
//!
//! While an actor is down (panicked and not yet running again) `/readyz` answers 503 and
//! names it. A crash loop, [`CRASH_LOOP_RESTARTS`] restarts of one actor within
//! [`CRASH_LOOP_WINDOW`], is not something a restart inside the process mends: the daemon
//! ends with a non-zero status so that the service manager starts it afresh. So does an
//! actor found dead, one whose failure escaped its handler's guard.

use crate::retry::Backoff;
use crate::telemetry::events::{ActorPanicked, ActorRestarted};
use crate::telemetry::Metrics;
use actix::prelude::*;
use futures::FutureExt;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Restarts of one actor within [`CRASH_LOOP_WINDOW`] that end the process.
pub const CRASH_LOOP_RESTARTS: usize = 5;
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(60);

/// The first restart waits 250 ms; each further restart within the window twice as
/// long, so a failure that repeats at once does not spin. No cap: a crash loop ends the
/// process after [`CRASH_LOOP_RESTARTS`], long before the wait grows large.
const RESTART_BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::MAX);

/// Tells an actor whose failure was caught outside its context (in a detached future)
/// to stop, so that its supervisor restarts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restart;

/// A caught panic, with its message.
#[derive(Debug, Clone)]
pub struct Panic(pub String);

impl Panic {
    fn from_payload(payload: Box<dyn Any + Send>) -> Panic {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic without a message".to_string()
        };
        Panic(message)
    }
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Run `work`, turning a panic into an error. The actor's state may be half-changed after
/// one, which is why the caller stops the actor and lets its supervisor rebuild it.
pub fn catch<T>(work: impl FnOnce() -> T) -> Result<T, Panic> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(Panic::from_payload)
}

/// [`catch`] for the asynchronous part of a handler.
pub async fn catch_future<F: Future>(work: F) -> Result<F::Output, Panic> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(Panic::from_payload)
}

/// The supervision state of one daemon, shared by its actors, `/readyz` and `run`.
#[derive(Clone)]
pub struct Supervision {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
    state: Mutex<State>,
    fatal: watch::Sender<Option<String>>,
}

/// Keyed by the actor's name: the committers (and the accumulator shards) count as one,
/// so panics spread over several of them within a minute are one crash loop too.
#[derive(Default)]
struct State {
    /// Actors that panicked and are not running again yet, with how many of each.
    down: BTreeMap<&'static str, usize>,
    /// Recent restarts of each actor.
    restarts: BTreeMap<&'static str, VecDeque<Instant>>,
    /// Whether each watched actor can still take messages.
    watched: Vec<(&'static str, Alive)>,
}

/// Tells whether an actor's address still reaches a running actor.
type Alive = Box<dyn Fn() -> bool + Send>;

impl Supervision {
    pub fn new(metrics: Metrics) -> Self {
        let (fatal, _) = watch::channel(None);
        Supervision {
            inner: Arc::new(Inner {
                metrics,
                state: Mutex::new(State::default()),
                fatal,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole; a poisoned lock still holds a valid one.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handler of `actor` panicked while working on `work` (a batch, a periodic task):
    /// report it and count the actor down until it runs again. The caller stops it.
    pub fn panicked(&self, actor: &'static str, work: &str, panic: &Panic) {
        *self.state().down.entry(actor).or_default() += 1;
        ActorPanicked {
            actor,
            work,
            message: &panic.0,
        }
        .emit(&self.inner.metrics);
    }

    /// Called from `Supervised::restarting`: count the restart, and end the process on a
    /// crash loop. Only restarts after a panic make a loop: an actor that stops itself on
    /// an error it reported (the source on a failed consumer) backs off on its own.
    pub fn restarting(&self, actor: &'static str) {
        ActorRestarted { actor }.emit(&self.inner.metrics);
        let recent = {
            let mut state = self.state();
            if state.down.get(actor).copied().unwrap_or(0) == 0 {
                return;
            }
            let times = state.restarts.entry(actor).or_default();
            let now = Instant::now();
            times.push_back(now);
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) > CRASH_LOOP_WINDOW)
            {
                times.pop_front();
            }
            times.len()
        };
        if recent >= CRASH_LOOP_RESTARTS {
            self.escalate(format!(
                "the {actor} restarted {recent} times within {} s: a crash loop",
                CRASH_LOOP_WINDOW.as_secs()
            ));
        }
    }

    /// Called first in `Actor::started`: after a panic, hold the actor's mailbox for the
    /// restart back-off, then count it up again.
    pub fn recover<A>(&self, actor: &'static str, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>>,
    {
        let recent = {
            let state = self.state();
            if state.down.get(actor).copied().unwrap_or(0) == 0 {
                return;
            }
            state.restarts.get(actor).map_or(1, VecDeque::len)
        };
        let delay = RESTART_BACKOFF.after(u32::try_from(recent.max(1)).unwrap_or(u32::MAX));
        let sup = self.clone();
        ctx.wait(
            actix::fut::wrap_future::<_, A>(tokio::time::sleep(delay)).map(move |_, _, _| {
                let mut state = sup.state();
                if let Some(n) = state.down.get_mut(actor) {
                    *n -= 1;
                    if *n == 0 {
                        state.down.remove(actor);
                    }
                }
            }),
        );
    }

    /// Watch `addr`: an actor that can no longer take messages ends the process.
    pub fn watch<A: Actor>(&self, actor: &'static str, addr: &Addr<A>) {
        let addr = addr.clone();
        self.state()
            .watched
            .push((actor, Box::new(move || addr.connected())));
    }

    /// Watched actors that can no longer take messages.
    fn dead(state: &State) -> impl Iterator<Item = &'static str> + '_ {
        state
            .watched
            .iter()
            .filter(|(_, alive)| !alive())
            .map(|(a, _)| *a)
    }

    /// The actors not running now: panicked and restarting, or dead.
    pub fn down(&self) -> Vec<&'static str> {
        let state = self.state();
        let mut down: BTreeSet<&'static str> = state.down.keys().copied().collect();
        down.extend(Self::dead(&state));
        down.into_iter().collect()
    }

    /// Look for dead actors; one found ends the process.
    pub fn check_watched(&self) {
        let dead = Self::dead(&self.state()).next();
        if let Some(actor) = dead {
            self.escalate(format!("the {actor} has ended and cannot be restarted"));
        }
    }

    /// End the process with a non-zero status: `run` is waiting on [`Self::fatal`].
    pub fn escalate(&self, reason: String) {
        self.inner.fatal.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Becomes `Some(reason)` once the process must end.
    pub fn fatal(&self) -> watch::Receiver<Option<String>> {
        self.inner.fatal.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervision() -> Supervision {
        Supervision::new(Metrics::new(crate::telemetry::metrics::Registry::new()).unwrap())
    }

    #[test]
    fn a_panic_is_caught_with_its_message() {
        let caught = catch(|| -> u32 { panic!("bad record {}", 7) });
        assert_eq!(caught.unwrap_err().0, "bad record 7");
        assert_eq!(catch(|| 5).unwrap(), 5);
    }

    #[test]
    fn a_panic_in_a_future_is_caught() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let caught: Result<(), Panic> = rt.block_on(catch_future(async { panic!("in a future") }));
        assert_eq!(caught.unwrap_err().0, "in a future");
    }

    #[test]
    fn a_panicked_actor_is_down_until_it_recovers() {
        let sup = supervision();
        sup.panicked("committer", "batch", &Panic("x".into()));
        assert_eq!(sup.down(), vec!["committer"]);
        assert!(sup.fatal().borrow().is_none());
    }

    #[test]
    fn each_restart_within_the_window_waits_twice_as_long_as_the_last() {
        let waits: Vec<u128> = (1..=CRASH_LOOP_RESTARTS as u32)
            .map(|n| RESTART_BACKOFF.after(n).as_millis())
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000]);
    }

    #[test]
    fn five_restarts_of_one_actor_within_a_minute_are_a_crash_loop() {
        let sup = supervision();
        let panic = Panic("x".into());
        for _ in 0..CRASH_LOOP_RESTARTS - 1 {
            sup.panicked("validator", "batch", &panic);
            sup.restarting("validator");
            sup.panicked("rater", "batch", &panic);
            sup.restarting("rater");
            // Restarts without a panic are the actor's own business.
            sup.restarting("source");
            sup.restarting("source");
        }
        assert!(sup.fatal().borrow().is_none(), "four each is not a loop");
        sup.panicked("validator", "batch", &panic);
        sup.restarting("validator");
        let fatal = sup.fatal().borrow().clone().unwrap();
        assert!(fatal.contains("validator restarted 5 times"), "{fatal}");
    }
}

//! Trying again: the doubling back-off every waiting loop uses, [`retry`] for an external
//! dependency that may not be up yet, and which errors another try can mend.
//!
//! Each caller keeps its own [`Backoff`] (the start-up retries, the source's batch and
//! consumer failures, the supervisor's restarts), because each waits for something that
//! mends at its own pace; the doubling and the cap are written once, here.

use crate::storage::{ErrorKind, StorageError};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::future::Future;
use std::time::Duration;
use tracing::warn;

/// A back-off that doubles: `first` after the first failure, twice as long after each
/// further one, never more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, cap: Duration) -> Self {
        Backoff { first, cap }
    }

    /// The wait after `failures` failures in a row; none before the first. Saturates
    /// instead of overflowing, so any count gives at most `cap`.
    pub fn after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        self.first
            .saturating_mul(2u32.saturating_pow(failures - 1))
            .min(self.cap)
    }
}

/// How [`retry`] waits between attempts.
const RETRY_BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));

/// Retry an external dependency with back-off, reporting each failure, until it answers
/// or `give_up_after` has passed. Every error is tried again: wrap the attempt's result
/// in [`final_unless_transient`], or use [`retry_transient`], to stop at one that will
/// not mend.
pub async fn retry<T, E, F, Fut>(
    what: &str,
    give_up_after: Duration,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = std::time::Instant::now();
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = RETRY_BACKOFF.after(failures);
                if started.elapsed() + delay >= give_up_after {
                    return Err(error);
                }
                warn!(%error, retry_in_ms = delay.as_millis() as u64, "Failed to reach {what}; retrying.");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// How [`retry_transient`] ended short of success.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryError<E> {
    /// Still failing with transient errors when the patience ran out.
    GaveUp(E),
    /// An error another try would not change.
    Permanent(E),
}

/// [`retry`] that stops at the first error that is not [`Transient`].
pub async fn retry_transient<T, E, F, Fut>(
    what: &str,
    give_up_after: Duration,
    mut attempt: F,
) -> Result<T, RetryError<E>>
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let outcome = retry(what, give_up_after, || {
        let attempt = attempt();
        async move { final_unless_transient(attempt.await) }
    })
    .await;
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RetryError::Permanent(e)),
        Err(e) => Err(RetryError::GaveUp(e)),
    }
}

/// For [`retry`]: a transient error stays an error, so it is tried again; any other
/// outcome is final and ends the retrying.
pub fn final_unless_transient<T, E: Transient>(r: Result<T, E>) -> Result<Result<T, E>, E> {
    match r {
        Err(e) if e.is_transient() => Err(e),
        other => Ok(other),
    }
}

/// Whether another try can succeed where this one failed.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

/// An unreachable database or a broken connection ([`ErrorKind::External`]); a refusal
/// or a bug gets the same answer again.
impl Transient for StorageError {
    fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::External
    }
}

/// Any broker error but the answers asking again will not change: an unknown topic or
/// partition, a refused authorization, a timestamp the broker cannot look up.
impl Transient for KafkaError {
    fn is_transient(&self) -> bool {
        !matches!(
            self.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::InvalidTimestamp
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_is_waited_before_the_first_failure() {
        assert_eq!(RETRY_BACKOFF.after(0), Duration::ZERO);
    }

    #[test]
    fn the_retry_back_off_doubles_from_a_quarter_second_and_caps_at_ten() {
        let waits: Vec<Duration> = (1..=8).map(|n| RETRY_BACKOFF.after(n)).collect();
        assert_eq!(
            waits,
            [
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(10_000),
                ms(10_000)
            ]
        );
    }

    #[test]
    fn any_number_of_failures_waits_at_most_the_cap() {
        let b = Backoff::new(ms(250), Duration::MAX);
        assert_eq!(b.after(33), ms(250) * u32::MAX);
        assert_eq!(b.after(u32::MAX), ms(250) * u32::MAX);
        assert_eq!(RETRY_BACKOFF.after(u32::MAX), Duration::from_secs(10));
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_dependency_is_tried_again_until_it_answers() {
        let attempts = Cell::new(0);
        let r: Result<u32, String> = block_on(retry("it", Duration::from_secs(60), || {
            attempts.set(attempts.get() + 1);
            let n = attempts.get();
            async move {
                if n < 3 {
                    Err(format!("down {n}"))
                } else {
                    Ok(n)
                }
            }
        }));
        assert_eq!(r, Ok(3));
    }

    #[test]
    fn the_error_is_returned_once_the_next_wait_would_pass_the_patience() {
        let attempts = Cell::new(0);
        let r: Result<(), &str> = block_on(retry("it", ms(100), || {
            attempts.set(attempts.get() + 1);
            async { Err("down") }
        }));
        assert_eq!(r, Err("down"));
        assert_eq!(attempts.get(), 1, "a first wait of 250 ms is past 100 ms");
    }

    #[test]
    fn a_permanent_error_ends_the_retrying_at_once() {
        let attempts = Cell::new(0);
        let r: Result<(), _> = block_on(retry_transient("it", Duration::from_secs(60), || {
            attempts.set(attempts.get() + 1);
            async {
                Err(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::UnknownTopicOrPartition,
                ))
            }
        }));
        assert!(matches!(r, Err(RetryError::Permanent(_))), "{r:?}");
        assert_eq!(attempts.get(), 1);
    }

    #[test]
    fn transient_errors_still_failing_at_the_end_of_the_patience_give_up() {
        let r: Result<(), _> = block_on(retry_transient("it", ms(100), || async {
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::BrokerTransportFailure,
            ))
        }));
        assert!(matches!(r, Err(RetryError::GaveUp(_))), "{r:?}");
    }

    #[test]
    fn an_unknown_topic_is_permanent_and_a_lost_broker_transient() {
        for code in [
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::UnknownPartition,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::InvalidTimestamp,
        ] {
            assert!(!KafkaError::OffsetFetch(code).is_transient(), "{code:?}");
        }
        assert!(KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure).is_transient());
        assert!(KafkaError::Canceled.is_transient());
    }

    #[test]
    fn a_bad_database_setting_is_not_transient() {
        assert!(!StorageError::Url("no host".into()).is_transient());
    }
}

//! The suspense of one source topic, as `cdrflow demo` reports it: who is held, and how
//! the held records ended.

use super::StorageError;
use tokio_postgres::GenericClient;

/// A subscriber with records still held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSubscriber {
    pub msisdn: String,
    pub records: i64,
}

/// The subscribers with records of `topic` still held, by MSISDN.
pub async fn held_subscribers(
    client: &impl GenericClient,
    topic: &str,
) -> Result<Vec<HeldSubscriber>, StorageError> {
    Ok(client
        .query(include_str!("sql/held_subscribers_of_topic.sql"), &[&topic])
        .await?
        .iter()
        .map(|r| HeldSubscriber {
            msisdn: r.get(0),
            records: r.get(1),
        })
        .collect())
}

/// How the held records of a topic ended, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resolutions {
    /// Rated and stored as usage.
    pub rated: i64,
    /// Already stored as usage when they were resolved.
    pub already_stored: i64,
    pub still_held: i64,
}

pub async fn resolutions(
    client: &impl GenericClient,
    topic: &str,
) -> Result<Resolutions, StorageError> {
    let r = client
        .query_one(
            include_str!("sql/suspense_resolutions_of_topic.sql"),
            &[&topic],
        )
        .await?;
    Ok(Resolutions {
        rated: r.get(0),
        already_stored: r.get(1),
        still_held: r.get(2),
    })
}

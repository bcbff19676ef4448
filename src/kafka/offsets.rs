//! The broker look-ups of `cdrflow replay`: where each partition reaches a time (the
//! broker's offsets-for-times answer), checked against the record it points at. Outside
//! the daemon: a throwaway consumer that never joins its group. Each look-up is tried
//! again on any error but one asking again will not change ([`crate::retry::Transient`]),
//! within the command's patience.

use super::client::base_config;
use super::settings::KafkaSettings;
use crate::domain::replay::{self, Answers, Doubt, FirstRecords, PlanError, StoredOffset};
use crate::retry::{retry_transient, RetryError};
use chrono::{DateTime, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// Why the broker's answers could not be had or trusted; nothing has been changed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("Failed to reach the Kafka broker at {brokers} within {}s", .patience.as_secs())]
    Unreachable {
        brokers: String,
        patience: Duration,
        source: KafkaError,
    },
    #[error("Failed to read the partitions of topic `{topic}`")]
    Partitions { topic: String, source: KafkaError },
    #[error("topic `{topic}` on {brokers} has no {}", absent_list(.partitions))]
    Absent {
        topic: String,
        brokers: String,
        partitions: Vec<i32>,
    },
    #[error("Failed to look up offsets for {at} on topic `{topic}`")]
    Offsets {
        at: DateTime<Utc>,
        topic: String,
        source: KafkaError,
    },
    #[error("Failed to read records of topic `{topic}`")]
    Records { topic: String, source: KafkaError },
    #[error(transparent)]
    Refused(#[from] PlanError),
}

fn absent_list(partitions: &[i32]) -> String {
    partitions
        .iter()
        .map(|p| format!("partition {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ask the broker where each chosen partition reaches `at`, checking first that the
/// partitions exist and then that each answer that would move a partition points at a
/// record at or after `at` ([`replay::check_answers`]).
pub async fn first_at_or_after(
    kafka: &KafkaSettings,
    topic: &str,
    chosen: &BTreeMap<i32, StoredOffset>,
    at: DateTime<Utc>,
    patience: Duration,
) -> Result<(Answers, Vec<Doubt>), LookupError> {
    let brokers = kafka.brokers.as_str();
    let existing = ask(
        brokers,
        patience,
        || partition_ids(kafka, topic),
        |source| LookupError::Partitions {
            topic: topic.into(),
            source,
        },
    )
    .await?;
    let absent: Vec<i32> = chosen
        .keys()
        .copied()
        .filter(|p| !existing.contains(p))
        .collect();
    if !absent.is_empty() {
        return Err(LookupError::Absent {
            topic: topic.into(),
            brokers: brokers.into(),
            partitions: absent,
        });
    }
    let partitions: Vec<i32> = chosen.keys().copied().collect();
    let found = ask(
        brokers,
        patience,
        || offsets_for_time(kafka, topic, &partitions, at),
        |source| LookupError::Offsets {
            at,
            topic: topic.into(),
            source,
        },
    )
    .await?;
    let checked = replay::answers_to_check(&found, chosen);
    if checked.is_empty() {
        return Ok((found, Vec::new()));
    }
    let records = ask(
        brokers,
        patience,
        || first_records(kafka, topic, &checked),
        |source| LookupError::Records {
            topic: topic.into(),
            source,
        },
    )
    .await?;
    Ok(replay::check_answers(found, &checked, &records, at)?)
}

/// One look-up, tried again on transient errors until the patience runs out; `permanent`
/// says what failed for good.
async fn ask<T, F, Fut>(
    brokers: &str,
    patience: Duration,
    attempt: F,
    permanent: impl FnOnce(KafkaError) -> LookupError,
) -> Result<T, LookupError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, KafkaError>>,
{
    retry_transient("the Kafka broker", patience, attempt)
        .await
        .map_err(|e| match e {
            RetryError::GaveUp(source) => LookupError::Unreachable {
                brokers: brokers.into(),
                patience,
                source,
            },
            RetryError::Permanent(source) => permanent(source),
        })
}

/// A consumer that never joins its group: only for metadata and offset look-ups.
fn lookup_consumer(kafka: &KafkaSettings) -> Result<BaseConsumer, KafkaError> {
    lookup_config(kafka).create()
}

pub(crate) fn lookup_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut c = base_config(kafka);
    c.set("group.id", "cdrflow-lookup")
        .set("enable.auto.commit", "false");
    c
}

/// The partition ids of `topic` as the broker's metadata gives them. An unknown topic is
/// an error, not an empty list.
async fn partition_ids(kafka: &KafkaSettings, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    // librdkafka calls block their thread until the broker answers.
    tokio::task::spawn_blocking(move || {
        let consumer = lookup_consumer(&kafka)?;
        let md = consumer.fetch_metadata(Some(&topic), LOOKUP_TIMEOUT)?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopic))?;
        if let Some(code) = t.error() {
            return Err(KafkaError::MetadataFetch(code.into()));
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// For each partition, the first offset whose timestamp is at or after `at` (the broker's
/// offsets-for-times answer), or `None` where it has no such record (every record is
/// older: the answer is the end of the partition).
async fn offsets_for_time(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: &[i32],
    at: DateTime<Utc>,
) -> Result<Answers, KafkaError> {
    let (kafka, topic, partitions) = (kafka.clone(), topic.to_string(), partitions.to_vec());
    let millis = at.timestamp_millis();
    tokio::task::spawn_blocking(move || {
        let consumer = lookup_consumer(&kafka)?;
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            // librdkafka reads the timestamp from the offset field.
            tpl.add_partition_offset(&topic, *p, Offset::Offset(millis))?;
        }
        let answer = consumer.offsets_for_times(tpl, LOOKUP_TIMEOUT)?;
        let mut out = BTreeMap::new();
        for e in answer.elements_for_topic(&topic) {
            e.error()?;
            let offset = match e.offset() {
                Offset::Offset(n) => Some(n),
                Offset::End => None,
                _ => return Err(KafkaError::OffsetFetch(RDKafkaErrorCode::InvalidTimestamp)),
            };
            out.insert(e.partition(), offset);
        }
        Ok(out)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// How long one metadata or offsets look-up may wait for the broker.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// For each `(partition, offset)`, the offset and timestamp of the first record the
/// broker delivers from there, to check an offsets-for-times answer against the record
/// it points at. A partition with nothing to deliver within the look-up
/// timeout is left out.
async fn first_records(
    kafka: &KafkaSettings,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
) -> Result<FirstRecords, KafkaError> {
    use rdkafka::message::Message as _;
    let (kafka, topic, positions) = (kafka.clone(), topic.to_string(), positions.clone());
    tokio::task::spawn_blocking(move || {
        let consumer = lookup_consumer(&kafka)?;
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in &positions {
            tpl.add_partition_offset(&topic, *p, Offset::Offset(*offset))?;
        }
        // Assigned, not subscribed: nothing joins the group or commits.
        consumer.assign(&tpl)?;
        let mut out = BTreeMap::new();
        let deadline = std::time::Instant::now() + LOOKUP_TIMEOUT;
        while out.len() < positions.len() && std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) if positions.contains_key(&m.partition()) => {
                    out.entry(m.partition()).or_insert((
                        m.offset(),
                        m.timestamp()
                            .to_millis()
                            .and_then(DateTime::<Utc>::from_timestamp_millis),
                    ));
                }
                Some(Ok(_)) | None => {}
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(out)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

//! Building Kafka clients with the settings cdrflow relies on, making sure its topics
//! exist, and the look-ups `replay` asks the broker for (partitions, offsets for a time).

use chrono::{DateTime, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        // Fail a metadata or connection attempt within seconds; callers retry with back-off.
        .set("socket.timeout.ms", "10000")
        .set("log_level", "4");
    c
}

/// The source consumer: offsets are ours (Postgres), so librdkafka neither commits nor
/// stores them on its own; Kafka's committed offsets are written only after a batch is
/// durable, for lag tools.
pub fn consumer_config(brokers: &str, group: &str, session_timeout_ms: u32) -> ClientConfig {
    let mut c = base_config(brokers);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // How long a crashed member holds its partitions before the group moves on.
        .set("session.timeout.ms", session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (session_timeout_ms / 3).max(100).to_string(),
        )
        .set("max.poll.interval.ms", "300000")
        // Bound what librdkafka prefetches, so memory stays bounded when we stop reading.
        .set("queued.max.messages.kbytes", "32768")
        .set("fetch.wait.max.ms", "50");
    c
}

/// A producer for the output topics; waits for the leader's acknowledgement.
pub fn producer(brokers: &str) -> Result<FutureProducer, KafkaError> {
    let mut c = base_config(brokers);
    c.set("linger.ms", "5")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "500000");
    c.create()
}

/// Create the topics that do not exist yet. An existing topic is left as it is.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[&str],
    partitions: i32,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base_config(brokers).create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code))
                    .inspect_err(|_| tracing::warn!(topic, ?code, "Failed to create topic."))
            }
        }
    }
    Ok(())
}

/// A consumer that never joins its group: only for metadata and offset look-ups.
fn lookup_consumer(brokers: &str) -> Result<BaseConsumer, KafkaError> {
    base_config(brokers)
        .set("group.id", "cdrflow-lookup")
        .set("enable.auto.commit", "false")
        .create()
}

/// The partition ids of `topic` as the broker's metadata gives them. An unknown topic is
/// an error, not an empty list.
pub async fn partition_ids(brokers: &str, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    // librdkafka calls block their thread until the broker answers.
    tokio::task::spawn_blocking(move || {
        let consumer = lookup_consumer(&brokers)?;
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
pub async fn offsets_for_time(
    brokers: &str,
    topic: &str,
    partitions: &[i32],
    at: DateTime<Utc>,
) -> Result<BTreeMap<i32, Option<i64>>, KafkaError> {
    let (brokers, topic, partitions) =
        (brokers.to_string(), topic.to_string(), partitions.to_vec());
    let millis = at.timestamp_millis();
    tokio::task::spawn_blocking(move || {
        let consumer = lookup_consumer(&brokers)?;
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
/// broker delivers from there: lets `replay` check an offsets-for-times answer against
/// the record it points at. A partition with nothing to deliver within the look-up
/// timeout is left out.
pub async fn first_records(
    brokers: &str,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, (i64, Option<DateTime<Utc>>)>, KafkaError> {
    use rdkafka::message::Message as _;
    let (brokers, topic, positions) = (brokers.to_string(), topic.to_string(), positions.clone());
    tokio::task::spawn_blocking(move || {
        let consumer = lookup_consumer(&brokers)?;
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

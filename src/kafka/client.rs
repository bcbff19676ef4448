//! Building Kafka clients with the settings cdrflow relies on, and making sure its topics
//! exist.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
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

//! Building Kafka clients with the settings cdrflow relies on, and making sure its topics
//! exist. Every client cdrflow makes starts from [`base_config`], so each one reaches the
//! brokers the same way (TLS, SASL, passthrough properties). A `ClientConfig` holds the
//! passwords in clear: never log one.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::Mutex;
use std::time::Duration;

use super::settings::KafkaSettings;

/// The configuration every client starts from: the passthrough properties, then what
/// cdrflow sets (which the passthrough may not name, see [`super::settings::RESERVED`]).
pub fn base_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (key, value) in &kafka.properties {
        c.set(key, value);
    }
    c.set("bootstrap.servers", &kafka.brokers)
        // Fail a metadata or connection attempt within seconds; callers retry with back-off.
        .set("socket.timeout.ms", "10000")
        .set("log_level", "4")
        .set("security.protocol", kafka.protocol.as_str());
    if let Some(sasl) = &kafka.sasl {
        c.set("sasl.mechanism", sasl.mechanism.as_str())
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose());
    }
    if let Some(ca) = &kafka.ssl_ca {
        c.set("ssl.ca.location", ca.to_string_lossy());
    }
    if let Some(own) = &kafka.client_certificate {
        c.set(
            "ssl.certificate.location",
            own.certificate.to_string_lossy(),
        )
        .set("ssl.key.location", own.key.to_string_lossy());
        if let Some(password) = &own.key_password {
            c.set("ssl.key.password", password.expose());
        }
    }
    c
}

/// The source consumer: offsets are ours (Postgres), so librdkafka neither commits nor
/// stores them on its own; Kafka's committed offsets are written only after a batch is
/// durable, for lag tools.
pub fn consumer_config(
    kafka: &KafkaSettings,
    group: &str,
    session_timeout_ms: u32,
    prefetch_kbytes: usize,
) -> ClientConfig {
    let mut c = base_config(kafka);
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
        // Bound what librdkafka prefetches for the whole consumer, so memory stays
        // bounded when we stop reading.
        .set(
            "queued.max.messages.kbytes",
            prefetch_kbytes.max(1024).to_string(),
        )
        .set("fetch.wait.max.ms", "50");
    c
}

/// The output topics' producer: every replica acknowledges each record.
pub fn producer_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut c = base_config(kafka);
    c.set("linger.ms", "5")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "500000");
    c
}

pub fn producer(kafka: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    producer_config(kafka).create()
}

/// Create the topics that do not exist yet. An existing topic is left as it is.
pub async fn ensure_topics(
    kafka: &KafkaSettings,
    topics: &[&str],
    partitions: i32,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base_config(kafka).create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await;
    let results = match results {
        Ok(results) => results,
        Err(e) => return Err(refusal(kafka).await.unwrap_or(e)),
    };
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

/// Why the brokers do not let a client in, when that is why a request failed: a failed
/// SASL authentication or TLS handshake (an untrusted certificate), which the request
/// itself reports only as a time-out. A throw-away consumer, which reads librdkafka's
/// events (the admin client does not), connects for a few seconds; librdkafka's reason
/// is logged as it comes.
pub async fn refusal(kafka: &KafkaSettings) -> Option<KafkaError> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<Refusals> = base_config(&kafka)
            .create_with_context(Refusals::default())
            .ok()?;
        let started = std::time::Instant::now();
        while started.elapsed() < REFUSAL_PATIENCE {
            if let Some(refused) = consumer.context().refused() {
                return Some(refused);
            }
            let _ = consumer.poll(Duration::from_millis(100));
        }
        consumer.context().refused()
    })
    .await
    .ok()
    .flatten()
}

/// Long enough for a connection and its handshakes, short enough not to hold up an error.
const REFUSAL_PATIENCE: Duration = Duration::from_secs(5);

/// Remembers the first authentication or TLS failure librdkafka reports.
#[derive(Default)]
struct Refusals {
    refused: Mutex<Option<RDKafkaErrorCode>>,
}

impl Refusals {
    fn refused(&self) -> Option<KafkaError> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(KafkaError::Global)
    }
}

impl ClientContext for Refusals {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code @ (RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)) =
            error.rdkafka_error_code()
        {
            self.refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(code);
        }
        DefaultClientContext.error(error, reason);
    }
}

impl ConsumerContext for Refusals {}

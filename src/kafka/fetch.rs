//! Reading one record back from the source topic by its position, for `cdrflow explain`
//! ("the record as received"). Outside the daemon: a throwaway consumer with no group.

use super::client::base_config;
use super::settings::KafkaSettings;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// The payload at `topic`/`partition`/`offset`, or None if the broker no longer has it
/// (retention) or does not answer within `timeout`.
pub async fn record_at(
    kafka: &KafkaSettings,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, KafkaError> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = explain_config(&kafka).create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        consumer.assign(&tpl)?;
        let started = Instant::now();
        while started.elapsed() < timeout {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) if m.offset() == offset => {
                    return Ok(Some(m.payload().unwrap_or_default().to_vec()))
                }
                Some(Ok(m)) if m.offset() > offset => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(_)) => return Ok(None),
                None => {}
            }
        }
        Ok(None)
    })
    .await
    .unwrap_or(Ok(None))
}

/// A consumer that reads by position and never joins or commits to its group.
pub(crate) fn explain_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut c = base_config(kafka);
    c.set("group.id", "cdrflow-explain")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error");
    c
}

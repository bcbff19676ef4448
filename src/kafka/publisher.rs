//! Publishing mediation results to `cdr.normalized` and `cdr.rejected`. Called before the
//! batch's Postgres transaction commits and waited for, so each output record is
//! delivered at least once: a crash before the commit republishes, never loses.

use crate::domain::batch::{PartitionBatch, Verdict};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Serialize;
use std::time::Duration;

/// How much of a rejected payload travels on `cdr.rejected`; the full bytes are in
/// Postgres. Keeps a 2 MB poison record from becoming an undeliverable message.
const REJECT_PREVIEW_BYTES: usize = 4096;

#[derive(Clone)]
pub struct Publisher {
    pub producer: FutureProducer,
    pub normalized_topic: String,
    pub rejected_topic: String,
}

#[derive(Serialize)]
struct RejectedMessage<'a> {
    reason: &'a str,
    detail: &'a str,
    topic: &'a str,
    partition: i32,
    offset: i64,
    payload_bytes: usize,
    payload_preview: String,
}

impl Publisher {
    /// Publish the newly inserted records (indexes into the batch) and every reject, and
    /// wait until the broker has them all.
    pub async fn publish(
        &self,
        batch: &PartitionBatch,
        inserted: &[usize],
    ) -> Result<(), KafkaError> {
        let mut deliveries = Vec::with_capacity(batch.records.len());
        for &i in inserted {
            if let Verdict::Normalized(n) = &batch.records[i].verdict {
                let body = serde_json::to_vec(n)
                    .map_err(|_| KafkaError::MessageProduction(RDKafkaErrorCode::InvalidMessage))?;
                deliveries.push(
                    self.send(
                        &self.normalized_topic,
                        n.subscriber.as_str().as_bytes(),
                        body,
                    )
                    .await?,
                );
            }
        }
        for r in &batch.records {
            if let Verdict::Rejected(rej) = &r.verdict {
                let preview_len = r.source.payload.len().min(REJECT_PREVIEW_BYTES);
                let msg = RejectedMessage {
                    reason: rej.reason.as_str(),
                    detail: &rej.detail,
                    topic: &batch.topic,
                    partition: batch.partition,
                    offset: r.source.offset,
                    payload_bytes: r.source.payload.len(),
                    payload_preview: String::from_utf8_lossy(&r.source.payload[..preview_len])
                        .into_owned(),
                };
                let body = serde_json::to_vec(&msg)
                    .map_err(|_| KafkaError::MessageProduction(RDKafkaErrorCode::InvalidMessage))?;
                let key = r.source.key.clone().unwrap_or_default();
                deliveries.push(self.send(&self.rejected_topic, &key, body).await?);
            }
        }
        for d in futures::future::join_all(deliveries).await {
            match d {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e),
                Err(_canceled) => return Err(KafkaError::Canceled),
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        topic: &str,
        key: &[u8],
        body: Vec<u8>,
    ) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let mut record = FutureRecord::to(topic).key(key).payload(&body);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Wait for whatever is still queued, at shutdown.
    pub fn flush(&self, timeout: Duration) {
        let _ = rdkafka::producer::Producer::flush(&self.producer, Timeout::After(timeout));
    }
}

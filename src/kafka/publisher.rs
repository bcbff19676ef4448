//! Publishing mediation results to `cdr.normalized` and `cdr.rejected` (each optional:
//! `--publish`). Called before the batch's Postgres transaction commits and waited for,
//! so each output record is delivered at least once: a crash before the commit
//! republishes, never loses.

use crate::domain::batch::{PartitionBatch, Verdict};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Serialize;
use std::time::Duration;

/// How much of a rejected payload travels on `cdr.rejected`; the full bytes are in
/// Postgres. Keeps a 2 MB poison record from becoming an undeliverable message.
const REJECT_PREVIEW_BYTES: usize = 4096;

#[derive(Clone)]
pub struct Publisher {
    pub producer: FutureProducer,
    /// None: accepted events are not published.
    pub normalized_topic: Option<String>,
    /// None: rejects are not published.
    pub rejected_topic: Option<String>,
}

/// Output records on their way to the broker.
pub enum Delivery {
    Pending {
        producer: FutureProducer,
        pending: Vec<DeliveryFuture>,
        queued: Vec<Queued>,
    },
    Failed(KafkaError),
}

/// A message that found librdkafka's local queue full: topic, key and payload.
type Queued = (String, Vec<u8>, Vec<u8>);

impl Delivery {
    /// Wait until the broker acknowledged every record.
    pub async fn wait(self) -> Result<(), KafkaError> {
        let (producer, mut pending, queued) = match self {
            Delivery::Failed(e) => return Err(e),
            Delivery::Pending {
                producer,
                pending,
                queued,
            } => (producer, pending, queued),
        };
        for (topic, key, body) in &queued {
            let mut record = FutureRecord::to(topic).key(key).payload(body);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        for d in futures::future::join_all(pending).await {
            match d {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e),
                Err(_canceled) => return Err(KafkaError::Canceled),
            }
        }
        Ok(())
    }
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
    /// Start publishing the newly inserted records (indexes into the batch) and every
    /// reject. Returns at once; `Delivery::wait` tells when the broker has them all.
    /// librdkafka copies each key and payload, so every message is written into one
    /// buffer and handed over at once; only messages that find the local queue full are
    /// kept, for `wait`.
    pub fn start(&self, batch: &PartitionBatch, inserted: &[usize]) -> Delivery {
        let mut pending = Vec::with_capacity(batch.records.len());
        let mut queued = Vec::new();
        match self.send_all(batch, inserted, &mut pending, &mut queued) {
            // What was sent before the failure may be delivered: output is at least once.
            Err(e) => Delivery::Failed(e),
            Ok(()) => Delivery::Pending {
                producer: self.producer.clone(),
                pending,
                queued,
            },
        }
    }

    /// Hand every message of `start` to librdkafka: the deliveries go to `pending`, the
    /// messages that found the local queue full to `queued`.
    fn send_all(
        &self,
        batch: &PartitionBatch,
        inserted: &[usize],
        pending: &mut Vec<DeliveryFuture>,
        queued: &mut Vec<Queued>,
    ) -> Result<(), KafkaError> {
        let mut send = |topic: &str, key: &[u8], body: &[u8]| -> Result<(), KafkaError> {
            match self
                .producer
                .send_result(FutureRecord::to(topic).key(key).payload(body))
            {
                Ok(delivery) => pending.push(delivery),
                // The local queue is full: these go out in `wait`, which may sleep.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    queued.push((topic.to_string(), key.to_vec(), body.to_vec()))
                }
                Err((e, _)) => return Err(e),
            }
            Ok(())
        };
        let invalid = |_| KafkaError::MessageProduction(RDKafkaErrorCode::InvalidMessage);
        let mut body = Vec::with_capacity(1024);
        if let Some(topic) = self.normalized_topic.as_deref() {
            for &i in inserted {
                // The canonical event, as the topic's name says; its price is in Postgres
                // (adding it here made every message a third larger and measurably slowed
                // the pipeline on this machine, where the broker shares the CPU).
                if let Verdict::Rated(x) = &batch.records[i].verdict {
                    body.clear();
                    serde_json::to_writer(&mut body, &x.cdr).map_err(invalid)?;
                    send(topic, x.cdr.subscriber.as_str().as_bytes(), &body)?;
                }
            }
        }
        if let Some(topic) = self.rejected_topic.as_deref() {
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
                    body.clear();
                    serde_json::to_writer(&mut body, &msg).map_err(invalid)?;
                    send(topic, r.source.key.as_deref().unwrap_or_default(), &body)?;
                }
            }
        }
        Ok(())
    }

    /// Wait for whatever is still queued, at shutdown.
    pub fn flush(&self, timeout: Duration) {
        let _ = rdkafka::producer::Producer::flush(&self.producer, Timeout::After(timeout));
    }
}

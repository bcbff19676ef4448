//! What travels between the actors. One `Batch` message goes down the chain
//! (validator → normalizer → committer); its answer, the `BatchAck`, comes back up only
//! after the Postgres transaction has committed or failed.

use crate::domain::batch::{BatchSummary, PartitionBatch};
use crate::kafka::context::InFlightGuard;
use crate::storage::StorageError;
use crate::telemetry::events::FailureKind;
use actix::Message;

#[derive(Debug)]
pub struct Batch {
    pub data: PartitionBatch,
    /// The partition's epoch when the batch was cut; an ack for an old epoch is stale.
    pub epoch: u64,
    /// Held until the batch is finished, wherever that happens, so that a revocation can
    /// wait for in-flight work.
    pub guard: InFlightGuard,
}

impl Batch {
    /// What a log line says of this batch.
    pub fn describe(&self) -> String {
        format!(
            "batch of {} partition {} offsets {}..{}",
            self.data.topic, self.data.partition, self.data.from_offset, self.data.to_offset
        )
    }
}

impl Message for Batch {
    type Result = Result<BatchAck, PipelineError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchAck {
    Committed(BatchSummary),
    /// The stored offset was not where the batch started; nothing was written.
    Fenced {
        stored: Option<i64>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("failed to publish results: {0}")]
    Publish(#[from] rdkafka::error::KafkaError),
    #[error("the {0} stage is not running")]
    StageDown(&'static str),
    /// The actor failed on this batch; nothing of it was stored, and the actor restarts.
    #[error("the {actor} failed on this batch: {message}")]
    Panicked {
        actor: &'static str,
        message: String,
    },
    /// The batch was priced with a catalog older than a `replay --rerate` asked for;
    /// nothing was written. The rater loads the newer catalog, and the batch is read
    /// again.
    #[error("priced with catalog version {used}, older than version {needed} that a rerate replay asked for")]
    CatalogBehind { used: i32, needed: i32 },
}

impl PipelineError {
    /// Which part of the pipeline failed the batch. Every kind is retried from the
    /// stored offset; what differs is what the operator looks at.
    pub fn kind(&self) -> FailureKind {
        match self {
            PipelineError::Storage(_) => FailureKind::Database,
            PipelineError::Publish(_) => FailureKind::Publish,
            PipelineError::StageDown(_) | PipelineError::Panicked { .. } => FailureKind::Pipeline,
            PipelineError::CatalogBehind { .. } => FailureKind::Catalog,
        }
    }
}

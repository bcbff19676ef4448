//! Kafka: client construction, the source's rebalance context, and output publishing.

pub mod client;
pub mod context;
pub mod fetch;
pub mod publisher;

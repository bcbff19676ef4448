//! Kafka: connection settings (brokers, TLS, SASL, passthrough properties), client
//! construction, the source's rebalance context, output publishing, and
//! the broker look-ups of `cdrflow explain` (a record by position) and `cdrflow replay`
//! (offsets for a time).

pub mod client;
pub mod context;
pub mod fetch;
pub mod offsets;
pub mod publisher;
pub mod settings;

pub use settings::KafkaSettings;

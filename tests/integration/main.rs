//! Integration tests against the real PostgreSQL and a real Kafka-protocol broker. Run
//! them through `scripts/test.sh`, which starts the broker and sets
//! `CDRFLOW_TEST_BROKERS`.

mod certs;
mod helpers;

mod alerts;
mod api;
mod api_access;
mod api_load;
mod biller;
mod billing;
mod catalog;
mod chaos;
mod cli;
mod crash;
mod dashboard;
mod demo;
mod event_time;
mod exports;
mod grafana;
mod kafka_security;
mod memory;
mod metrics;
mod offsets;
mod outage;
mod partitions;
mod peers;
mod poison;
mod postgres_tls;
mod reconcile;
mod replay;
mod report_refresh;
mod reports;
mod rerate;
mod retention;
mod supervision;
mod suspense;

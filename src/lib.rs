//! cdrflow — telecom mediation, rating and billing.
//!
//! ```text
//! producers ──► Kafka cdr.raw
//!                   │
//!   cdrflow run     ▼   supervised actix tree (pipeline/)
//!   KafkaSource ─► Validator ─► Normalizer ─► Rater ─► Committer ──► PostgreSQL
//!   (pull, bounded   (decode,     (E.164, UTC,  (catalog,  (one transaction: rated usage,
//!    in-flight)       reasons)     units, cell)  tariff,    rejects, suspense, re-rating,
//!                                                band, price) counters, offsets)
//!                                                        └──► cdr.normalized / cdr.rejected
//!                                                 Committer ─► BillingAccumulator[customer mod k]
//!                                                 (month-to-date state, credit-limit alerts)
//!   SuspenseResolver: held records are rated once their subscriber exists.
//!   Biller: closes and invoices a month after its grace period (`cdrflow bill` by hand).
//!   ReportRefresher: recomputes the report aggregates (`migrations/V4__reports.sql`).
//! ```
//!
//! Layers, each in its own folder:
//! - [`domain`]: pure code — records, validation, normalization, the catalog and rating,
//!   billing (buckets, allowances, discounts, invoices), the replay plan.
//! - [`generator`]: the seeded synthetic CDR stream and subscriber pool behind
//!   `cdrflow generate`, each record with the outcome cdrflow must give it.
//! - [`pipeline`]: the actors, thin shells that call the domain and forward with `send()`.
//! - [`render`]: documents made from values, pure: the invoice as a PDF, a report as a
//!   table, CSV or JSON, an event's explanation as text, a replay's plan as text.
//! - [`kafka`]: client construction, the rebalance context, output publishing, reading a
//!   record back by position.
//! - [`storage`]: Postgres pool, migrations, the batch write, the catalog versions,
//!   customers, suspense resolution, re-rating, usage buckets and alerts, invoices, stats,
//!   the report registry and runner.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`, the billing and report API, the
//!   dashboard.
//! - [`telemetry`]: tracing set-up, the metrics registry, events that feed both.
//! - [`cli`]: one module per subcommand.
//!
//! Beside the layers, [`retry`]: the back-off schedules, the retry loop for a dependency
//! that may not be up yet, and which storage and Kafka errors are worth another try; and
//! [`secret`]: a value (password, token) that never prints.
//!
//! Exactly-once: Kafka offsets live in Postgres and move in the same transaction as the
//! batch's rows, by compare-and-set on where the batch started; usage rows are unique by
//! `record_id`, rejects by source position.

pub mod cli;
pub mod domain;
pub mod generator;
pub mod http;
pub mod kafka;
pub mod pipeline;
pub mod render;
pub mod retry;
pub mod secret;
pub mod storage;
pub mod telemetry;

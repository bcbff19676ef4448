//! The daemon's HTTP face: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (Postgres and the broker answer, no partition is held, no actor is down), and
//! the billing API:
//! `GET /api/customers/{id}/usage[?period=YYYY-MM]` (month-to-date buckets, allowances
//! left, the estimated invoice), `GET /api/invoices?period=&customer=`,
//! `GET /api/invoices/{number}.json` and `.pdf`; the reports (`/api/reports/{name}`,
//! `/api/filters`, `/api/openapi.json`), the drill-down (`/api/customers/{id}`,
//! `/api/customers/{id}/events`, `/api/events/{record_id}/explain`) and the dashboard at `/`.

use crate::pipeline::supervision::Supervision;
use crate::telemetry::Metrics;
use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use deadpool_postgres::Pool;
use rdkafka::producer::{FutureProducer, Producer};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

mod api;
mod dashboard;
mod reports;

#[derive(Clone)]
pub struct State {
    metrics: Metrics,
    pub(crate) pool: Pool,
    producer: FutureProducer,
    topic: String,
    /// For `explain`: the original bytes of an event are read back from its topic.
    kafka: crate::kafka::KafkaSettings,
    /// Which actors are down, for `/readyz`.
    supervision: Supervision,
}

impl State {
    pub fn new(
        metrics: Metrics,
        pool: Pool,
        producer: FutureProducer,
        topic: String,
        kafka: crate::kafka::KafkaSettings,
        supervision: Supervision,
    ) -> Self {
        State {
            metrics,
            pool,
            producer,
            topic,
            kafka,
            supervision,
        }
    }
}

/// Bind and build the server; the caller runs it.
pub fn serve(addr: SocketAddr, state: State) -> std::io::Result<Server> {
    let data = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            // Malformed query strings and path ids get the API's JSON error, not text.
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                let body = json!({"error": e.to_string()});
                actix_web::error::InternalError::from_response(
                    e,
                    HttpResponse::BadRequest().json(body),
                )
                .into()
            }))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                let body = json!({"error": e.to_string()});
                actix_web::error::InternalError::from_response(
                    e,
                    HttpResponse::BadRequest().json(body),
                )
                .into()
            }))
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/api/customers/{id}/usage", web::get().to(api::usage))
            .route("/api/invoices", web::get().to(api::invoices))
            .route("/api/invoices/{file}", web::get().to(api::invoice))
            .route("/api/customers/{id}", web::get().to(api::customer))
            .route("/api/customers/{id}/events", web::get().to(api::events))
            .route(
                "/api/events/{record_id}/explain",
                web::get().to(api::explain),
            )
            .route("/api/reports", web::get().to(reports::list))
            .route("/api/reports/{name}", web::get().to(reports::report))
            .route("/api/filters", web::get().to(reports::filters))
            .route("/api/openapi.json", web::get().to(reports::openapi))
            .configure(dashboard::routes)
    })
    .workers(1)
    // Signals are the pipeline's to handle: it must drain before the server goes.
    .disable_signals()
    .bind(addr)?
    .run())
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    let pool = state.pool.status();
    state
        .metrics
        .observe_pool(pool.max_size, pool.size, pool.available, pool.waiting);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let postgres = match tokio::time::timeout(Duration::from_secs(3), async {
        let client = state.pool.get().await.map_err(|e| e.to_string())?;
        crate::storage::database::ping(&**client)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("timed out".to_string()),
    };
    let producer = state.producer.clone();
    let topic = state.topic.clone();
    let broker = web::block(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(3))
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    // A held partition is stream nobody consumes: not ready until the operator resumes it.
    let held = state.metrics.held_partitions.get();
    // An actor restarting after a failure takes no batches.
    let down = state.supervision.down();
    let body = json!({
        "postgres": show(&postgres),
        "broker": show(&broker),
        "held_partitions": held,
        "actors_down": down,
    });
    if postgres.is_ok() && broker.is_ok() && held == 0 && down.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

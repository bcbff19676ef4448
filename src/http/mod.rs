//! The daemon's HTTP face. Open to anyone who reaches it: `/metrics` (Prometheus text),
//! `/healthz` (the process is up), `/readyz` (Postgres and the broker answer, no
//! partition is held, no actor is down), served on `--http`, or on a listener of their
//! own with `--metrics-http`, and the dashboard's shell at `/` (`dashboard.rs`; it holds
//! no data). Behind the door of `access.rs` (the bearer token when one is set, and at
//! most `api_max_concurrent` requests at once): the billing API,
//! `GET /api/customers/{id}/usage[?period=YYYY-MM]` (month-to-date buckets, allowances
//! left, the estimated invoice), `GET /api/invoices?period=&customer=`,
//! `GET /api/invoices/{number}.json` and `.pdf`; the reports (`/api/reports/{name}`,
//! `/api/filters`, `/api/openapi.json`), the drill-down (`/api/customers/{id}`,
//! `/api/customers/{id}/events`, `/api/events/{record_id}/explain`), and
//! `/api/metrics`, the `/metrics` text for the dashboard wherever `/metrics` is served.
//!
//! The API reads Postgres through a pool of its own (`api_pool_size` connections, each
//! statement cut off after `api_statement_timeout_ms`), never the pipeline's: however
//! many or slow its requests, the committers keep their connections. A request that
//! cannot get a connection in time is answered 503. `/readyz` asks the pipeline's pool,
//! whose health it reports, at most one check at a time.

use crate::pipeline::supervision::Supervision;
use crate::telemetry::Metrics;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use deadpool_postgres::Pool;
use rdkafka::producer::{FutureProducer, Producer};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

mod access;
mod api;
mod dashboard;
mod reports;

pub use access::ApiToken;

/// How the daemon serves HTTP, checked by [`Settings::new`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API, the dashboard, and the probes unless `metrics_http` is given.
    pub http: SocketAddr,
    /// A listener of its own for `/metrics`, `/healthz` and `/readyz`.
    pub metrics_http: Option<SocketAddr>,
    pub token: Option<ApiToken>,
    /// Connections of the API's own pool.
    pub pool_size: usize,
    /// Postgres cancels an API statement after this long.
    pub statement_timeout: Duration,
    /// API requests served at once; beyond it, 429.
    pub max_concurrent: usize,
}

/// A setting that cannot be served as given; each names its settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--api-token (CDRFLOW_API_TOKEN, api_token): {0}")]
    Token(&'static str),
    #[error(
        "--http {0} is not a loopback address and no --api-token is set: anyone who can reach \
         it could read every customer's data. Set --api-token (CDRFLOW_API_TOKEN, api_token), \
         or pass --insecure-no-auth (CDRFLOW_INSECURE_NO_AUTH, insecure_no_auth) to serve \
         the API without a token anyway"
    )]
    Unprotected(SocketAddr),
    #[error("--metrics-http {0} is the --http address; give it another or leave it out")]
    SameListener(SocketAddr),
}

impl Settings {
    /// Refuses an API open to the network without a token unless `insecure_no_auth`.
    pub fn new(
        http: SocketAddr,
        metrics_http: Option<SocketAddr>,
        token: Option<&str>,
        insecure_no_auth: bool,
        pool_size: usize,
        statement_timeout: Duration,
        max_concurrent: usize,
    ) -> Result<Settings, SettingsError> {
        let token = token
            .map(ApiToken::parse)
            .transpose()
            .map_err(SettingsError::Token)?;
        if token.is_none() && !http.ip().is_loopback() && !insecure_no_auth {
            return Err(SettingsError::Unprotected(http));
        }
        if metrics_http == Some(http) {
            return Err(SettingsError::SameListener(http));
        }
        Ok(Settings {
            http,
            metrics_http,
            token,
            pool_size,
            statement_timeout,
            max_concurrent,
        })
    }

    /// Whether the API is served without a token where others can reach it (allowed
    /// only by `--insecure-no-auth`).
    pub fn open_to_the_network(&self) -> bool {
        self.token.is_none() && !self.http.ip().is_loopback()
    }
}

/// When `/readyz` last asked the pipeline's pool, and the answer.
type PostgresCheck = (Instant, Result<(), String>);

#[derive(Clone)]
pub struct State {
    metrics: Metrics,
    /// The API's own pool.
    pub(crate) pool: Pool,
    /// The pipeline's pool: `/readyz` checks it and `/metrics` samples it.
    pipeline_pool: Pool,
    producer: FutureProducer,
    topic: String,
    /// For `explain`: the original bytes of an event are read back from its topic.
    kafka: crate::kafka::KafkaSettings,
    /// Which actors are down, for `/readyz`.
    supervision: Supervision,
    /// The last Postgres check of `/readyz`: probes arriving during a check wait for it
    /// and share its answer, so they take at most one pipeline connection at a time.
    postgres_checked: std::sync::Arc<Mutex<Option<PostgresCheck>>>,
}

impl State {
    pub fn new(
        metrics: Metrics,
        pool: Pool,
        pipeline_pool: Pool,
        producer: FutureProducer,
        topic: String,
        kafka: crate::kafka::KafkaSettings,
        supervision: Supervision,
    ) -> Self {
        State {
            metrics,
            pool,
            pipeline_pool,
            producer,
            topic,
            kafka,
            supervision,
            postgres_checked: Default::default(),
        }
    }
}

/// A listener that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("Failed to listen on {addr}: {source}")]
pub struct ListenError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Bind and build the servers (the API's, and the probes' when they have their own
/// listener); the caller runs them.
pub fn serve(settings: &Settings, state: State) -> Result<Vec<Server>, ListenError> {
    let access = web::Data::new(access::Access::new(
        settings.token.clone(),
        settings.max_concurrent,
        state.metrics.clone(),
    ));
    let data = web::Data::new(state);
    let probes_here = settings.metrics_http.is_none();
    let api_data = data.clone();
    let api = HttpServer::new(move || {
        let app = App::new()
            .app_data(api_data.clone())
            .app_data(access.clone())
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
            }));
        let app = if probes_here {
            app.configure(probes)
        } else {
            app
        };
        app.service(
            web::scope("/api")
                .wrap(from_fn(access::guard))
                .route("/customers/{id}/usage", web::get().to(api::usage))
                .route("/invoices", web::get().to(api::invoices))
                .route("/invoices/{file}", web::get().to(api::invoice))
                .route("/customers/{id}", web::get().to(api::customer))
                .route("/customers/{id}/events", web::get().to(api::events))
                .route("/events/{record_id}/explain", web::get().to(api::explain))
                .route("/reports", web::get().to(reports::list))
                .route("/reports/{name}", web::get().to(reports::report))
                .route("/filters", web::get().to(reports::filters))
                .route("/openapi.json", web::get().to(reports::openapi))
                .route("/metrics", web::get().to(metrics)),
        )
        .configure(dashboard::routes)
    });
    // One worker each: the API's concurrency is bounded by its slots, not by threads.
    // Signals are the pipeline's to handle: it must drain before the servers go.
    let failed = |addr| move |source| ListenError { addr, source };
    let mut servers = vec![api
        .workers(1)
        .disable_signals()
        .bind(settings.http)
        .map_err(failed(settings.http))?
        .run()];
    if let Some(addr) = settings.metrics_http {
        let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(probes))
            .workers(1)
            .disable_signals()
            .bind(addr)
            .map_err(failed(addr))?
            .run();
        servers.push(server);
    }
    Ok(servers)
}

/// `/metrics`, `/healthz`, `/readyz`: no token, no slot.
fn probes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    let pool = state.pipeline_pool.status();
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

/// How long one `/readyz` check of the pipeline's pool answers for later probes.
const POSTGRES_CHECK_FRESH: Duration = Duration::from_secs(1);

/// Whether the pipeline's pool gives a connection that answers, within 3 s.
async fn check_postgres(state: &State) -> Result<(), String> {
    let mut last = state.postgres_checked.lock().await;
    if let Some((at, result)) = &*last {
        if at.elapsed() < POSTGRES_CHECK_FRESH {
            return result.clone();
        }
    }
    let result = match tokio::time::timeout(Duration::from_secs(3), async {
        let client = state.pipeline_pool.get().await.map_err(|e| e.to_string())?;
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
    *last = Some((Instant::now(), result.clone()));
    result
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let postgres = check_postgres(&state).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        http: &str,
        metrics_http: Option<&str>,
        token: Option<&str>,
        insecure_no_auth: bool,
    ) -> Result<Settings, SettingsError> {
        Settings::new(
            http.parse().unwrap(),
            metrics_http.map(|m| m.parse().unwrap()),
            token,
            insecure_no_auth,
            2,
            Duration::from_secs(5),
            16,
        )
    }

    #[test]
    fn an_api_on_a_non_loopback_address_needs_a_token_or_the_insecure_switch() {
        for loopback in ["127.0.0.1:8080", "127.0.0.53:8080", "[::1]:8080"] {
            assert!(settings(loopback, None, None, false).is_ok(), "{loopback}");
        }
        for open in ["0.0.0.0:8080", "10.0.0.5:8080", "[::]:8080"] {
            let refused = settings(open, None, None, false).unwrap_err();
            let text = refused.to_string();
            assert!(
                matches!(refused, SettingsError::Unprotected(_))
                    && text.contains("--api-token")
                    && text.contains("--insecure-no-auth"),
                "{text}"
            );
            assert!(settings(open, None, Some("t0ken"), false).is_ok());
            let insecure = settings(open, None, None, true).unwrap();
            assert!(insecure.open_to_the_network());
        }
        assert!(!settings("0.0.0.0:1", None, Some("t"), false)
            .unwrap()
            .open_to_the_network());
    }

    #[test]
    fn an_empty_token_or_the_api_address_for_the_probes_is_refused_by_name() {
        let empty = settings("127.0.0.1:8080", None, Some(""), false).unwrap_err();
        assert!(empty.to_string().starts_with("--api-token"), "{empty}");
        let same = settings("127.0.0.1:8080", Some("127.0.0.1:8080"), None, false).unwrap_err();
        assert!(same.to_string().contains("--metrics-http"), "{same}");
        assert!(settings("127.0.0.1:8080", Some("0.0.0.0:9090"), None, false).is_ok());
    }
}

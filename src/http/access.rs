//! Who may call the API and how many at once, in front of every `/api/*` route: with a
//! token configured, a request must carry `Authorization: Bearer <token>` (compared in
//! constant time) or gets 401 with `WWW-Authenticate`; an authorized request then takes
//! one of `api_max_concurrent` slots, or gets 429 with `Retry-After` at once. Refusing
//! rather than queueing keeps a burst of slow requests from piling up behind the API's
//! few database connections, and the slot count bounds the work the API can put on
//! Postgres next to the committers.

use crate::secret::Secret;
use crate::telemetry::events::ApiRequestRefused;
use crate::telemetry::metrics::Refusal;
use crate::telemetry::Metrics;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// The bearer token the API requires. Never printed: `Debug` shows it as `***`.
#[derive(Clone, Debug)]
pub struct ApiToken(Secret);

impl ApiToken {
    /// A token as an HTTP client can send it: not empty, visible ASCII only.
    pub fn parse(token: &str) -> Result<ApiToken, &'static str> {
        if token.is_empty() {
            return Err("must not be empty");
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII characters without spaces");
        }
        Ok(ApiToken(Secret::new(token)))
    }

    /// Whether `header` (the whole `Authorization` value) carries this token. The
    /// scheme is case-insensitive (RFC 9110); the token is compared in constant time,
    /// so the answer's timing does not tell how much of a guess was right.
    fn admits(&self, header: &[u8]) -> bool {
        let Some((scheme, given)) = split_once(header, b' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer")
            && bool::from(given.ct_eq(self.0.expose().as_bytes()))
    }
}

fn split_once(bytes: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == at)?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

/// The API's door: the token, if any, and the slots.
pub struct Access {
    token: Option<ApiToken>,
    slots: Arc<Semaphore>,
    metrics: Metrics,
}

impl Access {
    pub fn new(token: Option<ApiToken>, max_concurrent: usize, metrics: Metrics) -> Access {
        Access {
            token,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            metrics,
        }
    }

    fn authorized(&self, req: &ServiceRequest) -> bool {
        match &self.token {
            None => true,
            Some(token) => req
                .headers()
                .get(header::AUTHORIZATION)
                .is_some_and(|v| token.admits(v.as_bytes())),
        }
    }
}

/// How long a client told 429 should wait before trying again, in seconds.
const RETRY_AFTER_SECS: u32 = 1;

/// The middleware of the `/api` scope.
pub async fn guard(
    access: web::Data<Access>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if !access.authorized(&req) {
        ApiRequestRefused {
            reason: Refusal::Unauthorized,
        }
        .emit(&access.metrics);
        let refusal = HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"cdrflow\""))
            .json(json!({"error": "this API needs a bearer token: send `Authorization: Bearer <token>`"}));
        return Ok(req.into_response(refusal).map_into_right_body());
    }
    let Ok(_slot) = access.slots.clone().try_acquire_owned() else {
        ApiRequestRefused {
            reason: Refusal::Busy,
        }
        .emit(&access.metrics);
        let refusal = HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
            .json(json!({"error": "too many API requests at once; try again shortly"}));
        return Ok(req.into_response(refusal).map_into_right_body());
    };
    // The slot is held until the handler has answered; bodies are built in memory.
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;
    use actix_web::middleware::from_fn;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::App;
    use std::time::Duration;

    fn token(t: &str) -> ApiToken {
        ApiToken::parse(t).unwrap()
    }

    #[test]
    fn only_the_bearer_scheme_with_the_exact_token_is_admitted() {
        let t = token("s3cret-token");
        assert!(t.admits(b"Bearer s3cret-token"));
        assert!(t.admits(b"bearer s3cret-token"));
        for wrong in [
            &b"Bearer s3cret-toke"[..],
            b"Bearer s3cret-token2",
            b"Bearer ",
            b"Bearer",
            b"Basic s3cret-token",
            b"s3cret-token",
            b"Bearer  s3cret-token",
            b"",
        ] {
            assert!(!t.admits(wrong), "{}", String::from_utf8_lossy(wrong));
        }
    }

    #[test]
    fn an_empty_token_or_one_with_spaces_is_refused_and_none_is_ever_printed() {
        assert!(ApiToken::parse("").is_err());
        assert!(ApiToken::parse("two words").is_err());
        assert!(ApiToken::parse("tab\there").is_err());
        assert_eq!(format!("{:?}", token("hunter2")), "ApiToken(***)");
    }

    async fn slow() -> HttpResponse {
        tokio::time::sleep(Duration::from_millis(300)).await;
        HttpResponse::Ok().finish()
    }

    fn metrics() -> Metrics {
        Metrics::new(crate::telemetry::metrics::Registry::new()).unwrap()
    }

    #[actix_web::test]
    async fn without_the_token_the_answer_is_401_with_a_bearer_challenge() {
        let m = metrics();
        let access = web::Data::new(Access::new(Some(token("abc")), 4, m.clone()));
        let app = init_service(
            App::new().app_data(access).service(
                web::scope("/api")
                    .wrap(from_fn(guard))
                    .route("/x", web::get().to(HttpResponse::Ok)),
            ),
        )
        .await;
        let res = call_service(&app, TestRequest::get().uri("/api/x").to_request()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer realm=\"cdrflow\""
        );
        let req = TestRequest::get()
            .uri("/api/x")
            .insert_header((header::AUTHORIZATION, "Bearer abd"))
            .to_request();
        assert_eq!(
            call_service(&app, req).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let req = TestRequest::get()
            .uri("/api/x")
            .insert_header((header::AUTHORIZATION, "Bearer abc"))
            .to_request();
        assert_eq!(call_service(&app, req).await.status(), StatusCode::OK);
        assert_eq!(
            m.api_requests_refused
                .with_label_values(&["unauthorized"])
                .get(),
            2
        );
    }

    #[actix_web::test]
    async fn requests_beyond_the_slots_get_429_at_once_and_the_slots_come_back() {
        let m = metrics();
        let access = web::Data::new(Access::new(None, 2, m.clone()));
        let app = init_service(
            App::new().app_data(access).service(
                web::scope("/api")
                    .wrap(from_fn(guard))
                    .route("/slow", web::get().to(slow)),
            ),
        )
        .await;
        let calls =
            (0..3).map(|_| call_service(&app, TestRequest::get().uri("/api/slow").to_request()));
        let started = std::time::Instant::now();
        let answers = futures::future::join_all(calls).await;
        let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, vec![200, 200, 429]);
        let busy = answers
            .iter()
            .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            busy.unwrap().headers().get(header::RETRY_AFTER).unwrap(),
            "1"
        );
        assert!(started.elapsed() < Duration::from_millis(600));
        assert_eq!(m.api_requests_refused.with_label_values(&["busy"]).get(), 1);
        let res = call_service(&app, TestRequest::get().uri("/api/slow").to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

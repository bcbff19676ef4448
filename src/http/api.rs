//! The billing API: month-to-date usage of a customer (the same billing code as the
//! invoice, on the stored buckets), invoice listings, and invoice documents as JSON
//! (exactly as stored) and PDF (rendered from that JSON); for the dashboard's drill-down,
//! a customer, their events of a month, and an event's explanation.

use super::State;
use crate::domain::billing::{self, Invoice};
use crate::kafka::fetch;
use crate::render;
use crate::render::pdf::invoice_pdf;
use crate::storage::{self, billing as store, customers, explain, invoices};
use actix_web::{web, HttpResponse};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

fn error(status: actix_web::http::StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": message.to_string()}))
}

pub(super) fn bad_request(message: impl std::fmt::Display) -> HttpResponse {
    error(actix_web::http::StatusCode::BAD_REQUEST, message)
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, e)
}

pub(super) fn not_found(what: impl std::fmt::Display) -> HttpResponse {
    error(actix_web::http::StatusCode::NOT_FOUND, what)
}

fn period_param(p: Option<&str>) -> Result<Option<NaiveDate>, HttpResponse> {
    match p {
        None | Some("") => Ok(None),
        Some(s) => billing::parse_period(s)
            .map(Some)
            .ok_or_else(|| bad_request(format!("period {s:?} is not YYYY-MM"))),
    }
}

#[derive(Deserialize)]
pub struct UsageQuery {
    period: Option<String>,
}

pub async fn usage(
    state: web::Data<State>,
    id: web::Path<i64>,
    q: web::Query<UsageQuery>,
) -> HttpResponse {
    let id = id.into_inner();
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let catalog = match storage::catalog::load(&**client, None).await {
        Ok(Some(c)) => c,
        Ok(None) => return unavailable("no catalog applied"),
        Err(e) => return unavailable(e),
    };
    let period = match period_param(q.period.as_deref()) {
        Ok(Some(p)) => p,
        Ok(None) => crate::domain::rating::period_of(&catalog.catalog, Utc::now()),
        Err(r) => return r,
    };
    let account = match store::accounts(&client, &[id]).await {
        Ok(mut a) => match a.remove(&id) {
            Some(a) => a,
            None => return not_found(format!("no customer {id}")),
        },
        Err(e) => return unavailable(e),
    };
    let usage = match store::buckets(&client, &[id], &[period]).await {
        Ok(mut b) => b.remove(&(id, period)).unwrap_or_default(),
        Err(e) => return unavailable(e),
    };
    // An invoiced period shows its invoice; an open one the estimate, by the same code,
    // with what is owed from closed periods so far.
    let issued = match invoices::list(&client, Some(period), Some(id), 1).await {
        Ok(mut l) => l.pop(),
        Err(e) => return unavailable(e),
    };
    let stored: Option<Invoice> = match &issued {
        Some(i) => match invoices::stored_document(&client, &i.number).await {
            Ok(Some(d)) => serde_json::from_str(&d).ok(),
            Ok(None) => None,
            Err(e) => return unavailable(e),
        },
        None => None,
    };
    let estimate = match stored {
        Some(inv) => inv,
        None => {
            let tz = catalog.catalog.operator.timezone.name();
            let owed = match invoices::owed(&client, &[id], period, tz).await {
                Ok(mut o) => o.remove(&id).unwrap_or_default(),
                Err(e) => return unavailable(e),
            };
            match billing::invoice(
                &catalog.catalog,
                catalog.version,
                &account.bill_to,
                period,
                &usage,
                &owed,
            ) {
                Ok(i) => i,
                Err(e) => return error(actix_web::http::StatusCode::CONFLICT, e),
            }
        }
    };
    let buckets: Vec<_> = usage
        .buckets
        .iter()
        .map(|(k, b)| {
            json!({
                "service": b.service.as_str(), "zone": b.zone, "band": k.band,
                "tariff_id": k.tariff_id, "catalog_version": k.catalog_version,
                "price": b.price, "units": b.units, "events": b.events,
                "amount": b.gross(),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "customer_id": id,
        "period": period.format("%Y-%m").to_string(),
        "currency": estimate.currency,
        "events": usage.events(),
        "rated": usage.gross(),
        "buckets": buckets,
        "allowances": estimate.allowances,
        "estimate": {
            "lines": estimate.lines,
            "subtotal": estimate.subtotal,
            "vat": estimate.vat,
            "total": estimate.total,
        },
        "credit_limit": account.credit_limit,
        "invoice": issued.map(|i| i.number),
    }))
}

#[derive(Deserialize)]
pub struct InvoicesQuery {
    period: Option<String>,
    customer: Option<i64>,
    limit: Option<i64>,
    /// json (default) or csv, as a download.
    format: Option<String>,
}

pub async fn invoices(state: web::Data<State>, q: web::Query<InvoicesQuery>) -> HttpResponse {
    let period = match period_param(q.period.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 100_000);
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let csv = match q.format.as_deref() {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(other) => return bad_request(format!("format {other:?} is not json or csv")),
    };
    let list = match invoices::list(&client, period, q.customer, limit).await {
        Ok(list) => list,
        Err(e) => return unavailable(e),
    };
    if !csv {
        return HttpResponse::Ok().json(list);
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut written = w
        .write_record([
            "number",
            "customer_id",
            "period",
            "currency",
            "subtotal",
            "vat",
            "total",
            "issued_at",
        ])
        .map_err(|e| e.to_string());
    for i in &list {
        written = written.and_then(|_| {
            // Text cells as a spreadsheet must read them; amounts stay numbers.
            w.write_record([
                crate::render::report::spreadsheet_text(&i.number).into_owned(),
                i.customer_id.to_string(),
                i.period.format("%Y-%m").to_string(),
                crate::render::report::spreadsheet_text(&i.currency).into_owned(),
                i.subtotal.to_string(),
                i.vat.to_string(),
                i.total.to_string(),
                i.issued_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ])
            .map_err(|e| e.to_string())
        });
    }
    let body = match written.and_then(|_| w.into_inner().map_err(|e| e.to_string())) {
        Ok(b) => b,
        Err(e) => return error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let name = match (&q.period, q.customer) {
        (Some(p), _) if !p.is_empty() => format!("cdrflow-invoices-{p}.csv"),
        (_, Some(c)) => format!("cdrflow-invoices-customer-{c}.csv"),
        _ => "cdrflow-invoices.csv".to_string(),
    };
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body)
}

pub async fn invoice(state: web::Data<State>, file: web::Path<String>) -> HttpResponse {
    let file = file.into_inner();
    let (number, pdf) = match (file.strip_suffix(".json"), file.strip_suffix(".pdf")) {
        (Some(n), _) => (n.to_string(), false),
        (_, Some(n)) => (n.to_string(), true),
        _ => return bad_request("ask for NUMBER.json or NUMBER.pdf"),
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let document = match invoices::stored_document(&client, &number).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(format!("no invoice {number}")),
        Err(e) => return unavailable(e),
    };
    if !pdf {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(document);
    }
    let rendered = serde_json::from_str::<Invoice>(&document)
        .map_err(|e| e.to_string())
        .and_then(|inv| invoice_pdf(&inv).map_err(|e| e.to_string()));
    match rendered {
        Ok(bytes) => HttpResponse::Ok()
            .content_type("application/pdf")
            .insert_header((
                "Content-Disposition",
                format!("inline; filename=\"{number}.pdf\""),
            ))
            .body(bytes),
        Err(e) => error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

pub async fn customer(state: web::Data<State>, id: web::Path<i64>) -> HttpResponse {
    let id = id.into_inner();
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    match customers::profile(&**client, id).await {
        Ok(Some(c)) => HttpResponse::Ok().json(c),
        Ok(None) => not_found(format!("no customer {id}")),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    period: Option<String>,
    limit: Option<i64>,
}

pub async fn events(
    state: web::Data<State>,
    id: web::Path<i64>,
    q: web::Query<EventsQuery>,
) -> HttpResponse {
    let id = id.into_inner();
    let period = match period_param(q.period.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(500).clamp(1, 100_000);
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    match customers::profile(&**client, id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(format!("no customer {id}")),
        Err(e) => return unavailable(e),
    }
    match customers::events(&**client, id, period, limit).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => unavailable(e),
    }
}

/// The text `cdrflow explain` prints, with the original bytes read back from the broker
/// when Postgres does not hold them. No connection is held across that read, which can
/// take seconds: the event is read, the connection given back, the broker asked, and a
/// connection taken again for the rest.
pub async fn explain(state: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let event = {
        let client = match state.pool.get().await {
            Ok(c) => c,
            Err(e) => return unavailable(e),
        };
        match explain::event(&**client, &id).await {
            Ok(Some(e)) => e,
            Ok(None) => {
                return match explain::held(&**client, &id).await {
                    Ok(Some(h)) => HttpResponse::Ok().json(json!({
                        "record_id": id, "text": render::explain::held(&id, &h), "matches": true
                    })),
                    Ok(None) => not_found(format!("no stored event has record_id {id:?}")),
                    Err(e) => unavailable(e),
                }
            }
            Err(e) => return unavailable(e),
        }
    };
    let raw = match &event.raw {
        Some(raw) => Some(raw.clone()),
        None => fetch::record_at(
            &state.kafka,
            &event.src_topic,
            event.src_partition,
            event.src_offset,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap_or(None),
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let catalog = match (event.catalog_version, event.amount) {
        (Some(version), Some(_)) => match storage::catalog::load(&**client, Some(version)).await {
            Ok(c) => c,
            Err(err) => return unavailable(err),
        },
        _ => None,
    };
    let adjustments = match explain::adjustments(&**client, &id).await {
        Ok(a) => a,
        Err(err) => return unavailable(err),
    };
    let (text, matches) =
        render::explain::stored_event(&id, &event, raw.as_deref(), catalog.as_ref(), &adjustments);
    HttpResponse::Ok().json(json!({"record_id": id, "text": text, "matches": matches}))
}

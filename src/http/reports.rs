//! The reports over HTTP: `GET /api/reports` (the registry), `GET /api/reports/{name}`
//! (JSON, or CSV as a download with a filename that says what it holds), `GET
//! /api/filters` (the values the filters can take) and `GET /api/openapi.json`, the
//! OpenAPI 3.1 document of the whole API, built from the same registry.

use super::api::{bad_request, unavailable};
use super::State;
use crate::storage::reports::{self, Filter, Params, ReportError, REPORTS};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub async fn list() -> HttpResponse {
    let list: Vec<Value> = REPORTS.iter().map(|r| r.describe()).collect();
    HttpResponse::Ok().json(list)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    period: Option<String>,
    service: Option<String>,
    region: Option<String>,
    plan: Option<String>,
    limit: Option<String>,
    format: Option<String>,
}

pub async fn report(
    state: web::Data<State>,
    name: web::Path<String>,
    q: web::Query<ReportQuery>,
) -> HttpResponse {
    let name = name.into_inner();
    let q = q.into_inner();
    let Some(report) = reports::find(&name) else {
        return super::api::not_found(ReportError::Unknown(name));
    };
    let csv = match q.format.as_deref() {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(other) => return bad_request(format!("format {other:?} is not json or csv")),
    };
    let params = Params {
        period: q.period,
        service: q.service,
        region: q.region,
        plan: q.plan,
        limit: q.limit,
    };
    let query = match report.query(&params) {
        Ok(query) => query,
        Err(e) => return bad_request(e),
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let table = match reports::run(&**client, report, &query).await {
        Ok(t) => t,
        Err(e) => return unavailable(e),
    };
    if !csv {
        return HttpResponse::Ok().json(&table);
    }
    // cdrflow-revenue_by_region-2026-10-voice.csv: the filters' values, in order.
    let mut filename = format!("cdrflow-{}", report.name);
    for (_, value) in &query.given {
        filename.push('-');
        filename.extend(value.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        }));
    }
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{filename}.csv\""),
        ))
        .body(table.to_csv())
}

pub async fn filters(state: web::Data<State>) -> HttpResponse {
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    match reports::filter_values(&**client).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => unavailable(e),
    }
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(openapi_document())
}

fn filter_parameter(f: Filter) -> Value {
    let (description, schema) = match f {
        Filter::Period => (
            "Billing month. Reports that list months are restricted to it; the others answer for it (default: the latest month with usage).",
            json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$", "example": "2026-10"}),
        ),
        Filter::Service => (
            "Service.",
            json!({"type": "string", "enum": ["voice", "sms", "data"]}),
        ),
        Filter::Region => (
            "The customers' home region, as the catalog names it (see /api/filters).",
            json!({"type": "string"}),
        ),
        Filter::Plan => (
            "Plan id (see /api/filters).",
            json!({"type": "string"}),
        ),
        Filter::Limit => (
            "Rows at most (default 100).",
            json!({"type": "integer", "minimum": 1, "maximum": 100000}),
        ),
    };
    json!({"name": f.as_str(), "in": "query", "required": false,
           "description": description, "schema": schema})
}

fn error_responses() -> Value {
    json!({
        "400": {"description": "A parameter is wrong; the message names it.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "401": {"description": "The daemon has an API token and the request did not carry it (`Authorization: Bearer <token>`).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "429": {"description": "Every API slot is taken (`api_max_concurrent`); try again after `Retry-After` seconds.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "503": {"description": "PostgreSQL is unreachable, no API connection was free in time, or the query failed, e.g. on the statement timeout; the message says which.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    })
}

fn get(summary: &str, parameters: Vec<Value>, ok: Value) -> Value {
    let mut responses = error_responses();
    responses["200"] = ok;
    json!({"get": {"summary": summary, "parameters": parameters, "responses": responses}})
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn json_ok(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {}}})
}

pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    paths.insert(
        "/api/reports".into(),
        get(
            "The reports, with the filters each accepts.",
            vec![],
            json_ok("The report registry."),
        ),
    );
    for r in REPORTS {
        let mut parameters: Vec<Value> = r.filters.iter().map(|f| filter_parameter(*f)).collect();
        parameters.push(json!({"name": "format", "in": "query", "required": false,
            "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"},
            "description": "json, or csv as a download."}));
        let ok = json!({
            "description": r.description,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Report"}},
                "text/csv": {"schema": {"type": "string"}}
            }
        });
        paths.insert(
            format!("/api/reports/{}", r.name),
            get(r.title, parameters, ok),
        );
    }
    let period = json!({"name": "period", "in": "query", "required": false,
        "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}, "description": "Billing month, YYYY-MM."});
    let limit = json!({"name": "limit", "in": "query", "required": false,
        "schema": {"type": "integer", "minimum": 1}});
    let customer = path_param("id", "Customer id.", json!({"type": "integer"}));
    paths.insert(
        "/api/filters".into(),
        get(
            "The values the report filters can take.",
            vec![],
            json_ok("periods, services, regions, plans"),
        ),
    );
    paths.insert(
        "/api/customers/{id}".into(),
        get(
            "A customer.",
            vec![customer.clone()],
            json_ok("The customer."),
        ),
    );
    paths.insert(
        "/api/customers/{id}/usage".into(),
        get(
            "Month-to-date usage: buckets, allowances left, the estimated invoice.",
            vec![customer.clone(), period.clone()],
            json_ok("Usage and estimate."),
        ),
    );
    paths.insert(
        "/api/customers/{id}/events".into(),
        get(
            "The customer's rated events of a month, newest first.",
            vec![customer, period.clone(), limit.clone()],
            json_ok("Events."),
        ),
    );
    paths.insert("/api/invoices".into(), get("Issued invoices.", vec![period, json!({"name": "customer", "in": "query", "required": false, "schema": {"type": "integer"}}), limit,
        json!({"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"}, "description": "json, or csv as a download."})],
        json!({"description": "Invoice summaries.", "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}}})));
    paths.insert("/api/invoices/{file}".into(), get("An invoice as stored (NUMBER.json) or rendered (NUMBER.pdf).", vec![path_param("file", "NUMBER.json or NUMBER.pdf", json!({"type": "string"}))],
        json!({"description": "The invoice.", "content": {"application/json": {}, "application/pdf": {}}})));
    paths.insert(
        "/api/metrics".into(),
        get(
            "The daemon's metrics, as /metrics serves them, for the dashboard's pipeline page.",
            vec![],
            json!({"description": "Prometheus text format.", "content": {"text/plain": {}}}),
        ),
    );
    paths.insert(
        "/api/events/{record_id}/explain".into(),
        get(
            "How an event's price was made, as `cdrflow explain` prints it.",
            vec![path_param(
                "record_id",
                "The event's record_id.",
                json!({"type": "string"}),
            )],
            json_ok("{record_id, text, matches}"),
        ),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cdrflow API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Reports, customers' month-to-date usage, invoices and event explanations. Money is an exact decimal string. See docs/reports.md for every report's columns."
        },
        "paths": paths,
        // Required only when the daemon has a token (`api_token`).
        "security": [{"bearer": []}, {}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Report": {"type": "object", "required": ["report", "title", "filters", "columns", "rows"], "properties": {
                "report": {"type": "string"}, "title": {"type": "string"},
                "filters": {"type": "object", "additionalProperties": {"type": "string"}},
                "refreshed_at": {"type": ["string", "null"], "format": "date-time"},
                "columns": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "type": {"type": "string", "enum": ["text", "integer", "decimal", "period", "date", "timestamp"]}}}},
                "rows": {"type": "array", "items": {"type": "object"}}
            }}
        }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_has_a_path_per_report_with_its_filters() {
        let doc = openapi_document();
        for r in REPORTS {
            let op = &doc["paths"][format!("/api/reports/{}", r.name)]["get"];
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let mut expected: Vec<&str> = r.filters.iter().map(|f| f.as_str()).collect();
            expected.push("format");
            assert_eq!(names, expected, "{}", r.name);
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}

//! Reports: the registry of the report functions `V4__reports.sql` defines (name, title,
//! the filters each accepts), running one into a [`ReportTable`], and refreshing the
//! materialized aggregates they read. The CLI, the HTTP API, the OpenAPI document and the
//! dashboard all go through [`REPORTS`], so a report exists in all of them or in none.

use super::StorageError;
use crate::domain::billing::parse_period;
use crate::domain::report::{Cell, Column, ColumnType, ReportTable};
use crate::domain::RecordType;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

/// A filter a report may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Period,
    Service,
    Region,
    Plan,
    Limit,
}

impl Filter {
    pub const ALL: [Filter; 5] = [
        Filter::Period,
        Filter::Service,
        Filter::Region,
        Filter::Plan,
        Filter::Limit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Filter::Period => "period",
            Filter::Service => "service",
            Filter::Region => "region",
            Filter::Plan => "plan",
            Filter::Limit => "limit",
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub filters: &'static [Filter],
    /// Without `period` it answers for the latest period that has usage.
    pub latest: bool,
}

use Filter::{Limit, Period, Plan, Region, Service};

pub const REPORTS: &[Report] = &[
    Report {
        name: "kpis",
        title: "Key figures",
        description: "Rated revenue and cost, active customers, events, invoices, billed amounts, average invoice, records processed and the reject rate of one month.",
        filters: &[Period, Service, Region, Plan],
        latest: true,
    },
    Report {
        name: "revenue_by_month",
        title: "Revenue by month",
        description: "Per month: active customers, events, rated revenue, cost, margin, and what was invoiced.",
        filters: &[Period, Service, Region, Plan],
        latest: false,
    },
    Report {
        name: "revenue_by_service",
        title: "Revenue by service",
        description: "Per service: customers, events, units, rated revenue, cost, margin and share of revenue.",
        filters: &[Period, Region, Plan],
        latest: true,
    },
    Report {
        name: "revenue_by_region",
        title: "Revenue by region",
        description: "Per home region: customers, events, rated revenue, ARPU, share, invoices and billed amount.",
        filters: &[Period, Service, Plan],
        latest: true,
    },
    Report {
        name: "revenue_by_region_month",
        title: "Revenue by region and month",
        description: "The monthly trend per home region: customers, rated revenue and ARPU.",
        filters: &[Period, Service, Plan],
        latest: false,
    },
    Report {
        name: "revenue_by_plan",
        title: "Revenue by plan",
        description: "Per plan: customers, events, rated revenue, ARPU, invoices and billed amount.",
        filters: &[Period, Service, Region],
        latest: true,
    },
    Report {
        name: "arpu",
        title: "Average revenue per user",
        description: "Per month: rated revenue per active customer and billed amount per invoice.",
        filters: &[Period, Service, Region, Plan],
        latest: false,
    },
    Report {
        name: "top_customers",
        title: "Top customers",
        description: "The customers with the highest rated revenue in a month.",
        filters: &[Period, Service, Region, Plan, Limit],
        latest: true,
    },
    Report {
        name: "rfm",
        title: "RFM scores",
        description: "Per customer: recency, frequency and monetary value over the month and the two before, quintile scores and segment.",
        filters: &[Period, Region, Plan, Limit],
        latest: true,
    },
    Report {
        name: "rfm_segments",
        title: "RFM segments",
        description: "Customers, share and average recency, frequency and value per RFM segment.",
        filters: &[Period, Region, Plan],
        latest: true,
    },
    Report {
        name: "service_profitability",
        title: "Service profitability",
        description: "Per service and zone: rated revenue against the interconnect/wholesale cost, margin and margin %.",
        filters: &[Period, Region, Plan],
        latest: true,
    },
    Report {
        name: "usage_by_hour",
        title: "Usage by weekday and hour",
        description: "Events, units and rated revenue per ISO weekday and hour, in the operator's time zone.",
        filters: &[Period, Service, Region],
        latest: true,
    },
    Report {
        name: "usage_by_technology",
        title: "Usage by technology",
        description: "Events, units, rated revenue and share per radio technology.",
        filters: &[Period, Service, Region],
        latest: true,
    },
    Report {
        name: "data_quality",
        title: "Data quality by day",
        description: "Per processing day: records consumed, accepted (and of them, with a peer in no assigned range), duplicates, held in suspense, rejected, and the reject rate.",
        filters: &[Period],
        latest: false,
    },
    Report {
        name: "rejects_by_reason",
        title: "Rejects by reason",
        description: "Rejected records per reason and their share.",
        filters: &[Period],
        latest: false,
    },
    Report {
        name: "late_usage",
        title: "Late usage",
        description: "Per usage month: events that arrived after the month was closed, what of them is billed on a later invoice and what is still owed.",
        filters: &[Period, Region, Plan],
        latest: false,
    },
];

pub fn find(name: &str) -> Option<&'static Report> {
    REPORTS.iter().find(|r| r.name == name)
}

/// What a report is asked. Empty strings count as not given.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub period: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub plan: Option<String>,
    pub limit: Option<String>,
}

/// A report request that cannot be answered as asked: the user's to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("no report named {0:?}; `cdrflow report --list` lists them")]
    Unknown(String),
    #[error("report {report} does not filter by {filter}; it takes: {accepted}")]
    Unsupported {
        report: &'static str,
        filter: &'static str,
        accepted: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The validated arguments of a report function.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub period: Option<NaiveDate>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub plan: Option<String>,
    pub limit: Option<i32>,
    /// (filter, value as given), for the answer's header.
    pub given: Vec<(&'static str, String)>,
}

impl Report {
    pub fn accepted(&self) -> String {
        self.filters
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The report's entry in `cdrflow report --list --format json` and `GET /api/reports`.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "filters": self.filters.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
            "latest_by_default": self.latest,
        })
    }

    /// Check the filters against this report and parse their values.
    pub fn query(&'static self, p: &Params) -> Result<Query, ReportError> {
        let mut q = Query::default();
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        for filter in Filter::ALL {
            let value = match filter {
                Filter::Period => given(&p.period),
                Filter::Service => given(&p.service),
                Filter::Region => given(&p.region),
                Filter::Plan => given(&p.plan),
                Filter::Limit => given(&p.limit),
            };
            let Some(value) = value else { continue };
            if !self.filters.contains(&filter) {
                return Err(ReportError::Unsupported {
                    report: self.name,
                    filter: filter.as_str(),
                    accepted: self.accepted(),
                });
            }
            match filter {
                Filter::Period => {
                    q.period = Some(parse_period(value).ok_or_else(|| {
                        ReportError::Invalid(format!("period {value:?} is not YYYY-MM"))
                    })?)
                }
                Filter::Service => {
                    let s = RecordType::parse(value).ok_or_else(|| {
                        ReportError::Invalid(format!(
                            "service {value:?} is not one of voice, sms, data"
                        ))
                    })?;
                    q.service = Some(s.as_str().to_string());
                }
                Filter::Region => q.region = Some(value.to_string()),
                Filter::Plan => q.plan = Some(value.to_string()),
                Filter::Limit => {
                    let n: i32 = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| {
                            ReportError::Invalid(format!(
                                "limit {value:?} is not a number in 1..=100000"
                            ))
                        })?;
                    q.limit = Some(n);
                }
            }
            q.given.push((filter.as_str(), value.to_string()));
        }
        Ok(q)
    }
}

/// Run one report.
pub async fn run<C: GenericClient>(
    client: &C,
    report: &'static Report,
    q: &Query,
) -> Result<ReportTable, StorageError> {
    // The name comes from the static registry, never from the request.
    let sql = format!("SELECT * FROM report_{}($1, $2, $3, $4, $5)", report.name);
    // Read first: a refresh that ends between the two reads then makes the answer newer
    // than it says, never older.
    let refreshed_at = refreshed_at(client).await?;
    let statement = client.prepare(&sql).await?;
    let columns: Vec<Column> = statement
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            kind: column_type(c.name(), c.type_()),
        })
        .collect();
    let rows = client
        .query(
            &statement,
            &[&q.period, &q.service, &q.region, &q.plan, &q.limit],
        )
        .await?;
    let mut table = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cells = Vec::with_capacity(columns.len());
        for (i, c) in statement.columns().iter().enumerate() {
            cells.push(cell(&row, i, c.type_())?);
        }
        table.push(cells);
    }
    Ok(ReportTable {
        name: report.name.to_string(),
        title: report.title.to_string(),
        filters: q.given.clone(),
        refreshed_at,
        columns,
        rows: table,
    })
}

fn column_type(name: &str, t: &Type) -> ColumnType {
    match *t {
        Type::INT2 | Type::INT4 | Type::INT8 => ColumnType::Integer,
        Type::NUMERIC => ColumnType::Decimal,
        Type::DATE if name == "period" => ColumnType::Period,
        Type::DATE => ColumnType::Date,
        Type::TIMESTAMPTZ => ColumnType::Timestamp,
        _ => ColumnType::Text,
    }
}

fn cell(row: &tokio_postgres::Row, i: usize, t: &Type) -> Result<Cell, StorageError> {
    Ok(match *t {
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Cell::Integer(v.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Cell::Integer(v.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Cell::Integer),
        Type::NUMERIC => row.try_get::<_, Option<Decimal>>(i)?.map(Cell::Decimal),
        Type::DATE => row.try_get::<_, Option<NaiveDate>>(i)?.map(Cell::Date),
        Type::TIMESTAMPTZ => row
            .try_get::<_, Option<DateTime<Utc>>>(i)?
            .map(Cell::Timestamp),
        _ => row.try_get::<_, Option<String>>(i)?.map(Cell::Text),
    }
    .unwrap_or(Cell::Null))
}

pub async fn refreshed_at<C: GenericClient>(
    client: &C,
) -> Result<Option<DateTime<Utc>>, StorageError> {
    Ok(client
        .query_opt(include_str!("sql/report_refreshed_at.sql"), &[])
        .await?
        .map(|r| r.get(0)))
}

/// What a refresh of the report aggregates did.
#[derive(Debug, Clone, PartialEq)]
pub struct Refreshed {
    /// Seconds Postgres took.
    pub seconds: Decimal,
    /// Every period and day was recomputed (asked for, the first refresh, or another
    /// time zone than the last refresh's).
    pub whole: bool,
    /// The billing periods recomputed: those whose usage, invoices or customers changed.
    pub periods: Vec<NaiveDate>,
    /// How many processing days were recomputed (committed batches, rejects).
    pub days: i32,
}

impl std::fmt::Display for Refreshed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} s: ", self.seconds)?;
        if self.whole {
            f.write_str("everything, ")?;
        }
        match self.periods.as_slice() {
            [] => f.write_str("no period")?,
            [one] => write!(f, "period {}", one.format("%Y-%m"))?,
            many => {
                f.write_str("periods ")?;
                for (i, p) in many.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", p.format("%Y-%m"))?;
                }
            }
        }
        let s = if self.days == 1 { "" } else { "s" };
        write!(f, ", {} processing day{s}", self.days)
    }
}

/// Recompute the report aggregates in the operator's time zone: those of the periods and
/// days that changed since the last refresh, or with `whole` all of them (as does the
/// first refresh, and one in another time zone).
///
/// Recomputing a whole long history takes minutes, far beyond the 60 s
/// `statement_timeout` cdrflow's connections have. It is lifted for this one statement
/// only: both run in one implicit transaction (a simple query of two statements), so `SET
/// LOCAL` ends with it whether the refresh succeeds or fails. Built at run time because
/// the zone is part of the text: a simple query takes no parameters.
pub async fn refresh<C: GenericClient>(
    client: &C,
    timezone: &str,
    whole: bool,
) -> Result<Refreshed, StorageError> {
    // The zone comes from a parsed catalog (an IANA name), quoted all the same.
    let sql = format!(
        "SET LOCAL statement_timeout = 0; SELECT report_refresh('{}', {whole})",
        timezone.replace('\'', "''")
    );
    client.simple_query(&sql).await?;
    let row = client
        .query_one(include_str!("sql/report_refreshed.sql"), &[])
        .await?;
    Ok(Refreshed {
        seconds: row.get("seconds"),
        whole: row.get("whole"),
        periods: row.get("periods"),
        days: row.get("days"),
    })
}

/// The values the filters can take, for the dashboard's selects.
pub async fn filter_values<C: GenericClient>(
    client: &C,
) -> Result<serde_json::Value, StorageError> {
    let periods: Vec<NaiveDate> = client
        .query(include_str!("sql/report_periods.sql"), &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let regions: Vec<String> = client
        .query(include_str!("sql/report_regions.sql"), &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plans: Vec<String> = client
        .query(include_str!("sql/report_plans.sql"), &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(serde_json::json!({
        "periods": periods.iter().map(|p| p.format("%Y-%m").to_string()).collect::<Vec<_>>(),
        "services": ["voice", "sms", "data"],
        "regions": regions,
        "plans": plans,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: impl FnOnce(&mut Params)) -> Params {
        let mut p = Params::default();
        f(&mut p);
        p
    }

    #[test]
    fn every_report_has_a_unique_name_and_accepts_period() {
        for (i, r) in REPORTS.iter().enumerate() {
            assert!(REPORTS[..i].iter().all(|o| o.name != r.name), "{}", r.name);
            assert!(r.filters.contains(&Filter::Period), "{}", r.name);
            assert!(r.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn a_filter_the_report_does_not_take_is_refused_by_name() {
        let r = find("revenue_by_region").unwrap();
        let e = r
            .query(&params(|p| p.region = Some("Oriental".into())))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "report revenue_by_region does not filter by region; it takes: period, service, plan"
        );
    }

    #[test]
    fn values_are_parsed_and_blank_ones_ignored() {
        let r = find("top_customers").unwrap();
        let q = r
            .query(&params(|p| {
                p.period = Some("2026-10".into());
                p.service = Some("VOICE".into());
                p.region = Some(" ".into());
                p.limit = Some("20".into());
            }))
            .unwrap();
        assert_eq!(q.period, NaiveDate::from_ymd_opt(2026, 10, 1));
        assert_eq!(q.service.as_deref(), Some("voice"));
        assert_eq!(q.region, None);
        assert_eq!(q.limit, Some(20));
        assert_eq!(
            q.given,
            vec![
                ("period", "2026-10".into()),
                ("service", "VOICE".into()),
                ("limit", "20".into())
            ]
        );
    }

    #[test]
    fn bad_values_are_named() {
        let r = find("top_customers").unwrap();
        for (p, msg) in [
            (
                params(|p| p.period = Some("2026-13".into())),
                "period \"2026-13\" is not YYYY-MM",
            ),
            (
                params(|p| p.service = Some("fax".into())),
                "service \"fax\" is not one of voice, sms, data",
            ),
            (
                params(|p| p.limit = Some("0".into())),
                "limit \"0\" is not a number in 1..=100000",
            ),
        ] {
            assert_eq!(r.query(&p).unwrap_err().to_string(), msg);
        }
        assert_eq!(find("nope").map(|r| r.name), None);
    }
}

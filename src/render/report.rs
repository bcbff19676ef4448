//! A report's answer as a value ([`ReportTable`]) and its three renderings: an aligned
//! text table for the terminal, CSV and JSON. All three come from the same cells, so
//! they cannot disagree: money stays an exact decimal in each (a JSON string, never a
//! float), periods print as `YYYY-MM`, dates as `YYYY-MM-DD`.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

/// How a column's values are typed in JSON and aligned in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    Decimal,
    Period,
    Date,
    Timestamp,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Decimal => "decimal",
            ColumnType::Period => "period",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
        }
    }

    fn right_aligned(self) -> bool {
        matches!(self, ColumnType::Integer | ColumnType::Decimal)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Integer(i64),
    Decimal(Decimal),
    Date(NaiveDate),
    Timestamp(DateTime<Utc>),
}

impl Cell {
    /// The value as text, the same in the table and in CSV; empty for NULL.
    fn text(&self, kind: ColumnType) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Integer(i) => i.to_string(),
            Cell::Decimal(d) => d.to_string(),
            Cell::Date(d) if kind == ColumnType::Period => d.format("%Y-%m").to_string(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::Timestamp(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }

    fn json(&self, kind: ColumnType) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Integer(i) => json!(i),
            other => Value::String(other.text(kind)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnType,
}

/// One report's answer, with what it was asked and how fresh it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportTable {
    pub name: String,
    pub title: String,
    /// The filters as given (name, value), in the registry's order.
    pub filters: Vec<(&'static str, String)>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl ReportTable {
    pub fn to_json(&self) -> Value {
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|c| json!({"name": c.name, "type": c.kind.as_str()}))
            .collect();
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut object = Map::new();
                for (c, cell) in self.columns.iter().zip(row) {
                    object.insert(c.name.clone(), cell.json(c.kind));
                }
                Value::Object(object)
            })
            .collect();
        let filters: Map<String, Value> = self
            .filters
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
            .collect();
        json!({
            "report": self.name,
            "title": self.title,
            "filters": filters,
            "refreshed_at": self
                .refreshed_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            "columns": columns,
            "rows": rows,
        })
    }

    pub fn to_csv(&self) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        // Writing to a Vec cannot fail; the results are checked anyway, not unwrapped.
        let mut ok = w
            .write_record(self.columns.iter().map(|c| c.name.as_str()))
            .is_ok();
        for row in &self.rows {
            ok &= w
                .write_record(self.columns.iter().zip(row).map(|(c, v)| v.text(c.kind)))
                .is_ok();
        }
        debug_assert!(ok);
        w.into_inner().unwrap_or_default()
    }

    /// An aligned text table with a title line, for a terminal.
    pub fn to_table(&self) -> String {
        let texts: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| v.text(c.kind))
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                texts
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([c.name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &mut dyn Iterator<Item = (usize, &str)>| -> String {
            let parts: Vec<String> = cells
                .map(|(i, s)| {
                    let pad = widths[i].saturating_sub(s.chars().count());
                    if self.columns[i].kind.right_aligned() {
                        format!("{}{s}", " ".repeat(pad))
                    } else {
                        format!("{s}{}", " ".repeat(pad))
                    }
                })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = String::new();
        let filters: Vec<String> = self
            .filters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&self.title);
        if !filters.is_empty() {
            out.push_str(&format!(" ({})", filters.join(", ")));
        }
        out.push('\n');
        out.push_str(&line(
            &mut self
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (i, c.name.as_str())),
        ));
        out.push('\n');
        out.push_str(&line(&mut widths.iter().enumerate().map(|(i, w)| {
            (
                i,
                &"--------------------------------------------------"[..(*w).min(50)],
            )
        })));
        out.push('\n');
        for row in &texts {
            out.push_str(&line(
                &mut row.iter().enumerate().map(|(i, s)| (i, s.as_str())),
            ));
            out.push('\n');
        }
        out.push_str(&format!(
            "({} row{}; aggregates refreshed {})\n",
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" },
            self.refreshed_at.map_or("never".to_string(), |t| t
                .to_rfc3339_opts(SecondsFormat::Secs, true))
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReportTable {
        ReportTable {
            name: "revenue_by_month".into(),
            title: "Revenue by month".into(),
            filters: vec![("region", "Oriental".into())],
            refreshed_at: None,
            columns: vec![
                Column {
                    name: "period".into(),
                    kind: ColumnType::Period,
                },
                Column {
                    name: "customers".into(),
                    kind: ColumnType::Integer,
                },
                Column {
                    name: "rated".into(),
                    kind: ColumnType::Decimal,
                },
                Column {
                    name: "note".into(),
                    kind: ColumnType::Text,
                },
            ],
            rows: vec![
                vec![
                    Cell::Date(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()),
                    Cell::Integer(12),
                    Cell::Decimal("1234.500000".parse().unwrap()),
                    Cell::Text("a, \"quoted\" one".into()),
                ],
                vec![
                    Cell::Date(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()),
                    Cell::Integer(3),
                    Cell::Null,
                    Cell::Text("x".into()),
                ],
            ],
        }
    }

    #[test]
    fn json_keeps_money_exact_as_strings_and_periods_as_months() {
        let j = sample().to_json();
        assert_eq!(j["rows"][0]["period"], "2026-10");
        assert_eq!(j["rows"][0]["customers"], 12);
        assert_eq!(j["rows"][0]["rated"], "1234.500000");
        assert_eq!(j["rows"][1]["rated"], Value::Null);
        assert_eq!(j["columns"][2]["type"], "decimal");
        assert_eq!(j["filters"]["region"], "Oriental");
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_leaves_null_empty() {
        let text = String::from_utf8(sample().to_csv()).unwrap();
        assert_eq!(
            text,
            "period,customers,rated,note\n2026-10,12,1234.500000,\"a, \"\"quoted\"\" one\"\n2026-11,3,,x\n"
        );
    }

    #[test]
    fn the_table_right_aligns_numbers_and_says_how_fresh_it_is() {
        let t = sample().to_table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Revenue by month (region=Oriental)");
        assert_eq!(lines[1], "period   customers        rated  note");
        assert_eq!(
            lines[3],
            "2026-10         12  1234.500000  a, \"quoted\" one"
        );
        assert_eq!(lines[4], "2026-11          3               x");
        assert_eq!(lines[5], "(2 rows; aggregates refreshed never)");
    }
}

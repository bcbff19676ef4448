//! A report's answer ([`ReportTable`], a value of `domain::report`) in its three
//! renderings: an aligned text table for the terminal, CSV and JSON. All three come from
//! the same cells, so they cannot disagree: money stays an exact decimal in each (a JSON
//! string, never a float), periods print as `YYYY-MM`, dates as `YYYY-MM-DD`. CSV text
//! cells pass through [`spreadsheet_text`], so an export opened in a spreadsheet cannot
//! run a formula hidden in a customer's name.

pub use crate::domain::report::{Cell, Column, ColumnType, ReportTable};

use chrono::SecondsFormat;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::json;
use std::borrow::Cow;

/// A text cell as a spreadsheet must read it: text that a spreadsheet would take for a
/// formula (starting with `=`, `+`, `-` or `@`) or that hides one behind a tab or a
/// carriage return gets a leading `'`, which spreadsheets read as "this is text" (OWASP's
/// advice on CSV injection). Only text cells go through here: a number, a negative amount
/// included, is written as the number it is.
pub fn spreadsheet_text(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

impl ColumnType {
    fn right_aligned(self) -> bool {
        matches!(self, ColumnType::Integer | ColumnType::Decimal)
    }
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
}

impl ReportTable {
    /// CSV under a header of the column names (cdrflow's own words); text cells pass
    /// through [`spreadsheet_text`], numbers, dates and times are written as the table
    /// shows them.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        // Writing to a Vec cannot fail; the results are checked anyway, not unwrapped.
        let mut ok = w
            .write_record(self.columns.iter().map(|c| c.name.as_str()))
            .is_ok();
        for row in &self.rows {
            ok &= w
                .write_record(row.iter().zip(&self.columns).map(|(v, c)| match v {
                    Cell::Text(s) => spreadsheet_text(s).into_owned(),
                    other => other.text(c.kind),
                }))
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

/// The JSON answer, written straight from the cells: a report of any length serializes
/// without building a value per cell first. Row objects keep the columns' order.
impl Serialize for ReportTable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Columns<'a>(&'a [Column]);
        impl Serialize for Columns<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for c in self.0 {
                    seq.serialize_element(&json!({"name": c.name, "type": c.kind.as_str()}))?;
                }
                seq.end()
            }
        }
        struct Filters<'a>(&'a [(&'static str, String)]);
        impl Serialize for Filters<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        struct Row<'a>(&'a [Column], &'a [Cell]);
        impl Serialize for Row<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (c, cell) in self.0.iter().zip(self.1) {
                    match cell {
                        Cell::Null => map.serialize_entry(&c.name, &())?,
                        Cell::Integer(i) => map.serialize_entry(&c.name, i)?,
                        other => map.serialize_entry(&c.name, &other.text(c.kind))?,
                    }
                }
                map.end()
            }
        }
        struct Rows<'a>(&'a ReportTable);
        impl Serialize for Rows<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.rows.len()))?;
                for row in &self.0.rows {
                    seq.serialize_element(&Row(&self.0.columns, row))?;
                }
                seq.end()
            }
        }
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("report", &self.name)?;
        map.serialize_entry("title", &self.title)?;
        map.serialize_entry("filters", &Filters(&self.filters))?;
        map.serialize_entry(
            "refreshed_at",
            &self
                .refreshed_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        )?;
        map.serialize_entry("columns", &Columns(&self.columns))?;
        map.serialize_entry("rows", &Rows(self))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use serde_json::Value;

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
        let j = serde_json::to_value(sample()).unwrap();
        assert_eq!(j["rows"][0]["period"], "2026-10");
        assert_eq!(j["rows"][0]["customers"], 12);
        assert_eq!(j["rows"][0]["rated"], "1234.500000");
        assert_eq!(j["rows"][1]["rated"], Value::Null);
        assert_eq!(j["columns"][2]["type"], "decimal");
        assert_eq!(j["filters"]["region"], "Oriental");
        // Written straight from the cells, each row object in the columns' order.
        let text = serde_json::to_string(&sample()).unwrap();
        assert!(
            text.contains(r#"{"period":"2026-10","customers":12,"rated":"1234.500000","note":"a, \"quoted\" one"}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), j);
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
    fn text_a_spreadsheet_would_run_as_a_formula_gets_a_leading_quote() {
        for (raw, written) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+212600000001", "'+212600000001"),
            ("-1+1", "'-1+1"),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "'\r=1+1"),
        ] {
            assert_eq!(spreadsheet_text(raw), written, "{raw:?}");
        }
        for plain in [
            "Amina Alaoui",
            "",
            "a=b",
            " =1",
            "'=1",
            "12.50",
            "Casablanca-Settat",
        ] {
            assert!(
                matches!(spreadsheet_text(plain), Cow::Borrowed(s) if s == plain),
                "{plain:?}"
            );
        }
    }

    #[test]
    fn csv_neutralizes_text_cells_and_keeps_negative_amounts_numbers() {
        let mut t = sample();
        t.rows = vec![vec![
            Cell::Date(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()),
            Cell::Integer(-3),
            Cell::Decimal("-12.50".parse().unwrap()),
            Cell::Text("=HYPERLINK(\"http://x\",\"y\")".into()),
        ]];
        let text = String::from_utf8(t.to_csv()).unwrap();
        assert_eq!(
            text,
            "period,customers,rated,note\n2026-10,-3,-12.50,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\n"
        );
        // The table and JSON show the text as it is.
        assert!(t.to_table().contains("  =HYPERLINK(\"http://x\",\"y\")"));
        let j = serde_json::to_value(&t).unwrap();
        assert_eq!(j["rows"][0]["note"], "=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(j["rows"][0]["rated"], "-12.50");
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

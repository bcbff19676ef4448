//! A report's answer as a value: its columns, typed, and rows of cells, with what it was
//! asked and how fresh it is. Storage fills it from a query and `render::report` writes
//! it out, so the data lives here, where both can use it without storage depending on
//! rendering.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

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

//! A customer as cdrflow stores it and as a customers file (CSV) gives it: the
//! subscriber's number, plan, region, activation date and credit limit.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// E.164.
    pub msisdn: String,
    pub name: String,
    /// A plan code of the catalog.
    pub plan: String,
    pub region: Option<String>,
    pub is_student: bool,
    pub activated_on: NaiveDate,
    /// The month-to-date spend at which billing alerts the customer (MAD).
    pub credit_limit: Decimal,
}

impl Customer {
    /// A customer on `plan` with nothing else known: activated today, the default limit.
    pub fn on_plan(msisdn: &str, name: &str, plan: &str, today: NaiveDate) -> Customer {
        Customer {
            msisdn: msisdn.to_string(),
            name: name.to_string(),
            plan: plan.to_string(),
            region: None,
            is_student: false,
            activated_on: today,
            credit_limit: Decimal::new(500, 0),
        }
    }
}

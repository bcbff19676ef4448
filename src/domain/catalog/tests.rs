//! The shipped catalog read and checked, and the helpers that hand it to other tests
//! (`default_catalog`).

use super::*;
use crate::domain::record::RecordType;
use rust_decimal::Decimal;
use std::collections::HashSet;

pub const DEFAULT: &str = include_str!("../../../catalog/default.toml");

pub fn default_catalog() -> Catalog {
    Catalog::parse(DEFAULT).expect("the shipped catalog is valid")
}

#[test]
fn the_shipped_catalog_is_valid_and_complete() {
    let c = default_catalog();
    assert!(c.plans.len() >= 4);
    assert_eq!(c.operator.currency, "MAD");
    assert_eq!(c.operator.vat_rate, Decimal::new(20, 2));
    assert_eq!(c.operator.regulatory_fee, Decimal::ONE);
    assert_eq!(c.discounts.student, Decimal::new(10, 2));
    assert_eq!(c.discounts.loyalty, Decimal::new(5, 2));
    let regions: HashSet<&String> = c.regions.values().collect();
    assert_eq!(regions.len(), 12);
    assert_eq!(
        c.locate("CASABLANCA_12"),
        Some(("Casablanca", "Casablanca-Settat"))
    );
    assert!(c.plans.values().any(|p| p
        .allowances
        .iter()
        .any(|a| a.service == RecordType::Sms && a.units == 100)));
}

#[test]
fn the_shipped_cells_match_the_built_in_reference() {
    let c = default_catalog();
    for prefix in c.cells.keys() {
        let cell = format!("{prefix}_1");
        let built_in = crate::domain::cells::locate(&cell).expect("every catalog city is built in");
        assert_eq!((built_in.city, built_in.region), c.locate(&cell).unwrap());
    }
    assert_eq!(c.cells.len(), crate::domain::cells::city_keys().count());
}

#[test]
fn the_week_has_peak_offpeak_and_weekend_where_design_puts_them() {
    let c = default_catalog();
    let band = |day: usize, h: usize, m: usize| {
        c.band_name(c.band_at(day * 1440 + h * 60 + m).0)
            .to_string()
    };
    assert_eq!(band(0, 8, 0), "peak");
    assert_eq!(band(0, 7, 59), "offpeak");
    assert_eq!(band(4, 19, 59), "peak");
    assert_eq!(band(4, 20, 0), "offpeak");
    assert_eq!(band(5, 12, 0), "weekend");
    assert_eq!(band(6, 23, 59), "weekend");
    // Monday 08:00 peak lasts 12 hours.
    assert_eq!(c.band_at(8 * 60).1, 12 * 60);
    // Sunday 23:59 weekend runs into Monday 00:00 offpeak: one minute.
    assert_eq!(c.band_at(MINUTES_PER_WEEK - 1).1, 1);
}

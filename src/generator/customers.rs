//! The subscriber pool a seed gives: numbers, names, plans, regions and credit limits,
//! the same for the same seed whatever the record count, so `cdrflow customers` can load
//! the pool a later `cdrflow generate` writes records for.

use super::pick;
use crate::domain::cells;
use chrono::{Duration, NaiveDate};
use fake::Fake;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use std::collections::HashSet;

pub use crate::domain::customer::Customer;

/// The plans of the shipped catalog, for pools generated without a catalog at hand.
pub const DEFAULT_PLANS: &[&str] = &["basic", "student", "business", "data-max"];

/// The subscriber pool for a seed: the same seed always gives the same customers,
/// whatever the record count, so `--customers` written once serves later runs.
pub fn customer_pool(seed: u64, n: usize) -> Vec<Customer> {
    customer_pool_on(seed, n, DEFAULT_PLANS)
}

/// The pool for a seed with plans drawn from `plans` (a catalog's plan codes). Numbers
/// and names depend on the seed only; plans, regions, students, activation dates (spread
/// over eight years) and credit limits come from a second stream of the same seed.
pub fn customer_pool_on(seed: u64, n: usize, plans: &[&str]) -> Vec<Customer> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_C057_0E25);
    let mut traits = StdRng::seed_from_u64(seed ^ 0x0C05_7E25_7A17);
    let regions: Vec<&str> = {
        let mut r: Vec<&str> = cells::city_keys()
            .filter_map(|k| cells::locate(k).map(|l| l.region))
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    };
    let first_day = NaiveDate::from_ymd_opt(2018, 1, 1).expect("a date");
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let msisdn = format!(
            "+2126{}{:07}",
            pick(&mut rng, &['0', '1', '2', '3', '4', '5', '6', '7', '9']),
            rng.random_range(0..10_000_000)
        );
        if seen.insert(msisdn.clone()) {
            let name: String = fake::faker::name::fr_fr::Name().fake_with_rng(&mut rng);
            let plan = if plans.is_empty() {
                "basic"
            } else {
                pick(&mut traits, plans)
            };
            let is_student = plan.contains("student") || traits.random_range(0..100) < 2;
            let base = match plan {
                "business" => 2000,
                "student" => 150,
                "basic" => 200,
                _ => 500,
            };
            out.push(Customer {
                msisdn,
                name,
                plan: plan.to_string(),
                region: Some(pick(&mut traits, &regions).to_string()),
                is_student,
                activated_on: first_day + Duration::days(traits.random_range(0..8 * 365)),
                credit_limit: Decimal::new(base + 50 * traits.random_range(0..5), 0),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_does_not_depend_on_the_record_count() {
        assert_eq!(customer_pool(3, 50), customer_pool(3, 50));
        assert_eq!(customer_pool(3, 50)[..10], customer_pool(3, 80)[..10]);
    }
}

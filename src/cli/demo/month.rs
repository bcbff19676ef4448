//! The month the demo bills: the last calendar month that has ended in the operator's
//! zone, and the instants it starts and ends at there.

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

pub(super) struct Month {
    /// Its first day, as billing periods are keyed.
    pub(super) period: NaiveDate,
    /// Its first instant in the operator's zone, and the next month's.
    pub(super) start: DateTime<Utc>,
    pub(super) end: DateTime<Utc>,
}

impl Month {
    /// The last calendar month over at `now` in `tz`.
    pub(super) fn last_full(tz: Tz, now: DateTime<Utc>) -> anyhow::Result<Month> {
        let period = last_full_month(tz, now)?;
        let next = period
            .checked_add_months(Months::new(1))
            .context("the month after the period does not exist")?;
        Ok(Month {
            period,
            start: local_midnight(tz, period),
            end: local_midnight(tz, next),
        })
    }

    /// "October 2026".
    pub(super) fn name(&self) -> String {
        self.period.format("%B %Y").to_string()
    }

    /// "2026-10", as the flags and the API write a period.
    pub(super) fn yyyy_mm(&self) -> String {
        self.period.format("%Y-%m").to_string()
    }
}

/// The last calendar month that has ended in the operator's zone.
fn last_full_month(tz: Tz, now: DateTime<Utc>) -> anyhow::Result<NaiveDate> {
    let today = now.with_timezone(&tz).date_naive();
    let this_month = today - Duration::days(today.day0() as i64);
    this_month
        .checked_sub_months(Months::new(1))
        .context("there is no month before this one")
}

/// The first instant of `day` in `tz`. Midnight itself may be skipped by a DST change
/// in some zones; the day then starts at the first wall-clock time that exists.
fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    (0..=12)
        .filter_map(|quarter| {
            tz.from_local_datetime(
                &(day.and_time(NaiveTime::MIN) + Duration::minutes(15 * quarter)),
            )
            .earliest()
        })
        .next()
        .map(|t| t.with_timezone(&Utc))
        // No zone skips three hours; UTC midnight as the last resort.
        .unwrap_or_else(|| day.and_time(NaiveTime::MIN).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_billed_month_is_the_last_one_over_in_the_operator_zone() {
        let tz: Tz = "Africa/Casablanca".parse().unwrap();
        // 31 October 23:30 UTC is already 1 November in Casablanca (UTC+1).
        let now = Utc.with_ymd_and_hms(2026, 10, 31, 23, 30, 0).unwrap();
        assert_eq!(
            last_full_month(tz, now).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
        );
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        assert_eq!(
            last_full_month(tz, now).unwrap(),
            NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()
        );
        assert_eq!(
            local_midnight(tz, NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()),
            Utc.with_ymd_and_hms(2026, 9, 30, 23, 0, 0).unwrap()
        );
    }
}

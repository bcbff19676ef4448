//! The reconciliation a billing team asks for first: per source partition, records
//! consumed against their outcomes, the stored offset, and the records the broker deleted
//! before they were read (gaps). A partition with a gap is not balanced: its books add up,
//! but records of the stream never reached them.

use super::offsets::{self, Gap};
use super::StorageError;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub consumed: i64,
    pub accepted: i64,
    pub duplicates: i64,
    pub suspense: i64,
    pub rejected: BTreeMap<String, i64>,
}

impl Outcomes {
    pub fn rejected_total(&self) -> i64 {
        self.rejected.values().sum()
    }

    /// consumed = accepted + rejected + duplicates + suspense
    pub fn balanced(&self) -> bool {
        self.consumed == self.accepted + self.rejected_total() + self.duplicates + self.suspense
    }

    fn add(&mut self, other: &Outcomes) {
        self.consumed += other.consumed;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.suspense += other.suspense;
        for (reason, n) in &other.rejected {
            *self.rejected.entry(reason.clone()).or_default() += n;
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStats {
    pub topic: String,
    pub partition: i32,
    #[serde(flatten)]
    pub outcomes: Outcomes,
    pub stored_offset: Option<i64>,
    /// Records in gaps: deleted on the broker before this group read them.
    pub lost_records: i64,
    pub balanced: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub group: String,
    pub partitions: Vec<PartitionStats>,
    pub totals: Outcomes,
    pub lost_records: i64,
    pub balanced: bool,
    pub gaps: Vec<Gap>,
    /// Rows actually present, counted independently of the counters.
    pub stored_rows: StoredRows,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredRows {
    pub usage_events: i64,
    pub rejected_records: i64,
    pub suspense_records: i64,
    /// Suspense records still held (the rest were released once their subscriber existed).
    pub suspense_held: i64,
    /// Usage events without a price (stored before rating existed).
    pub usage_unrated: i64,
    /// The sum of every event's amount, before allowances, discounts and taxes.
    pub usage_amount: rust_decimal::Decimal,
}

pub async fn load(client: &tokio_postgres::Client, group: &str) -> Result<Stats, StorageError> {
    let mut per: BTreeMap<(String, i32), (Outcomes, Option<i64>)> = BTreeMap::new();
    for row in client
        .query(include_str!("sql/stats_counters.sql"), &[&group])
        .await?
    {
        let (o, _) = per.entry((row.get(0), row.get(1))).or_default();
        let n: i64 = row.get(4);
        match row.get::<_, &str>(2) {
            "consumed" => o.consumed += n,
            "accepted" => o.accepted += n,
            "duplicate" => o.duplicates += n,
            "suspense" => o.suspense += n,
            _ => *o.rejected.entry(row.get(3)).or_default() += n,
        }
    }
    for row in client
        .query(include_str!("sql/stats_offsets.sql"), &[&group])
        .await?
    {
        per.entry((row.get(0), row.get(1))).or_default().1 = Some(row.get(2));
    }
    let gaps = offsets::gaps(client, group).await?;
    let mut lost: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for g in &gaps {
        *lost.entry((g.topic.clone(), g.partition)).or_default() += g.to_offset - g.from_offset;
        per.entry((g.topic.clone(), g.partition)).or_default();
    }
    let mut totals = Outcomes::default();
    let partitions: Vec<PartitionStats> = per
        .into_iter()
        .map(|(key, (outcomes, stored_offset))| {
            totals.add(&outcomes);
            let lost_records = lost.get(&key).copied().unwrap_or(0);
            PartitionStats {
                topic: key.0,
                partition: key.1,
                balanced: outcomes.balanced() && lost_records == 0,
                outcomes,
                stored_offset,
                lost_records,
            }
        })
        .collect();
    let lost_records: i64 = lost.values().sum();
    let counts = client
        .query_one(include_str!("sql/stats_stored_rows.sql"), &[])
        .await?;
    Ok(Stats {
        group: group.to_string(),
        balanced: totals.balanced() && lost_records == 0,
        partitions,
        totals,
        lost_records,
        gaps,
        stored_rows: StoredRows {
            usage_events: counts.get(0),
            rejected_records: counts.get(1),
            suspense_records: counts.get(2),
            suspense_held: counts.get(3),
            usage_unrated: counts.get(4),
            usage_amount: counts.get(5),
        },
    })
}

//! Stored consumer offsets: the position each group has durably reached per partition.

use super::StorageError;
use std::collections::BTreeMap;
use tokio_postgres::GenericClient;

/// The stored next offset of each partition, creating a row at 0 for partitions never
/// seen, so that every later batch commit is a plain compare-and-set.
pub async fn claim(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, StorageError> {
    client
        .execute(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
             SELECT $1, $2, p, 0 FROM UNNEST($3::int4[]) AS p
             ON CONFLICT DO NOTHING",
            &[&group, &topic, &partitions],
        )
        .await?;
    stored(client, group, topic, Some(partitions)).await
}

/// Stored offsets of a group on a topic, for some or all partitions.
pub async fn stored(
    client: &impl GenericClient,
    group: &str,
    topic: &str,
    partitions: Option<&[i32]>,
) -> Result<BTreeMap<i32, i64>, StorageError> {
    let rows = client
        .query(
            "SELECT partition, next_offset FROM consumer_offsets
              WHERE group_id = $1 AND topic = $2 AND ($3::int4[] IS NULL OR partition = ANY($3))",
            &[&group, &topic, &partitions],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

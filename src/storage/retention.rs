//! Usage by month: each month's partition made before its usage is stored, and `cdrflow
//! retention`, which archives a month's usage and rejects to compressed CSV, checks the
//! archive, and drops them (V14__usage_partitions.sql). Invoices, report aggregates,
//! buckets and the audit trail keep their rows.

use super::StorageError;
use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tokio_postgres::{Client, IsolationLevel};

/// Months ahead of the current one whose usage partition is made in advance.
pub const MONTHS_AHEAD: i32 = 2;

/// Make the usage partitions of the current month and the next ones, moving any rows of
/// those months out of the default partition; returns how many were made. Cheap when
/// they exist (three catalog look-ups).
pub async fn partitions_ahead(client: &Client) -> Result<i32, StorageError> {
    let row = client
        .query_one(
            "SELECT usage_partitions_ahead(current_date, $1)",
            &[&MONTHS_AHEAD],
        )
        .await?;
    Ok(row.get(0))
}

/// Make the usage partitions of the months of `periods` that have none yet, in `tx`,
/// before usage of those months is stored: one look-up per month when they exist. Making
/// one waits for the other writers' transactions, once a month.
pub(super) async fn make_partitions(
    tx: &deadpool_postgres::Transaction<'_>,
    periods: impl Iterator<Item = NaiveDate>,
) -> Result<(), StorageError> {
    let mut months: Vec<NaiveDate> = periods.collect();
    months.sort_unstable();
    months.dedup();
    let make = tx
        .prepare_cached("SELECT usage_partitions($1::date[])")
        .await?;
    tx.execute(&make, &[&months]).await?;
    Ok(())
}

/// What retention asks of the months before the kept ones.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Months kept before the current one.
    pub keep_months: u32,
    /// The daemon's --max-event-age-days: a month may still receive usage until its end
    /// is this much in the past.
    pub max_event_age_days: u32,
    /// The operator's time zone: months of usage and of rejects begin at its midnight.
    pub timezone: Tz,
}

/// A month older than the kept ones, with what retention may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    pub period: NaiveDate,
    pub usage_rows: i64,
    pub reject_rows: i64,
    /// Why it stays, if it does.
    pub refusal: Option<String>,
}

/// The first day of the oldest month kept on `today`.
pub fn first_kept(today: NaiveDate, keep_months: u32) -> NaiveDate {
    let month = today.with_day(1).unwrap_or(today);
    month - Months::new(keep_months)
}

/// The instant the month of `period` begins in `tz`.
fn month_start(period: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = period.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A zone whose clocks skip midnight on the first: the earliest instant after it.
    tz.from_local_datetime(&midnight)
        .earliest()
        .unwrap_or_else(|| tz.from_utc_datetime(&midnight))
        .with_timezone(&Utc)
}

fn next_month(period: NaiveDate) -> NaiveDate {
    period + Months::new(1)
}

/// The months older than the kept ones that hold usage or rejects and were not dropped
/// yet, oldest first, each with its rows and whether it may go now.
pub async fn months(
    client: &Client,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Vec<Month>, StorageError> {
    let today = now.with_timezone(&policy.timezone).date_naive();
    let first_kept = first_kept(today, policy.keep_months);
    let kept_from = month_start(first_kept, policy.timezone);
    let rows = client
        .query(
            "SELECT p FROM (
                 SELECT DISTINCT period AS p FROM usage_events WHERE period < $1
                 UNION
                 SELECT DISTINCT date_trunc('month', rejected_at AT TIME ZONE $3)::date
                   FROM rejected_records WHERE rejected_at < $2) m
              WHERE p NOT IN (SELECT period FROM usage_archives)
              ORDER BY p",
            &[&first_kept, &kept_from, &policy.timezone.name()],
        )
        .await?;
    let mut months = Vec::with_capacity(rows.len());
    for row in rows {
        let period: NaiveDate = row.get(0);
        months.push(month(client, policy, now, period).await?);
    }
    Ok(months)
}

async fn month(
    client: &Client,
    policy: &Policy,
    now: DateTime<Utc>,
    period: NaiveDate,
) -> Result<Month, StorageError> {
    let (from, to) = (
        month_start(period, policy.timezone),
        month_start(next_month(period), policy.timezone),
    );
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM usage_events WHERE period = $1),
                    (SELECT count(*) FROM rejected_records WHERE rejected_at >= $2 AND rejected_at < $3),
                    (SELECT closed_at IS NOT NULL FROM billing_periods WHERE period = $1)",
            &[&period, &from, &to],
        )
        .await?;
    let (usage_rows, reject_rows): (i64, i64) = (row.get(0), row.get(1));
    let billed: Option<bool> = row.get(2);
    let open_until = to + chrono::Duration::days(policy.max_event_age_days as i64);
    let refusal = if usage_rows > 0 && billed != Some(true) {
        Some("not billed: close it with `cdrflow bill` first".to_string())
    } else if open_until > now {
        Some(format!(
            "may still receive usage until {} (--max-event-age-days {})",
            open_until.with_timezone(&policy.timezone).date_naive(),
            policy.max_event_age_days
        ))
    } else {
        None
    };
    Ok(Month {
        period,
        usage_rows,
        reject_rows,
        refusal,
    })
}

/// One archived table of a month: its file, its rows, and two checksums (SHA-256) that
/// the manifest gives: of the file as stored, and of the CSV inside it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ArchivedTable {
    pub table: String,
    pub file: String,
    pub rows: i64,
    pub sha256: String,
    pub csv_sha256: String,
}

/// The manifest written beside a month's archive files, `YYYY-MM.manifest.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub period: String,
    pub timezone: String,
    pub written_at: DateTime<Utc>,
    pub cdrflow_version: String,
    pub tables: Vec<ArchivedTable>,
}

/// Retention failures. A month whose archive does not verify is not dropped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("archive of {period} does not verify: {what}")]
    Unverified { period: NaiveDate, what: String },
    #[error("{period} changed while it was archived: {what}; nothing dropped")]
    Changed { period: NaiveDate, what: String },
}

impl From<tokio_postgres::Error> for RetentionError {
    fn from(e: tokio_postgres::Error) -> Self {
        RetentionError::Storage(e.into())
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> RetentionError + '_ {
    move |source| RetentionError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `month`'s usage and rejects to `dir` (gzip-compressed CSV with a header line,
/// one file per table, and a manifest), read every file back to check its rows and
/// checksums, then drop the month's partition, its ids and its rejects in one
/// transaction that first checks nothing changed. With `dir` None nothing is written.
pub async fn archive_and_drop(
    client: &mut Client,
    policy: &Policy,
    month: &Month,
    dir: Option<&Path>,
) -> Result<Option<PathBuf>, RetentionError> {
    let period = month.period;
    let (from, to) = (
        month_start(period, policy.timezone),
        month_start(next_month(period), policy.timezone),
    );
    // Rows of the month still in the default partition go to the month's own first.
    client
        .query_one("SELECT usage_partition($1)", &[&period])
        .await?;
    let partition = format!("usage_events_{}", period.format("%Y_%m"));
    let usage = format!("SELECT * FROM {partition} ORDER BY record_id");
    let rejects = format!(
        "SELECT * FROM rejected_records WHERE rejected_at >= '{}' AND rejected_at < '{}' ORDER BY id",
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    let manifest_path = match dir {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(file_error(dir))?;
            let stem = period.format("%Y-%m").to_string();
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            // Instants in the files are written in UTC, whatever the server's zone.
            tx.batch_execute("SET LOCAL TimeZone = 'UTC'").await?;
            let mut tables = Vec::new();
            for (table, query) in [("usage_events", &usage), ("rejected_records", &rejects)] {
                let file = format!("{table}-{stem}.csv.gz");
                let written = write_csv(&tx, query, &dir.join(&file)).await?;
                let mut archived = ArchivedTable {
                    table: table.to_string(),
                    file,
                    rows: written.rows,
                    sha256: String::new(),
                    csv_sha256: written.csv_sha256,
                };
                archived.sha256 = verify(period, dir, &archived)?;
                tables.push(archived);
            }
            tx.commit().await?;
            let manifest = Manifest {
                period: stem.clone(),
                timezone: policy.timezone.name().to_string(),
                written_at: Utc::now(),
                cdrflow_version: env!("CARGO_PKG_VERSION").to_string(),
                tables,
            };
            let path = dir.join(format!("{stem}.manifest.json"));
            let text = serde_json::to_vec_pretty(&manifest)
                .map_err(|e| StorageError::Encode(e.to_string()))?;
            write_synced(&path, &text)?;
            Some((path, manifest))
        }
    };
    let (usage_rows, reject_rows) = match &manifest_path {
        Some((_, m)) => (m.tables[0].rows, m.tables[1].rows),
        None => (month.usage_rows, month.reject_rows),
    };

    // Writers of other months go on: the ids and rejects of an old month are rows no
    // committer touches, the partition is locked alone while it is counted, and only
    // detaching it takes the whole table, briefly.
    let tx = client.transaction().await?;
    tx.execute("DELETE FROM usage_ids WHERE period = $1", &[&period])
        .await?;
    let dropped_rejects = tx
        .execute(
            "DELETE FROM rejected_records WHERE rejected_at >= $1 AND rejected_at < $2",
            &[&from, &to],
        )
        .await? as i64;
    if dropped_rejects != reject_rows {
        return Err(RetentionError::Changed {
            period,
            what: format!("{reject_rows} rejects archived, {dropped_rejects} stored now"),
        });
    }
    tx.batch_execute(&format!("LOCK TABLE {partition} IN SHARE MODE"))
        .await?;
    let now_rows: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {partition}"), &[])
        .await?
        .get(0);
    if now_rows != usage_rows {
        return Err(RetentionError::Changed {
            period,
            what: format!("{usage_rows} usage rows archived, {now_rows} stored now"),
        });
    }
    tx.batch_execute(&format!(
        "ALTER TABLE usage_events DETACH PARTITION {partition}; DROP TABLE {partition}"
    ))
    .await?;
    let manifest_text = manifest_path.as_ref().map(|(p, _)| p.display().to_string());
    tx.execute(
        "INSERT INTO usage_archives (period, usage_rows, reject_rows, manifest) VALUES ($1, $2, $3, $4)",
        &[&period, &usage_rows, &reject_rows, &manifest_text],
    )
    .await?;
    tx.commit().await?;
    Ok(manifest_path.map(|(p, _)| p))
}

struct Written {
    rows: i64,
    csv_sha256: String,
}

/// Stream `query` as CSV (with a header line) into a gzip file at `path`, synced to disk.
async fn write_csv(
    tx: &tokio_postgres::Transaction<'_>,
    query: &str,
    path: &Path,
) -> Result<Written, RetentionError> {
    let rows: i64 = tx
        .query_one(&format!("SELECT count(*) FROM ({query}) x"), &[])
        .await?
        .get(0);
    let copy = format!("COPY ({query}) TO STDOUT (FORMAT csv, HEADER)");
    let stream = tx.copy_out(&copy).await?;
    futures::pin_mut!(stream);
    let file = std::fs::File::create(path).map_err(file_error(path))?;
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut sha = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        sha.update(&chunk);
        gz.write_all(&chunk).map_err(file_error(path))?;
    }
    let file = gz
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(file_error(path))?;
    file.sync_all().map_err(file_error(path))?;
    Ok(Written {
        rows,
        csv_sha256: hex::encode(sha.finalize()),
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RetentionError> {
    let mut file = std::fs::File::create(path).map_err(file_error(path))?;
    file.write_all(bytes).map_err(file_error(path))?;
    file.sync_all().map_err(file_error(path))
}

/// Read an archived table back, streaming: the CSV inside must have the checksum written
/// and `rows` records after its header. Returns the file's own checksum.
pub fn verify(
    period: NaiveDate,
    dir: &Path,
    table: &ArchivedTable,
) -> Result<String, RetentionError> {
    let path = dir.join(&table.file);
    let unverified = |what: String| RetentionError::Unverified {
        period,
        what: format!("{}: {what}", table.file),
    };
    let file = Hashing::new(std::fs::File::open(&path).map_err(file_error(&path))?);
    let csv_stream = Hashing::new(flate2::read::GzDecoder::new(file));
    let mut reader = csv::Reader::from_reader(csv_stream);
    let mut rows = 0i64;
    for record in reader.records() {
        record.map_err(|e| unverified(e.to_string()))?;
        rows += 1;
    }
    let mut csv_stream = reader.into_inner();
    // The reader stops at the end of the CSV; the rest is the gzip trailer, which the
    // decoder checks (length and CRC) when it reaches it.
    std::io::copy(&mut csv_stream, &mut std::io::sink())
        .map_err(|e| unverified(format!("does not decompress: {e}")))?;
    let csv_sha256 = csv_stream.hex();
    let mut file = csv_stream.inner.into_inner();
    std::io::copy(&mut file, &mut std::io::sink()).map_err(file_error(&path))?;
    if csv_sha256 != table.csv_sha256 {
        return Err(unverified(format!(
            "checksum {csv_sha256}, {} written",
            table.csv_sha256
        )));
    }
    if rows != table.rows {
        return Err(unverified(format!(
            "{rows} rows read back, {} stored",
            table.rows
        )));
    }
    Ok(file.hex())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            sha: Sha256::new(),
        }
    }

    fn hex(&self) -> String {
        hex::encode(self.sha.clone().finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_kept_months_are_the_current_one_and_those_before_it() {
        assert_eq!(first_kept(day(2026, 12, 7), 3), day(2026, 9, 1));
        assert_eq!(first_kept(day(2026, 2, 28), 2), day(2025, 12, 1));
        assert_eq!(first_kept(day(2026, 12, 31), 0), day(2026, 12, 1));
    }

    #[test]
    fn a_month_begins_at_the_operators_midnight() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            month_start(day(2026, 7, 1), berlin).to_rfc3339(),
            "2026-06-30T22:00:00+00:00"
        );
        assert_eq!(
            month_start(day(2026, 1, 1), berlin).to_rfc3339(),
            "2025-12-31T23:00:00+00:00"
        );
    }
}

//! `cdrflow replay`: rewind a consumer group's stored offsets (Postgres, the truth the
//! daemon seeks to) so that a range of the raw topic is processed again — to an offset,
//! to the broker's first offset at or after a time, or by a shift — for some or all
//! partitions, optionally asking for the replayed records to be priced again.
//!
//! Replay only ever moves offsets back: a forward move would skip records unprocessed,
//! so it is refused as a whole. Every chosen row is locked and moved in one transaction;
//! a running daemon notices when its next commit on the partition finds the offset it
//! expected gone (`storage::batch::write` answers `Fenced`), and its source seeks to the
//! new position. What the replayed records do is the committer's business: accepted ones
//! are duplicates, rejects are not stored twice, and with `--rerate` the accepted ones
//! below the old position are priced again (`storage::rerate`).

use super::DatabaseArgs;
use crate::kafka::client;
use crate::retry::retry;
use crate::storage::offsets::{self, Rewind, StoredOffset};
use crate::storage::{self, ErrorKind, StorageError};
use anyhow::Context as _;
use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::ArgGroup;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .multiple(false)
        .args(["to_offset", "to_datetime", "shift_by"])
))]
pub struct ReplayArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Consumer group whose stored offsets to rewind.
    #[arg(long, env = "CDRFLOW_GROUP", default_value = "cdrflow")]
    pub group: String,
    /// Topic of raw CDRs.
    #[arg(long, env = "CDRFLOW_TOPIC", default_value = "cdr.raw")]
    pub topic: String,
    /// Kafka bootstrap servers; asked only for --to-datetime.
    #[arg(long, env = "CDRFLOW_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Partitions to rewind, comma-separated (0,2,5); default: every partition the group
    /// has a stored offset for on the topic.
    #[arg(long, value_name = "P,...", value_delimiter = ',', value_parser = clap::value_parser!(i32).range(0..))]
    pub partitions: Vec<i32>,
    /// Rewind every chosen partition to offset N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
    /// Rewind to the first record at or after T, as the broker's offsets-for-times
    /// gives it: RFC 3339 (2026-09-14T08:00:00+01:00), or a local time
    /// (2026-09-14 08:00[:00], or a date for its midnight) read in --timezone. A
    /// partition with no record that recent does not move.
    #[arg(long, value_name = "T", value_parser = parse_when)]
    pub to_datetime: Option<When>,
    /// Move by N records from the stored offset; negative rewinds (--shift-by -1000), as
    /// in Kafka's own tools. Stops at 0.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// The operator's IANA time zone, in which a --to-datetime without offset is read.
    #[arg(long, env = "CDRFLOW_TIMEZONE", default_value = "Africa/Casablanca")]
    pub timezone: Tz,
    /// Price the records already accepted again, with the active catalog, when they come
    /// back (a closed period's difference becomes an adjustment on the next invoice).
    #[arg(long)]
    pub rerate: bool,
    /// Show what would move; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to keep trying to reach PostgreSQL (and the broker) before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub wait_secs: u64,
}

/// A `--to-datetime` as written: an instant, or a wall-clock time that needs the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Instant(DateTime<FixedOffset>),
    Local(NaiveDateTime),
}

fn parse_when(text: &str) -> Result<When, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(When::Instant(t));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(When::Local(t));
        }
    }
    if let Some(t) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(When::Local(t));
    }
    Err(
        "expected RFC 3339 (2026-09-14T08:00:00+01:00) or a local time \
         (2026-09-14 08:00:00) read in --timezone"
            .into(),
    )
}

impl When {
    /// The instant meant. A local time that occurs twice (clocks going back) is the
    /// earlier one: replaying a little more is harmless, replaying too little is not. A
    /// local time the clocks skip does not exist and is refused.
    pub fn resolve(self, tz: Tz) -> Result<DateTime<Utc>, String> {
        match self {
            When::Instant(t) => Ok(t.with_timezone(&Utc)),
            When::Local(t) => match tz.from_local_datetime(&t) {
                LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(earlier, _) => Ok(earlier.with_timezone(&Utc)),
                LocalResult::None => Err(format!(
                    "{t} does not exist in {tz} (the clocks skip it); give the time with \
                     its UTC offset (RFC 3339)"
                )),
            },
        }
    }
}

/// Where the chosen partitions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Offset(i64),
    Shift(i64),
    /// The broker's answers (checked); a partition without a record at or after the
    /// time stays.
    FirstAtOrAfter(Answers),
}

/// One chosen partition: where it stands and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub partition: i32,
    pub stored: i64,
    pub new: i64,
    /// `rerate_below` once the command is applied.
    pub rerate_below: Option<i64>,
    /// This command raises `rerate_below` (--rerate on a partition that moves).
    pub sets_rerate: bool,
}

impl Move {
    pub fn to_replay(&self) -> i64 {
        self.stored - self.new
    }

    pub fn moves(&self) -> bool {
        self.new != self.stored
    }
}

/// Why a replay is refused; nothing has been changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("group `{group}` has no stored offsets on topic `{topic}`: it has consumed nothing there to replay (check --group and --topic)")]
    NothingStored { group: String, topic: String },
    #[error("{} no stored offset for group `{group}` on topic `{topic}`", partition_list(.partitions))]
    NotStored {
        partitions: Vec<i32>,
        group: String,
        topic: String,
    },
    #[error("refusing to move forward, which would skip records unprocessed: {}; nothing was changed", forward_list(.0))]
    Forward(Vec<(i32, i64, i64)>),
    #[error("the broker gave no offset for partition {0}")]
    NoAnswer(i32),
    #[error("could not read the record at offset {offset} of partition {partition} to check the broker's answer; nothing was changed")]
    Unverified { partition: i32, offset: i64 },
}

/// The broker's offsets-for-times answer per partition; `None`: no record at or after
/// the time.
pub type Answers = BTreeMap<i32, Option<i64>>;

/// A partition whose offsets-for-times answer points at a record older than the time
/// asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doubt {
    pub partition: i32,
    pub answered: i64,
    pub record_time: DateTime<Utc>,
}

/// Check the broker's answers that would move a partition (`checked`: partition →
/// answered offset) against the first record read from there. Kafka answers the first
/// offset whose record is at or after the time, or "none"; a record there that is older
/// means the broker found none and said so wrongly (tansu 0.6 answers 0 instead of
/// "none") or is wrong in some other way. Either way the partition stays where it is:
/// staying never skips a record, and the doubt is reported.
pub fn check_answers(
    mut found: Answers,
    checked: &BTreeMap<i32, i64>,
    records: &BTreeMap<i32, (i64, Option<DateTime<Utc>>)>,
    at: DateTime<Utc>,
) -> Result<(Answers, Vec<Doubt>), PlanError> {
    let mut doubts = Vec::new();
    for (&partition, &answered) in checked {
        match records.get(&partition) {
            Some(&(offset, Some(record_time))) if offset == answered && record_time < at => {
                doubts.push(Doubt {
                    partition,
                    answered,
                    record_time,
                });
                found.insert(partition, None);
            }
            Some(_) => {}
            None => {
                return Err(PlanError::Unverified {
                    partition,
                    offset: answered,
                })
            }
        }
    }
    Ok((found, doubts))
}

fn partition_list(p: &[i32]) -> String {
    let list: Vec<String> = p.iter().map(i32::to_string).collect();
    match p.len() {
        1 => format!("partition {} has", list[0]),
        _ => format!("partitions {} have", list.join(", ")),
    }
}

fn forward_list(f: &[(i32, i64, i64)]) -> String {
    f.iter()
        .map(|(p, stored, new)| format!("partition {p}: stored offset {stored}, new offset {new}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The stored rows the command acts on: those named in `wanted`, or all when it is empty.
pub fn select(
    stored: &BTreeMap<i32, StoredOffset>,
    wanted: &[i32],
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, StoredOffset>, PlanError> {
    if stored.is_empty() {
        return Err(PlanError::NothingStored {
            group: group.into(),
            topic: topic.into(),
        });
    }
    if wanted.is_empty() {
        return Ok(stored.clone());
    }
    let mut missing: Vec<i32> = wanted
        .iter()
        .copied()
        .filter(|p| !stored.contains_key(p))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        return Err(PlanError::NotStored {
            partitions: missing,
            group: group.into(),
            topic: topic.into(),
        });
    }
    Ok(stored
        .iter()
        .filter(|(p, _)| wanted.contains(p))
        .map(|(p, s)| (*p, *s))
        .collect())
}

/// The new offset of every chosen partition, or why the whole command is refused.
pub fn plan(
    chosen: &BTreeMap<i32, StoredOffset>,
    destination: &Destination,
    rerate: bool,
) -> Result<Vec<Move>, PlanError> {
    let mut moves = Vec::with_capacity(chosen.len());
    let mut forward = Vec::new();
    for (&partition, s) in chosen {
        let stored = s.next_offset;
        let new = match destination {
            Destination::Offset(n) => *n,
            Destination::Shift(n) => stored.saturating_add(*n).max(0),
            Destination::FirstAtOrAfter(found) => match found.get(&partition) {
                Some(Some(n)) => *n,
                Some(None) => stored,
                None => return Err(PlanError::NoAnswer(partition)),
            },
        };
        if new > stored {
            forward.push((partition, stored, new));
        }
        let sets_rerate = rerate && new < stored;
        moves.push(Move {
            partition,
            stored,
            new,
            rerate_below: if sets_rerate {
                Some(s.rerate_below.unwrap_or(0).max(stored))
            } else {
                s.rerate_below
            },
            sets_rerate,
        });
    }
    if forward.is_empty() {
        Ok(moves)
    } else {
        Err(PlanError::Forward(forward))
    }
}

/// The table both modes print.
pub fn render(moves: &[Move]) -> String {
    let mut out = format!(
        "{:>9} {:>12} {:>12} {:>12}  {}\n",
        "partition", "stored", "new", "to replay", "rerate"
    );
    for m in moves {
        let rerate = match m.rerate_below {
            Some(b) if m.sets_rerate => format!("below {b}"),
            // Left by an earlier --rerate replay and still reaching into this range.
            Some(b) if m.moves() && b > m.new => format!("below {b} (earlier)"),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:>9} {:>12} {:>12} {:>12}  {}",
            m.partition,
            m.stored,
            m.new,
            m.to_replay(),
            rerate
        );
    }
    let moving = moves.iter().filter(|m| m.moves()).count();
    let _ = writeln!(
        out,
        "{:>9} {:>12} {:>12} {:>12}  {} of {} partitions move",
        "total",
        "",
        "",
        moves.iter().map(Move::to_replay).sum::<i64>(),
        moving,
        moves.len()
    );
    out
}

/// How a replay attempt ended short of success.
enum Failure {
    Db(StorageError),
    Refused(PlanError),
    /// The commit was sent and the connection failed: it may have been applied.
    CommitUnknown(StorageError),
    /// Something that cannot happen short of a bug; nothing was committed.
    Bug(String),
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Failure::Db(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e.into())
    }
}

/// Run `attempt` on a fresh connection until it succeeds, fails for good, or the
/// patience runs out. Only an unreachable or broken database is tried again.
async fn with_database<T, F, Fut>(url: &str, patience: Duration, attempt: F) -> anyhow::Result<T>
where
    F: Fn(tokio_postgres::Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let attempt = &attempt;
    let outcome = retry("PostgreSQL", patience, || async move {
        let result = match storage::connect(url).await {
            Ok(client) => attempt(client).await,
            Err(e) => Err(Failure::Db(e)),
        };
        match result {
            Err(Failure::Db(e)) if e.kind() == ErrorKind::External => Err(e),
            other => Ok(other),
        }
    })
    .await;
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(Failure::Refused(e))) => Err(e.into()),
        Ok(Err(Failure::Db(e))) => Err(anyhow::Error::new(e).context("Failed to rewind the offsets")),
        Ok(Err(Failure::Bug(e))) => Err(anyhow::anyhow!(e).context("Failed to rewind the offsets")),
        Ok(Err(Failure::CommitUnknown(e))) => Err(anyhow::Error::new(e).context(
            "The connection failed while committing the rewind, which may or may not have been applied: \
             check the stored offsets with `cdrflow stats` before running replay again",
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "Failed to reach PostgreSQL within {}s",
            patience.as_secs()
        ))),
    }
}

/// Broker answers that asking again will not change.
fn kafka_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::InvalidTimestamp
        )
    )
}

/// For `retry`: an error worth another try stays an error, any other outcome is final.
fn permanent_or_retry<T>(r: Result<T, KafkaError>) -> Result<Result<T, KafkaError>, KafkaError> {
    match r {
        Err(e) if !kafka_permanent(&e) => Err(e),
        other => Ok(other),
    }
}

/// Ask the broker where each chosen partition reaches `at`, checking first that the
/// partitions exist and then that each answer that would move a partition points at a
/// record at or after `at`.
async fn broker_offsets(
    args: &ReplayArgs,
    chosen: &BTreeMap<i32, StoredOffset>,
    at: DateTime<Utc>,
    patience: Duration,
) -> anyhow::Result<(Answers, Vec<Doubt>)> {
    let failed = |e: KafkaError| {
        anyhow::Error::new(e).context(format!(
            "Failed to reach the Kafka broker at {} within {}s",
            args.brokers,
            patience.as_secs()
        ))
    };
    let existing = retry("the Kafka broker", patience, || async {
        permanent_or_retry(client::partition_ids(&args.brokers, &args.topic).await)
    })
    .await
    .map_err(failed)?
    .with_context(|| format!("Failed to read the partitions of topic `{}`", args.topic))?;
    let absent: Vec<String> = chosen
        .keys()
        .filter(|p| !existing.contains(p))
        .map(|p| format!("partition {p}"))
        .collect();
    if !absent.is_empty() {
        anyhow::bail!(
            "topic `{}` on {} has no {}",
            args.topic,
            args.brokers,
            absent.join(", ")
        );
    }
    let partitions: Vec<i32> = chosen.keys().copied().collect();
    let found = retry("the Kafka broker", patience, || async {
        permanent_or_retry(
            client::offsets_for_time(&args.brokers, &args.topic, &partitions, at).await,
        )
    })
    .await
    .map_err(failed)?
    .with_context(|| {
        format!(
            "Failed to look up offsets for {at} on topic `{}`",
            args.topic
        )
    })?;
    let checked: BTreeMap<i32, i64> = found
        .iter()
        .filter_map(|(p, n)| Some((*p, (*n)?)))
        .filter(|(p, n)| chosen.get(p).is_some_and(|s| *n < s.next_offset))
        .collect();
    if checked.is_empty() {
        return Ok((found, Vec::new()));
    }
    let records = retry("the Kafka broker", patience, || async {
        permanent_or_retry(client::first_records(&args.brokers, &args.topic, &checked).await)
    })
    .await
    .map_err(failed)?
    .with_context(|| format!("Failed to read records of topic `{}`", args.topic))?;
    Ok(check_answers(found, &checked, &records, at)?)
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    storage::parse_url(&args.db.database_url)
        .map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
    if args.topic.trim().is_empty() {
        anyhow::bail!("--topic must not be empty");
    }
    let at = match args
        .to_datetime
        .map(|w| w.resolve(args.timezone))
        .transpose()
    {
        Ok(at) => at,
        Err(e) => {
            // The same status as any other bad flag value.
            eprintln!("error: invalid value for '--to-datetime <T>': {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let patience = Duration::from_secs(args.wait_secs);
    let (group, topic, url) = (
        args.group.as_str(),
        args.topic.as_str(),
        args.db.database_url.as_str(),
    );
    let mut wanted = args.partitions.clone();
    wanted.sort_unstable();
    wanted.dedup();

    let mut doubts = Vec::new();
    let (destination, description) = match (args.to_offset, args.shift_by, at) {
        (Some(n), _, _) => (Destination::Offset(n), format!("to offset {n}")),
        (_, Some(n), _) => (Destination::Shift(n), format!("shifted by {n}")),
        (_, _, Some(at)) => {
            // Which partitions first (without locking anything), then the broker: no row
            // stays locked while the broker is asked.
            let chosen = with_database(url, patience, |client| {
                let wanted = &wanted;
                async move {
                    let stored = offsets::positions(&client, group, topic, None, false).await?;
                    select(&stored, wanted, group, topic).map_err(Failure::Refused)
                }
            })
            .await?;
            wanted = chosen.keys().copied().collect();
            let (found, found_doubts) = broker_offsets(&args, &chosen, at, patience).await?;
            doubts = found_doubts;
            (
                Destination::FirstAtOrAfter(found),
                format!(
                    "to the first record at or after {} ({} in {})",
                    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    at.with_timezone(&args.timezone).format("%Y-%m-%d %H:%M:%S"),
                    args.timezone
                ),
            )
        }
        (None, None, None) => anyhow::bail!("give one of --to-offset, --to-datetime or --shift-by"),
    };

    let (dry_run, rerate) = (args.dry_run, args.rerate);
    let moves = with_database(url, patience, |mut client| {
        let (wanted, destination) = (&wanted, &destination);
        async move {
            let tx = client.transaction().await?;
            // Lock the rows before reading them: a daemon committing one of these
            // partitions now either finishes first (and we see its offset) or waits
            // and then finds its expected offset gone.
            let stored = offsets::positions(
                &tx,
                group,
                topic,
                Some(wanted).filter(|w| !w.is_empty()).map(|w| w.as_slice()),
                !dry_run,
            )
            .await?;
            let chosen = select(&stored, wanted, group, topic).map_err(Failure::Refused)?;
            let moves = plan(&chosen, destination, rerate).map_err(Failure::Refused)?;
            let rewinds: Vec<Rewind> = moves
                .iter()
                .filter(|m| m.moves())
                .map(|m| Rewind {
                    partition: m.partition,
                    from: m.stored,
                    to: m.new,
                })
                .collect();
            if dry_run || rewinds.is_empty() {
                tx.rollback().await?;
                return Ok(moves);
            }
            let changed = offsets::rewind(&tx, group, topic, &rewinds, rerate).await?;
            if changed != rewinds.len() as u64 {
                // The rows are locked, so this cannot happen short of a bug; never commit
                // half a replay.
                tx.rollback().await?;
                return Err(Failure::Bug(format!(
                    "{changed} of {} locked offset rows changed; nothing was changed",
                    rewinds.len()
                )));
            }
            tx.commit()
                .await
                .map_err(|e| Failure::CommitUnknown(e.into()))?;
            Ok(moves)
        }
    })
    .await?;

    let moving = moves.iter().filter(|m| m.moves()).count();
    println!(
        "replay of group `{group}` on topic `{topic}`, {description}{}{}:",
        if rerate { ", re-rating" } else { "" },
        if dry_run { " (dry run)" } else { "" }
    );
    print!("{}", render(&moves));
    for d in &doubts {
        println!(
            "note: for partition {} the broker answered offset {}, but the record there is from \
             {}, before the time asked for: taken as no record at or after it, so the partition \
             stays.",
            d.partition,
            d.answered,
            d.record_time
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
    }
    if dry_run {
        println!("dry run: nothing changed.");
    } else if moving == 0 {
        println!("nothing to replay: no partition moves; nothing changed.");
    } else {
        println!(
            "applied: {moving} partition(s) rewound in one transaction, {} records to replay.",
            moves.iter().map(Move::to_replay).sum::<i64>()
        );
        println!(
            "A running daemon picks the rewind up with its next batch on each rewound partition: \
             the batch's compare-and-set on the stored offset fails, nothing of it is committed, \
             and the source seeks to the new position. A partition that receives no new record \
             is picked up when one arrives or when the daemon next starts."
        );
    }
    if !rerate
        && moves
            .iter()
            .any(|m| m.moves() && m.rerate_below.is_some_and(|b| b > m.new))
    {
        println!(
            "note: partitions marked (earlier) keep the bound of an earlier --rerate replay that has not \
             reached it yet: \
             accepted records below it are priced again as they come back."
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(rows: &[(i32, i64)]) -> BTreeMap<i32, StoredOffset> {
        rows.iter()
            .map(|&(p, n)| {
                (
                    p,
                    StoredOffset {
                        next_offset: n,
                        rerate_below: None,
                    },
                )
            })
            .collect()
    }

    fn new_offsets(moves: &[Move]) -> Vec<(i32, i64)> {
        moves.iter().map(|m| (m.partition, m.new)).collect()
    }

    #[test]
    fn to_offset_moves_every_chosen_partition_to_that_offset() {
        let m = plan(
            &stored(&[(0, 100), (1, 50)]),
            &Destination::Offset(20),
            false,
        )
        .unwrap();
        assert_eq!(new_offsets(&m), [(0, 20), (1, 20)]);
        assert_eq!(m.iter().map(Move::to_replay).collect::<Vec<_>>(), [80, 30]);
    }

    #[test]
    fn to_offset_at_the_stored_offset_moves_nothing() {
        let m = plan(&stored(&[(3, 40)]), &Destination::Offset(40), true).unwrap();
        assert!(!m[0].moves());
        assert_eq!(m[0].to_replay(), 0);
        assert!(
            !m[0].sets_rerate,
            "nothing comes back, so nothing is re-rated"
        );
        assert_eq!(m[0].rerate_below, None);
    }

    #[test]
    fn a_negative_shift_rewinds_and_stops_at_zero() {
        let m = plan(
            &stored(&[(0, 1500), (1, 300)]),
            &Destination::Shift(-1000),
            false,
        )
        .unwrap();
        assert_eq!(new_offsets(&m), [(0, 500), (1, 0)]);
    }

    #[test]
    fn a_positive_shift_is_refused_naming_the_partition_and_both_offsets() {
        let e = plan(&stored(&[(2, 10)]), &Destination::Shift(5), false).unwrap_err();
        assert_eq!(e, PlanError::Forward(vec![(2, 10, 15)]));
        let text = e.to_string();
        assert!(
            text.contains("partition 2") && text.contains("10") && text.contains("15"),
            "{text}"
        );
    }

    #[test]
    fn one_forward_partition_refuses_the_whole_command() {
        let e = plan(
            &stored(&[(0, 100), (1, 5), (2, 7)]),
            &Destination::Offset(6),
            false,
        )
        .unwrap_err();
        assert_eq!(e, PlanError::Forward(vec![(1, 5, 6)]));
    }

    #[test]
    fn the_broker_answer_is_the_new_offset_and_no_answer_leaves_the_partition() {
        let found = BTreeMap::from([(0, Some(30)), (1, None)]);
        let m = plan(
            &stored(&[(0, 100), (1, 80)]),
            &Destination::FirstAtOrAfter(found),
            false,
        )
        .unwrap();
        assert_eq!(new_offsets(&m), [(0, 30), (1, 80)]);
    }

    #[test]
    fn a_broker_offset_past_the_stored_one_is_refused() {
        let found = BTreeMap::from([(0, Some(130))]);
        let e = plan(
            &stored(&[(0, 100)]),
            &Destination::FirstAtOrAfter(found),
            false,
        )
        .unwrap_err();
        assert_eq!(e, PlanError::Forward(vec![(0, 100, 130)]));
    }

    #[test]
    fn a_partition_the_broker_did_not_answer_for_is_an_error() {
        let e = plan(
            &stored(&[(0, 100)]),
            &Destination::FirstAtOrAfter(BTreeMap::new()),
            false,
        )
        .unwrap_err();
        assert_eq!(e, PlanError::NoAnswer(0));
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_broker_answer_pointing_at_an_older_record_is_taken_as_no_record_and_reported() {
        let t = at("2026-09-14T08:00:00Z");
        let found = BTreeMap::from([(0, Some(0)), (1, Some(40)), (2, None)]);
        let checked = BTreeMap::from([(0, 0), (1, 40)]);
        let records = BTreeMap::from([
            (0, (0, Some(at("2026-09-14T07:59:59.999Z")))),
            (1, (40, Some(t))),
        ]);
        let (found, doubts) = check_answers(found, &checked, &records, t).unwrap();
        assert_eq!(found, BTreeMap::from([(0, None), (1, Some(40)), (2, None)]));
        assert_eq!(
            doubts,
            [Doubt {
                partition: 0,
                answered: 0,
                record_time: at("2026-09-14T07:59:59.999Z")
            }]
        );
    }

    #[test]
    fn a_broker_answer_whose_record_cannot_be_read_refuses_the_command() {
        let t = at("2026-09-14T08:00:00Z");
        let e = check_answers(
            BTreeMap::from([(3, Some(12))]),
            &BTreeMap::from([(3, 12)]),
            &BTreeMap::new(),
            t,
        )
        .unwrap_err();
        assert_eq!(
            e,
            PlanError::Unverified {
                partition: 3,
                offset: 12
            }
        );
    }

    #[test]
    fn a_record_past_the_answered_offset_or_without_a_timestamp_is_no_reason_for_doubt() {
        let t = at("2026-09-14T08:00:00Z");
        let found = BTreeMap::from([(0, Some(5)), (1, Some(9))]);
        let checked = BTreeMap::from([(0, 5), (1, 9)]);
        // Offset 5 is a transaction marker, so the first record read is 6; partition 1's
        // record carries no timestamp.
        let records = BTreeMap::from([(0, (6, Some(at("2026-09-14T07:00:00Z")))), (1, (9, None))]);
        let (checked_found, doubts) = check_answers(found.clone(), &checked, &records, t).unwrap();
        assert_eq!(checked_found, found);
        assert!(doubts.is_empty());
    }

    #[test]
    fn rerate_raises_the_bound_to_the_old_offset_and_never_lowers_it() {
        let mut s = stored(&[(0, 100), (1, 100)]);
        s.get_mut(&1).unwrap().rerate_below = Some(250);
        let m = plan(&s, &Destination::Offset(0), true).unwrap();
        assert_eq!(m[0].rerate_below, Some(100));
        assert_eq!(m[1].rerate_below, Some(250));
        assert!(m.iter().all(|m| m.sets_rerate));
    }

    #[test]
    fn without_rerate_the_bound_is_left_as_it_was() {
        let mut s = stored(&[(0, 100)]);
        s.get_mut(&0).unwrap().rerate_below = Some(60);
        let m = plan(&s, &Destination::Offset(0), false).unwrap();
        assert_eq!(m[0].rerate_below, Some(60));
        assert!(!m[0].sets_rerate);
    }

    #[test]
    fn no_partitions_named_means_every_stored_one() {
        let s = stored(&[(0, 1), (4, 2)]);
        assert_eq!(select(&s, &[], "g", "t").unwrap(), s);
    }

    #[test]
    fn named_partitions_are_the_only_ones_chosen() {
        let s = stored(&[(0, 1), (2, 2), (5, 3)]);
        let chosen = select(&s, &[5, 0], "g", "t").unwrap();
        assert_eq!(chosen.keys().copied().collect::<Vec<_>>(), [0, 5]);
    }

    #[test]
    fn a_named_partition_without_a_stored_offset_is_named_in_the_error() {
        let e = select(&stored(&[(0, 1)]), &[0, 7], "billing", "cdr.raw").unwrap_err();
        assert_eq!(
            e.to_string(),
            "partition 7 has no stored offset for group `billing` on topic `cdr.raw`"
        );
    }

    #[test]
    fn a_group_with_nothing_stored_on_the_topic_is_an_error() {
        let e = select(&BTreeMap::new(), &[], "billing", "cdr.raw").unwrap_err();
        assert!(matches!(e, PlanError::NothingStored { .. }));
        assert!(e.to_string().contains("no stored offsets"), "{e}");
    }

    #[test]
    fn rfc3339_times_are_instants_and_local_times_are_read_in_the_zone() {
        let tz: Tz = "Africa/Casablanca".parse().unwrap();
        let exact = parse_when("2026-09-14T08:00:00+02:00").unwrap();
        assert_eq!(
            exact.resolve(tz).unwrap().to_rfc3339(),
            "2026-09-14T06:00:00+00:00"
        );
        // Casablanca is at UTC+1 outside Ramadan.
        let local = parse_when("2026-09-14 08:00").unwrap();
        assert_eq!(
            local.resolve(tz).unwrap().to_rfc3339(),
            "2026-09-14T07:00:00+00:00"
        );
        let midnight = parse_when("2026-09-14").unwrap();
        assert_eq!(
            midnight.resolve(tz).unwrap().to_rfc3339(),
            "2026-09-13T23:00:00+00:00"
        );
    }

    #[test]
    fn a_local_time_the_clocks_skip_is_refused_and_a_repeated_one_is_the_earlier() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let skipped = parse_when("2026-03-29 02:30:00").unwrap();
        assert!(skipped
            .resolve(paris)
            .unwrap_err()
            .contains("does not exist"));
        let twice = parse_when("2026-10-25 02:30:00").unwrap();
        assert_eq!(
            twice.resolve(paris).unwrap().to_rfc3339(),
            "2026-10-25T00:30:00+00:00"
        );
    }

    #[test]
    fn a_time_in_no_known_format_is_refused() {
        assert!(parse_when("yesterday").is_err());
        assert!(parse_when("14/09/2026 08:00").is_err());
    }

    #[test]
    fn the_table_has_one_row_per_partition_and_the_total_to_replay() {
        let mut s = stored(&[(0, 100), (1, 40)]);
        s.get_mut(&1).unwrap().rerate_below = Some(90);
        let m = plan(&s, &Destination::Offset(40), false).unwrap();
        let text = render(&m);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            ["partition", "stored", "new", "to", "replay", "rerate"]
        );
        assert_eq!(lines[1], ["0", "100", "40", "60", "-"]);
        // Partition 1 does not move: an earlier bound does not matter to it.
        assert_eq!(lines[2], ["1", "40", "40", "0", "-"]);
        assert_eq!(
            lines[3],
            ["total", "60", "1", "of", "2", "partitions", "move"]
        );
    }

    #[test]
    fn the_table_shows_the_rerate_bound_this_replay_sets() {
        let m = plan(&stored(&[(0, 100)]), &Destination::Offset(0), true).unwrap();
        assert!(render(&m).lines().nth(1).unwrap().ends_with("below 100"));
    }

    #[test]
    fn a_missing_or_doubled_target_is_a_usage_error_naming_the_flags() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            args: ReplayArgs,
        }
        let none = Cli::try_parse_from(["replay"]).unwrap_err();
        assert_eq!(none.exit_code(), 2);
        let text = none.to_string();
        assert!(
            text.contains("--to-offset")
                && text.contains("--to-datetime")
                && text.contains("--shift-by"),
            "{text}"
        );
        let two =
            Cli::try_parse_from(["replay", "--to-offset", "0", "--shift-by", "-5"]).unwrap_err();
        assert_eq!(two.exit_code(), 2);
        let text = two.to_string();
        assert!(
            text.contains("--to-offset") && text.contains("--shift-by"),
            "{text}"
        );
        let ok = Cli::try_parse_from(["replay", "--shift-by", "-1000", "--partitions", "0,2,5"])
            .unwrap();
        assert_eq!(ok.args.shift_by, Some(-1000));
        assert_eq!(ok.args.partitions, [0, 2, 5]);
    }
}

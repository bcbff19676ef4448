//! `cdrflow replay`: rewind a consumer group's stored offsets (Postgres, the truth the
//! daemon seeks to) so that a range of the raw topic is processed again — to an offset,
//! to the broker's first offset at or after a time, or by a shift — for some or all
//! partitions, optionally asking for the replayed records to be priced again.
//!
//! This module reads the command line, asks the broker where a time falls
//! ([`kafka::offsets`]), lets the domain plan and refuse
//! ([`domain::replay`](crate::domain::replay)), applies the
//! plan through [`storage::offsets`] and prints it ([`render::replay`]). Every chosen row
//! is locked and moved in one transaction; a running daemon notices when its next commit
//! on the partition finds the offset it expected gone (`storage::batch::write` answers
//! `Fenced`), and its source seeks to the new position. What the replayed records do is
//! the committer's business: accepted ones are duplicates, rejects are not stored twice,
//! and with `--rerate` the accepted ones below the old position are priced again
//! (`storage::rerate`).

use super::DatabaseArgs;
use crate::domain::replay::{self, Destination, Doubt, Move};
use crate::kafka::{self, KafkaSettings};
use crate::render;
use crate::retry::{retry, Transient};
use crate::storage::offsets::{self, Rewind};
use crate::storage::{self, StorageError};
use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::ArgGroup;
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
    /// The brokers, asked only for --to-datetime.
    #[command(flatten)]
    pub kafka: KafkaSettings,
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

/// How a replay attempt ended short of success.
enum Failure {
    Db(StorageError),
    Refused(replay::PlanError),
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
            Err(Failure::Db(e)) if e.is_transient() => Err(e),
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

    let (destination, description, doubts) = destination(&args, at, &mut wanted, patience).await?;

    let request = Request {
        group,
        topic,
        wanted: &wanted,
        destination: &destination,
        rerate: args.rerate,
        dry_run: args.dry_run,
    };
    let moves = with_database(url, patience, |client| apply(client, &request)).await?;

    print!(
        "{}",
        render::replay::summary(&render::replay::Summary {
            group,
            topic,
            description: &description,
            rerate: request.rerate,
            dry_run: request.dry_run,
            moves: &moves,
            doubts: &doubts,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// Where the chosen partitions go, as a destination and in words, with the broker's
/// answers taken as "no record". For a time, `wanted` becomes the partitions the broker
/// was asked about (every stored one when none was named), so that the transaction that
/// applies the plan acts on exactly those.
async fn destination(
    args: &ReplayArgs,
    at: Option<DateTime<Utc>>,
    wanted: &mut Vec<i32>,
    patience: Duration,
) -> anyhow::Result<(Destination, String, Vec<Doubt>)> {
    let (group, topic, url) = (
        args.group.as_str(),
        args.topic.as_str(),
        args.db.database_url.as_str(),
    );
    Ok(match (args.to_offset, args.shift_by, at) {
        (Some(n), _, _) => (Destination::Offset(n), format!("to offset {n}"), Vec::new()),
        (_, Some(n), _) => (Destination::Shift(n), format!("shifted by {n}"), Vec::new()),
        (_, _, Some(at)) => {
            // Which partitions first (without locking anything), then the broker: no row
            // stays locked while the broker is asked.
            let chosen = with_database(url, patience, |client| {
                let wanted = &*wanted;
                async move {
                    let stored = offsets::positions(&client, group, topic, None, false).await?;
                    replay::select(&stored, wanted, group, topic).map_err(Failure::Refused)
                }
            })
            .await?;
            *wanted = chosen.keys().copied().collect();
            let (found, doubts) =
                kafka::offsets::first_at_or_after(&args.kafka, topic, &chosen, at, patience)
                    .await?;
            (
                Destination::FirstAtOrAfter(found),
                format!(
                    "to the first record at or after {} ({} in {})",
                    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    at.with_timezone(&args.timezone).format("%Y-%m-%d %H:%M:%S"),
                    args.timezone
                ),
                doubts,
            )
        }
        (None, None, None) => anyhow::bail!("give one of --to-offset, --to-datetime or --shift-by"),
    })
}

/// What the command asks of the stored offsets.
struct Request<'a> {
    group: &'a str,
    topic: &'a str,
    /// The partitions named; empty: every stored one.
    wanted: &'a [i32],
    destination: &'a Destination,
    rerate: bool,
    dry_run: bool,
}

/// In one transaction: lock the chosen rows, plan their moves and, unless this is a dry
/// run or nothing moves, apply them.
async fn apply(mut client: tokio_postgres::Client, r: &Request<'_>) -> Result<Vec<Move>, Failure> {
    let tx = client.transaction().await?;
    // Lock the rows before reading them: a daemon committing one of these
    // partitions now either finishes first (and we see its offset) or waits
    // and then finds its expected offset gone.
    let stored = offsets::positions(
        &tx,
        r.group,
        r.topic,
        Some(r.wanted).filter(|w| !w.is_empty()),
        !r.dry_run,
    )
    .await?;
    let chosen = replay::select(&stored, r.wanted, r.group, r.topic).map_err(Failure::Refused)?;
    let moves = replay::plan(&chosen, r.destination, r.rerate).map_err(Failure::Refused)?;
    let rewinds: Vec<Rewind> = moves
        .iter()
        .filter(|m| m.moves())
        .map(|m| Rewind {
            partition: m.partition,
            from: m.stored,
            to: m.new,
        })
        .collect();
    if r.dry_run || rewinds.is_empty() {
        tx.rollback().await?;
        return Ok(moves);
    }
    let changed = offsets::rewind(&tx, r.group, r.topic, &rewinds, r.rerate).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! `cdrflow replay`: rewinding stored offsets, against the real database, broker and
//! daemon. What a billing team must be able to trust: a replay never changes what was
//! billed unless asked to re-rate, a re-rate moves totals by exactly the price change,
//! and a mistaken command changes nothing.

use crate::helpers::*;
use cdrflow::generator::GeneratorReport;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The rows of the table replay prints: partition → (stored, new, to replay), and the
/// total to replay.
fn table(out: &str) -> (BTreeMap<i32, (i64, i64, i64)>, i64) {
    let mut rows = BTreeMap::new();
    let mut total = None;
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            Some(&"total") => total = Some(f[1].parse().unwrap()),
            Some(p) if p.parse::<i32>().is_ok() && f.len() >= 4 => {
                rows.insert(
                    p.parse().unwrap(),
                    (
                        f[1].parse().unwrap(),
                        f[2].parse().unwrap(),
                        f[3].parse().unwrap(),
                    ),
                );
            }
            _ => {}
        }
    }
    (
        rows,
        total.unwrap_or_else(|| panic!("no total line in:\n{out}")),
    )
}

/// Every column of the group's stored offsets.
async fn offset_rows(db: &TestDb, group: &str) -> Vec<(i32, i64, Option<i64>, String)> {
    db.client()
        .await
        .query(
            "SELECT partition, next_offset, rerate_below, updated_at::text FROM consumer_offsets
              WHERE group_id = $1 ORDER BY partition",
            &[&group],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn next_offsets(db: &TestDb, group: &str) -> BTreeMap<i32, i64> {
    offset_rows(db, group)
        .await
        .into_iter()
        .map(|(p, n, _, _)| (p, n))
        .collect()
}

/// The pipeline counters of a group by outcome.
async fn counters(db: &TestDb, group: &str) -> BTreeMap<String, i64> {
    db.client()
        .await
        .query(
            "SELECT outcome, sum(records)::int8 FROM pipeline_counters WHERE group_id = $1 GROUP BY outcome",
            &[&group],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A fingerprint of everything a replay must not change: usage (count, sum, per-row
/// amounts, whole rows), rejects, suspense and the per-customer totals.
async fn business(db: &TestDb) -> Vec<(&'static str, String)> {
    let client = db.client().await;
    let mut out = Vec::new();
    for (name, sql) in [
        ("usage", "SELECT count(*)::text || ':' || coalesce(sum(amount), 0)::text || ':' || coalesce(md5(string_agg(record_id || amount::text, ',' ORDER BY record_id)), '') FROM usage_events"),
        ("usage_rows", "SELECT coalesce(md5(string_agg(u::text, ',' ORDER BY record_id)), '') FROM usage_events u"),
        ("rejects", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(r::text, ',' ORDER BY id)), '') FROM rejected_records r"),
        ("suspense", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(s::text, ',' ORDER BY record_id)), '') FROM suspense_records s"),
        ("customer_period_totals", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY customer_id, period)), '') FROM customer_period_totals t"),
        ("adjustments", "SELECT count(*)::text FROM rating_adjustments"),
    ] {
        let v: String = client.query_one(sql, &[]).await.unwrap().get(0);
        out.push((name, v));
    }
    out
}

fn assert_reconciles(s: &serde_json::Value, report: &GeneratorReport) {
    let t = &s["totals"];
    assert_eq!(t["accepted"], report.expected.accepted, "accepted");
    assert_eq!(t["suspense"], report.expected.suspense, "suspense");
    let rejected: BTreeMap<String, u64> = serde_json::from_value(t["rejected"].clone()).unwrap();
    assert_eq!(rejected, report.expected.rejected, "rejected by reason");
    assert_eq!(s["balanced"], true, "stats balanced: {s}");
    assert_eq!(s["stored_rows"]["usage_events"], report.expected.accepted);
    assert_eq!(
        s["stored_rows"]["suspense_records"],
        report.expected.suspense
    );
}

/// Replaying a whole topic, twice, is work and nothing else: every table a bill is made
/// of stays byte for byte what it was, and each replayed record is counted as a
/// duplicate.
#[tokio::test(flavor = "multi_thread")]
async fn replaying_a_whole_topic_twice_changes_no_total() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.replay", 3).await;
    let report = generate(&topic, &db, 10_000, 21, &[]);
    drain(&db.url, &topic, "billing");
    let first = stats(&db.url, "billing");
    assert_reconciles(&first, &report);
    assert_eq!(first["totals"]["consumed"], report.sent);
    let before = business(&db).await;
    assert!(before[0]
        .1
        .starts_with(&format!("{}:", report.expected.accepted)));
    let ends = end_offsets(&topic);

    for round in 1..=2 {
        let counted = counters(&db, "billing").await;
        let out = replay_ok(&db, &topic, "billing", &["--to-offset", "0"]);
        let (rows, total) = table(&out);
        assert_eq!(
            rows,
            ends.iter().map(|(p, e)| (*p, (*e, 0, *e))).collect(),
            "round {round}:\n{out}"
        );
        assert_eq!(total, report.sent as i64);
        assert!(out.contains("applied"), "{out}");
        let rewound = offset_rows(&db, "billing").await;
        assert!(
            rewound
                .iter()
                .all(|(_, n, below, _)| *n == 0 && below.is_none()),
            "round {round}: every offset at 0, no re-rating asked: {rewound:?}"
        );

        drain(&db.url, &topic, "billing");
        assert_eq!(business(&db).await, before, "round {round}");
        let s = stats(&db.url, "billing");
        assert_reconciles(&s, &report);
        assert_stored_offsets_at_end(&s, &topic);
        let after = counters(&db, "billing").await;
        // Every replayed record was read once more and found already stored: accepted
        // and duplicate ones as usage, rejects at their position, held ones in suspense.
        assert_eq!(
            after["consumed"] - counted["consumed"],
            total,
            "round {round}"
        );
        assert_eq!(
            after["duplicate"] - counted["duplicate"],
            total,
            "round {round}"
        );
        for outcome in ["accepted", "rejected", "suspense"] {
            assert_eq!(after[outcome], counted[outcome], "round {round}: {outcome}");
        }
    }
}

/// A replay over stored records followed by records never seen, read by a daemon that
/// did not commit the stored ones itself (so it cannot know them without asking): only
/// the new records become usage, once, and the buckets stay the sum of the usage. The
/// batch where old and new meet has its first copy stopped by a stored row and made again
/// without it; its rejects likewise (a stored reject stops their copy, and only the new
/// ones are inserted and counted).
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_over_stored_and_new_records_adds_only_the_new() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.mixed", 2).await;
    let first = generate(&topic, &db, 3_000, 31, &[]);
    drain(&db.url, &topic, "billing");
    let before = counters(&db, "billing").await;
    assert_eq!(before["accepted"], first.expected.accepted as i64);

    // More records arrive; before any daemon reads them, the group goes back to the start.
    let second = generate(&topic, &db, 2_000, 32, &[]);
    replay_ok(&db, &topic, "billing", &["--to-offset", "0"]);
    drain(&db.url, &topic, "billing");

    let after = counters(&db, "billing").await;
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(delta("consumed"), (first.sent + second.sent) as i64);
    assert_eq!(delta("accepted"), second.expected.accepted as i64);
    assert_eq!(delta("suspense"), second.expected.suspense as i64);
    assert_eq!(
        delta("rejected"),
        second.expected.rejected.values().sum::<u64>() as i64
    );
    assert_eq!(
        delta("duplicate"),
        (first.sent + second.expected.duplicates) as i64,
        "every record of the first run once more, and the second run's own duplicates"
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM usage_events),
                    (SELECT sum(amount)::text || '/' || count(*) FROM usage_events),
                    (SELECT sum(amount + extra)::text || '/' || sum(events) FROM usage_buckets)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        (first.expected.accepted + second.expected.accepted) as i64
    );
    assert_eq!(
        row.get::<_, String>(1),
        row.get::<_, String>(2),
        "buckets = usage"
    );
}

/// A dry run prints what would move and changes nothing, not even a timestamp.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_prints_the_moves_and_changes_nothing() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.replaydry", 3).await;
    generate(&topic, &db, 3_000, 22, &[]);
    drain(&db.url, &topic, "dry");
    let ends = end_offsets(&topic);
    let before = offset_rows(&db, "dry").await;
    assert_eq!(
        before
            .iter()
            .map(|r| (r.0, r.1))
            .collect::<BTreeMap<_, _>>(),
        ends
    );
    let out = replay_ok(
        &db,
        &topic,
        "dry",
        &[
            "--shift-by",
            "-300",
            "--partitions",
            "0,2",
            "--rerate",
            "--dry-run",
        ],
    );
    let (rows, total) = table(&out);
    let expect: BTreeMap<i32, (i64, i64, i64)> = [0, 2]
        .into_iter()
        .map(|p| (p, (ends[&p], ends[&p] - 300, 300)))
        .collect();
    assert_eq!(rows, expect, "{out}");
    assert_eq!(total, 600);
    assert!(out.contains(&format!("below {}", ends[&0])), "{out}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    assert!(!out.contains("applied"), "{out}");
    assert_eq!(offset_rows(&db, "dry").await, before);

    let out = replay_ok(&db, &topic, "dry", &["--to-offset", "0", "--dry-run"]);
    let (rows, total) = table(&out);
    assert_eq!(rows.len(), 3, "every stored partition: {out}");
    assert_eq!(total, ends.values().sum::<i64>());
    assert_eq!(offset_rows(&db, "dry").await, before);
}

/// A move forward would skip records: refused as a whole, naming the partition and both
/// offsets, with nothing changed; so are unknown partitions and groups, and an
/// unreachable database after the wait. A wrong flag combination is a usage error.
#[tokio::test(flavor = "multi_thread")]
async fn forward_moves_unknown_partitions_and_bad_flags_change_nothing() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.replayfwd", 3).await;
    generate(&topic, &db, 3_000, 23, &[]);
    drain(&db.url, &topic, "fwd");
    let ends = end_offsets(&topic);
    assert!(ends.values().all(|e| *e > 100), "{ends:?}");

    // Partition 1 back to 5, then everyone to 10: partition 1 would go forward.
    replay_ok(
        &db,
        &topic,
        "fwd",
        &["--to-offset", "5", "--partitions", "1"],
    );
    let before = offset_rows(&db, "fwd").await;
    assert_eq!(before[1].1, 5);
    assert_eq!((before[0].1, before[2].1), (ends[&0], ends[&2]));

    let (code, out, err) = replay(&db, &topic, "fwd", &["--to-offset", "10"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("partition 1: stored offset 5, new offset 10"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(offset_rows(&db, "fwd").await, before);

    let (code, _, err) = replay(
        &db,
        &topic,
        "fwd",
        &["--shift-by", "1", "--partitions", "0"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "partition 0: stored offset {}, new offset {}",
            ends[&0],
            ends[&0] + 1
        )),
        "{err}"
    );

    let (code, _, err) = replay(
        &db,
        &topic,
        "fwd",
        &["--to-offset", "0", "--partitions", "0,7"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "partition 7 has no stored offset for group `fwd` on topic `{topic}`"
        )),
        "{err}"
    );
    let (code, _, err) = replay(&db, &topic, "nobody", &["--to-offset", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "group `nobody` has no stored offsets on topic `{topic}`"
        )),
        "{err}"
    );
    assert_eq!(offset_rows(&db, "fwd").await, before);

    // Usage errors: clap's status 2, naming the flags.
    let (code, _, err) = replay(&db, &topic, "fwd", &[]);
    assert_eq!(code, 2, "{err}");
    for flag in ["--to-offset", "--to-datetime", "--shift-by"] {
        assert!(err.contains(flag), "{flag} missing in: {err}");
    }
    let (code, _, err) = replay(
        &db,
        &topic,
        "fwd",
        &["--to-offset", "0", "--shift-by", "-5"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'--to-offset <N>' cannot be used with '--shift-by <N>'"),
        "{err}"
    );
    let (code, _, err) = replay(&db, &topic, "fwd", &["--to-datetime", "yesterday"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--to-datetime"), "{err}");
    let (code, _, err) = replay(&db, &topic, "fwd", &["--to-offset", "-3"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(offset_rows(&db, "fwd").await, before);

    // Postgres away: retried for the wait given, then a clear error.
    let started = Instant::now();
    let (code, _, err) = cdrflow(&[
        "replay",
        "--database-url",
        &format!("postgres://postgres@127.0.0.1:{}/nowhere", free_port()),
        "--to-offset",
        "0",
        "--wait-secs",
        "3",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Failed to reach PostgreSQL within 3s"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(30)).contains(&started.elapsed()),
        "{:?}",
        started.elapsed()
    );
}

/// Rewinding a few partitions while the daemon consumes a live stream: the daemon drops
/// what it had in flight, goes back, and in the end the books are those of a run
/// without the replay.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_while_the_daemon_runs_loses_and_doubles_nothing() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.replaylive", 3).await;
    let gen = spawn_generate(
        &topic,
        &db.url,
        30_000,
        24,
        vec!["--rate".into(), "2000".into()],
    );
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "live",
        database_url: &db.url,
        idle_secs: None,
        extra: ["--batch-size", "500"].map(String::from).to_vec(),
    });
    let started = Instant::now();
    while stats(&db.url, "live")["totals"]["consumed"]
        .as_i64()
        .unwrap_or(0)
        < 6_000
    {
        assert!(daemon.alive(), "daemon died: {}", daemon.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = replay_ok(
        &db,
        &topic,
        "live",
        &["--shift-by", "-3000", "--partitions", "0,1"],
    );
    assert!(
        !gen.is_finished(),
        "the replay must land while records still stream in"
    );
    let (rows, replayed) = table(&out);
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), [0, 1], "{out}");
    assert!(replayed > 0, "{out}");
    assert!(out.contains("applied"), "{out}");

    let report = gen.join().unwrap();
    // Drained: every partition stored at its end and every replayed record consumed.
    let ends = end_offsets(&topic);
    let started = Instant::now();
    loop {
        let s = stats(&db.url, "live");
        let at_end = s["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["stored_offset"] == ends[&(p["partition"].as_i64().unwrap() as i32)]);
        if at_end && s["totals"]["consumed"] == report.sent as i64 + replayed {
            break;
        }
        assert!(daemon.alive(), "daemon died: {}", daemon.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "not drained: {s}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    daemon.stop();

    let s = stats(&db.url, "live");
    assert_reconciles(&s, &report);
    assert_eq!(s["totals"]["consumed"], report.sent as i64 + replayed);
    assert_eq!(
        s["totals"]["duplicates"],
        report.expected.duplicates as i64 + replayed
    );
    assert_stored_offsets_at_end(&s, &topic);
    let client = db.client().await;
    let unpriced: i64 = client
        .query_one(
            "SELECT count(*) FROM usage_events WHERE amount IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unpriced, 0);
}

/// `--to-datetime` goes to the broker's first offset at or after the time, given as
/// RFC 3339 or as wall-clock time in a zone; a time after every record moves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn to_datetime_goes_to_the_first_record_at_or_after_the_time() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.replaytime", 2).await;
    let junk = |tag: &str, n: usize| -> Vec<(Option<&'static [u8]>, Vec<u8>)> {
        (0..n)
            .map(|i| (None, format!("not a cdr {tag} {i}").into_bytes()))
            .collect()
    };
    let t0 = Utc::now() - chrono::Duration::seconds(2);
    for p in 0..2 {
        produce_raw(&topic, p, &junk("early", 10));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let t_mid = Utc::now();
    std::thread::sleep(Duration::from_millis(1500));
    for p in 0..2 {
        produce_raw(&topic, p, &junk("late", 7));
    }
    drain(&db.url, &topic, "time");
    assert_eq!(
        next_offsets(&db, "time").await,
        BTreeMap::from([(0, 17), (1, 17)])
    );
    // The broker's timestamps as the daemon stored them agree with the split.
    let client = db.client().await;
    let first_late: Vec<(i32, i64)> = client
        .query(
            "SELECT src_partition, min(src_offset) FROM rejected_records
              WHERE src_topic = $1 AND kafka_ts >= $2 GROUP BY src_partition ORDER BY 1",
            &[&topic, &t_mid],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(first_late, [(0, 10), (1, 10)]);

    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let before = offset_rows(&db, "time").await;
    let expect_mid = BTreeMap::from([(0, (17, 10, 7)), (1, (17, 10, 7))]);
    let out = replay_ok(
        &db,
        &topic,
        "time",
        &["--to-datetime", &rfc(t_mid), "--dry-run"],
    );
    assert_eq!(table(&out), (expect_mid.clone(), 14), "{out}");
    // The same instant as Tokyo wall-clock time.
    let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
    let local = t_mid
        .with_timezone(&tokyo)
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string();
    let out = replay_ok(
        &db,
        &topic,
        "time",
        &[
            "--to-datetime",
            &local,
            "--timezone",
            "Asia/Tokyo",
            "--dry-run",
        ],
    );
    assert_eq!(table(&out), (expect_mid, 14), "{out}");
    // After every record: the broker has no such offset, nothing moves.
    let out = replay_ok(
        &db,
        &topic,
        "time",
        &[
            "--to-datetime",
            &rfc(Utc::now() + chrono::Duration::seconds(60)),
        ],
    );
    assert_eq!(
        table(&out),
        (BTreeMap::from([(0, (17, 17, 0)), (1, (17, 17, 0))]), 0),
        "{out}"
    );
    assert_eq!(offset_rows(&db, "time").await, before);

    replay_ok(
        &db,
        &topic,
        "time",
        &["--to-datetime", &rfc(t_mid), "--partitions", "1"],
    );
    assert_eq!(
        next_offsets(&db, "time").await,
        BTreeMap::from([(0, 17), (1, 10)])
    );
    let out = replay_ok(&db, &topic, "time", &["--to-datetime", &rfc(t0)]);
    assert_eq!(
        table(&out),
        (BTreeMap::from([(0, (17, 0, 17)), (1, (10, 0, 10))]), 27),
        "{out}"
    );
    assert_eq!(
        next_offsets(&db, "time").await,
        BTreeMap::from([(0, 0), (1, 0)])
    );

    let counted = counters(&db, "time").await;
    drain(&db.url, &topic, "time");
    let after = counters(&db, "time").await;
    assert_eq!(after["consumed"] - counted["consumed"], 34);
    assert_eq!(after["duplicate"] - counted["duplicate"], 34);
    assert_eq!(after["rejected"], counted["rejected"]);
    let rejects: i64 = client
        .query_one("SELECT count(*) FROM rejected_records", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rejects, 34);
}

/// `cdrflow generate` over September and October 2026, with its report.
fn generate_two_months(topic: &str, db: &TestDb, count: u64, seed: u64) -> GeneratorReport {
    let report = tempdir().join("report.json");
    let (code, out, err) = cdrflow(&[
        "generate",
        "--brokers",
        &brokers(),
        "--topic",
        topic,
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
        "--customers",
        "500",
        "--database-url",
        &db.url,
        "--report",
        report.to_str().unwrap(),
        "--start",
        "2026-09-01",
        "--days",
        "61",
    ]);
    assert_eq!(code, 0, "generate failed: {out}{err}");
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

/// Sum of amounts per period.
async fn period_sums(db: &TestDb) -> BTreeMap<String, Decimal> {
    db.client()
        .await
        .query(
            "SELECT period::text, sum(amount) FROM usage_events GROUP BY period",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Whole rows of a period's usage, and the per-row amounts of everything that is not a
/// domestic SMS (which the new catalog does not touch).
async fn untouched(db: &TestDb, closed: &str) -> (String, String) {
    let client = db.client().await;
    let closed_rows: String = client
        .query_one(
            "SELECT count(*)::text || ':' || md5(string_agg(u::text, ',' ORDER BY record_id))
               FROM usage_events u WHERE period = $1::text::date",
            &[&closed],
        )
        .await
        .unwrap()
        .get(0);
    let others: String = client
        .query_one(
            "SELECT count(*)::text || ':' || md5(string_agg(record_id || amount::text, ',' ORDER BY record_id))
               FROM usage_events WHERE NOT (record_type = 'sms' AND zone = 'domestic')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (closed_rows, others)
}

/// Re-rating a replayed range with a changed catalog: open periods move by exactly the
/// price change of the events it concerns, a closed period stays as billed and owes the
/// same difference as adjustments, and doing it again changes nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerate_replay_moves_open_periods_by_the_price_change_and_books_closed_ones_as_adjustments(
) {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.rerate", 3).await;
    let report = generate_two_months(&topic, &db, 12_000, 25);
    drain(&db.url, &topic, "rerate");
    let s = stats(&db.url, "rerate");
    assert_reconciles(&s, &report);

    // Domestic SMS prices per plan, old → new: up for three plans, down for one.
    let prices: BTreeMap<&str, (&str, &str)> = BTreeMap::from([
        ("basic", ("0.20", "0.23")),
        ("student", ("0.15", "0.17")),
        ("business", ("0.15", "0.11")),
        ("data-max", ("0.20", "0.25")),
    ]);
    let mut changed = String::new();
    // Each plan's section is edited on its own, so each plan gets its own price.
    for (i, section) in DEFAULT_CATALOG.split("[[plans]]\ncode = ").enumerate() {
        if i == 0 {
            changed.push_str(section);
            continue;
        }
        let plan = section.split('"').nth(1).unwrap();
        let (old, new) = prices[plan];
        let from = format!("service = \"sms\"\nzone = \"domestic\"\nprices = {{ peak = \"{old}\", offpeak = \"{old}\", weekend = \"{old}\" }}");
        let to = format!("service = \"sms\"\nzone = \"domestic\"\nprices = {{ peak = \"{new}\", offpeak = \"{new}\", weekend = \"{new}\" }}");
        assert_eq!(section.matches(&from).count(), 1, "plan {plan}");
        changed.push_str("[[plans]]\ncode = ");
        changed.push_str(&section.replace(&from, &to));
    }
    assert_ne!(changed, DEFAULT_CATALOG);

    let client = db.client().await;
    // The stored price of every domestic SMS is its plan's old price: that is what moves.
    let stored_prices: Vec<(String, Decimal)> = client
        .query(
            "SELECT DISTINCT plan, amount FROM usage_events WHERE record_type = 'sms' AND zone = 'domestic' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        stored_prices,
        prices
            .iter()
            .map(|(p, (old, _))| (p.to_string(), Decimal::from_str(old).unwrap()))
            .collect::<Vec<_>>()
    );
    // Expected change per period: Σ over plans of events × (new − old).
    let mut expected: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut events: BTreeMap<String, i64> = BTreeMap::new();
    for r in client
        .query(
            "SELECT period::text, plan, count(*) FROM usage_events
              WHERE record_type = 'sms' AND zone = 'domestic' GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap()
    {
        let (period, plan, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        let (old, new) = prices[plan.as_str()];
        *expected.entry(period.clone()).or_default() +=
            Decimal::from(n) * (Decimal::from_str(new).unwrap() - Decimal::from_str(old).unwrap());
        *events.entry(period).or_default() += n;
    }
    let closed = "2026-10-01";
    assert!(
        events[closed] > 50 && events["2026-09-01"] > 50,
        "{events:?}"
    );
    client
        .execute(
            // The daemon has created the month's row when it stored its usage.
            "INSERT INTO billing_periods (period, closed_at) VALUES ($1::text::date, now())
             ON CONFLICT (period) DO UPDATE SET closed_at = now()",
            &[&closed],
        )
        .await
        .unwrap();
    let sums_before = period_sums(&db).await;
    let (closed_rows, others) = untouched(&db, closed).await;

    let file = tempdir().join("catalog.toml");
    std::fs::write(&file, &changed).unwrap();
    let (code, out, err) = cdrflow(&[
        "catalog",
        "apply",
        file.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied as version 2"), "{out}");

    let stored_before = next_offsets(&db, "rerate").await;
    let out = replay_ok(&db, &topic, "rerate", &["--to-offset", "0", "--rerate"]);
    assert!(out.contains("re-rating"), "{out}");
    let rows = offset_rows(&db, "rerate").await;
    for (p, next, below, _) in &rows {
        assert_eq!(
            (*next, *below),
            (0, Some(stored_before[p])),
            "partition {p}"
        );
    }
    drain(&db.url, &topic, "rerate");

    let sums_after = period_sums(&db).await;
    for (period, before) in &sums_before {
        let moved = sums_after[period] - before;
        if period == closed {
            assert_eq!(moved, Decimal::ZERO, "closed period {period} changed");
        } else {
            assert_eq!(
                moved,
                expected.get(period).copied().unwrap_or_default(),
                "open period {period}"
            );
        }
    }
    assert_eq!(
        untouched(&db, closed).await,
        (closed_rows.clone(), others.clone()),
        "closed rows and other events untouched"
    );
    let adjustments: BTreeMap<(String, bool), (i64, Decimal)> = client
        .query(
            "SELECT period::text, in_place, count(*), sum(delta) FROM rating_adjustments
              WHERE delta <> 0 GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    let mut want = BTreeMap::new();
    for (period, n) in &events {
        want.insert((period.clone(), period != closed), (*n, expected[period]));
    }
    assert_eq!(adjustments, want, "one adjustment per re-priced event");
    let stale: i64 = client
        .query_one(
            "SELECT count(*) FROM usage_events WHERE period <> $1::text::date AND catalog_version <> 2",
            &[&closed],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stale, 0,
        "open-period events carry the catalog they were priced with"
    );
    let s = stats(&db.url, "rerate");
    assert_reconciles(&s, &report);

    // The same re-rate again: nothing more moves.
    let adjustments_before = business(&db).await;
    replay_ok(&db, &topic, "rerate", &["--to-offset", "0", "--rerate"]);
    drain(&db.url, &topic, "rerate");
    assert_eq!(period_sums(&db).await, sums_after);
    assert_eq!(untouched(&db, closed).await, (closed_rows, others));
    let nonzero: i64 = client
        .query_one(
            "SELECT count(*) FROM rating_adjustments WHERE delta <> 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(nonzero, want.values().map(|(n, _)| n).sum::<i64>());
    assert_eq!(business(&db).await, adjustments_before);
    assert_reconciles(&stats(&db.url, "rerate"), &report);

    // Once the daemon has passed the bound, the re-rate is over: a later replay without
    // --rerate skips what is stored, even though the catalog changed again.
    assert!(
        offset_rows(&db, "rerate")
            .await
            .iter()
            .all(|(_, _, below, _)| below.is_none()),
        "the rerate bound is cleared once reached"
    );
    let third = tempdir().join("catalog-3.toml");
    std::fs::write(&third, changed.replace("label = \"", "label = \"third ")).unwrap();
    let (code, out, err) = cdrflow(&[
        "catalog",
        "apply",
        third.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let third_text = std::fs::read_to_string(&third)
        .unwrap()
        .replace("\"0.23\"", "\"0.99\"");
    std::fs::write(&third, third_text).unwrap();
    let (code, out, err) = cdrflow(&[
        "catalog",
        "apply",
        third.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    replay_ok(&db, &topic, "rerate", &["--to-offset", "0"]);
    drain(&db.url, &topic, "rerate");
    assert_eq!(
        period_sums(&db).await,
        sums_after,
        "a plain replay re-prices nothing"
    );
    assert_eq!(business(&db).await, adjustments_before);
}

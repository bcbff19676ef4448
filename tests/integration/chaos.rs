//! The chaos test: several `cdrflow run` instances in one consumer group are SIGKILLed
//! and restarted, their broker is restarted and their Postgres restarted and taken away,
//! while a stream with every anomaly of the generator arrives; once everything is
//! consumed and billed, the stored state and the invoices must equal those of one
//! instance that read the same topic undisturbed. Faults are drawn from a seeded RNG
//! (the seed is printed; `CHAOS_SEED` repeats a schedule, though not the timing) and
//! printed as they happen. Knobs for a soak (`scripts/chaos.sh`): `CHAOS_RECORDS`,
//! `CHAOS_FAULTS`, `CHAOS_SEED`, `CHAOS_INSTANCES`, `CHAOS_CUSTOMERS`,
//! `CHAOS_FAULT_GAP_MS`, `CHAOS_RATE`, `CHAOS_OUTAGE_SECS`, `CHAOS_STOP_SECS`,
//! `CHAOS_SETTLE_SECS`, `CHAOS_DIFF_ROWS`.

mod compare;
mod faults;
mod infra;

use crate::helpers::*;
use faults::{daemon_flags, schedule, tail, Chaos, Slot};
use infra::PgCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test's settings; the defaults keep it within a few minutes on two cores.
struct Knobs {
    records: u64,
    /// SIGKILLs and graceful restarts of instances; the broker restart, the Postgres
    /// restart and the Postgres outage come on top.
    faults: usize,
    seed: u64,
    instances: usize,
    customers: u64,
    /// The mean pause between two faults.
    gap: Duration,
    /// Records per second: by default the stream lasts at least the faults' planned
    /// span, so that faults land while records arrive.
    rate: u64,
    outage: Duration,
    /// A graceful stop must end within this: DESIGN §9 serves SIGTERM within 10 s.
    stop_within: Duration,
    /// After the last fault, the time allowed to consume everything.
    settle_within: Duration,
    /// Rows shown per table and kind of difference.
    shown: usize,
}

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a valid value")),
        Err(_) => default,
    }
}

impl Knobs {
    fn from_env() -> Knobs {
        let records: u64 = knob("CHAOS_RECORDS", 100_000);
        let faults: usize = knob("CHAOS_FAULTS", 20);
        let gap = Duration::from_millis(knob("CHAOS_FAULT_GAP_MS", 3_000));
        let outage = Duration::from_secs(knob("CHAOS_OUTAGE_SECS", 15));
        // The planned pauses and the outage, a lower bound of the faults' span.
        let span = gap.as_secs_f64() * (faults + 3) as f64 + outage.as_secs_f64();
        Knobs {
            records,
            faults,
            seed: knob("CHAOS_SEED", rand::rng().random_range(1..1_000_000)),
            instances: knob("CHAOS_INSTANCES", 3),
            customers: knob("CHAOS_CUSTOMERS", 500),
            gap,
            rate: knob("CHAOS_RATE", (records as f64 / span.max(1.0)).ceil() as u64),
            outage,
            stop_within: Duration::from_secs(knob("CHAOS_STOP_SECS", 10)),
            settle_within: Duration::from_secs(knob("CHAOS_SETTLE_SECS", 300)),
            shown: knob("CHAOS_DIFF_ROWS", 10),
        }
    }
}

/// End offsets of every partition of `topic` on the broker at `brokers`.
fn end_offsets_on(brokers: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer =
        cdrflow::kafka::client::base_config(&KafkaSettings::plaintext(brokers))
            .set("group.id", "cdrflow-test-watermarks")
            .create()
            .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap();
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    partitions
        .into_iter()
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .unwrap();
            (p, high)
        })
        .collect()
}

/// The group's stored offsets, or None while the database cannot be read.
async fn stored_offsets_of(url: &str, group: &str, topic: &str) -> Option<BTreeMap<i32, i64>> {
    let client = cdrflow::storage::connect(url).await.ok()?;
    let rows = client
        .query(
            "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
            &[&group, &topic],
        )
        .await
        .ok()?;
    Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// `cdrflow generate` with the test's window (September 2026, as every test's traffic).
fn generate_command(brokers: &str, topic: &str, knobs: &Knobs, count: u64) -> Command {
    let mut c = Command::new(BIN);
    c.args(["generate", "--brokers", brokers, "--topic", topic])
        .args(["--count", &count.to_string()])
        .args(["--seed", &knobs.seed.to_string()])
        .args(["--customers", &knobs.customers.to_string()])
        .args(["--start", "2026-09-01", "--days", "30"]);
    c
}

/// The generator's customers (numbers, plans, activation dates, credit limits) into the
/// database at `url`: the pool is a function of the seed, so both sides get the same.
fn write_customers(brokers: &str, topic: &str, knobs: &Knobs, url: &str) {
    let out = generate_command(brokers, topic, knobs, 0)
        .args(["--database-url", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "write the customers: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cdrflow bill` for `period` (YYYY-MM), invoices as JSON into `dir`: its output, or
/// its failure.
fn bill(url: &str, period: &str, dir: &Path) -> Result<String, String> {
    let (code, out, err) = cdrflow(&[
        "bill",
        "--period",
        period,
        "--database-url",
        url,
        "--out",
        dir.to_str().unwrap(),
        "--no-pdf",
        "--no-report-refresh",
    ]);
    if code == 0 {
        Ok(out.trim().replace('\n', "; "))
    } else {
        Err(format!("exit {code}: {out}{err}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_under_kills_restarts_and_outages_end_equal_to_one_uninterrupted_instance()
{
    let knobs = Knobs::from_env();
    let t0 = Instant::now();
    eprintln!(
        "chaos: seed {} (repeat with CHAOS_SEED={}), {} records at {}/s, {} instances, {} instance faults + broker restart + Postgres restart + {} s Postgres outage",
        knobs.seed, knobs.seed, knobs.records, knobs.rate, knobs.instances, knobs.faults, knobs.outage.as_secs()
    );
    let mut rng = StdRng::seed_from_u64(knobs.seed);
    let plan = schedule(&mut rng, knobs.faults, knobs.gap);

    // The chaos side: its own Postgres cluster and broker, both broken on purpose.
    let pg = PgCluster::start();
    let mut broker = OwnBroker::start();
    let brokers = broker.address.clone();
    let topic = format!("chaos.{}", suffix());
    for attempt in 1.. {
        match cdrflow::kafka::client::ensure_topics(
            &KafkaSettings::plaintext(&brokers),
            &[&topic],
            6,
        )
        .await
        {
            Ok(()) => break,
            Err(e) if attempt < 20 => {
                eprintln!("create topic {topic}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("create topic {topic}: {e}"),
        }
    }
    let chaos_url = pg.url("cdrflow_chaos");
    cdrflow::storage::migrate(&chaos_url)
        .await
        .expect("migrate the chaos database");
    cdrflow::storage::catalog::apply(
        &mut cdrflow::storage::connect(&chaos_url).await.unwrap(),
        DEFAULT_CATALOG,
    )
    .await
    .expect("apply the catalog to the chaos database");
    // The reference: the main cluster, never disturbed.
    let reference = TestDb::new().await;
    for url in [&chaos_url, &reference.url] {
        write_customers(&brokers, &topic, &knobs, url);
    }
    eprintln!(
        "chaos: Postgres cluster on port {}, broker {brokers}, topic {topic}, ready in {:.1} s",
        pg.port,
        t0.elapsed().as_secs_f64()
    );

    let work = tempdir();
    let generator_log = work.join("generator.log");
    let mut generator: Child = generate_command(&brokers, &topic, &knobs, knobs.records)
        .args(["--rate", &knobs.rate.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&generator_log).unwrap())
        .spawn()
        .expect("start the generator");

    let group = "chaos";
    let mut chaos = Chaos {
        knobs: &knobs,
        rng,
        t0: Instant::now(),
        pg: &pg,
        broker: &mut broker,
        topic: &topic,
        group,
        url: &chaos_url,
        slots: (0..knobs.instances)
            .map(|_| Slot {
                daemon: None,
                restart_at: None,
                lives: 0,
            })
            .collect(),
        postgres_back_at: None,
        injected: BTreeMap::new(),
        self_exits: Vec::new(),
        violations: Vec::new(),
    };
    chaos.start_stopped();
    for (pause, fault) in plan {
        chaos.wait(pause);
        chaos.inject(fault);
    }
    while chaos.postgres_back_at.is_some() {
        chaos.wait(Duration::from_millis(200));
    }
    chaos.start_stopped();
    chaos.say("last fault done; waiting for the stream to end");
    let status = loop {
        if let Some(s) = generator.try_wait().unwrap() {
            break s;
        }
        chaos.wait(Duration::from_millis(200));
    };
    // The records are what the topic holds, whatever the generator managed to deliver:
    // both sides read the same topic. A broker restart can refuse a few of its records
    // for good (tansu answers an unknown error while it shuts down, which librdkafka
    // does not retry); anything else is a failure of the test's set-up.
    let generator_text = std::fs::read_to_string(&generator_log).unwrap_or_default();
    if !status.success() {
        let undelivered = generator_text
            .lines()
            .find(|l| l.contains("were not delivered"))
            .unwrap_or_else(|| panic!("the generator failed: {generator_text}"));
        chaos.say(&format!(
            "the generator ended with {status}: {}",
            undelivered.trim()
        ));
    }
    let ends = end_offsets_on(&brokers, &topic);
    let total: i64 = ends.values().sum();
    chaos.say(&format!(
        "stream complete: {total} records in the topic's {} partitions, of {} generated",
        ends.len(),
        knobs.records
    ));

    // The reference reads the complete topic once, undisturbed, while the group settles.
    // It is stopped once it has stored every end offset, not by --exit-when-idle: a
    // broker slow to serve fetches after its restart once made it "idle" before it had
    // read a record.
    let reference_group = "reference";
    let mut uninterrupted = Daemon::start_on(
        &brokers,
        &DaemonConfig {
            topic: &topic,
            group: reference_group,
            database_url: &reference.url,
            idle_secs: None,
            extra: daemon_flags(),
        },
    );
    let settling = Instant::now();
    let mut last_print = Instant::now();
    let (mut group_done, mut reference_done) = (None, None);
    while group_done.is_none() || reference_done.is_none() {
        for (done, url, g) in [
            (&mut group_done, &chaos_url, group),
            (&mut reference_done, &reference.url, reference_group),
        ] {
            if done.is_none() && stored_offsets_of(url, g, &topic).await.as_ref() == Some(&ends) {
                *done = Some(settling.elapsed());
            }
        }
        assert!(
            uninterrupted.alive(),
            "the reference instance ended: {}",
            uninterrupted.log_text()
        );
        if last_print.elapsed() > Duration::from_secs(10) {
            let mut progress = Vec::new();
            for (url, g) in [(&chaos_url, group), (&reference.url, reference_group)] {
                let stored = stored_offsets_of(url, g, &topic).await;
                let done: i64 = stored.iter().flat_map(|s| s.values()).sum();
                progress.push(format!("{g} {done}"));
            }
            chaos.say(&format!(
                "settling: offsets stored of {total}: {}",
                progress.join(", ")
            ));
            last_print = Instant::now();
        }
        if settling.elapsed() > knobs.settle_within {
            for i in chaos.running() {
                let d = chaos.slots[i].daemon.as_ref().unwrap();
                eprintln!("instance {i} log ends:\n{}", tail(&d.log_text(), 20));
            }
            panic!(
                "not everything was consumed within {:?} of the stream's end: the group {}, the reference {}; ends {ends:?}, the group's stored offsets {:?}",
                knobs.settle_within,
                if group_done.is_some() { "did" } else { "did not" },
                if reference_done.is_some() { "did" } else { "did not" },
                stored_offsets_of(&chaos_url, group, &topic).await
            );
        }
        chaos.wait(Duration::from_millis(500));
    }
    let secs = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64();
    chaos.say(&format!(
        "every stored offset is its partition's end: the group's {:.1} s and the reference's {:.1} s after the stream was complete (when the reference started)",
        secs(group_done),
        secs(reference_done)
    ));
    chaos.stop_all();
    let Chaos {
        injected,
        self_exits,
        mut violations,
        ..
    } = chaos;
    uninterrupted.signal("TERM");
    let status = uninterrupted.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "the reference instance failed: {}",
        uninterrupted.log_text()
    );

    // Every anomaly of the generator's mix reached both sides: the reference's counters
    // show each of their outcomes (out-of-order records are accepted, so not counted
    // apart).
    let t = &stats(&reference.url, reference_group)["totals"];
    for (what, n) in [
        ("duplicates", &t["duplicates"]),
        ("suspense", &t["suspense"]),
        ("rejects missing_field", &t["rejected"]["missing_field"]),
        ("rejects invalid_value", &t["rejected"]["invalid_value"]),
        (
            "rejects unknown_record_type",
            &t["rejected"]["unknown_record_type"],
        ),
        (
            "rejects malformed_number",
            &t["rejected"]["malformed_number"],
        ),
        (
            "rejects invalid_timestamp",
            &t["rejected"]["invalid_timestamp"],
        ),
        (
            "rejects future_timestamp",
            &t["rejected"]["future_timestamp"],
        ),
        ("rejects invalid_json", &t["rejected"]["invalid_json"]),
    ] {
        assert!(n.as_i64().unwrap_or(0) > 0, "the stream has no {what}: {t}");
    }

    // Close every month that has usage, on both sides.
    let mut periods = Vec::new();
    for url in [&chaos_url, &reference.url] {
        for r in cdrflow::storage::connect(url)
            .await
            .unwrap()
            .query(
                "SELECT DISTINCT to_char(period, 'YYYY-MM') FROM usage_buckets",
                &[],
            )
            .await
            .unwrap()
        {
            periods.push(r.get::<_, String>(0));
        }
    }
    periods.sort();
    periods.dedup();
    let (chaos_invoices, reference_invoices) = (work.join("chaos"), work.join("reference"));
    for period in &periods {
        for (side, url, dir) in [
            ("chaos", &chaos_url, &chaos_invoices),
            ("reference", &reference.url, &reference_invoices),
        ] {
            match bill(url, period, dir) {
                Ok(out) => eprintln!("chaos: bill {period} on the {side} side: {out}"),
                Err(e) => violations.push(format!("bill {period} on the {side} side failed: {e}")),
            }
        }
    }

    let left = compare::snapshot(&chaos_url, group, &chaos_invoices).await;
    let right = compare::snapshot(&reference.url, reference_group, &reference_invoices).await;
    let diffs = compare::diff(&left, &right, knobs.shown, ("chaos", "reference"));

    let faults: u32 = injected.values().sum();
    let kinds: Vec<String> = injected
        .iter()
        .map(|(f, n)| format!("{n} × {}", f.name()))
        .collect();
    eprintln!(
        "\nchaos summary: seed {}, {} records, {faults} faults ({}), {} instance exits of their own, {} violations, {:.0} s in all",
        knobs.seed,
        total,
        kinds.join(", "),
        self_exits.len(),
        violations.len(),
        t0.elapsed().as_secs_f64()
    );
    eprintln!(
        "comparison, {} instances under faults (chaos) against one uninterrupted instance (reference):",
        knobs.instances
    );
    eprintln!(
        "  {:<20} {:>9} {:>10}  result",
        "table", "chaos", "reference"
    );
    let mut failures = Vec::new();
    for d in &diffs {
        let verdict = if d.equal() {
            "equal".to_string()
        } else {
            format!(
                "DIFFERENT: {} only in chaos, {} only in reference, {} differ",
                d.only_left.0, d.only_right.0, d.differ.0
            )
        };
        eprintln!(
            "  {:<20} {:>9} {:>10}  {verdict}",
            d.table, d.rows.0, d.rows.1
        );
        for (label, (_, rows)) in [
            ("only in chaos", &d.only_left),
            ("only in reference", &d.only_right),
            ("differs", &d.differ),
        ] {
            for row in rows {
                eprintln!("      {label}: {row}");
            }
        }
        if !d.equal() {
            failures.push(format!("{}: {verdict}", d.table));
        }
        // An empty table on both sides would compare equal and prove nothing.
        let must_have_rows = [
            "usage_events",
            "usage_buckets",
            "rejected_records",
            "suspense_records",
            "alerts",
            "pipeline_counters",
            "consumer_offsets",
            "invoices",
            "invoice_lines",
            "invoice files",
        ];
        if must_have_rows.contains(&d.table) && d.rows.1 == 0 {
            failures.push(format!(
                "{}: the reference has no rows, so nothing was compared",
                d.table
            ));
        }
    }
    for v in &violations {
        eprintln!("  violation: {v}");
    }
    failures.extend(
        violations
            .iter()
            .map(|v| v.lines().next().unwrap_or_default().to_string()),
    );
    assert!(
        failures.is_empty(),
        "the chaos run (seed {}) differs from the uninterrupted run:\n  {}",
        knobs.seed,
        failures.join("\n  ")
    );
}

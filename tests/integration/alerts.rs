//! Credit-limit alerts, against the real database, broker and daemon. What a credit
//! controller must be able to trust: a customer who passes 80 % and then 100 % of their
//! limit is told exactly once each, with the estimate that crossed it, and no restart,
//! crash or replay (with or without re-rating) tells them again; the alerts are the same
//! whatever the number of instances sharing the work and however partitions move
//! between them, and a check whose instance died after its commit is still made.

use crate::helpers::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const MSISDN: &str = "+212661000777";

/// A one-minute domestic call of our customer starting at `local` (Casablanca, +01:00).
fn call(local: &str) -> (Option<&'static [u8]>, Vec<u8>) {
    let payload = format!(
        r#"{{"record_type":"voice","timestamp":"{local}+01:00","caller_id":"{MSISDN}","callee_id":"+212661234567","duration_sec":60,"cell_id":"CASABLANCA_1","technology":"4G"}}"#
    );
    (Some(MSISDN.as_bytes()), payload.into_bytes())
}

/// `n` calls on `day`, ten minutes apart from 10:00 local: all peak on a weekday.
fn calls(day: &str, n: usize) -> Vec<(Option<&'static [u8]>, Vec<u8>)> {
    (0..n)
        .map(|i| call(&format!("{day}T{:02}:{:02}:00", 10 + i / 6, (i % 6) * 10)))
        .collect()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Every row of `alerts`: (id, customer, period, threshold, amount, limit, raised_at).
async fn alert_rows(db: &TestDb) -> Vec<(i64, i64, String, i16, Decimal, Decimal, String)> {
    db.client()
        .await
        .query(
            "SELECT id, customer_id, period::text, threshold, amount, credit_limit, raised_at::text
               FROM alerts ORDER BY threshold",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

/// The customer's stored usage: (events, Σ amount) from usage_events and from the buckets.
async fn usage(db: &TestDb, customer: i64) -> ((i64, Decimal), (i64, Decimal)) {
    let client = db.client().await;
    let events = client
        .query_one(
            "SELECT count(*), coalesce(sum(amount), 0) FROM usage_events WHERE customer_id = $1",
            &[&customer],
        )
        .await
        .unwrap();
    let buckets = client
        .query_one(
            "SELECT coalesce(sum(events), 0)::int8, coalesce(sum(amount + extra), 0)
               FROM usage_buckets WHERE customer_id = $1",
            &[&customer],
        )
        .await
        .unwrap();
    (
        (events.get(0), events.get(1)),
        (buckets.get(0), buckets.get(1)),
    )
}

/// Whether the group's stored offset on every partition is the topic's end offset.
async fn offsets_at_end(db: &TestDb, topic: &str, group: &str) -> bool {
    let stored: BTreeMap<i32, i64> = db
        .client()
        .await
        .query(
            "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
            &[&group, &topic],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    stored == end_offsets(topic)
}

/// Wait until the daemon has stored the end offset of every partition of `topic`.
async fn wait_consumed(d: &mut Daemon, db: &TestDb, topic: &str, group: &str) {
    let started = Instant::now();
    while !offsets_at_end(db, topic, group).await {
        assert!(d.alive(), "daemon died: {}", d.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{topic} not consumed within 60 s; log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until the daemon's metric `sample` is `value`.
fn wait_metric(d: &mut Daemon, sample: &str, value: f64) {
    let started = Instant::now();
    while d.metric(sample) != Some(value) {
        assert!(d.alive(), "daemon died: {}", d.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{sample} is {:?}, not {value}, after 60 s; log:\n{}",
            d.metric(sample),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Alerts logged by one daemon run ("Credit-limit alert raised." per alert).
fn alerts_logged(d: &Daemon) -> usize {
    d.log_text().matches("Credit-limit alert raised.").count()
}

/// Every message on `topic` (all partitions, from the start): (key, JSON payload).
fn read_topic(topic: &str) -> Vec<(Option<String>, serde_json::Value)> {
    let ends = end_offsets(topic);
    let consumer: BaseConsumer = cdrflow::kafka::client::base_config(&kafka())
        .set("group.id", format!("cdrflow-test-read-{}", suffix()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for (p, end) in &ends {
        if *end > 0 {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut next: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
    let mut out = Vec::new();
    let started = Instant::now();
    while next != ends {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "read {topic}: at {next:?} of {ends:?}"
        );
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.unwrap();
        next.insert(m.partition(), m.offset() + 1);
        out.push((
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap(),
        ));
    }
    out
}

/// A customer pushed past 80 % and then 100 % of their credit limit gets exactly two
/// alerts, each once, stored and published with the estimate that crossed it; a crash, a
/// restart and replays of the whole topic, plain and re-rating, raise nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn a_customer_pushed_past_80_and_100_percent_gets_exactly_two_alerts_even_across_a_restart_and_a_replay(
) {
    let db = TestDb::new().await;
    let raw = topic("cdr.raw.alerts", 1).await;
    // One partition, so the drain below knows every alert is there.
    let alerts = topic("cdr.alerts", 1).await;
    let group = "alerts";

    // Basic plan, limit 20.00. Activated in June 2026: no loyalty discount in September
    // (12 months of tenure needed), so the estimate is (Σ calls + 1.00 fee) × 1.20.
    let out = import_customers(
        &db,
        "0661000777,Salma Bennani,basic,Casablanca-Settat,no,2026-06-01,20.00\n",
    );
    assert!(out.contains("1 added"), "{out}");
    let customer: i64 = db
        .client()
        .await
        .query_one(
            "SELECT customer_id FROM customers WHERE msisdn = $1",
            &[&MSISDN],
        )
        .await
        .unwrap()
        .get(0);

    let start = |idle_secs: Option<u64>| {
        Daemon::start(&DaemonConfig {
            topic: &raw,
            group,
            database_url: &db.url,
            idle_secs,
            extra: vec!["--alerts-topic".into(), alerts.clone()],
        })
    };
    let stop = |mut d: Daemon| {
        d.stop();
        d
    };
    let m80 = "cdrflow_alerts_raised_total{threshold=\"80\"}";
    let m100 = "cdrflow_alerts_raised_total{threshold=\"100\"}";

    // Phase 1, Monday 14 September: 13 peak minutes at 0.90 + 0.10 connection = 13.00;
    // estimate (13.00 + 1.00) × 1.20 = 16.80 ≥ 16.00 (80 % of 20.00) and < 20.00. Twelve
    // calls would give 15.60 < 16.00: the alert can only be raised once all thirteen are
    // in, so its amount is 16.80 however the records are batched.
    produce_raw(&raw, 0, &calls("2026-09-14", 13));
    let mut d = start(None);
    wait_consumed(&mut d, &db, &raw, group).await;
    wait_metric(&mut d, m80, 1.0);
    assert_eq!(d.metric(m100).unwrap_or(0.0), 0.0);
    let d = stop(d);
    assert_eq!(alerts_logged(&d), 1, "{}", d.log_text());
    assert_eq!(
        usage(&db, customer).await,
        ((13, dec("13.00")), (13, dec("13.00")))
    );
    let rows = alert_rows(&db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].1,
            rows[0].2.as_str(),
            rows[0].3,
            rows[0].4,
            rows[0].5
        ),
        (customer, "2026-09-01", 80, dec("16.80"), dec("20.00"))
    );

    // Phase 2, Tuesday 15 September: 3 more peak minutes, 16.00 in all; estimate
    // (16.00 + 1.00) × 1.20 = 20.40 ≥ 20.00 (15 calls: 19.20 < 20.00). 80 % is not
    // raised again.
    produce_raw(&raw, 0, &calls("2026-09-15", 3));
    let mut d = start(None);
    wait_consumed(&mut d, &db, &raw, group).await;
    wait_metric(&mut d, m100, 1.0);
    assert_eq!(d.metric(m80).unwrap_or(0.0), 0.0);
    let d = stop(d);
    assert_eq!(alerts_logged(&d), 1, "{}", d.log_text());
    assert_eq!(
        usage(&db, customer).await,
        ((16, dec("16.00")), (16, dec("16.00")))
    );
    let raised = alert_rows(&db).await;
    assert_eq!(raised.len(), 2, "{raised:?}");
    assert_eq!(raised[0], rows[0], "the 80 % alert is untouched");
    assert_eq!(
        (
            raised[1].1,
            raised[1].2.as_str(),
            raised[1].3,
            raised[1].4,
            raised[1].5
        ),
        (customer, "2026-09-01", 100, dec("20.40"), dec("20.00"))
    );

    // A crash after a plain replay of the whole topic: every record comes back as a
    // duplicate and feeds no estimate.
    assert!(replay_ok(&db, &raw, group, &["--to-offset", "0"]).contains("applied"));
    let mut d = start(None);
    wait_consumed(&mut d, &db, &raw, group).await;
    d.kill9();
    assert_eq!(alerts_logged(&d), 0, "{}", d.log_text());
    // The killed member's session (10 s) ends before the next one joins: tansu hands a
    // generation's partitions to members whose session has not expired yet, dead or not,
    // and does not rebalance when it expires later.
    std::thread::sleep(Duration::from_secs(11));
    // Restarted, and again with re-rating: the buckets are rebuilt from the events and
    // the accumulators reload them, with the alerts already raised.
    for args in [&["--to-offset", "0"][..], &["--to-offset", "0", "--rerate"]] {
        assert!(replay_ok(&db, &raw, group, args).contains("applied"));
        // Idle longer than the killed member's session (10 s): the group may only hand
        // the partitions over once it has expired.
        let mut d = start(Some(15));
        assert!(
            d.wait(Duration::from_secs(60)).success(),
            "{}",
            d.log_text()
        );
        assert_eq!(alerts_logged(&d), 0, "{args:?}: {}", d.log_text());
        assert!(offsets_at_end(&db, &raw, group).await, "{args:?}");
        assert_eq!(alert_rows(&db).await, raised, "{args:?}");
        assert_eq!(
            usage(&db, customer).await,
            ((16, dec("16.00")), (16, dec("16.00"))),
            "{args:?}"
        );
    }
    let unbounded: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM consumer_offsets WHERE group_id = $1 AND rerate_below IS NOT NULL",
            &[&group],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unbounded, 0, "the re-rate ran to its end");

    // The topic holds each alert once: every run above was clean (an alert is published
    // before its transaction commits, so only a crash in between could repeat one).
    let published = read_topic(&alerts);
    let key = customer.to_string();
    let want = |threshold: i64, amount: &str| {
        serde_json::json!({
            "customer_id": customer,
            "msisdn": MSISDN,
            "period": "2026-09-01",
            "threshold": threshold,
            "amount": amount,
            "credit_limit": "20.00",
        })
    };
    let mut got: Vec<(Option<String>, serde_json::Value)> = published
        .into_iter()
        .map(|(k, mut v)| {
            let raised_at = v
                .as_object_mut()
                .and_then(|o| o.remove("raised_at"))
                .unwrap_or_default();
            assert!(raised_at.is_string(), "raised_at in {v}");
            (k, v)
        })
        .collect();
    got.sort_by_key(|(_, v)| v["threshold"].as_i64());
    assert_eq!(
        got,
        vec![
            (Some(key.clone()), want(80, "16.80")),
            (Some(key), want(100, "20.40")),
        ]
    );
}

/// Customers of the group test's traffic, and its seed.
const GROUP_CUSTOMERS: &str = "500";
const GROUP_SEED: &str = "61";

/// An alert as a credit controller reads it: (MSISDN, period, threshold).
type AlertKey = (String, String, i16);

/// The alerts stored in `db`.
async fn alert_keys(db: &TestDb) -> BTreeSet<AlertKey> {
    db.client()
        .await
        .query(
            "SELECT c.msisdn, a.period::text, a.threshold
               FROM alerts a JOIN customers c USING (customer_id)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Every customer as billing sees them: (MSISDN, plan, student, activation, limit).
async fn customers(db: &TestDb) -> Vec<(String, String, bool, chrono::NaiveDate, Decimal)> {
    db.client()
        .await
        .query(
            "SELECT msisdn, plan, is_student, activated_on, credit_limit FROM customers
              ORDER BY msisdn",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

/// The alerts the committed state of `db` calls for, worked out here from the buckets,
/// the owed adjustments and the customers, with the billing code that makes invoices
/// (usage only grows in these tests, so the thresholds the final estimate reaches are
/// all those ever reached).
async fn alerts_due(db: &TestDb) -> BTreeSet<AlertKey> {
    use cdrflow::domain::billing;
    use cdrflow::storage::{billing as store, invoices};
    let pool = cdrflow::storage::pool(&db.url, 1).unwrap();
    let client = pool.get().await.unwrap();
    let catalog = cdrflow::storage::catalog::load(&**client, None)
        .await
        .unwrap()
        .unwrap();
    let pairs: Vec<(i64, chrono::NaiveDate)> = client
        .query(
            "SELECT DISTINCT customer_id, period FROM usage_buckets ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ids: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let periods: Vec<chrono::NaiveDate> = pairs
        .iter()
        .map(|p| p.1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let accounts = store::accounts(&client, &ids).await.unwrap();
    let mut usages = store::buckets(&client, &ids, &periods).await.unwrap();
    let tz = catalog.catalog.operator.timezone.name();
    let mut due = BTreeSet::new();
    for period in periods {
        let mut owed = invoices::owed(&client, &ids, period, tz).await.unwrap();
        for (id, _) in pairs.iter().filter(|p| p.1 == period) {
            let account = &accounts[id];
            let estimate = billing::invoice(
                &catalog.catalog,
                catalog.version,
                &account.bill_to,
                period,
                &usages.remove(&(*id, period)).unwrap_or_default(),
                &owed.remove(id).unwrap_or_default(),
            )
            .unwrap();
            for t in billing::thresholds_reached(estimate.total, account.credit_limit, &[]) {
                due.insert((account.bill_to.msisdn.clone(), period.to_string(), t));
            }
        }
    }
    due
}

/// A month of generated traffic for the group's customers as JSON lines, each with the
/// partition of `partitions` its subscriber's records go to (by the caller's number,
/// so one customer's records stay on one partition, as with Kafka's keyed producer).
fn generated_traffic(db: &TestDb, count: u64, partitions: i32) -> Vec<(i32, Vec<u8>)> {
    let file = tempdir().join("traffic.jsonl");
    let (code, out, err) = cdrflow(&[
        "generate",
        "--output",
        file.to_str().unwrap(),
        "--count",
        &count.to_string(),
        "--seed",
        GROUP_SEED,
        "--customers",
        GROUP_CUSTOMERS,
        "--database-url",
        &db.url,
        "--start",
        "2026-09-01",
        "--days",
        "30",
    ]);
    assert_eq!(code, 0, "generate: {out}{err}");
    std::fs::read(&file)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let caller = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["caller_id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let h = caller
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            ((h % partitions as u32) as i32, line.to_vec())
        })
        .collect()
}

/// Produce `lines` to their partitions of `topic`.
fn produce_lines(topic: &str, lines: &[(i32, Vec<u8>)], partitions: i32) {
    for p in 0..partitions {
        let mine: Vec<(Option<&[u8]>, Vec<u8>)> = lines
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, l)| (None, l.clone()))
            .collect();
        produce_raw(topic, p, &mine);
    }
}

/// Wait until the group has stored the end offset of every partition of `topic`, with
/// every daemon in `ds` alive.
async fn wait_group_consumed(ds: &mut [&mut Daemon], db: &TestDb, topic: &str, group: &str) {
    let started = Instant::now();
    while !offsets_at_end(db, topic, group).await {
        for d in ds.iter_mut() {
            assert!(d.alive(), "daemon died: {}", d.log_text());
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{topic} not consumed within 120 s; logs:\n{}",
            ds.iter()
                .map(|d| d.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Partitions move back and forth between live instances of one group (a second one
/// joins and leaves, then a third) while a month of traffic arrives in waves: the alerts stored are exactly those one uninterrupted instance stores from the
/// same topic into a fresh database, and exactly those the committed buckets call for.
#[tokio::test(flavor = "multi_thread")]
async fn alerts_are_those_of_one_uninterrupted_instance_however_partitions_move_between_instances()
{
    const PARTITIONS: i32 = 6;
    const RECORDS: u64 = 24_000;
    let db = TestDb::new().await;
    let raw = topic("cdr.raw.alertsgroup", PARTITIONS).await;
    let group = "alerts-group";
    let traffic = generated_traffic(&db, RECORDS, PARTITIONS);
    let waves: Vec<&[(i32, Vec<u8>)]> = traffic.chunks(traffic.len() / 5 + 1).collect();
    assert_eq!(waves.len(), 5);
    let start = || {
        Daemon::start(&DaemonConfig {
            topic: &raw,
            group,
            database_url: &db.url,
            idle_secs: None,
            extra: vec!["--no-publish".into()],
        })
    };
    let consumed = |d: &Daemon| d.metric("cdrflow_records_consumed_total").unwrap_or(0.0);
    // A alone; then A and B; A alone again: the partitions B held come back to A with
    // usage A did not see. The same with C, and A ends alone.
    let mut a = start();
    produce_lines(&raw, waves[0], PARTITIONS);
    wait_group_consumed(&mut [&mut a], &db, &raw, group).await;
    for (joining, alone) in [(waves[1], waves[2]), (waves[3], waves[4])] {
        let mut other = start();
        other.wait_up();
        // The wave trickles in, so that most of it arrives once the group has handed the
        // newcomer its share.
        for slice in joining.chunks(joining.len() / 10 + 1) {
            produce_lines(&raw, slice, PARTITIONS);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        wait_group_consumed(&mut [&mut a, &mut other], &db, &raw, group).await;
        assert!(
            consumed(&other) > 0.0,
            "the newcomer got no partition: {}",
            other.log_text()
        );
        other.stop();
        produce_lines(&raw, alone, PARTITIONS);
        wait_group_consumed(&mut [&mut a], &db, &raw, group).await;
    }
    // A stopped daemon has evaluated what it committed.
    a.stop();
    let grouped = alert_keys(&db).await;

    // One instance, from the start of the same topic, on the same customers.
    let reference = TestDb::new().await;
    // The same generator run writes the same customers (its records are on the topic).
    generated_traffic(&reference, RECORDS, PARTITIONS);
    assert_eq!(customers(&reference).await, customers(&db).await);
    let mut one = Daemon::start(&DaemonConfig {
        topic: &raw,
        group: "alerts-one",
        database_url: &reference.url,
        idle_secs: Some(5),
        extra: vec!["--no-publish".into()],
    });
    assert!(
        one.wait(Duration::from_secs(300)).success(),
        "{}",
        one.log_text()
    );
    let single = alert_keys(&reference).await;

    assert!(
        single.len() > 50,
        "too few alerts to tell: {}",
        single.len()
    );
    let missing: Vec<&AlertKey> = single.difference(&grouped).collect();
    let extra: Vec<&AlertKey> = grouped.difference(&single).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} alerts of one instance, {} of the group; missing in the group: {missing:?}; \
         only in the group: {extra:?}",
        single.len(),
        grouped.len()
    );
    assert_eq!(
        grouped,
        alerts_due(&db).await,
        "the group's alerts against its buckets"
    );
    assert_eq!(
        single,
        alerts_due(&reference).await,
        "one instance's alerts against its buckets"
    );
}

/// A check marked due by a commit whose instance died before evaluating it (here the
/// commit is written by hand: buckets and the check, nothing else) is made by a running
/// daemon's sweep: the alert is raised once, with the estimate from the buckets, and the
/// check is cleared.
#[tokio::test(flavor = "multi_thread")]
async fn a_check_left_due_by_a_dead_instance_is_made_by_a_running_daemons_sweep() {
    let db = TestDb::new().await;
    let raw = topic("cdr.raw.alertsweep", 1).await;
    import_customers(
        &db,
        "0661000777,Salma Bennani,basic,Casablanca-Settat,no,2026-06-01,20.00\n",
    );
    let client = db.client().await;
    let customer: i64 = client
        .query_one(
            "SELECT customer_id FROM customers WHERE msisdn = $1",
            &[&MSISDN],
        )
        .await
        .unwrap()
        .get(0);
    let mut d = Daemon::start(&DaemonConfig {
        topic: &raw,
        group: "alerts-sweep",
        database_url: &db.url,
        idle_secs: None,
        extra: vec!["--no-publish".into()],
    });
    d.wait_up();

    // Thirteen peak domestic minutes, as the batch would have added them: 13.00 gross,
    // estimate (13.00 + 1.00 regulatory fee) × 1.20 = 16.80 ≥ 16.00, 80 % of 20.00.
    client
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO usage_buckets (customer_id, period, tariff_id, band, catalog_version,
                                        service, zone, price, units, events, amount, extra, cost)
             SELECT {customer}, '2026-09-01', 'basic/voice/domestic', 'peak', max(version),
                    'voice', 'domestic', 0.90, 780, 13, 11.70, 1.30, 0 FROM catalog_versions;
             INSERT INTO alert_checks (customer_id, period, seq, marked_at)
             VALUES ({customer}, '2026-09-01', pg_current_xact_id()::text::int8, now());
             COMMIT;"
        ))
        .await
        .unwrap();
    wait_for(
        "the sweep to raise the alert",
        Duration::from_secs(60),
        || d.metric("cdrflow_alerts_raised_total{threshold=\"80\"}") == Some(1.0),
    );
    let due = || async {
        db.client()
            .await
            .query_one("SELECT count(*) FROM alert_checks", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let started = Instant::now();
    while due().await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "check not cleared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.stop();
    let rows = alert_rows(&db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].1, rows[0].2.as_str(), rows[0].3, rows[0].4),
        (customer, "2026-09-01", 80, dec("16.80"))
    );
    assert_eq!(alerts_due(&db).await.len(), 1);
}

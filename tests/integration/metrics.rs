//! The metrics reference table (docs/metrics.md) against a real daemon's scrape after
//! traffic: the same names and types both ways, and the new pipeline metrics telling the
//! truth about what went through.

use crate::helpers::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// name → type, from the table rows "| `cdrflow_…` | type | labels | meaning |".
fn documented() -> BTreeMap<String, String> {
    let text = include_str!("../../docs/metrics.md");
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix("`cdrflow_")?.strip_suffix('`')?;
            Some((format!("cdrflow_{name}"), cells.get(2)?.to_string()))
        })
        .collect()
}

/// name → type, from the exposition's `# TYPE` lines.
fn exposed(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("# TYPE ")?.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .filter(|(name, _)| name.starts_with("cdrflow_"))
        .collect()
}

/// Every sample of a metric family: labels text → value.
fn samples(body: &str, name: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None;
            }
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_reference_matches_a_scrape_after_traffic() {
    let documented = documented();
    assert!(documented.len() >= 25, "the table lists {documented:?}");

    let db = TestDb::new().await;
    let topic = topic("cdr.metrics", 3).await;
    let report = generate(&topic, &db, 4_000, 23, &[]);
    let daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "metrics",
        database_url: &db.url,
        idle_secs: None,
        extra: vec!["--db-pool-size".into(), "9".into()],
    });
    wait_for("every record committed", Duration::from_secs(120), || {
        daemon.metric("cdrflow_records_consumed_total") == Some(report.sent as f64)
    });
    // librdkafka reports statistics every 5 s; the committed offsets reach the broker
    // asynchronously after each Postgres commit.
    wait_for(
        "the lag of every partition at 0",
        Duration::from_secs(60),
        || {
            let (_, body) = daemon.get("/metrics").unwrap();
            let lag = samples(&body, "cdrflow_consumer_lag");
            lag.len() == 3 && lag.values().all(|v| *v == 0.0)
        },
    );
    let (status, body) = daemon.get("/metrics").unwrap();
    assert_eq!(status, 200);

    let exposed = exposed(&body);
    let missing: Vec<_> = documented
        .iter()
        .filter(|(name, ty)| exposed.get(*name) != Some(ty))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but not exposed with that type: {missing:?}"
    );
    let undocumented: Vec<_> = exposed
        .keys()
        .filter(|name| !documented.contains_key(*name))
        .collect();
    assert!(
        undocumented.is_empty(),
        "exposed but not in docs/metrics.md: {undocumented:?}"
    );

    // Every record went through every stage once; nothing is left in a mailbox.
    let stages = samples(&body, "cdrflow_stage_records_total");
    for stage in ["source", "validator", "normalizer", "rater", "committer"] {
        assert_eq!(
            stages.get(&format!("{{stage=\"{stage}\"}}")),
            Some(&(report.sent as f64)),
            "records through {stage}: {stages:?}"
        );
    }
    let queued = samples(&body, "cdrflow_stage_queue_depth");
    assert_eq!(queued.len(), 5, "{queued:?}");
    assert!(queued.values().all(|v| *v == 0.0), "{queued:?}");

    // The rated amount by service is what Postgres holds (as a float, to the cent).
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT record_type, sum(amount)::text FROM usage_events GROUP BY 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let rated = samples(&body, "cdrflow_rated_amount_total");
    for row in rows {
        let service: String = row.get(0);
        let stored: f64 = row.get::<_, String>(1).parse().unwrap();
        let metric = rated[&format!("{{service=\"{service}\"}}")];
        assert!(
            (metric - stored).abs() < 0.005,
            "{service}: metric {metric}, stored {stored}"
        );
    }

    let pool = samples(&body, "cdrflow_db_pool_connections");
    assert_eq!(pool.get("{state=\"max\"}"), Some(&9.0), "{pool:?}");
    assert!(pool["{state=\"open\"}"] >= 1.0, "{pool:?}");
    let rejected: f64 = samples(&body, "cdrflow_records_rejected_total")
        .values()
        .sum();
    assert_eq!(
        rejected as u64,
        report.expected.rejected.values().sum::<u64>()
    );
}

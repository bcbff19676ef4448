use crate::helpers::*;
use std::time::Duration;

/// The reconciliation a billing team asks for: the generator's account of what it sent
/// and cdrflow's account of what it did agree count for count, reason for reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_generated_stream_with_every_anomaly_reconciles_count_for_count() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.reconcile", 4).await;
    let report = generate(&topic, &db, 50_000, 11, &[]);
    for anomaly in [
        "missing_field",
        "corrupted_value",
        "unknown_type",
        "duplicate",
        "out_of_order",
        "malformed_number",
        "unparseable_timestamp",
        "future_timestamp",
        "non_json",
        "unknown_subscriber",
    ] {
        assert!(
            report.anomalies.get(anomaly).copied().unwrap_or(0) > 0,
            "the stream has no {anomaly}"
        );
    }

    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "billing",
        database_url: &db.url,
        idle_secs: Some(4),
        extra: vec![],
    });
    let status = daemon.wait(Duration::from_secs(300));
    assert!(status.success(), "daemon failed: {}", daemon.log_text());

    let s = stats(&db.url, "billing");
    let t = &s["totals"];
    assert_eq!(t["consumed"], report.sent, "consumed");
    assert_eq!(t["accepted"], report.expected.accepted, "accepted");
    assert_eq!(t["duplicates"], report.expected.duplicates, "duplicates");
    assert_eq!(t["suspense"], report.expected.suspense, "suspense");
    let rejected: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(t["rejected"].clone()).unwrap();
    assert_eq!(rejected, report.expected.rejected, "rejected by reason");
    assert_eq!(s["balanced"], true);

    // The rows are really there, not only the counters.
    let rows = &s["stored_rows"];
    assert_eq!(rows["usage_events"], report.expected.accepted);
    assert_eq!(rows["suspense_records"], report.expected.suspense);
    assert_eq!(
        rows["rejected_records"],
        report.expected.rejected.values().sum::<u64>()
    );

    // Stored offsets are the ends of the partitions, as the producer saw them acknowledged
    // and as the broker reports them.
    let ends = end_offsets(&topic);
    for p in s["partitions"].as_array().unwrap() {
        let partition = p["partition"].as_i64().unwrap() as i32;
        let delivered = &report.partitions[&partition];
        assert_eq!(
            p["stored_offset"], delivered.end_offset,
            "partition {partition} stored offset"
        );
        assert_eq!(
            p["stored_offset"], ends[&partition],
            "partition {partition} end offset"
        );
        assert_eq!(
            p["consumed"], delivered.records,
            "partition {partition} consumed"
        );
    }
    assert_eq!(s["partitions"].as_array().unwrap().len(), 4);

    // The outputs were published: in a run without failures, once each.
    let normalized: i64 = end_offsets(&format!("{topic}.normalized")).values().sum();
    let rejected_out: i64 = end_offsets(&format!("{topic}.rejected")).values().sum();
    assert_eq!(
        normalized as u64, report.expected.accepted,
        "records on the normalized topic"
    );
    assert_eq!(
        rejected_out as u64,
        report.expected.rejected.values().sum::<u64>(),
        "records on the rejected topic"
    );

    // Every reject kept its reason, detail and raw bytes.
    let client = db.client().await;
    let bad = client
        .query_one("SELECT count(*) FROM rejected_records WHERE detail = '' OR octet_length(raw) = 0 AND reason <> 'invalid_json'", &[])
        .await
        .unwrap();
    assert_eq!(bad.get::<_, i64>(0), 0);

    // Every accepted event was priced with the catalog, in the month of its event time,
    // and every amount is the sum of its band parts.
    let rating = client
        .query_one(
            "SELECT count(*) FILTER (WHERE amount IS NULL OR catalog_version <> 1 OR tariff_id IS NULL),
                    count(*) FILTER (WHERE period <> date_trunc('month', event_time AT TIME ZONE 'Africa/Casablanca')::date),
                    count(*) FILTER (WHERE record_type <> 'voice' AND cardinality(bands) > 1),
                    count(*) FILTER (WHERE amount < (SELECT COALESCE(sum(a), 0) FROM unnest(band_amounts) a))
               FROM usage_events",
            &[],
        )
        .await
        .unwrap();
    let counts: Vec<i64> = (0..4).map(|i| rating.get(i)).collect();
    assert_eq!(
        counts,
        vec![0, 0, 0, 0],
        "unrated, wrong period, split non-voice, parts above the amount"
    );
}

use crate::helpers::*;
use std::time::Duration;

/// Poison records are rejected with a reason and the partition moves on to the valid
/// record behind them.
#[tokio::test(flavor = "multi_thread")]
async fn poison_records_are_rejected_and_the_partition_moves_on() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.poison", 1).await;
    // Active before the valid record's call.
    let customer = cdrflow::generator::Customer::on_plan(
        "+212612345678",
        "Test",
        "basic",
        chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
    );
    cdrflow::storage::customers::upsert(
        &db.client().await,
        &[customer],
        cdrflow::storage::customers::OnExisting::Keep,
    )
    .await
    .unwrap();

    let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let huge = format!(
        "{{\"record_type\":\"voice\",\"pad\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let huge_len = huge.len();
    let valid = br#"{"record_type":"voice","timestamp":"2026-09-10T10:00:00","caller_id":"0612345678","callee_id":"0698765432","duration_sec":30,"cell_id":"RABAT_1","technology":"4G"}"#;
    produce_raw(
        &topic,
        0,
        &[
            (Some(b"k"), b"\x00\x9f\x92\x96 not json at all".to_vec()),
            (None, huge.into_bytes()),
            (None, nested.into_bytes()),
            (None, b"".to_vec()),
            // Valid JSON whose text Postgres cannot store as is (NUL).
            (None, br#"{"record_type":"pi\u0000ng"}"#.to_vec()),
            (None, br#"{"record_type":"sms","timestamp":"2026-09-10T10:00:00","sender_id":"0612345678","receiver_id":"0698765432","cell_id":"RABAT\u0000_1","technology":"4G"}"#.to_vec()),
            (Some(b"212612345678"), valid.to_vec()),
        ],
    );

    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "poison",
        database_url: &db.url,
        idle_secs: Some(3),
        extra: vec![],
    });
    assert!(
        daemon.wait(Duration::from_secs(120)).success(),
        "{}",
        daemon.log_text()
    );

    let client = db.client().await;
    let rows = client
        .query("SELECT src_offset, reason, detail, octet_length(raw) FROM rejected_records ORDER BY src_offset", &[])
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (0, "invalid_json".to_string()),
            (1, "payload_too_large".to_string()),
            (2, "invalid_json".to_string()),
            (3, "invalid_json".to_string()),
            (4, "unknown_record_type".to_string()),
            (5, "invalid_value".to_string()),
        ]
    );
    assert!(
        rows[2].get::<_, String>(2).contains("recursion"),
        "nested JSON detail: {}",
        rows[2].get::<_, String>(2)
    );
    assert_eq!(
        rows[1].get::<_, i32>(3) as usize,
        huge_len,
        "the raw bytes of the big payload are kept whole"
    );

    let usage: Vec<i64> = client
        .query("SELECT src_offset FROM usage_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        usage,
        vec![6],
        "only the valid record behind the poison was accepted"
    );
    let s = stats(&db.url, "poison");
    assert_eq!(s["partitions"][0]["stored_offset"], 7);
    assert_eq!(s["totals"]["consumed"], 7);
    assert_eq!(s["totals"]["suspense"], 0);
    assert_eq!(
        end_offsets(&format!("{topic}.rejected"))
            .values()
            .sum::<i64>(),
        6,
        "every reject published"
    );
    assert_eq!(s["balanced"], true);
}

/// A record Postgres refuses for good (here a CHECK constraint the test adds) in the middle
/// of a batch of thousands: it is found, rejected as storage_refused with the SQLSTATE and
/// its raw bytes, and every other record of the batch commits; the outputs are published
/// for what committed only.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_postgres_refuses_is_rejected_and_the_rest_of_its_batch_commits() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.refused", 1).await;
    let out = import_customers(
        &db,
        "0612345678,Test Refused,basic,Rabat-Sale-Kenitra,no,2020-01-01,500\n",
    );
    assert!(out.contains("1 added"), "{out}");
    db.client()
        .await
        .batch_execute(
            "ALTER TABLE usage_events ADD CONSTRAINT no_refused_ids CHECK (record_id <> 'refused-1500')",
        )
        .await
        .unwrap();

    let payload = |i: usize| {
        let id = if i == 1500 {
            "refused-1500".to_string()
        } else {
            format!("call-{i}")
        };
        format!(
            r#"{{"record_id":"{id}","record_type":"voice","timestamp":"2026-09-10T10:{:02}:{:02}","caller_id":"0612345678","callee_id":"0698765432","duration_sec":30,"cell_id":"RABAT_1","technology":"4G"}}"#,
            (i / 60) % 60,
            i % 60
        )
        .into_bytes()
    };
    let records: Vec<(Option<&[u8]>, Vec<u8>)> = (0..3000)
        .map(|i| (Some(&b"212612345678"[..]), payload(i)))
        .collect();
    produce_raw(&topic, 0, &records);

    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "refused",
        database_url: &db.url,
        idle_secs: Some(3),
        extra: vec![
            "--batch-size".into(),
            "5000".into(),
            "--batch-linger-ms".into(),
            "2000".into(),
        ],
    });
    assert!(
        daemon.wait(Duration::from_secs(120)).success(),
        "{}",
        daemon.log_text()
    );

    let client = db.client().await;
    let usage: i64 = client
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(usage, 2999, "every other record of the batch is stored");
    let rows = client
        .query(
            "SELECT src_offset, reason, detail, raw FROM rejected_records",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), 1500);
    assert_eq!(rows[0].get::<_, String>(1), "storage_refused");
    let detail: String = rows[0].get(2);
    assert!(
        detail.contains("SQLSTATE 23514") && detail.contains("no_refused_ids"),
        "{detail}"
    );
    assert_eq!(rows[0].get::<_, Vec<u8>>(3), payload(1500));
    let s = stats(&db.url, "refused");
    assert_eq!(s["totals"]["rejected"]["storage_refused"], 1);
    assert_eq!(s["totals"]["accepted"], 2999);
    assert_eq!(s["balanced"], true);
    assert_stored_offsets_at_end(&s, &topic);
    // Published once, for what committed: the trial writes publish nothing.
    let published = |t: String| end_offsets(&t).values().sum::<i64>();
    assert_eq!(published(format!("{topic}.normalized")), 2999);
    assert_eq!(published(format!("{topic}.rejected")), 1);
    assert!(
        daemon.log_text().contains("rejected as storage_refused"),
        "{}",
        daemon.log_text()
    );
}

/// `--publish` chooses the outputs: without `normalized`, accepted events are stored but
/// not published, and rejects still are; the unpublished topic is not even created.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_outputs_asked_for_are_published() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.outputs", 1).await;
    let out = import_customers(
        &db,
        "0612345678,Test Outputs,basic,Rabat-Sale-Kenitra,no,2020-01-01,500\n",
    );
    assert!(out.contains("1 added"), "{out}");
    let valid = |i: usize| {
        format!(
            r#"{{"record_id":"out-{i}","record_type":"voice","timestamp":"2026-09-10T10:00:{:02}","caller_id":"0612345678","callee_id":"0698765432","duration_sec":30,"cell_id":"RABAT_1","technology":"4G"}}"#,
            i % 60
        )
        .into_bytes()
    };
    let mut records: Vec<(Option<&[u8]>, Vec<u8>)> = (0..20).map(|i| (None, valid(i))).collect();
    records.push((None, b"not json".to_vec()));
    records.push((None, b"[]".to_vec()));
    produce_raw(&topic, 0, &records);

    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "outputs",
        database_url: &db.url,
        idle_secs: Some(3),
        extra: vec!["--publish".into(), "rejected,alerts".into()],
    });
    assert!(
        daemon.wait(Duration::from_secs(120)).success(),
        "{}",
        daemon.log_text()
    );
    let s = stats(&db.url, "outputs");
    assert_eq!(s["totals"]["accepted"], 20, "{s}");
    let published = |t: String| end_offsets(&t).values().sum::<i64>();
    assert_eq!(published(format!("{topic}.rejected")), 2);
    let topics = list_topics();
    assert!(
        !topics.contains(&format!("{topic}.normalized")),
        "{topics:?}"
    );
}

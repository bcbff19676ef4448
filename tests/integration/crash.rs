use crate::helpers::*;
use rand::Rng;
use std::time::Duration;

/// A fingerprint of everything the pipeline stored, comparable across databases.
async fn content(db: &TestDb, group: &str) -> Vec<(String, String)> {
    let client = db.client().await;
    let mut out = Vec::new();
    for (name, sql) in [
        ("usage", "SELECT count(*)::text || ':' || md5(string_agg(record_id || '@' || src_partition || '/' || src_offset, ',' ORDER BY record_id)) FROM usage_events"),
        ("usage_amounts", "SELECT count(DISTINCT record_id)::text || ':' || coalesce(sum(duration_sec), 0) || ':' || coalesce(sum(volume_bytes), 0) FROM usage_events"),
        ("rejects", "SELECT count(*)::text || ':' || md5(string_agg(src_partition || '/' || src_offset || '=' || reason, ',' ORDER BY src_partition, src_offset)) FROM rejected_records"),
        ("suspense", "SELECT count(*)::text || ':' || md5(string_agg(record_id, ',' ORDER BY record_id)) FROM suspense_records"),
    ] {
        let v: Option<String> = client.query_one(sql, &[]).await.unwrap().get(0);
        out.push((name.to_string(), v.unwrap_or_default()));
    }
    let s = stats(&db.url, group);
    out.push(("totals".into(), s["totals"].to_string()));
    out.push((
        "offsets".into(),
        s["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}={}", p["partition"], p["stored_offset"]))
            .collect::<Vec<_>>()
            .join(","),
    ));
    out
}

/// SIGKILL at random moments while records stream in; after the last restart the
/// database holds exactly what one uninterrupted run produces.
#[tokio::test(flavor = "multi_thread")]
async fn killing_the_daemon_at_random_moments_loses_and_doubles_nothing() {
    let crashed = TestDb::new().await;
    let reference = TestDb::new().await;
    let topic = topic("cdr.raw.crash", 3).await;

    // Traffic arrives while the daemon is being killed: 60,000 records at 2,000/s.
    let gen = spawn_generate(
        &topic,
        &crashed.url,
        60_000,
        5,
        vec!["--rate".into(), "2000".into()],
    );
    // The reference database needs the same customers: same seed, same pool.
    let pool = cdrflow::generator::customer_pool(5, 500);
    cdrflow::storage::customers::upsert(
        &reference.client().await,
        &pool,
        cdrflow::storage::customers::OnExisting::Keep,
    )
    .await
    .unwrap();

    let mut rng = rand::rng();
    let config = DaemonConfig {
        topic: &topic,
        group: "crashy",
        database_url: &crashed.url,
        idle_secs: None,
        extra: ["--batch-size", "700", "--kafka-session-timeout-ms", "2000"]
            .map(String::from)
            .to_vec(),
    };
    let mut progress = Vec::new();
    let mut mid_stream_kills = 0;
    while mid_stream_kills < 5 && progress.len() < 12 {
        let mut daemon = Daemon::start(&config);
        // Kill at a random moment while it consumes: once this life has committed
        // something (joining the group first waits out the killed member's session).
        let born = std::time::Instant::now();
        while daemon
            .metric("cdrflow_records_consumed_total")
            .unwrap_or(0.0)
            == 0.0
        {
            assert!(
                daemon.alive(),
                "daemon died by itself: {}",
                daemon.log_text()
            );
            assert!(
                born.elapsed() < Duration::from_secs(60),
                "no progress: {}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        assert!(
            daemon.alive(),
            "daemon died by itself: {}",
            daemon.log_text()
        );
        let streaming = !gen.is_finished();
        daemon.kill9();
        let consumed = stats(&crashed.url, "crashy")["totals"]["consumed"]
            .as_i64()
            .unwrap_or(0);
        if streaming && consumed < 60_000 {
            mid_stream_kills += 1;
        }
        progress.push(consumed);
    }
    gen.join().unwrap();
    // The kills really happened while records were streaming in, with progress between.
    assert!(
        mid_stream_kills >= 5,
        "only {mid_stream_kills} kills landed mid-stream: {progress:?}"
    );
    assert!(
        progress.windows(2).filter(|w| w[1] > w[0]).count() >= 3,
        "too little progress between kills: {progress:?}"
    );

    let mut last = Daemon::start(&DaemonConfig {
        idle_secs: Some(4),
        ..config
    });
    assert!(
        last.wait(Duration::from_secs(300)).success(),
        "{}",
        last.log_text()
    );

    // Its own Kafka group: in the crashed runs' group it could be handed only part of
    // the partitions before its idle timeout (seen once: one partition of three).
    let mut clean = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "crashy-clean",
        database_url: &reference.url,
        idle_secs: Some(4),
        extra: vec![],
    });
    assert!(
        clean.wait(Duration::from_secs(300)).success(),
        "{}",
        clean.log_text()
    );

    let a = content(&crashed, "crashy").await;
    let b = content(&reference, "crashy-clean").await;
    assert_eq!(a, b, "crashed run differs from the uninterrupted run");
    let s = stats(&crashed.url, "crashy");
    assert_eq!(s["totals"]["consumed"], 60_000);
    assert_eq!(s["balanced"], true);
    assert_stored_offsets_at_end(&s, &topic);
}

use crate::helpers::*;
use std::time::Duration;

async fn versions(db: &TestDb) -> Vec<(i32, String)> {
    db.client()
        .await
        .query(
            "SELECT version, label FROM catalog_versions ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Applying: a broken file is refused naming each place and stores nothing; the same
/// file twice stores one version; a changed file is the next version and is what
/// `catalog show` prints.
#[tokio::test(flavor = "multi_thread")]
async fn catalog_versions_are_checked_stored_and_shown() {
    let db = TestDb::without_catalog().await;
    let dir = tempdir();
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        DEFAULT_CATALOG
            .replacen("peak = \"0.90\"", "peak = \"-0.90\"", 1)
            .replacen("from = \"08:00\"", "from = \"07:30\"", 1)
            .replacen("zone = \"intl-gulf\"", "zone = \"intl-moon\"", 1),
    )
    .unwrap();
    let (code, _, err) = cdrflow(&[
        "catalog",
        "apply",
        broken.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 1, "{err}");
    for place in [
        "plans[basic].tariffs[voice/domestic].prices.peak: must not be negative",
        "bands[1] (offpeak): overlaps band \"peak\" on mon 07:30–08:00",
        "plans[basic].tariffs[voice/intl-moon]: unknown zone \"intl-moon\"",
        "plans[basic]: no price for voice in zone \"intl-gulf\"",
    ] {
        assert!(err.contains(place), "missing {place:?} in:\n{err}");
    }
    assert!(
        versions(&db).await.is_empty(),
        "a refused catalog stores nothing"
    );

    let good = dir.join("default.toml");
    std::fs::write(&good, DEFAULT_CATALOG).unwrap();
    let (code, out, err) = cdrflow(&[
        "catalog",
        "apply",
        good.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied as version 1"), "{out}");
    let (_, out, _) = cdrflow(&[
        "catalog",
        "apply",
        good.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert!(out.contains("already the active version 1"), "{out}");
    let changed = dir.join("changed.toml");
    std::fs::write(
        &changed,
        DEFAULT_CATALOG.replacen(
            "label = \"Atlas Telecom default catalog 2026-11\"",
            "label = \"December prices\"",
            1,
        ),
    )
    .unwrap();
    let (_, out, _) = cdrflow(&[
        "catalog",
        "apply",
        changed.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert!(out.contains("applied as version 2"), "{out}");
    assert_eq!(
        versions(&db).await,
        vec![
            (1, "Atlas Telecom default catalog 2026-11".into()),
            (2, "December prices".into())
        ]
    );
    let (code, out, _) = cdrflow(&["catalog", "show", "--database-url", &db.url]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("catalog version 2 — December prices"),
        "{out}"
    );
    assert!(out.contains("basic.voice.domestic"), "{out}");
    let (_, out, _) = cdrflow(&[
        "catalog",
        "show",
        "--version",
        "1",
        "--source",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(
        out, DEFAULT_CATALOG,
        "the stored source is the file as applied"
    );
    let tariffs: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM catalog_tariffs WHERE version = 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // 4 plans × (7 voice + 7 sms + 3 data) tariffs × 3 bands.
    assert_eq!(tariffs, 4 * 17 * 3);

    // A catalog without a plan customers are on is refused.
    db.client()
        .await
        .execute(
            "INSERT INTO customers (msisdn, name, plan, activated_on) VALUES ('+212612345678', 'A', 'student', '2020-01-01')",
            &[],
        )
        .await
        .unwrap();
    let no_student = dir.join("no-student.toml");
    let start = DEFAULT_CATALOG
        .find("[[plans]]\ncode = \"student\"")
        .unwrap();
    let end = DEFAULT_CATALOG
        .find("[[plans]]\ncode = \"business\"")
        .unwrap();
    std::fs::write(
        &no_student,
        format!("{}{}", &DEFAULT_CATALOG[..start], &DEFAULT_CATALOG[end..]),
    )
    .unwrap();
    let (code, _, err) = cdrflow(&[
        "catalog",
        "apply",
        no_student.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("customers are on plans it does not have: student (1 customer(s))"),
        "{err}"
    );
    assert_eq!(versions(&db).await.len(), 2);
}

/// The daemon will not price anything without a catalog: it says so and exits non-zero.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_refuses_to_start_without_a_catalog() {
    let db = TestDb::without_catalog().await;
    let topic = topic("cdr.raw.nocatalog", 1).await;
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "nocatalog",
        database_url: &db.url,
        idle_secs: Some(2),
        extra: vec![],
    });
    let status = daemon.wait(Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        daemon
            .log_text()
            .contains("no rating catalog has been applied"),
        "{}",
        daemon.log_text()
    );
}

/// `explain` shows the received record, its normalization and the arithmetic, and
/// checks it against the stored amount.
#[tokio::test(flavor = "multi_thread")]
async fn explain_shows_how_a_stored_price_was_made() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.explain", 1).await;
    db.client()
        .await
        .execute("INSERT INTO customers (msisdn, name, plan, activated_on) VALUES ('+212612345678', 'Salma Berrada', 'student', '2020-01-01')", &[])
        .await
        .unwrap();
    // Friday 19:59:40 local (UTC+1), 45 s on student (30/30): charged 60 s, laid from
    // 19:59:40: 20 s peak (0.60 × 20/60 = 0.200000) + 40 s offpeak (0.30 × 40/60 = 0.200000).
    let raw = br#"{"record_type":"voice","record_id":"MSC1-777","timestamp":"2026-10-09T19:59:40","caller_id":"0612345678","callee_id":"0661000000","duration_sec":45,"cell_id":"FES_3","technology":"3G"}"#;
    produce_raw(&topic, 0, &[(None, raw.to_vec())]);
    drain(&db.url, &topic, "explain");
    let (code, out, err) = cdrflow(&[
        "explain",
        "MSC1-777",
        "--database-url",
        &db.url,
        "--brokers",
        &brokers(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "Customer 1 (Salma Berrada), +212612345678",
        std::str::from_utf8(raw).unwrap(),
        "cell FES_3 → Fes / Fes-Meknes, 3G",
        "Tariff student.voice.domestic: plan student, zone domestic (domestic), billing period 2026-10",
        "Duration 45 s, charged 60 s under 30/30",
        "peak     from Fri 2026-10-09 19:59:40 +01 20 s × 0.60 MAD/min ÷ 60 = 0.200000",
        "offpeak  from Fri 2026-10-09 20:00:00 +01 40 s × 0.30 MAD/min ÷ 60 = 0.200000",
        "Amount 0.400000 MAD",
        "= the stored amount 0.400000 ✓",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let (code, _, err) = cdrflow(&[
        "explain",
        "no-such-id",
        "--database-url",
        &db.url,
        "--no-broker",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no stored event has record_id \"no-such-id\""),
        "{err}"
    );
}

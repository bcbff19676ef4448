use crate::helpers::*;
use std::time::Duration;

/// With `--close-after-days`, the daemon closes and invoices a month by itself once the
/// grace has passed (September 2026 is long over), and a `bill` by hand afterwards finds
/// nothing left to do.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_closes_a_month_after_its_grace_period() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.biller", 2).await;
    generate(&topic, &db, 3_000, 5, &[]);
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "biller",
        database_url: &db.url,
        // Long enough for the Biller (every 5 s) to see the month after its rows exist.
        idle_secs: Some(12),
        extra: vec!["--close-after-days".into(), "3".into()],
    });
    let status = daemon.wait(Duration::from_secs(120));
    assert!(status.success(), "daemon failed: {}", daemon.log_text());

    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT closed_at IS NOT NULL, billed_at IS NOT NULL, invoices
               FROM billing_periods WHERE period = '2026-09-01'",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "September is closed");
    assert!(row.get::<_, bool>(1), "September is invoiced");
    let active: i64 = client
        .query_one(
            "SELECT count(*) FROM customers WHERE activated_on <= '2026-09-30'
                OR customer_id IN (SELECT customer_id FROM usage_buckets WHERE period = '2026-09-01')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(active > 0);
    assert_eq!(row.get::<_, Option<i32>>(2), Some(active as i32));
    let invoices: i64 = client
        .query_one(
            "SELECT count(*) FROM invoices WHERE period = '2026-09-01'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(invoices, active);
    // Every September event is billed once: on September's invoices, or (if it was
    // committed after the Biller closed the month) as late usage owed afterwards.
    let row = client
        .query_one(
            "SELECT (SELECT sum(amount) FROM usage_events WHERE period = '2026-09-01'),
                    (SELECT sum(l.rated) FROM invoice_lines l JOIN invoices i USING (number)
                      WHERE i.period = '2026-09-01' AND l.kind = 'usage'),
                    (SELECT COALESCE(sum(delta), 0) FROM rating_adjustments
                      WHERE kind = 'late' AND period = '2026-09-01')",
            &[],
        )
        .await
        .unwrap();
    let (events, invoiced, late): (
        rust_decimal::Decimal,
        rust_decimal::Decimal,
        rust_decimal::Decimal,
    ) = (row.get(0), row.get(1), row.get(2));
    assert!(events > rust_decimal::Decimal::ZERO);
    assert_eq!(events, invoiced + late);
    let issued_metric = daemon.log_text().contains("Invoices issued.");
    assert!(issued_metric, "the Biller logs what it issued");

    let (code, out, err) = cdrflow(&["bill", "--period", "2026-09", "--database-url", &db.url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("was closed (0 invoices issued now"), "{out}");
}

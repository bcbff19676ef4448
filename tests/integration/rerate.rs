//! `cdrflow replay --rerate` against the real database, broker and daemon, where it meets
//! billing: pricing a stored event again with the catalog it was priced with changes
//! nothing, late events of closed periods included; a period being closed and its events
//! being priced again never interleave; and a rerate replay prices with the catalog
//! active when it was asked for, even if the running daemon has not seen it yet.

use crate::helpers::*;
use rust_decimal::Decimal;

/// `cdrflow bill --period PERIOD` on `db`, which must succeed.
fn bill(db: &TestDb, period: &str) {
    let (code, out, err) = cdrflow(&["bill", "--period", period, "--database-url", &db.url]);
    assert_eq!(code, 0, "bill {period} failed:\n{out}{err}");
}

/// Everything a rerate with an unchanged catalog must leave as it is: every usage row,
/// every adjustment, every bucket and every invoice line.
async fn books(client: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT count(*)::text || ':' || md5(string_agg(u::text, ',' ORDER BY record_id))
           FROM usage_events u",
        "SELECT count(*)::text || ':' || coalesce(md5(string_agg(
                (record_id, customer_id, period, catalog_version, old_amount, new_amount,
                 delta, in_place, kind, billed_on)::text, ',' ORDER BY id)), '')
           FROM rating_adjustments",
        "SELECT count(*)::text || ':' || md5(string_agg(b::text, ',' ORDER BY customer_id,
                period, tariff_id, band, catalog_version))
           FROM usage_buckets b",
        "SELECT count(*)::text || ':' || md5(string_agg(l::text, ',' ORDER BY number, line_no))
           FROM invoice_lines l",
    ] {
        out.push(client.query_one(sql, &[]).await.unwrap().get(0));
    }
    out
}

/// The stored amount of the record at `offset` of `topic`, the sum of its adjustments and
/// their number.
async fn late_call(
    client: &tokio_postgres::Client,
    topic: &str,
    offset: i64,
) -> (Decimal, Decimal, i64) {
    let r = client
        .query_one(
            "SELECT u.amount, coalesce(sum(a.delta), 0), count(a.id)
               FROM usage_events u LEFT JOIN rating_adjustments a USING (record_id)
              WHERE u.src_topic = $1 AND u.src_offset = $2
              GROUP BY u.record_id, u.amount",
            &[&topic, &offset],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// A call that arrived after its month was billed is owed, as a late adjustment, at its
/// price. Replaying the topic with --rerate and the catalog it was priced with, twice,
/// leaves it owed at its price and changes nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerate_with_an_unchanged_catalog_leaves_a_late_call_owed_at_its_price() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.reratelate", 1).await;
    let group = &format!("rerate-late-{}", suffix());
    generate(&topic, &db, 400, 41, &[]);
    drain(&db.url, &topic, group);
    bill(&db, "2026-09");
    let client = db.client().await;
    let msisdn: String = client
        .query_one(
            "SELECT msisdn FROM customers ORDER BY customer_id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let late = serde_json::json!({"record_type": "voice", "timestamp": "2026-09-30T10:00:00+01:00",
        "caller_id": msisdn, "callee_id": "+212661234567", "duration_sec": 125,
        "cell_id": "CASABLANCA_1", "technology": "4G"});
    let offset = end_offsets(&topic)[&0];
    produce_raw(&topic, 0, &[(None, serde_json::to_vec(&late).unwrap())]);
    drain(&db.url, &topic, group);

    let (amount, owed, adjustments) = late_call(&client, &topic, offset).await;
    assert!(amount > Decimal::ZERO);
    assert_eq!((owed, adjustments), (amount, 1), "owed once, at its price");
    let before = books(&client).await;

    for round in 1..=2 {
        replay_ok(&db, &topic, group, &["--to-offset", "0", "--rerate"]);
        drain(&db.url, &topic, group);
        let (_, owed, _) = late_call(&client, &topic, offset).await;
        assert_eq!(
            owed, amount,
            "the late call is still owed at its price (round {round})"
        );
        assert_eq!(
            books(&client).await,
            before,
            "nothing changed (round {round})"
        );
    }
    let rerated: i64 = client
        .query_one(
            "SELECT coalesce(sum(records), 0)::int8 FROM pipeline_counters
              WHERE group_id = $1 AND outcome = 'duplicate'",
            &[group],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rerated > 0, "the replays went through the stored events");
}

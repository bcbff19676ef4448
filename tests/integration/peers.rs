//! Peers outside every assigned range: accepted, priced by their country code, stored,
//! explained and counted as unverified, on the direct path and through suspense.

use crate::helpers::*;
use rust_decimal::Decimal;

/// `+44` and nine digits: the shape of an E.164 number and a British country code, but in
/// no range the British plan lists.
const UNASSIGNED_GB: &str = "+44123456789";

fn call(id: &str, caller: &str, callee: &str) -> Vec<u8> {
    // Monday 5 October 2026, 10:00 local: peak. 60 s.
    format!(r#"{{"record_type":"voice","record_id":"{id}","timestamp":"2026-10-05T10:00:00","caller_id":"{caller}","callee_id":"{callee}","duration_sec":60,"cell_id":"RABAT_1","technology":"4G"}}"#).into_bytes()
}

/// What a stored usage row says about its peer and price.
async fn stored(
    client: &tokio_postgres::Client,
    id: &str,
) -> Option<(String, String, String, bool, String, Decimal)> {
    client
        .query_opt(
            "SELECT peer_msisdn, peer_country, peer_class, peer_unverified, zone, amount
               FROM usage_events WHERE record_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
}

/// A call to `+44` and nine digits no British range holds is priced in Great Britain's
/// international zone and stored flagged; `explain` says the number is unverified and
/// data_quality counts it. A callee that is no number at all is still refused. A held
/// record with such a peer keeps the flag when its subscriber appears.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_to_a_number_in_no_assigned_range_is_billed_by_its_country_and_flagged() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.peers", 1).await;
    import_customers(
        &db,
        "0612345678,Salma Berrada,basic,Rabat-Sale-Kenitra,no,2019-03-01,2000\n",
    );
    produce_raw(
        &topic,
        0,
        &[
            (None, call("P-1", "0612345678", UNASSIGNED_GB)),
            (None, call("P-2", "0612345678", "abcde")),
            // An unknown subscriber: held until imported.
            (None, call("P-3", "0699000001", UNASSIGNED_GB)),
        ],
    );
    drain(&db.url, &topic, "peers");
    let client = db.client().await;

    // Basic, intl-europe (GB), 60/60, peak 4.00 MAD/min: 60 s → 4.000000.
    let gb = |unverified| {
        Some((
            UNASSIGNED_GB.to_string(),
            "GB".to_string(),
            "international".to_string(),
            unverified,
            "intl-europe".to_string(),
            "4.000000".parse::<Decimal>().unwrap(),
        ))
    };
    assert_eq!(stored(&client, "P-1").await, gb(true));
    assert_eq!(stored(&client, "P-2").await, None);
    let rejected: Vec<String> = client
        .query("SELECT reason FROM rejected_records", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rejected, vec!["malformed_number".to_string()]);
    let logged: i64 = client
        .query_one(
            "SELECT sum(unverified_peers)::bigint FROM committed_batches",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1, "one accepted record has an unverified peer");

    let (code, out, err) = cdrflow(&["explain", "P-1", "--database-url", &db.url, "--no-broker"]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "peer +44123456789 (international, GB, unverified number)",
        "Tariff basic.voice.intl-europe: plan basic, zone intl-europe",
        "= the stored amount 4.000000 ✓",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }

    client
        .execute("SELECT report_refresh('Africa/Casablanca')", &[])
        .await
        .unwrap();
    let quality: Vec<(i64, i64)> = client
        .query(
            "SELECT accepted, unverified_peers FROM report_data_quality",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(quality, vec![(1, 1)]);

    // The held record keeps its flag through suspense resolution.
    let out = import_customers(
        &db,
        "0699000001,Nadia Alaoui,basic,Rabat-Sale-Kenitra,no,2019-03-01,2000\n",
    );
    assert!(out.contains("suspense: 1 record(s) rated"), "{out}");
    assert_eq!(stored(&client, "P-3").await, gb(true));
}

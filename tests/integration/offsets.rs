//! Stored offsets the broker's log does not contain. A recreated topic holds its partition
//! until `cdrflow replay` resumes it: nothing of it is consumed or skipped meanwhile.
//! Records deleted on the broker before they were read are recorded as a gap, shown by
//! `cdrflow stats`, and the partition goes on from the log start.

use crate::helpers::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::time::Duration;

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    cdrflow::kafka::client::base_config(&KafkaSettings::plaintext(brokers))
        .create()
        .unwrap()
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

fn consumed(db: &TestDb, group: &str) -> i64 {
    stats(&db.url, group)["totals"]["consumed"]
        .as_i64()
        .unwrap()
}

fn log_bounds(brokers: &str, topic: &str) -> (i64, i64) {
    let consumer: BaseConsumer =
        cdrflow::kafka::client::base_config(&KafkaSettings::plaintext(brokers))
            .set("group.id", "cdrflow-test-watermarks")
            .create()
            .unwrap();
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap()
}

#[tokio::test]
async fn a_recreated_topic_holds_its_partition_until_a_replay_resumes_it() {
    let db = TestDb::new().await;
    let topic = topic("recreated", 1).await;
    let group = format!("recreated-{}", suffix());
    generate(&topic, &db, 1000, 1, &[]);
    drain(&db.url, &topic, &group);
    assert_eq!(stored_offsets(&db.url, &group)[&0], 1000);

    for result in admin(&brokers())
        .delete_topics(&[&topic], &options())
        .await
        .unwrap()
    {
        result.expect("delete the topic");
    }
    cdrflow::kafka::client::ensure_topics(&kafka(), &[&topic], 1)
        .await
        .unwrap();
    wait_for(
        "the topic to be empty again",
        Duration::from_secs(30),
        || log_bounds(&brokers(), &topic) == (0, 0),
    );
    generate(&topic, &db, 600, 2, &[]);
    assert_eq!(log_bounds(&brokers(), &topic).1, 600);

    // A run that ends when idle consumes nothing of the held partition and fails.
    let mut d = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: &group,
        database_url: &db.url,
        idle_secs: Some(3),
        extra: vec![],
    });
    let status = d.wait(Duration::from_secs(120));
    let log = d.log_text();
    assert!(!status.success(), "a held partition fails the run:\n{log}");
    assert!(
        log.contains("Stored offset 1000") && log.contains("log end 600"),
        "the ERROR names the offsets:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "cdrflow replay --group {group} --topic {topic} --partitions 0 --to-offset N"
        )),
        "the ERROR says what to run:\n{log}"
    );
    assert_eq!(consumed(&db, &group), 1000, "nothing consumed while held");
    assert_eq!(stored_offsets(&db.url, &group)[&0], 1000);

    // A running daemon is not ready while the partition is held...
    let mut d = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: &group,
        database_url: &db.url,
        idle_secs: None,
        extra: vec![],
    });
    d.wait_up();
    wait_for("the partition to be held", Duration::from_secs(60), || {
        d.metric("cdrflow_held_partitions") == Some(1.0)
    });
    assert_eq!(d.get("/readyz").map(|(status, _)| status), Some(503));
    assert_eq!(
        d.metric("cdrflow_offset_anomalies_total{kind=\"beyond_end\"}"),
        Some(1.0)
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(consumed(&db, &group), 1000, "nothing consumed while held");

    // ...and takes up the operator's replay without a restart.
    replay_ok(&db, &topic, &group, &["--to-offset", "0"]);
    wait_for(
        "the new records to be consumed",
        Duration::from_secs(120),
        || consumed(&db, &group) == 1600,
    );
    wait_for("the daemon to be ready", Duration::from_secs(30), || {
        d.get("/readyz").map(|(status, _)| status) == Some(200)
    });
    assert_eq!(d.metric("cdrflow_held_partitions"), Some(0.0));
    d.stop();
    let s = stats(&db.url, &group);
    assert_eq!(s["balanced"], true, "{s:#}");
    assert_eq!(s["lost_records"], 0);
    assert_stored_offsets_at_end(&s, &topic);
}

#[tokio::test]
async fn records_deleted_before_they_were_read_are_a_recorded_gap_and_the_rest_is_consumed() {
    let db = TestDb::new().await;
    let mut broker = OwnBroker::start();
    let topic = format!("gap.{}", suffix());
    let group = format!("gap-{}", suffix());
    let mut created = false;
    for _ in 0..20 {
        let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1))
            .set("cleanup.policy", "delete")
            .set("retention.ms", "3600000");
        match admin(&broker.address)
            .create_topics(&[new], &options())
            .await
        {
            Ok(results) if results.iter().all(|r| r.is_ok()) => {
                created = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    assert!(created, "create the topic on the test's own broker");

    // 300 records two hours old (past the topic's one-hour retention), then 200 recent.
    let producer: ThreadedProducer<DefaultProducerContext> =
        cdrflow::kafka::client::base_config(&KafkaSettings::plaintext(&broker.address))
            .create()
            .unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let payload = br#"{"record_type":"ping"}"#;
    for (count, age_ms) in [(300, 2 * 3_600_000), (200, 0)] {
        for _ in 0..count {
            producer
                .send(
                    BaseRecord::<(), [u8]>::to(&topic)
                        .payload(&payload[..])
                        .partition(0)
                        .timestamp(now_ms - age_ms),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }
    drop(producer);
    assert_eq!(log_bounds(&broker.address, &topic), (0, 500));
    broker.restart();
    wait_for(
        "retention to delete the old records",
        Duration::from_secs(60),
        || log_bounds(&broker.address, &topic) == (300, 500),
    );

    let mut d = Daemon::start_on(
        &broker.address,
        &DaemonConfig {
            topic: &topic,
            group: &group,
            database_url: &db.url,
            idle_secs: Some(3),
            extra: vec!["--no-publish".into()],
        },
    );
    let status = d.wait(Duration::from_secs(120));
    let log = d.log_text();
    assert!(status.success(), "a gap does not stop the run:\n{log}");
    assert!(
        log.contains("deleted on the broker before they were read"),
        "the gap is logged:\n{log}"
    );

    let s = stats(&db.url, &group);
    assert_eq!(s["totals"]["consumed"], 200, "{s:#}");
    assert_eq!(s["totals"]["rejected"]["unknown_record_type"], 200);
    assert_eq!(s["partitions"][0]["stored_offset"], 500);
    assert_eq!(s["lost_records"], 300);
    assert_eq!(s["partitions"][0]["lost_records"], 300);
    assert_eq!(s["balanced"], false, "lost records never balance");
    let gaps = s["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0]["topic"], topic.as_str());
    assert_eq!(gaps[0]["partition"], 0);
    assert_eq!(gaps[0]["from_offset"], 0);
    assert_eq!(gaps[0]["to_offset"], 300);

    let (code, table, _) = cdrflow(&["stats", "--database-url", &db.url, "--group", &group]);
    assert_eq!(code, 3, "stats fails while records are lost:\n{table}");
    assert!(
        table.contains("partition 0: offsets 0..300 (300 records)"),
        "{table}"
    );

    // Running again records nothing twice.
    let mut d = Daemon::start_on(
        &broker.address,
        &DaemonConfig {
            topic: &topic,
            group: &group,
            database_url: &db.url,
            idle_secs: Some(3),
            extra: vec!["--no-publish".into()],
        },
    );
    assert!(
        d.wait(Duration::from_secs(120)).success(),
        "{}",
        d.log_text()
    );
    let s = stats(&db.url, &group);
    assert_eq!(s["gaps"].as_array().unwrap().len(), 1);
    assert_eq!(s["totals"]["consumed"], 200);
}

use crate::helpers::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .env(
            "CDRFLOW_DATABASE_URL",
            "postgres://secret-user:hunter2@127.0.0.1:5432/x",
        )
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn an_unknown_flag_is_named_and_exits_non_zero() {
    let (code, text) = run(&["run", "--bathc-size", "10"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("--bathc-size"), "{text}");
}

#[test]
fn an_out_of_range_value_names_the_setting() {
    let (code, text) = run(&["run", "--max-inflight", "0"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("--max-inflight"), "{text}");
}

#[test]
fn an_unknown_time_zone_or_region_is_refused_before_starting() {
    let (code, text) = run(&["run", "--timezone", "Mars/Olympus"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("--timezone"), "{text}");
    let (code, text) = run(&["run", "--default-region", "XX"]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("--default-region") && text.contains("XX"),
        "{text}"
    );
}

#[test]
fn help_never_shows_the_database_password() {
    let (code, text) = run(&["run", "--help"]);
    assert_eq!(code, Some(0));
    assert!(text.contains("--database-url"));
    assert!(!text.contains("hunter2"), "{text}");
}

/// SIGTERM: stop fetching, finish and commit what is in flight, exit 0; the stored state
/// is whole (every consumed record has an outcome, offsets match what was committed).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_work_and_exits_zero() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.sigterm", 2).await;
    generate(&topic, &db, 30_000, 3, &[]);
    let mut daemon = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "term",
        database_url: &db.url,
        idle_secs: None,
        extra: vec!["--batch-size".into(), "500".into()],
    });
    let started = Instant::now();
    while daemon
        .metric("cdrflow_records_consumed_total")
        .unwrap_or(0.0)
        < 1000.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(60));
    assert!(status.success(), "exit {status:?}: {}", daemon.log_text());
    assert!(
        daemon.log_text().contains("All in-flight batches finished"),
        "{}",
        daemon.log_text()
    );

    let s = stats(&db.url, "term");
    assert_eq!(s["balanced"], true);
    let client = db.client().await;
    // The committed batches of each partition form one unbroken chain from offset 0 to
    // the stored offset, and their records add up to it: nothing skipped, nothing twice.
    let broken: i64 = client
        .query_one(
            "SELECT count(*) FROM (
                 SELECT from_offset, to_offset, lag(to_offset, 1, 0::bigint) OVER (PARTITION BY partition ORDER BY from_offset) AS prev
                   FROM committed_batches WHERE group_id = 'term') c
              WHERE from_offset <> prev OR to_offset <= from_offset",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(broken, 0, "committed batches do not chain");
    let mismatched: i64 = client
        .query_one(
            "SELECT count(*) FROM consumer_offsets o
              WHERE o.group_id = 'term' AND o.next_offset <> (SELECT coalesce(sum(records), 0) FROM committed_batches b
                    WHERE b.group_id = o.group_id AND b.topic = o.topic AND b.partition = o.partition)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        mismatched, 0,
        "stored offsets differ from the records committed"
    );
    // And the next run picks up exactly there and finishes the stream.
    let mut again = Daemon::start(&DaemonConfig {
        topic: &topic,
        group: "term",
        database_url: &db.url,
        idle_secs: Some(4),
        extra: vec![],
    });
    assert!(again.wait(Duration::from_secs(120)).success());
    assert_eq!(stats(&db.url, "term")["totals"]["consumed"], 30_000);
}

/// `cdrflow` in a directory holding `cdrflow.toml` with `text`.
fn run_with_settings_file(
    text: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Option<i32>, String) {
    let dir = tempdir();
    std::fs::write(dir.join("cdrflow.toml"), text).unwrap();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(&dir)
        .env_remove("CDRFLOW_DATABASE_URL")
        .env_remove("CDRFLOW_CONFIG")
        .env_remove("CDRFLOW_GROUP")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn a_bad_settings_file_is_named_and_exits_2_before_anything_starts() {
    let (code, text) = run_with_settings_file("batch_sise = 10\n", &[], &["run"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("cdrflow.toml: unknown setting `batch_sise`"),
        "{text}"
    );
    let (code, text) = run_with_settings_file("max_inflight = 0\n", &[], &["run"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("`max_inflight`") && text.contains("0 is not in 1..=32"),
        "{text}"
    );
    let (code, text) = run_with_settings_file(
        "database_url = \"postgres://billing:hunter2@127.0.0.1:1/x\"\n",
        &[],
        &["run", "--help"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn the_settings_file_is_used_and_the_environment_and_flags_override_it() {
    let db = TestDb::new().await;
    // The file's database is the test database: `stats` reads it, for the file's group.
    let file = format!("database_url = \"{}\"\ngroup = \"from-file\"\n", db.url);
    let group_of = |text: &str| -> String {
        let json = &text[text.find('{').unwrap_or_else(|| panic!("no JSON: {text}"))..];
        let v: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"));
        v["group"]
            .as_str()
            .unwrap_or_else(|| panic!("no group: {text}"))
            .to_string()
    };
    let (code, text) = run_with_settings_file(&file, &[], &["stats", "--format", "json"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(group_of(&text), "from-file");
    // The environment beats the file, and a flag beats both.
    let env = [("CDRFLOW_GROUP", "from-env")];
    let (code, text) = run_with_settings_file(&file, &env, &["stats", "--format", "json"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(group_of(&text), "from-env");
    let (code, text) = run_with_settings_file(
        &file,
        &env,
        &["stats", "--format", "json", "--group", "from-flag"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(group_of(&text), "from-flag");
    // The flag's database (nothing listens there) is the one tried: a connection error,
    // after the settings were accepted (status 1, not 2).
    let (code, text) = run_with_settings_file(
        &file,
        &[],
        &[
            "stats",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/none",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(!text.contains(&db.name), "{text}");
}

#[tokio::test]
async fn a_report_piped_into_a_reader_that_stops_early_ends_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let db = TestDb::new().await;
    let mut child = Command::new(BIN)
        .args(["stats", "--format", "json", "--database-url", &db.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before the report is written, as `| head -0` would be.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

//! What every integration test needs: its own database (random name, migrated, dropped
//! at the end), its own topics on the real broker, and the real `cdrflow` binary driven as
//! a user drives it.

use cdrflow::generator::GeneratorReport;
pub use cdrflow::kafka::KafkaSettings;
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cdrflow");

pub fn brokers() -> String {
    std::env::var("CDRFLOW_TEST_BROKERS").expect("CDRFLOW_TEST_BROKERS is not set: run the tests through scripts/test.sh, which starts a broker")
}

/// The suite's broker as a Kafka client reaches it (plaintext).
pub fn kafka() -> KafkaSettings {
    KafkaSettings::plaintext(brokers())
}

fn admin_url() -> String {
    std::env::var("CDRFLOW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn suffix() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// The catalog cdrflow ships, which every test database starts with.
pub const DEFAULT_CATALOG: &str = include_str!("../../catalog/default.toml");

/// A database of its own, migrated, with the shipped catalog applied; dropped when the
/// test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let db = TestDb::without_catalog().await;
        let mut client = db.client().await;
        cdrflow::storage::catalog::apply(&mut client, DEFAULT_CATALOG)
            .await
            .expect("apply the shipped catalog");
        db
    }

    /// Migrated, but no catalog applied yet.
    pub async fn without_catalog() -> TestDb {
        let name = format!("cdrflow_test_{}", suffix());
        let url = with_dbname(&admin_url(), &name);
        cdrflow::storage::migrate(&url)
            .await
            .expect("migrate the test database");
        TestDb { name, url }
    }

    /// Migrated up to `version` only: the schema an older cdrflow left.
    pub async fn at_migration(version: i32) -> TestDb {
        let name = format!("cdrflow_test_{}", suffix());
        let url = with_dbname(&admin_url(), &name);
        cdrflow::storage::migrate_to(&url, Some(version))
            .await
            .expect("migrate the test database");
        TestDb { name, url }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        cdrflow::storage::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// The same database reached through another host:port (a proxy).
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{}", self.name)
    }
}

fn with_dbname(url: &str, name: &str) -> String {
    match url.rfind('/') {
        Some(i) => format!("{}/{}", &url[..i], name),
        None => panic!("database URL without a path: {url}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        as_admin_from_drop(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

/// Run `sql` on the server's `postgres` database, best effort, from a `Drop`: what a test
/// made on the server (its database, a role) goes when the test ends, failed or not.
pub fn as_admin_from_drop(sql: String) {
    let admin = admin_url();
    // Drop runs inside the test's runtime; a thread of its own may block.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if let Ok(client) = cdrflow::storage::connect(&admin).await {
                let _ = client.batch_execute(&sql).await;
            }
        })
    })
    .join();
}

/// A topic of its own with `partitions` partitions.
pub async fn topic(prefix: &str, partitions: i32) -> String {
    let name = format!("{prefix}.{}", suffix());
    // A broker that has just started may refuse the first admin request.
    for attempt in 1.. {
        match cdrflow::kafka::client::ensure_topics(&kafka(), &[&name], partitions).await {
            Ok(()) => break,
            Err(e) if attempt < 10 => {
                eprintln!("create topic {name}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("create topic {name}: {e}"),
        }
    }
    name
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run `cdrflow generate` to Kafka (500 customers written to `database_url`, September
/// 2026 traffic) and read its report.
pub fn generate(
    topic: &str,
    db: &TestDb,
    count: u64,
    seed: u64,
    extra: &[&str],
) -> GeneratorReport {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    spawn_generate(topic, &db.url, count, seed, extra)
        .join()
        .expect("generator thread")
}

/// The same in the background, for traffic that streams in while a test acts.
pub fn spawn_generate(
    topic: &str,
    database_url: &str,
    count: u64,
    seed: u64,
    extra: Vec<String>,
) -> std::thread::JoinHandle<GeneratorReport> {
    let report = tempdir().join("report.json");
    let mut args: Vec<String> = vec![
        "generate".into(),
        "--brokers".into(),
        brokers(),
        "--topic".into(),
        topic.into(),
        "--count".into(),
        count.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--database-url".into(),
        database_url.into(),
        "--report".into(),
        report.display().to_string(),
        "--start".into(),
        "2026-09-01".into(),
        "--days".into(),
        "30".into(),
    ];
    if !extra.iter().any(|a| a == "--customers") {
        args.extend(["--customers".into(), "500".into()]);
    }
    args.extend(extra);
    std::thread::spawn(move || {
        let out = Command::new(BIN)
            .args(&args)
            .output()
            .expect("run cdrflow generate");
        assert!(
            out.status.success(),
            "generate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
    })
}

pub fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cdrflow-test-{}", suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `cdrflow run`.
pub struct Daemon {
    pub child: Child,
    pub http_port: u16,
    pub log: PathBuf,
}

pub struct DaemonConfig<'a> {
    pub topic: &'a str,
    pub group: &'a str,
    pub database_url: &'a str,
    pub idle_secs: Option<u64>,
    pub extra: Vec<String>,
}

impl Daemon {
    pub fn start(cfg: &DaemonConfig<'_>) -> Daemon {
        Daemon::start_on(&brokers(), cfg)
    }

    /// The same against the broker at `brokers` instead of the suite's.
    pub fn start_on(brokers: &str, cfg: &DaemonConfig<'_>) -> Daemon {
        Daemon::start_with_env(brokers, cfg, &[])
    }

    /// The same with more environment variables.
    pub fn start_with_env(brokers: &str, cfg: &DaemonConfig<'_>, env: &[(&str, &str)]) -> Daemon {
        let http_port = free_port();
        let log = tempdir().join("daemon.log");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--brokers".into(),
            brokers.into(),
            "--topic".into(),
            cfg.topic.into(),
            "--group".into(),
            cfg.group.into(),
            "--database-url".into(),
            cfg.database_url.into(),
            "--http".into(),
            format!("127.0.0.1:{http_port}"),
            "--normalized-topic".into(),
            format!("{}.normalized", cfg.topic),
            "--rejected-topic".into(),
            format!("{}.rejected", cfg.topic),
        ];
        if let Some(idle) = cfg.idle_secs {
            args.extend(["--exit-when-idle".into(), idle.to_string()]);
        }
        args.extend(cfg.extra.iter().cloned());
        let child = Command::new(BIN)
            .args(&args)
            .env("RUST_LOG", "info")
            // The tests' traffic is dated September 2026 whatever the day they run; a test
            // of the age limit passes --max-event-age-days, which overrides this.
            .env("CDRFLOW_MAX_EVENT_AGE_DAYS", "36500")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn cdrflow run");
        Daemon {
            child,
            http_port,
            log,
        }
    }

    /// Wait until `/healthz` answers: the daemon is up and serving HTTP.
    pub fn wait_up(&mut self) {
        let started = Instant::now();
        while self.get("/healthz").map(|(s, _)| s) != Some(200) {
            assert!(self.alive(), "daemon died: {}", self.log_text());
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "daemon not up: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait for the daemon to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "daemon did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the daemon must drain and exit 0 within a minute.
    pub fn stop(&mut self) {
        self.signal("TERM");
        assert!(
            self.wait(Duration::from_secs(60)).success(),
            "{}",
            self.log_text()
        );
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path on the daemon's HTTP port: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path)
    }

    /// The value of one metric sample (exact line prefix match on name+labels).
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        metric_value(&body, sample)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric_value(body: &str, sample: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Run `cdrflow stats --format json`.
pub fn stats(database_url: &str, group: &str) -> serde_json::Value {
    let out: Output = Command::new(BIN)
        .args([
            "stats",
            "--format",
            "json",
            "--database-url",
            database_url,
            "--group",
            group,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(3),
        "stats failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stats JSON")
}

/// The next offset the group has stored per partition (`cdrflow stats`), to compare
/// with [`end_offsets`].
pub fn stored_offsets(database_url: &str, group: &str) -> std::collections::BTreeMap<i32, i64> {
    stats(database_url, group)["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap() as i32,
                p["stored_offset"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

/// Every topic the broker has.
pub fn list_topics() -> Vec<String> {
    let consumer: BaseConsumer = cdrflow::kafka::client::base_config(&kafka())
        .set("group.id", "cdrflow-test-watermarks")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

/// End offsets of every partition of a topic, as the broker reports them.
pub fn end_offsets(topic: &str) -> std::collections::BTreeMap<i32, i64> {
    let consumer: BaseConsumer = cdrflow::kafka::client::base_config(&kafka())
        .set("group.id", "cdrflow-test-watermarks")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    partitions
        .into_iter()
        .map(|p| {
            (
                p,
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap()
                    .1,
            )
        })
        .collect()
}

/// Produce raw payloads to one partition, allowing messages up to 8 MB.
pub fn produce_raw(topic: &str, partition: i32, payloads: &[(Option<&[u8]>, Vec<u8>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        cdrflow::kafka::client::base_config(&kafka())
            .set("message.max.bytes", "8000000")
            .create()
            .unwrap();
    for (key, payload) in payloads {
        let mut r = BaseRecord::to(topic).payload(payload).partition(partition);
        if let Some(k) = key {
            r = r.key(*k);
        }
        producer.send(r).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Every partition's stored offset (from `cdrflow stats`) is the topic's end offset.
pub fn assert_stored_offsets_at_end(stats: &serde_json::Value, topic: &str) {
    let ends = end_offsets(topic);
    let partitions = stats["partitions"].as_array().expect("stats partitions");
    assert_eq!(partitions.len(), ends.len(), "stats cover every partition");
    for p in partitions {
        let partition = p["partition"].as_i64().unwrap() as i32;
        assert_eq!(
            p["stored_offset"], ends[&partition],
            "partition {partition} stored offset"
        );
    }
}

/// Run the `cdrflow` binary as a user would: exit code, stdout, stderr.
pub fn cdrflow(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run the daemon on `topic` until it has been idle a few seconds; it must exit 0.
pub fn drain(database_url: &str, topic: &str, group: &str) {
    let mut d = Daemon::start(&DaemonConfig {
        topic,
        group,
        database_url,
        idle_secs: Some(3),
        extra: vec![],
    });
    assert!(
        d.wait(Duration::from_secs(300)).success(),
        "daemon failed: {}",
        d.log_text()
    );
}

/// `cdrflow replay` on `db`, `topic` and `group` with `args` added: (exit code, stdout,
/// stderr).
pub fn replay(db: &TestDb, topic: &str, group: &str, args: &[&str]) -> (i32, String, String) {
    let brokers = brokers();
    let mut all = vec![
        "replay",
        "--database-url",
        &db.url,
        "--topic",
        topic,
        "--group",
        group,
        "--brokers",
        &brokers,
    ];
    all.extend(args);
    cdrflow(&all)
}

/// A replay that must succeed: its output.
pub fn replay_ok(db: &TestDb, topic: &str, group: &str, args: &[&str]) -> String {
    let (code, out, err) = replay(db, topic, group, args);
    assert_eq!(code, 0, "replay {args:?} failed:\n{out}{err}");
    out
}

/// Wait for `cond`, failing with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A GET whose body is kept as bytes: (status, lower-case headers, body).
pub fn get_bytes(
    port: u16,
    path: &str,
) -> (u16, std::collections::BTreeMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end in {raw:?}"));
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line in {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

/// `cdrflow customers import` of CSV rows (after the header line), which must succeed;
/// its output.
pub fn import_customers(db: &TestDb, rows: &str) -> String {
    let csv = tempdir().join("customers.csv");
    std::fs::write(
        &csv,
        format!("msisdn,name,plan,region,student,activated_on,credit_limit\n{rows}"),
    )
    .unwrap();
    let (code, out, err) = cdrflow(&[
        "customers",
        "import",
        csv.to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    out
}

/// A TCP proxy in front of PostgreSQL that can be switched off: while off, its port
/// refuses connections and every open connection is cut.
pub struct PgProxy {
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
    stalled: tokio::sync::watch::Sender<bool>,
}

impl PgProxy {
    pub async fn start() -> PgProxy {
        let port = free_port();
        let (up, up_rx) = tokio::sync::watch::channel(true);
        let (stalled, stalled_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(proxy(port, up_rx, stalled_rx));
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PgProxy { port, up, stalled }
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// A network that silently drops everything: connections stay open and nothing
    /// passes either way, so a query waits for an answer that never comes. Stalled
    /// connections are closed when the stall ends.
    pub fn stall(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
    }
}

async fn proxy(
    port: u16,
    mut up: tokio::sync::watch::Receiver<bool>,
    stalled: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if !*up.borrow() {
            if up.changed().await.is_err() {
                return;
            }
            continue;
        }
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { continue };
                    let (mut cut, mut stall) = (up.clone(), stalled.clone());
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", 5432)).await else { return };
                        if !*stall.borrow() {
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                                _ = cut.wait_for(|up| !*up) => return,
                                _ = stall.wait_for(|s| *s) => {}
                            }
                        }
                        // Stalled: both sockets held open, nothing read or written.
                        tokio::select! {
                            _ = stall.wait_for(|s| !*s) => {}
                            _ = cut.wait_for(|up| !*up) => {}
                        }
                    });
                }
                changed = up.changed() => {
                    if changed.is_err() { return; }
                    if !*up.borrow() { break; }
                }
            }
        }
        // Leaving the loop drops the listener: the port now refuses connections.
    }
}

/// A tansu broker of the test's own, on sqlite storage in a folder of its own, that can
/// be restarted on the same port with the same data, as an operator restarts a broker
/// (tansu also applies a topic's retention when it starts).
pub struct OwnBroker {
    dir: PathBuf,
    pub address: String,
    child: Option<Child>,
}

impl OwnBroker {
    pub fn start() -> OwnBroker {
        let mut broker = OwnBroker {
            dir: tempdir(),
            address: format!("127.0.0.1:{}", free_port()),
            child: None,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let url = format!("tcp://{}", self.address);
        // Appended, so the log of every life of the broker is kept.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let child = Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_for("the broker to listen", Duration::from_secs(60), || {
            std::net::TcpStream::connect(&self.address).is_ok()
        });
    }

    /// SIGTERM (SIGKILL if it lingers past 10 s), then the same broker again.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let asked = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if asked.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.spawn();
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

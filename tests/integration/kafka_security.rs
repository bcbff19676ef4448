//! Kafka over SASL and TLS against a real broker: each test starts its own tansu (with
//! `--authentication` where it needs SASL, users made by `tansu user create`) and, for
//! TLS, stunnel in front of it with a certificate of the test's own CA (tansu's own TLS
//! listener is not wired in the version used). `cdrflow generate` and `cdrflow run` are
//! driven as an operator drives them, the password given through a `_file` setting.

use crate::certs::{Issued, TestCa};
use crate::helpers::*;
use cdrflow::generator::GeneratorReport;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const USER: &str = "cdrflow-billing";
const PASSWORD: &str = "pa55-Secret-q7Zx";

/// A tansu of the test's own, and stunnel in front of it when it speaks TLS.
struct SecureBroker {
    dir: PathBuf,
    tansu: Option<Child>,
    stunnel: Option<Child>,
    /// What clients bootstrap from: tansu itself, or stunnel.
    address: String,
}

impl SecureBroker {
    /// A broker that requires SASL when `users` are given (created with their SCRAM
    /// mechanism, `scram256` or `scram512`), and is reached through TLS with `tls`.
    fn start(users: &[(&str, &str, &str)], tls: Option<&Issued>) -> SecureBroker {
        let dir = tempdir();
        let port = free_port();
        let tansu_address = format!("127.0.0.1:{port}");
        // Through stunnel, the broker advertises stunnel's address, so that the client
        // keeps talking TLS after the first metadata answer; `localhost`, a name the
        // certificate holds.
        let address = match tls {
            Some(_) => format!("localhost:{}", free_port()),
            None => tansu_address.clone(),
        };
        let mut broker = SecureBroker {
            dir,
            tansu: None,
            stunnel: None,
            address,
        };
        if !users.is_empty() {
            // Users are made while the broker still answers unauthenticated requests
            // (`tansu user create` does not authenticate), then it is restarted on the
            // same storage requiring SASL.
            broker.spawn_tansu(port, false);
            for (name, password, mechanism) in users {
                let out = Command::new("tansu")
                    .args([
                        "user",
                        "create",
                        "--broker",
                        &format!("tcp://{tansu_address}"),
                        "--mechanism",
                        mechanism,
                        name,
                        password,
                    ])
                    .output()
                    .expect("run tansu user create");
                assert!(
                    out.status.success(),
                    "tansu user create: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            broker.stop_tansu();
        }
        broker.spawn_tansu(port, !users.is_empty());
        if let Some(issued) = tls {
            broker.spawn_stunnel(&tansu_address, issued);
        }
        broker
    }

    fn spawn_tansu(&mut self, port: u16, authentication: bool) {
        let listener = format!("tcp://127.0.0.1:{port}");
        let advertised = format!("tcp://{}", self.address);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let mut args = vec![
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &advertised,
            "--storage-engine",
            "sqlite://tansu.db",
        ];
        if authentication {
            args.push("--authentication");
        }
        self.tansu = Some(
            Command::new("tansu")
                .args(&args)
                .current_dir(&self.dir)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start tansu (scripts/test.sh installs it)"),
        );
        wait_for("tansu to listen", Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn stop_tansu(&mut self) {
        if let Some(mut child) = self.tansu.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn spawn_stunnel(&mut self, tansu: &str, issued: &Issued) {
        let accept = self.address.replace("localhost", "127.0.0.1");
        let config = self.dir.join("stunnel.conf");
        std::fs::write(
            &config,
            format!(
                "foreground = yes\npid =\n[kafka]\naccept = {accept}\nconnect = {tansu}\ncert = {}\nkey = {}\n",
                issued.cert.display(),
                issued.key.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.join("stunnel.log")).unwrap();
        self.stunnel = Some(
            Command::new("stunnel4")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start stunnel4 (scripts/test.sh installs it)"),
        );
        wait_for("stunnel to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&accept).is_ok()
        });
    }

    fn logs(&self) -> String {
        ["tansu.log", "stunnel.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        for child in [self.stunnel.take(), self.tansu.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A file holding `content` and a newline, as a secret store writes it.
fn secret_file(content: &str) -> PathBuf {
    let path = tempdir().join("secret");
    std::fs::write(&path, format!("{content}\n")).unwrap();
    path
}

/// The flags of SASL with `mechanism` over `protocol`, the password left to the caller.
fn sasl_flags(protocol: &str, mechanism: &str) -> Vec<String> {
    [
        "--kafka-security-protocol",
        protocol,
        "--kafka-sasl-mechanism",
        mechanism,
        "--kafka-sasl-username",
        USER,
    ]
    .map(String::from)
    .to_vec()
}

fn tls_flags(ca: &Path) -> Vec<String> {
    vec![
        "--kafka-security-protocol".into(),
        "ssl".into(),
        "--kafka-ssl-ca".into(),
        ca.display().to_string(),
    ]
}

/// `cdrflow generate` of `count` records to `topic` on `broker` with `flags` and `env`:
/// (exit code, stderr, the report if it succeeded).
fn generate_on(
    broker: &str,
    topic: &str,
    db: &TestDb,
    count: u64,
    flags: &[String],
    env: &[(&str, &str)],
) -> (i32, String, Option<GeneratorReport>) {
    let report = tempdir().join("report.json");
    let out = Command::new(BIN)
        .args([
            "generate",
            "--brokers",
            broker,
            "--topic",
            topic,
            "--count",
            &count.to_string(),
            "--seed",
            "5",
            "--customers",
            "500",
            "--database-url",
            &db.url,
            "--report",
            &report.display().to_string(),
            "--start",
            "2026-09-01",
            "--days",
            "30",
            "--partitions",
            "2",
        ])
        .args(flags)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .output()
        .expect("run cdrflow generate");
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report =
        (code == 0).then(|| serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap());
    (code, stderr, report)
}

/// Run the daemon on `broker` until idle and check it stored exactly what was sent; its
/// log and `/metrics` never show `secret`.
fn run_and_reconcile(
    broker: &str,
    topic: &str,
    db: &TestDb,
    report: &GeneratorReport,
    flags: Vec<String>,
    env: &[(&str, &str)],
    secret: Option<&str>,
) {
    let mut daemon = Daemon::start_with_env(
        broker,
        &DaemonConfig {
            topic,
            group: "billing",
            database_url: &db.url,
            idle_secs: Some(4),
            extra: flags,
        },
        env,
    );
    daemon.wait_up();
    let (_, metrics) = daemon.get("/metrics").expect("/metrics answers");
    let status = daemon.wait(Duration::from_secs(180));
    let log = daemon.log_text();
    assert!(status.success(), "daemon failed: {log}");
    if let Some(secret) = secret {
        assert!(!log.contains(secret), "the log shows the password: {log}");
        assert!(!metrics.contains(secret), "/metrics shows the password");
    }
    let t = stats(&db.url, "billing")["totals"].clone();
    assert_eq!(t["consumed"], report.sent, "consumed");
    assert_eq!(t["accepted"], report.expected.accepted, "accepted");
    assert_eq!(t["duplicates"], report.expected.duplicates, "duplicates");
}

#[tokio::test(flavor = "multi_thread")]
async fn records_flow_over_sasl_scram_with_the_password_read_from_a_file() {
    let broker = SecureBroker::start(
        &[
            (USER, PASSWORD, "scram512"),
            ("cdrflow-256", PASSWORD, "scram256"),
        ],
        None,
    );
    let db = TestDb::new().await;
    let topic = format!("cdr.raw.sasl.{}", suffix());
    let password = secret_file(PASSWORD);
    let env = [(
        "CDRFLOW_KAFKA_SASL_PASSWORD_FILE",
        password.to_str().unwrap(),
    )];
    let flags = sasl_flags("sasl_plaintext", "SCRAM-SHA-512");
    let (code, stderr, report) = generate_on(&broker.address, &topic, &db, 2000, &flags, &env);
    assert_eq!(code, 0, "generate failed: {stderr}\n{}", broker.logs());
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    run_and_reconcile(
        &broker.address,
        &topic,
        &db,
        &report.unwrap(),
        flags,
        &env,
        Some(PASSWORD),
    );

    // SCRAM-SHA-256 as well, for a user made with it.
    let mut flags = sasl_flags("sasl_plaintext", "SCRAM-SHA-256");
    flags[5] = "cdrflow-256".into();
    let (code, stderr, _) = generate_on(&broker.address, &topic, &db, 10, &flags, &env);
    assert_eq!(code, 0, "generate with SCRAM-SHA-256 failed: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_scram_password_stops_with_an_authentication_error_that_does_not_show_it() {
    let broker = SecureBroker::start(&[(USER, PASSWORD, "scram512")], None);
    let db = TestDb::new().await;
    let topic = format!("cdr.raw.sasl.{}", suffix());
    let wrong = "wrong-Pa55-k3Yq";
    let mut flags = sasl_flags("sasl_plaintext", "SCRAM-SHA-512");
    flags.extend(["--kafka-sasl-password".into(), wrong.into()]);
    let (code, stderr, _) = generate_on(&broker.address, &topic, &db, 10, &flags, &[]);
    assert_ne!(code, 0, "generate succeeded with a wrong password");
    assert!(
        stderr.to_lowercase().contains("authentication"),
        "the error does not say authentication: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains(wrong), "the password shows: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_does_not_authenticate_is_refused_by_a_sasl_broker() {
    let broker = SecureBroker::start(&[(USER, PASSWORD, "scram512")], None);
    let db = TestDb::new().await;
    let topic = format!("cdr.raw.sasl.{}", suffix());
    let (code, stderr, _) = generate_on(&broker.address, &topic, &db, 10, &[], &[]);
    assert_ne!(code, 0, "generate succeeded without SASL: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn records_flow_over_tls_checked_against_the_test_ca() {
    let ca = TestCa::new("kafka");
    let issued = ca.issue("broker", &["localhost", "127.0.0.1"]);
    let broker = SecureBroker::start(&[], Some(&issued));
    let db = TestDb::new().await;
    let topic = format!("cdr.raw.tls.{}", suffix());
    let flags = tls_flags(&ca.cert_file());
    let (code, stderr, report) = generate_on(&broker.address, &topic, &db, 2000, &flags, &[]);
    assert_eq!(code, 0, "generate failed: {stderr}\n{}", broker.logs());
    run_and_reconcile(
        &broker.address,
        &topic,
        &db,
        &report.unwrap(),
        flags,
        &[],
        None,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_certificate_from_another_ca_is_refused() {
    let ca = TestCa::new("kafka");
    let issued = ca.issue("broker", &["localhost", "127.0.0.1"]);
    let broker = SecureBroker::start(&[], Some(&issued));
    let other = TestCa::new("other");
    let db = TestDb::new().await;
    let topic = format!("cdr.raw.tls.{}", suffix());
    let (code, stderr, _) = generate_on(
        &broker.address,
        &topic,
        &db,
        10,
        &tls_flags(&other.cert_file()),
        &[],
    );
    assert_ne!(code, 0, "generate trusted a certificate of another CA");
    assert!(
        stderr.contains("certificate verify failed"),
        "the error does not name the certificate: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_flow_over_sasl_ssl() {
    let ca = TestCa::new("kafka");
    let issued = ca.issue("broker", &["localhost", "127.0.0.1"]);
    let broker = SecureBroker::start(&[(USER, PASSWORD, "scram512")], Some(&issued));
    let db = TestDb::new().await;
    let topic = format!("cdr.raw.sasl-ssl.{}", suffix());
    let password = secret_file(PASSWORD);
    let settings = tempdir().join("cdrflow.toml");
    std::fs::write(
        &settings,
        format!(
            "kafka_sasl_password_file = {:?}\nkafka_ssl_ca = {:?}\n",
            password.display().to_string(),
            ca.cert_file().display().to_string()
        ),
    )
    .unwrap();
    let env = [("CDRFLOW_CONFIG", settings.to_str().unwrap())];
    let flags = sasl_flags("sasl_ssl", "SCRAM-SHA-512");
    let (code, stderr, report) = generate_on(&broker.address, &topic, &db, 2000, &flags, &env);
    assert_eq!(code, 0, "generate failed: {stderr}\n{}", broker.logs());
    run_and_reconcile(
        &broker.address,
        &topic,
        &db,
        &report.unwrap(),
        flags,
        &env,
        Some(PASSWORD),
    );
}

/// `cdrflow generate` to the suite's broker with the settings file `text`: (exit code,
/// stderr).
fn generate_with_settings(text: &str, extra: &[&str]) -> (i32, String) {
    let settings = tempdir().join("cdrflow.toml");
    std::fs::write(&settings, text).unwrap();
    let topic = format!("cdr.raw.passthrough.{}", suffix());
    let out = Command::new(BIN)
        .args(["generate", "--brokers", &brokers(), "--topic", &topic])
        .args(["--count", "10", "--partitions", "1"])
        .args(extra)
        .env("CDRFLOW_CONFIG", &settings)
        .output()
        .expect("run cdrflow generate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_passthrough_property_cdrflow_sets_or_librdkafka_does_not_know_stops_with_status_2() {
    let (code, stderr) =
        generate_with_settings("[kafka]\n\"bootstrap.servers\" = \"elsewhere:9092\"\n", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`bootstrap.servers` is cdrflow's `brokers` setting"),
        "{stderr}"
    );
    let (code, stderr) = generate_with_settings("", &["--kafka-property", "group.id=other"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`group.id`"), "{stderr}");
    let (code, stderr) = generate_with_settings("[kafka]\n\"fetch.max.byts\" = 1\n", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("No such configuration property: \"fetch.max.byts\""),
        "{stderr}"
    );
    let (code, stderr) = generate_with_settings("", &["--kafka-property", "acks=1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`acks` is set by cdrflow itself"),
        "{stderr}"
    );
    let (code, stderr) = generate_with_settings("", &["--kafka-property", "compression.type=zip"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("compression.type"), "{stderr}");
    // Properties cdrflow does not set pass through.
    let (code, stderr) = generate_with_settings(
        "[kafka]\n\"client.id\" = \"cdrflow-billing\"\n\"compression.type\" = \"lz4\"\n",
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
}

//! Who reaches what on a running daemon: with a token set, every `/api/*` route and the
//! invoice documents answer 401 with a bearer challenge unless the request carries it;
//! the probes and `/metrics` stay open, on `--http` or on `--metrics-http`; a daemon
//! asked to serve the API on a non-loopback address without a token refuses to start
//! unless told `--insecure-no-auth`; the token shows nowhere.

use crate::helpers::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "tok-3f9a1c0b7e2d4a68";

/// GET with an optional bearer token: (status, lower-case headers, body).
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end"));
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

fn start(db: &TestDb, topic: &str, group: &str, extra: &[&str]) -> Daemon {
    let mut d = Daemon::start_with_env(
        &brokers(),
        &DaemonConfig {
            topic,
            group,
            database_url: &db.url,
            idle_secs: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        },
        &[("CDRFLOW_API_TOKEN", TOKEN)],
    );
    let port = d.http_port;
    wait_up_on(&mut d, port);
    d
}

/// Until the daemon answers on `port`: `/healthz` there, or the API's 401 where the probes
/// are not served.
fn wait_up_on(d: &mut Daemon, port: u16) {
    let started = Instant::now();
    while http_get(port, "/healthz").map(|(s, _)| s) != Some(200)
        && http_get(port, "/api/openapi.json").map(|(s, _)| s) != Some(401)
    {
        assert!(d.alive(), "daemon died: {}", d.log_text());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "daemon not up: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every way in to the API without the right token is a 401 with a bearer challenge and
/// a JSON error; with it, the same requests are served.
fn assert_only_the_token_opens(port: u16, paths: &[String]) {
    for path in paths {
        for token in [None, Some("wrong-token"), Some(&TOKEN[..TOKEN.len() - 1])] {
            let (status, headers, body) = get(port, path, token);
            assert_eq!(status, 401, "GET {path} with {token:?}");
            assert_eq!(
                headers.get("www-authenticate").map(String::as_str),
                Some("Bearer realm=\"cdrflow\""),
                "GET {path}"
            );
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(error["error"].is_string(), "GET {path}: {error}");
        }
        let (status, _, body) = get(port, path, Some(TOKEN));
        assert_eq!(
            status,
            200,
            "GET {path} with the token: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// The token guards the billing API, the reports, the drill-down and the invoice
/// documents; `/healthz`, `/readyz`, `/metrics` and the dashboard's shell stay open;
/// with `--metrics-http` the probes move to their own port and are gone from the API's.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_and_invoice_documents_need_the_bearer_token_while_the_probes_stay_open() {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.access", 2).await;
    generate(&topic, &db, 1_000, 71, &[]);
    let group = format!("access-{}", suffix());
    let mut d = start(&db, &topic, &group, &["--no-publish"]);
    let ends = end_offsets(&topic);
    wait_for("the records to be stored", Duration::from_secs(120), || {
        stored_offsets(&db.url, &group) == ends
    });
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT customer_id, record_id FROM usage_events ORDER BY record_id LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (customer, record): (i64, String) = (row.get(0), row.get(1));
    let api = [
        format!("/api/customers/{customer}/usage?period=2026-09"),
        format!("/api/customers/{customer}"),
        format!("/api/customers/{customer}/events?period=2026-09"),
        format!("/api/events/{record}/explain"),
        "/api/invoices?period=2026-09".into(),
        "/api/reports".into(),
        "/api/reports/kpis?period=2026-09".into(),
        "/api/reports/revenue_by_region?format=csv".into(),
        "/api/filters".into(),
        "/api/openapi.json".into(),
        "/api/metrics".into(),
    ];
    assert_only_the_token_opens(d.http_port, &api);
    // Also a path no route serves: the door is in front of the whole /api tree.
    assert_eq!(get(d.http_port, "/api/nothing-here", None).0, 401);
    assert_eq!(get(d.http_port, "/api/nothing-here", Some(TOKEN)).0, 404);
    for open in ["/healthz", "/readyz", "/metrics", "/", "/assets/app.js"] {
        assert_eq!(get(d.http_port, open, None).0, 200, "GET {open}");
    }
    let (_, _, metrics) = get(d.http_port, "/metrics", None);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("cdrflow_api_requests_refused_total{reason=\"unauthorized\"}"),
        "{metrics}"
    );
    assert!(
        metric_value(
            &metrics,
            "cdrflow_api_requests_refused_total{reason=\"unauthorized\"}"
        )
        .unwrap()
            >= (api.len() * 3) as f64
    );
    assert!(!metrics.contains(TOKEN), "the token is in /metrics");
    d.stop();

    let (code, out, err) = cdrflow(&["bill", "--period", "2026-09", "--database-url", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    let number: String = client
        .query_one("SELECT number FROM invoices ORDER BY number LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);

    // The probes on a listener of their own.
    let probes = free_port();
    let probes_addr = format!("127.0.0.1:{probes}");
    let mut d = start(
        &db,
        &topic,
        &group,
        &["--no-publish", "--metrics-http", &probes_addr],
    );
    wait_up_on(&mut d, probes);
    assert_only_the_token_opens(
        d.http_port,
        &[
            format!("/api/invoices/{number}.pdf"),
            format!("/api/invoices/{number}.json"),
            "/api/metrics".into(),
        ],
    );
    let (_, headers, pdf) = get(
        d.http_port,
        &format!("/api/invoices/{number}.pdf"),
        Some(TOKEN),
    );
    assert_eq!(headers["content-type"], "application/pdf");
    assert!(pdf.starts_with(b"%PDF"));
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(
            get(probes, path, None).0,
            200,
            "GET {path} on --metrics-http"
        );
        assert_eq!(get(d.http_port, path, None).0, 404, "GET {path} on --http");
    }
    // Only the probes there.
    assert_eq!(get(probes, "/api/filters", Some(TOKEN)).0, 404);
    assert_eq!(get(probes, "/", None).0, 404);
    // The dashboard still reads the pipeline's figures, through the API.
    let (_, _, text) = get(d.http_port, "/api/metrics", Some(TOKEN));
    assert!(String::from_utf8(text)
        .unwrap()
        .contains("cdrflow_records_consumed_total"));
    d.stop();
    assert!(!d.log_text().contains(TOKEN), "the token is in the log");

    // Nor in --help, whichever way it is given.
    let help = Command::new(BIN)
        .args(["run", "--help"])
        .env("CDRFLOW_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--api-token"), "{help}");
    assert!(!help.contains(TOKEN), "{help}");
    let file = tempdir().join("cdrflow.toml");
    std::fs::write(&file, format!("api_token = \"{TOKEN}\"\n")).unwrap();
    let help = Command::new(BIN)
        .args(["run", "--help", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--api-token"), "{help}");
    assert!(
        !help.contains(TOKEN),
        "the settings file's token in --help: {help}"
    );
}

/// `--http` on every interface without a token: exit status 2 and an error that names
/// both ways out; with `--insecure-no-auth` the daemon starts and warns.
#[tokio::test(flavor = "multi_thread")]
async fn an_api_on_a_non_loopback_address_without_a_token_needs_insecure_no_auth() {
    let port = free_port();
    let everywhere = format!("0.0.0.0:{port}");
    let (code, out, err) = cdrflow(&["run", "--http", &everywhere, "--brokers", &brokers()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!("--http {everywhere} is not a loopback address"))
            && err.contains("--api-token")
            && err.contains("--insecure-no-auth"),
        "{err}"
    );
    // The environment and an empty token are no way around it.
    let out = Command::new(BIN)
        .args(["run", "--http", &everywhere])
        .env("CDRFLOW_API_TOKEN", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--api-token"));

    let db = TestDb::new().await;
    let topic = topic("cdr.raw.insecure", 1).await;
    let log = tempdir().join("daemon.log");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--http",
            &everywhere,
            "--insecure-no-auth",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--group",
            "insecure",
            "--database-url",
            &db.url,
            "--no-publish",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http_get(port, "/api/filters").map(|(s, _)| s) != Some(200) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(started.elapsed() < Duration::from_secs(60), "not up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("without a token")),
        "{text}"
    );
}

//! The built-in dashboard in a real browser: two generated, rated and billed months and
//! month-to-date usage of the current one, served by a running daemon while records keep
//! flowing in, and `tests/browser/dashboard.mjs` driving Debian's Chromium through every
//! page, the filters, the drill-down to an event's explanation, the CSV and PDF links
//! and a phone-width layout, on a daemon with an API token that the page asks for. It
//! writes the screenshots to `target/screenshots`.

use crate::helpers::*;
use chrono::{Datelike, Duration as Days, Utc};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const SEED: &str = "29";
/// The API token of the daemon the browser looks at.
const TOKEN: &str = "dashboard-7c41e2b95d0a3f86";
const CHROMIUM: &str = "/usr/bin/chromium";
const SCREENSHOTS: &[&str] = &[
    "token.png",
    "overview.png",
    "revenue.png",
    "customers.png",
    "services.png",
    "billing.png",
    "pipeline.png",
    "region.png",
    "customer.png",
    "invoice.png",
    "event.png",
    "overview-billed.png",
    "overview-phone.png",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cdrflow generate` of the test's 500 customers (the same seed gives the same ones as
/// `helpers::generate`) over `days` days from `start`, with its default anomaly mix.
fn generate_args(topic: &str, db: &TestDb, count: u64, start: &str, days: i64) -> Vec<String> {
    [
        "generate",
        "--brokers",
        &brokers(),
        "--topic",
        topic,
        "--count",
        &count.to_string(),
        "--seed",
        SEED,
        "--customers",
        "500",
        "--database-url",
        &db.url,
        "--start",
        start,
        "--days",
        &days.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn generate_now(args: &[String]) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = cdrflow(&args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
}

/// Wait until group `group` has committed every record of `topic`.
fn wait_consumed(d: &Daemon, db: &TestDb, topic: &str, group: &str) {
    let ends = end_offsets(topic);
    let started = Instant::now();
    loop {
        let stored = stored_offsets(&db.url, group);
        if stored == ends {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "consumed {stored:?} of {ends:?}; daemon log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A daemon serving its API with `token`.
fn start_daemon(db: &TestDb, topic: &str, group: &str, token: &str) -> Daemon {
    let mut d = Daemon::start_with_env(
        &brokers(),
        &DaemonConfig {
            topic,
            group,
            database_url: &db.url,
            idle_secs: None,
            // Reports are refreshed by hand below, so that they do not move under the test.
            extra: ["--no-publish", "--report-refresh-secs", "0"]
                .map(String::from)
                .to_vec(),
        },
        &[("CDRFLOW_API_TOKEN", token)],
    );
    d.wait_up();
    d
}

/// The window of this month's traffic, up to yesterday in UTC: (start, days). Early in a
/// month it begins in the previous one, as the generator takes past windows only.
fn this_month_window() -> (String, i64) {
    let today = Utc::now().date_naive();
    let first = today.with_day(1).unwrap();
    match today.day() {
        1..=3 => ((today - Days::days(2)).to_string(), 1),
        d => (first.to_string(), i64::from(d) - 2),
    }
}

/// A generator left running: `cdrflow generate --rate`, killed when dropped.
struct Traffic(Child);

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The page asks for the API token, asks again after a wrong one and shows the data with
/// the right one; every page of the dashboard then loads in Chromium without a console
/// error or failed request and draws its charts with data; the filters change the figures to what the
/// API answers; a region leads to a customer, an invoice and an event's explanation; a
/// CSV download is the API's CSV byte for byte and a PDF link serves a PDF; the phone
/// layout does not scroll sideways. The daemon keeps serving and stops cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_in_chromium_draws_every_page_with_data_and_drills_down_to_an_events_explanation(
) {
    let browser = repo().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules: run `npm ci --prefix tests/browser` (scripts/test.sh does)",
        browser.display()
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `apt-get install chromium` (scripts/test.sh does)"
    );

    let db = TestDb::new().await;
    let topic = topic("cdr.raw.dashboard", 2).await;
    // A group of its own: a member the broker still remembers from another run would
    // hold up the assignment until its session expires.
    let group = format!("dashboard-{}", suffix());
    // September (helpers::generate) and October 2026, billed: trends of more than one
    // month, invoices to open.
    generate(&topic, &db, 6_000, SEED.parse().unwrap(), &[]);
    generate_now(&generate_args(&topic, &db, 6_000, "2026-10-01", 31));
    let mut d = start_daemon(&db, &topic, &group, TOKEN);
    wait_consumed(&d, &db, &topic, &group);
    d.stop();
    for period in ["2026-09", "2026-10"] {
        let (code, out, err) = cdrflow(&[
            "bill",
            "--period",
            period,
            "--no-pdf",
            "--database-url",
            &db.url,
        ]);
        assert_eq!(code, 0, "bill {period}: {out}{err}");
    }

    // The current month to date, consumed by the daemon that serves the dashboard, so
    // that its own metrics count records and rejects.
    let mut d = start_daemon(&db, &topic, &group, TOKEN);
    let (start, days) = this_month_window();
    generate_now(&generate_args(&topic, &db, 3_000, &start, days));
    wait_consumed(&d, &db, &topic, &group);
    let (code, out, err) = cdrflow(&["report", "--refresh", "--database-url", &db.url]);
    assert_eq!(code, 0, "report --refresh: {out}{err}");

    // Records keep flowing while the browser looks (the pipeline page shows throughput):
    // 100 a second for up to three minutes (it is stopped when the browser is done), in
    // a window of their own so that none is a duplicate.
    let (start, days) = match this_month_window() {
        (start, days) if days >= 2 => (format!("{start}T12:00:00Z"), days - 1),
        // Too early in the month for a window of its own: the same one again; the
        // duplicates are consumed and counted all the same.
        window => window,
    };
    let mut args = generate_args(&topic, &db, 18_000, &start, days);
    args.extend(["--rate".into(), "100".into()]);
    let traffic = Traffic(
        Command::new(BIN)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cdrflow generate"),
    );

    // The pipeline page measures throughput over a few seconds: it must see records
    // arrive, so wait until the traffic reaches the daemon (the generator writes its
    // customers first).
    let consumed = || d.metric("cdrflow_records_consumed_total").unwrap_or(0.0);
    let before = consumed();
    wait_for(
        "the traffic to reach the daemon",
        Duration::from_secs(60),
        || consumed() > before,
    );

    let shots = repo().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for f in SCREENSHOTS {
        let _ = std::fs::remove_file(shots.join(f));
    }
    let began = SystemTime::now();
    let url = format!("http://127.0.0.1:{}", d.http_port);
    let out = Command::new("node")
        .arg(browser.join("dashboard.mjs"))
        .arg(&url)
        .arg(&shots)
        .env("CDRFLOW_API_TOKEN", TOKEN)
        .output()
        .expect("run node (is Node.js installed?)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{text}\ndaemon log (tail):\n{}",
        out.status,
        tail(&d.log_text(), 40)
    );
    // The daemon served all of it and stops cleanly.
    drop(traffic);
    assert!(d.alive(), "the daemon died: {}", d.log_text());
    d.stop();
    for f in SCREENSHOTS {
        let path = shots.join(f);
        let meta = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
        assert!(
            meta.len() > 10_000 && meta.modified().unwrap() >= began,
            "{} is not a screenshot of this run ({} bytes)",
            path.display(),
            meta.len()
        );
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{f} is not a PNG");
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

//! Postgres over TLS, as libpq's `sslmode` and `sslrootcert` ask for it: against the
//! machine's server (TLS on with its own self-signed certificate) and against a server of
//! the test's own whose certificate a test CA signed, which accepts TLS connections only.

use crate::certs::TestCa;
use crate::helpers::{self, TestDb};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the connection `url` makes is encrypted, as the server sees it.
async fn encrypted(url: &str) -> Result<bool, String> {
    let client = cdrflow::storage::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

fn with_query(url: &str, query: &str) -> String {
    format!("{url}?{query}")
}

/// The certificate the machine's server presents (its `ssl_cert_file`).
async fn server_certificate(db: &TestDb) -> PathBuf {
    let client = db.client().await;
    let row = client.query_one("SHOW ssl_cert_file", &[]).await.unwrap();
    PathBuf::from(row.get::<_, String>(0))
}

#[tokio::test]
async fn every_sslmode_connects_as_libpq_would_to_the_machines_server() {
    let db = TestDb::new().await;
    assert_eq!(
        encrypted(&with_query(&db.url, "sslmode=disable")).await,
        Ok(false)
    );
    // libpq's default is prefer: encrypted when the server offers it.
    assert_eq!(encrypted(&db.url).await, Ok(true));
    assert_eq!(
        encrypted(&with_query(&db.url, "sslmode=prefer")).await,
        Ok(true)
    );
    assert_eq!(
        encrypted(&with_query(&db.url, "sslmode=require")).await,
        Ok(true)
    );

    // The server's certificate signs itself: trusted as a root, the chain checks...
    let cert = server_certificate(&db).await;
    let root = format!("sslrootcert={}", cert.display());
    assert_eq!(
        encrypted(&with_query(&db.url, &format!("sslmode=verify-ca&{root}"))).await,
        Ok(true)
    );
    // ...but it names the machine, not 127.0.0.1: verify-full refuses it.
    let e = encrypted(&with_query(&db.url, &format!("sslmode=verify-full&{root}")))
        .await
        .unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");

    // A CA that did not sign the server's certificate is refused, under require too.
    let other = TestCa::new("other");
    let other_root = format!("sslrootcert={}", other.cert_file().display());
    for mode in ["verify-ca", "require"] {
        let e = encrypted(&with_query(
            &db.url,
            &format!("sslmode={mode}&{other_root}"),
        ))
        .await
        .unwrap_err();
        assert!(e.contains("certificate verify failed"), "{mode}: {e}");
    }
}

#[test]
fn the_commands_reach_the_database_over_tls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let url = with_query(&db.url, "sslmode=require");
    let (code, _, stderr) = helpers::cdrflow(&["migrate", "--database-url", &url]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = helpers::cdrflow(&["stats", "--database-url", &url]);
    assert_eq!(code, 0, "{stderr}");

    // A wrong CA file is named, and nothing is tried.
    let missing = with_query(
        &db.url,
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    );
    let (code, _, stderr) = helpers::cdrflow(&["stats", "--database-url", &missing]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("sslrootcert /nonexistent/ca.pem"),
        "{stderr}"
    );
    drop(rt);
}

/// A PostgreSQL server of the test's own on a free port, accepting TLS connections only,
/// with a certificate `ca` signed for localhost and 127.0.0.1. Stopped when dropped.
struct TlsServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl TlsServer {
    fn start(ca: &TestCa) -> TlsServer {
        let bin = postgres_bin();
        let dir = std::env::temp_dir().join(format!("cdrflow-pg-{}", helpers::suffix()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).unwrap();
        let issued = ca.issue("server", &["localhost", "127.0.0.1"]);
        std::fs::copy(&issued.cert, dir.join("server.crt")).unwrap();
        std::fs::copy(&issued.key, dir.join("server.key")).unwrap();
        chown_to_postgres(&[&dir]);
        run(&mut as_postgres(
            Command::new(bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&data),
        ));
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
        )
        .unwrap();
        let port = helpers::free_port();
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key -c fsync=off",
            dir = dir.display()
        );
        run(&mut as_postgres(
            Command::new(bin.join("pg_ctl"))
                .args(["-w", "-l"])
                .arg(dir.join("server.log"))
                .args(["-o", &options, "-D"])
                .arg(&data)
                .arg("start"),
        ));
        TlsServer { dir, bin, port }
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = as_postgres(
            Command::new(self.bin.join("pg_ctl"))
                .args(["-m", "immediate", "-D"])
                .arg(self.dir.join("data"))
                .arg("stop"),
        )
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server's programs: the newest installed PostgreSQL's.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's programs under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("initdb under /usr/lib/postgresql/*/bin")
}

/// `command` run as the postgres user when this test runs as root (initdb refuses root).
fn as_postgres(command: &mut Command) -> Command {
    let mut wrapped = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(command.get_program());
        c
    } else {
        Command::new(command.get_program())
    };
    wrapped.args(command.get_args());
    wrapped
}

/// Files and folders the server reads made the postgres user's (only root needs to).
fn chown_to_postgres(paths: &[&Path]) {
    if is_root() {
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .args(paths));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ca_root(ca: &TestCa) -> String {
    format!("sslrootcert={}", ca.cert_file().display())
}

#[tokio::test]
async fn verify_full_accepts_the_server_its_ca_signed_for_that_name_only() {
    let ca = TestCa::new("cdrflow");
    let server = TlsServer::start(&ca);
    let root = ca_root(&ca);
    for host in ["127.0.0.1", "localhost"] {
        let url = server.url(host, &format!("sslmode=verify-full&{root}"));
        assert_eq!(encrypted(&url).await, Ok(true), "{url}");
    }
    // The server accepts TLS only: without it, its refusal comes back as it is.
    let e = encrypted(&server.url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap_err();
    assert!(e.contains("no encryption"), "{e}");
    // Another CA's root does not vouch for this server.
    let other = TestCa::new("other");
    let e = encrypted(&server.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&{}", ca_root(&other)),
    ))
    .await
    .unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");
    // A certificate for other names: verify-ca accepts it, verify-full does not.
    let renamed = ca.issue("renamed", &["db.example"]);
    std::fs::copy(&renamed.cert, server.dir.join("server.crt")).unwrap();
    std::fs::copy(&renamed.key, server.dir.join("server.key")).unwrap();
    reload(&server);
    let e = encrypted(&server.url("127.0.0.1", &format!("sslmode=verify-full&{root}")))
        .await
        .unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");
    assert_eq!(
        encrypted(&server.url("127.0.0.1", &format!("sslmode=verify-ca&{root}"))).await,
        Ok(true)
    );

    // The daemon's whole start-up path: migrations and a pool, through verify-ca.
    let url = server.url("127.0.0.1", &format!("sslmode=verify-ca&{root}"));
    let (code, _, stderr) = helpers::cdrflow(&["migrate", "--database-url", &url]);
    assert_eq!(code, 0, "{stderr}");
    let pool = cdrflow::storage::pool(&url, 2).unwrap();
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
}

/// The server reads its certificate files again (SIGHUP).
fn reload(server: &TlsServer) {
    chown_to_postgres(&[
        &server.dir.join("server.crt"),
        &server.dir.join("server.key"),
    ]);
    run(&mut as_postgres(
        Command::new(server.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(server.dir.join("data"))
            .arg("reload"),
    ));
    std::thread::sleep(std::time::Duration::from_millis(500));
}

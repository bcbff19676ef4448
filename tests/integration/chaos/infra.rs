//! The infrastructure the chaos test breaks on purpose: a PostgreSQL cluster and a
//! tansu broker of its own, each on a port of its own, so that stopping them disturbs
//! neither the other tests nor the machine's main cluster. Both are removed on drop.

use crate::helpers::{free_port, tempdir};

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The newest PostgreSQL installed the Debian way (`/usr/lib/postgresql/N/bin`), as
/// `scripts/lib.sh` installs it.
fn pg_bin() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed under /usr/lib/postgresql")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let newest = versions.last().expect("a PostgreSQL version is installed");
    PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin"))
}

/// A throw-away PostgreSQL cluster (trust authentication, loopback only) run by the
/// `postgres` system user, which PostgreSQL requires; the tests run as root.
pub struct PgCluster {
    root: PathBuf,
    pub port: u16,
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let root = tempdir();
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&root)
            .status()
            .expect("chown the cluster folder");
        assert!(status.success(), "chown {} to postgres", root.display());
        let cluster = PgCluster {
            root,
            port: free_port(),
        };
        // --no-sync: a test cluster need not survive a machine crash, and initdb's fsyncs
        // cost seconds on a busy disk. The server itself keeps its default durability.
        cluster.as_postgres(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.pg_ctl(&["start"]);
        cluster
    }

    fn data(&self) -> String {
        self.root.join("data").display().to_string()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A fast restart: clients are disconnected, the server is back when this returns.
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "restart"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["start"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let options = format!("-p {} -k /tmp -c listen_addresses=127.0.0.1", self.port);
        let (data, log) = (
            self.data(),
            self.root.join("postgres.log").display().to_string(),
        );
        // `pg_ctl -D … -o … ACTION`, the action last as pg_ctl documents it.
        let mut all = vec!["-D", &data, "-l", &log, "-w", "-t", "120", "-o", &options];
        all.extend(args);
        self.as_postgres("pg_ctl", &all);
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin().join(program))
            .args(args)
            .current_dir(&self.root)
            .output()
            .expect("run a PostgreSQL program as postgres");
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin().join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

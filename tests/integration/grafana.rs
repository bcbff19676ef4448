//! The operations kit — `docker-compose.yml`, `Dockerfile`, `prometheus/prometheus.yml`,
//! Grafana's provisioning and its two dashboards — checked the way an operator relies on
//! it: the files parse and are wired to each other (services, ports, secret files,
//! credentials, data source uids), every published port is bound to 127.0.0.1 and no
//! secret is written in them; every PromQL expression of the Pipeline dashboard is
//! evaluated by Debian's real Prometheus scraping a running daemon; every SQL query of the
//! Revenue dashboard runs, as a login in the read-only role Grafana reads as, with its
//! variables substituted as Grafana does, against a generated and billed month, and its
//! invoice links open the daemon's PDF; that role reads exactly what the dashboards query
//! and writes nothing. No Docker engine is needed: the compose file is checked
//! statically.

use crate::helpers::*;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PIPELINE: &str = "grafana/dashboards/pipeline.json";
const REVENUE: &str = "grafana/dashboards/revenue.json";
const DATASOURCES: &str = "grafana/provisioning/datasources/datasources.yml";
const PROVIDERS: &str = "grafana/provisioning/dashboards/dashboards.yml";
const PROMETHEUS: &str = "prometheus/prometheus.yml";
const COMPOSE: &str = "docker-compose.yml";
/// The read-only role of the migrations that Grafana's login is a member of.
const READER: &str = "cdrflow_reader";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn json(rel: &str) -> Json {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid JSON: {e}"))
}

/// A scalar YAML value as compose reads it (`KAFKA_NODE_ID: 1` is the string "1").
fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn seq(v: &Yaml) -> Vec<Yaml> {
    v.as_sequence().cloned().unwrap_or_default()
}

/// Compose's `${NAME:-default}` / `${NAME-default}` / `${NAME}` interpolation, with every
/// variable unset: what `docker compose up` gives on a machine with no settings.
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let end = tail
            .find('}')
            .unwrap_or_else(|| panic!("unclosed ${{ in {s}"));
        let inner = &tail[..end];
        if let Some((_, default)) = inner.split_once(":-").or_else(|| inner.split_once('-')) {
            out.push_str(default);
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out.replace("$$", "$")
}

/// The compose file, as one can ask it questions.
struct Compose {
    doc: Yaml,
}

impl Compose {
    fn services(&self) -> BTreeMap<String, Yaml> {
        self.doc["services"]
            .as_mapping()
            .expect("docker-compose.yml has services")
            .iter()
            .map(|(k, v)| (k.as_str().expect("service name").to_string(), v.clone()))
            .collect()
    }

    fn service(&self, name: &str) -> Yaml {
        self.services()
            .remove(name)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
    }

    /// The one service whose image starts with `prefix`.
    fn by_image(&self, prefix: &str) -> String {
        let found: Vec<String> = self
            .services()
            .into_iter()
            .filter(|(_, s)| s["image"].as_str().is_some_and(|i| i.starts_with(prefix)))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "services with an image {prefix}*: {found:?}"
        );
        found[0].clone()
    }

    /// The PostgreSQL server: the service of a `postgres:` image that makes a database
    /// (others of that image, such as the grafana-login job, only run psql).
    fn postgres_server(&self) -> String {
        let found: Vec<String> = self
            .services()
            .into_iter()
            .filter(|(n, s)| {
                s["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("postgres:"))
                    && self.env(n).contains_key("POSTGRES_DB")
            })
            .map(|(n, _)| n)
            .collect();
        assert_eq!(found.len(), 1, "PostgreSQL servers: {found:?}");
        found[0].clone()
    }

    /// The one service that runs the given cdrflow subcommand, as the image's entrypoint
    /// or as `cdrflow SUBCOMMAND` in a shell command.
    fn by_command(&self, subcommand: &str) -> String {
        let found: Vec<String> = self
            .services()
            .into_iter()
            .filter(|(_, s)| {
                let words: Vec<String> = self
                    .command_of(s)
                    .iter()
                    .flat_map(|c| c.split_whitespace().map(String::from).collect::<Vec<_>>())
                    .collect();
                words.first().map(String::as_str) == Some(subcommand)
                    || words
                        .windows(2)
                        .any(|w| w[0] == "cdrflow" && w[1] == subcommand)
            })
            .map(|(n, _)| n)
            .collect();
        assert_eq!(found.len(), 1, "services running `{subcommand}`: {found:?}");
        found[0].clone()
    }

    fn command_of(&self, s: &Yaml) -> Vec<String> {
        match &s["command"] {
            Yaml::String(c) => c.split_whitespace().map(String::from).collect(),
            Yaml::Sequence(items) => items.iter().filter_map(scalar).collect(),
            _ => vec![],
        }
    }

    /// A service's environment, interpolated (map or `KEY=VALUE` list form).
    fn env(&self, name: &str) -> BTreeMap<String, String> {
        let s = self.service(name);
        match &s["environment"] {
            Yaml::Mapping(m) => m
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        interpolate(&scalar(v).unwrap_or_default()),
                    )
                })
                .collect(),
            Yaml::Sequence(items) => items
                .iter()
                .filter_map(|i| i.as_str())
                .map(|i| {
                    let (k, v) = i.split_once('=').unwrap_or((i, ""));
                    (k.to_string(), interpolate(v))
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// The value after `flag` in a service's command.
    fn flag(&self, name: &str, flag: &str) -> Option<String> {
        let cmd = self.command_of(&self.service(name));
        cmd.iter()
            .position(|c| c == flag)
            .and_then(|i| cmd.get(i + 1))
            .map(|v| interpolate(v))
            .or_else(|| {
                cmd.iter()
                    .find_map(|c| c.strip_prefix(&format!("{flag}=")).map(interpolate))
            })
    }

    /// (host source, container target) of a service's bind mounts, and its named volumes.
    fn mounts(&self, name: &str) -> (Vec<(String, String)>, Vec<String>) {
        let (mut binds, mut named) = (vec![], vec![]);
        for v in seq(&self.service(name)["volumes"]) {
            let (source, target) = match &v {
                Yaml::String(s) => {
                    let parts: Vec<&str> = s.split(':').collect();
                    (
                        parts[0].to_string(),
                        parts.get(1).unwrap_or(&"").to_string(),
                    )
                }
                m => (
                    m["source"].as_str().unwrap_or_default().to_string(),
                    m["target"].as_str().unwrap_or_default().to_string(),
                ),
            };
            if source.starts_with('.') || source.starts_with('/') {
                binds.push((source, target));
            } else {
                named.push(source);
            }
        }
        (binds, named)
    }

    /// The host file compose mounts at `path` in a service: one of the service's secrets
    /// (short syntax at /run/secrets/NAME, or long syntax with its `target`), declared at
    /// the top level with a `file:`.
    fn secret_file(&self, name: &str, path: &str) -> String {
        let secret = seq(&self.service(name)["secrets"])
            .iter()
            .find_map(|s| match s {
                Yaml::String(n) => (format!("/run/secrets/{n}") == path).then(|| n.clone()),
                m => {
                    let source = m["source"].as_str()?.to_string();
                    let target = m["target"]
                        .as_str()
                        .map(|t| {
                            if t.starts_with('/') {
                                t.to_string()
                            } else {
                                format!("/run/secrets/{t}")
                            }
                        })
                        .unwrap_or_else(|| format!("/run/secrets/{source}"));
                    (target == path).then_some(source)
                }
            })
            .unwrap_or_else(|| panic!("{name} has no secret mounted at {path}"));
        self.doc["secrets"][secret.as_str()]["file"]
            .as_str()
            .unwrap_or_else(|| panic!("secret {secret} is not declared with a file"))
            .to_string()
    }

    /// Container ports a service publishes.
    fn published(&self, name: &str) -> BTreeSet<u16> {
        seq(&self.service(name)["ports"])
            .iter()
            .filter_map(scalar)
            .map(|p| {
                let container = p.rsplit(':').next().unwrap().split('/').next().unwrap();
                container
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: bad port {p}"))
            })
            .collect()
    }

    /// The services a service depends on, with their condition.
    fn depends_on(&self, name: &str) -> BTreeMap<String, String> {
        match &self.service(name)["depends_on"] {
            Yaml::Sequence(items) => items
                .iter()
                .map(|i| (i.as_str().unwrap().to_string(), "service_started".into()))
                .collect(),
            Yaml::Mapping(m) => m
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        v["condition"]
                            .as_str()
                            .unwrap_or("service_started")
                            .to_string(),
                    )
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

/// The secret files `scripts/compose-secrets.sh` makes, in a directory of their own: what
/// `docker compose up` mounts once an operator has run it.
struct Secrets {
    dir: PathBuf,
}

impl Secrets {
    fn generate() -> Secrets {
        let dir = tempdir().join("secrets");
        let out = Command::new("sh")
            .arg(repo().join("scripts/compose-secrets.sh"))
            .arg(&dir)
            .output()
            .expect("run scripts/compose-secrets.sh");
        assert!(
            out.status.success(),
            "scripts/compose-secrets.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Secrets { dir }
    }

    /// The content of the compose secret file `./secrets/NAME`.
    fn value(&self, file: &str) -> String {
        let name = file
            .strip_prefix("./secrets/")
            .unwrap_or_else(|| panic!("secret file {file} is not in ./secrets/"));
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_else(|e| panic!("scripts/compose-secrets.sh does not make {file}: {e}"))
    }

    /// Every value it made.
    fn values(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }
}

/// `host:port` → (host, port).
fn host_port(s: &str) -> (String, u16) {
    let (h, p) = s
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{s} is not host:port"));
    (
        h.to_string(),
        p.parse()
            .unwrap_or_else(|_| panic!("{s}: port is not a number")),
    )
}

/// A `postgres://user:password@host:port/db` URL: (user, password, host, port, db).
fn pg_url(url: &str) -> (String, String, String, u16, String) {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .unwrap_or_else(|| panic!("{url} is not a postgres:// URL"));
    let (auth, place) = rest
        .split_once('@')
        .unwrap_or_else(|| panic!("{url} has no user"));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, db) = place
        .split_once('/')
        .unwrap_or_else(|| panic!("{url} names no database"));
    let (host, port) = if hostport.contains(':') {
        host_port(hostport)
    } else {
        (hostport.to_string(), 5432)
    };
    let db = db.split('?').next().unwrap();
    (user.into(), password.into(), host, port, db.into())
}

/// Every panel of a dashboard, rows' nested panels included (rows themselves too).
fn panels(dashboard: &Json) -> Vec<Json> {
    fn walk(list: &Json, out: &mut Vec<Json>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p.clone());
            walk(&p["panels"], out);
        }
    }
    let mut out = vec![];
    walk(&dashboard["panels"], &mut out);
    out
}

fn variables(dashboard: &Json) -> Vec<Json> {
    dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A query variable's query text (a string, or an object with a `query` field).
fn variable_query(v: &Json) -> String {
    match &v["query"] {
        Json::String(s) => s.clone(),
        q => q["query"]
            .as_str()
            .unwrap_or_else(|| panic!("variable {} without a query", v["name"]))
            .to_string(),
    }
}

/// Every `datasource` reference anywhere in a JSON document, with where it was found.
fn datasource_refs(doc: &Json, at: &str, out: &mut Vec<(String, Json)>) {
    match doc {
        Json::Object(m) => {
            for (k, v) in m {
                let here = format!("{at}/{k}");
                if k == "datasource" {
                    out.push((here.clone(), v.clone()));
                }
                datasource_refs(v, &here, out);
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                datasource_refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The `url` of every link in a JSON document.
fn link_urls(doc: &Json, out: &mut Vec<String>) {
    match doc {
        Json::Object(m) => {
            if let Some(url) = m.get("url").and_then(Json::as_str) {
                out.push(url.to_string());
            }
            m.values().for_each(|v| link_urls(v, out));
        }
        Json::Array(a) => a.iter().for_each(|v| link_urls(v, out)),
        _ => {}
    }
}

/// Every string of a JSON document.
fn strings(doc: &Json, out: &mut Vec<String>) {
    match doc {
        Json::String(s) => out.push(s.clone()),
        Json::Object(m) => m.values().for_each(|v| strings(v, out)),
        Json::Array(a) => a.iter().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The variable names a text refers to, in Grafana's syntaxes `$name`, `${name}`,
/// `${name:format}` and `[[name]]`.
fn variable_refs(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(['$', '[']) {
        let tail = &rest[i..];
        let (name, len) = reference(tail);
        if len > 0 {
            names.insert(name.to_string());
            rest = &tail[len..];
        } else {
            rest = &tail[1..];
        }
    }
    names
}

/// The variable reference at the start of `tail`: (name, length), or length 0.
fn reference(tail: &str) -> (&str, usize) {
    let name_of = |inner: &str| -> usize { inner.find(':').unwrap_or(inner.len()) };
    if let Some(t) = tail.strip_prefix("${") {
        if let Some(end) = t.find('}') {
            return (&t[..name_of(&t[..end])], end + 3);
        }
    } else if let Some(t) = tail.strip_prefix("[[") {
        if let Some(end) = t.find("]]") {
            return (&t[..name_of(&t[..end])], end + 4);
        }
    } else if let Some(t) = tail.strip_prefix('$') {
        let n = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len());
        if n > 0 {
            return (&t[..n], n + 1);
        }
    }
    ("", 0)
}

/// Replace the variable references whose name is in `values` (others stay as they are).
fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (name, len) = reference(tail);
        match values.get(name) {
            Some(v) if len > 0 => {
                out.push_str(v);
                rest = &tail[len..];
            }
            _ => {
                out.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `expr` of every target of every panel: (panel title, expr).
fn promql_targets(dashboard: &Json) -> Vec<(String, String)> {
    let mut out = vec![];
    for p in panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((p["title"].as_str().unwrap_or("").to_string(), e.to_string()));
            }
        }
    }
    out
}

/// (panel, target format, rawSql) of every SQL target.
fn sql_targets(dashboard: &Json) -> Vec<(Json, String, String)> {
    let mut out = vec![];
    for p in panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(sql) = t["rawSql"].as_str() {
                let format = t["format"].as_str().unwrap_or("time_series").to_string();
                out.push((p.clone(), format, sql.to_string()));
            }
        }
    }
    out
}

/// The `cdrflow_*` metric names a PromQL text uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("cdrflow_") {
        let tail = &rest[i..];
        let n = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..n].to_string());
        rest = &tail[n..];
    }
    out
}

/// Grafana built-ins a dashboard may use without defining them.
const BUILTINS: &[&str] = &[
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__all",
    "__timeFilter",
    "__timeFrom",
    "__timeTo",
    "__timeGroup",
    "__timeGroupAlias",
];

/// The files parse; the compose services are wired to each other (brokers, database,
/// HTTP port, scrape target, data sources, mounts, dependencies, secrets); every published
/// port is bound to 127.0.0.1 and no secret is written in the compose file; and every
/// data source a dashboard uses is provisioned with the same uid and type.
#[test]
fn the_compose_file_provisioning_and_dashboards_are_valid_and_wired_to_each_other() {
    let compose = Compose { doc: yaml(COMPOSE) };
    let secrets = Secrets::generate();
    services_build_mount_and_depend_on_what_exists(&compose);
    published_ports_bind_loopback_only(&compose);
    secrets_are_files_kept_out_of_git_and_the_compose_file(&compose, &secrets);
    brokers_are_listeners_kafka_advertises(&compose);
    database_urls_name_the_postgres_service_and_its_credentials(&compose, &secrets);
    the_daemon_listens_where_it_is_published_checked_and_scraped(&compose, &secrets);
    let provisioned =
        grafana_reads_the_provisioning_whose_sources_name_the_services(&compose, &secrets);
    let mut uids = BTreeSet::new();
    for file in [PIPELINE, REVENUE] {
        let d = json(file);
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no uid"));
        assert!(uids.insert(uid.to_string()), "{file}: uid {uid} twice");
        dashboard_uses_provisioned_sources_and_defined_variables(file, &d, &provisioned);
    }
}

/// What every service builds from or mounts exists, what it depends on is a service
/// (waited for as healthy only if it has a healthcheck), its named volumes are declared.
fn services_build_mount_and_depend_on_what_exists(compose: &Compose) {
    let services = compose.services();
    let declared_volumes: BTreeSet<String> = compose.doc["volumes"]
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let built_images: BTreeSet<String> = services
        .values()
        .filter(|s| !s["build"].is_null())
        .filter_map(|s| s["image"].as_str().map(String::from))
        .collect();
    for (name, s) in &services {
        match &s["build"] {
            Yaml::Null => {
                let image = s["image"]
                    .as_str()
                    .unwrap_or_else(|| panic!("service {name} has neither an image nor a build"));
                assert!(
                    !image.starts_with("cdrflow") || built_images.contains(image),
                    "{name} uses {image}, which no service builds"
                );
            }
            build => {
                let (context, dockerfile) = match build {
                    Yaml::String(c) => (c.clone(), "Dockerfile".to_string()),
                    m => (
                        m["context"].as_str().unwrap_or(".").to_string(),
                        m["dockerfile"].as_str().unwrap_or("Dockerfile").to_string(),
                    ),
                };
                let dir = repo().join(&context);
                assert!(dir.is_dir(), "{name}: build context {context} is missing");
                assert!(
                    dir.join(&dockerfile).is_file(),
                    "{name}: {context}/{dockerfile} is missing"
                );
            }
        }
        let (binds, named) = compose.mounts(name);
        for (source, target) in binds {
            assert!(
                source.starts_with('.') && repo().join(&source).exists(),
                "{name} mounts {source} (to {target}), which is not in the repository"
            );
        }
        for v in named {
            assert!(
                declared_volumes.contains(&v),
                "{name} uses volume {v}, not declared"
            );
        }
        for (dep, condition) in compose.depends_on(name) {
            assert!(
                services.contains_key(&dep),
                "{name} depends on {dep}, which is no service"
            );
            assert!(
                [
                    "service_started",
                    "service_healthy",
                    "service_completed_successfully"
                ]
                .contains(&condition.as_str()),
                "{name} → {dep}: condition {condition}"
            );
            if condition == "service_healthy" {
                assert!(
                    !services[&dep]["healthcheck"].is_null(),
                    "{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                );
            }
        }
    }
}

/// Every port published on the host is bound to 127.0.0.1: another machine reaches none
/// of them (Kafka's plaintext host listener included), and no service shares the host's
/// network.
fn published_ports_bind_loopback_only(compose: &Compose) {
    let mut published = 0;
    for (name, s) in compose.services() {
        assert!(
            s["network_mode"].as_str() != Some("host"),
            "{name} uses the host's network"
        );
        for p in seq(&s["ports"]) {
            let host_ip = match &p {
                Yaml::Mapping(_) => p["host_ip"].as_str().unwrap_or_default().to_string(),
                short => {
                    let short = scalar(short).unwrap_or_default();
                    let parts: Vec<&str> = short.split(':').collect();
                    if parts.len() == 3 {
                        parts[0].to_string()
                    } else {
                        String::new()
                    }
                }
            };
            assert_eq!(
                host_ip, "127.0.0.1",
                "{name} publishes {p:?} beyond the host's loopback"
            );
            published += 1;
        }
    }
    // The daemon, Kafka's host listener, Prometheus and Grafana.
    assert!(published >= 4, "{published} published ports");
}

/// Secrets are compose secrets from files in ./secrets/, which git and the image build
/// leave out; scripts/compose-secrets.sh makes every one of them; no password, token or
/// key is written in the compose file, as a value, a default or inside a URL.
fn secrets_are_files_kept_out_of_git_and_the_compose_file(compose: &Compose, secrets: &Secrets) {
    let declared = compose.doc["secrets"]
        .as_mapping()
        .expect("docker-compose.yml declares its secrets");
    assert!(!declared.is_empty());
    for (name, s) in declared {
        let file = s["file"]
            .as_str()
            .unwrap_or_else(|| panic!("secret {name:?} is not a file"));
        assert!(
            !secrets.value(file).is_empty(),
            "secret {name:?}: {file} is empty"
        );
        let ignored = Command::new("git")
            .args(["check-ignore", "-q", file])
            .current_dir(repo())
            .status()
            .expect("run git check-ignore");
        assert!(ignored.success(), "git does not ignore {file}");
    }
    assert!(
        read(".dockerignore")
            .lines()
            .any(|l| l.trim() == "secrets/"),
        ".dockerignore does not leave secrets/ out of the build context"
    );

    let text = read(COMPOSE);
    for value in secrets.values() {
        assert!(!text.contains(&value), "a secret value in {COMPOSE}");
    }
    for (name, _) in compose.services() {
        for (key, value) in compose.env(&name) {
            let secretish = ["PASSWORD", "TOKEN", "SECRET", "_KEY"]
                .iter()
                .any(|w| key.contains(w));
            assert!(
                !secretish || key.ends_with("_FILE") || value.is_empty(),
                "{name}: {key} is given as a value, not a file"
            );
        }
    }
    // A URL with a password in it: scheme://user:password@host.
    for (i, _) in text.match_indices("://") {
        let rest = &text[i + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(rest.len());
        if let Some((userinfo, _)) = rest[..end].split_once('@') {
            assert!(
                !userinfo.contains(':'),
                "a URL with a password in {COMPOSE}: {}",
                &rest[..end]
            );
        }
    }
}

/// Kafka runs in KRaft mode; the daemon and the generator use a listener it advertises on
/// the compose network, and the daemon waits for it to be healthy.
fn brokers_are_listeners_kafka_advertises(compose: &Compose) {
    let kafka = compose.by_image("apache/kafka");
    let kenv = compose.env(&kafka);
    let roles = kenv.get("KAFKA_PROCESS_ROLES").cloned().unwrap_or_default();
    assert!(
        roles.contains("broker") && roles.contains("controller"),
        "Kafka is not a KRaft broker+controller: {roles}"
    );
    let listeners: BTreeMap<String, u16> = kenv["KAFKA_LISTENERS"]
        .split(',')
        .map(|l| {
            let (name, addr) = l.split_once("://").unwrap();
            (name.to_string(), host_port(addr).1)
        })
        .collect();
    let advertised: BTreeSet<(String, u16)> = kenv["KAFKA_ADVERTISED_LISTENERS"]
        .split(',')
        .map(|l| {
            let (name, addr) = l.split_once("://").unwrap();
            let (host, port) = host_port(addr);
            assert_eq!(
                listeners.get(name),
                Some(&port),
                "advertised listener {l} is not a listener on that port"
            );
            (host, port)
        })
        .collect();
    let daemon = compose.by_command("run");
    let generator = compose.by_command("generate");
    let denv = compose.env(&daemon);
    for (who, brokers) in [
        (&daemon, denv.get("CDRFLOW_BROKERS").cloned()),
        (&generator, compose.flag(&generator, "--brokers")),
    ] {
        let brokers = brokers.unwrap_or_else(|| panic!("{who} names no brokers"));
        for b in brokers.split(',') {
            let (host, port) = host_port(b);
            assert_eq!(host, kafka, "{who} reaches Kafka as {b}");
            assert!(
                advertised.contains(&(host, port)),
                "{who}: {b} is not a listener Kafka advertises ({advertised:?})"
            );
        }
    }
    assert_eq!(
        compose.depends_on(&daemon).get(&kafka).map(String::as_str),
        Some("service_healthy"),
        "the daemon starts once Kafka is healthy"
    );
}

/// The daemon and the setup job use the postgres service with its user, password and
/// database, from a secret file (never a command line, which `ps` and `docker inspect`
/// show, nor an environment value, which `docker inspect` shows too); the setup job
/// prepares what the daemon needs before it starts.
fn database_urls_name_the_postgres_service_and_its_credentials(
    compose: &Compose,
    secrets: &Secrets,
) {
    let services = compose.services();
    let daemon = compose.by_command("run");
    let postgres = compose.postgres_server();
    let penv = compose.env(&postgres);
    let setup = compose.by_command("migrate");
    let setup_cmd = compose.command_of(&services[&setup]).join(" ");
    assert!(!penv.contains_key("POSTGRES_PASSWORD"), "{postgres}");
    let password = secrets.value(&compose.secret_file(&postgres, &penv["POSTGRES_PASSWORD_FILE"]));
    assert!(password.len() >= 32, "a weak database password: {password}");
    let expected = (
        penv["POSTGRES_USER"].clone(),
        password,
        postgres.clone(),
        5432,
        penv["POSTGRES_DB"].clone(),
    );
    for who in [&daemon, &setup] {
        let env = compose.env(who);
        assert!(!env.contains_key("CDRFLOW_DATABASE_URL"), "{who}");
        let path = env
            .get("CDRFLOW_DATABASE_URL_FILE")
            .unwrap_or_else(|| panic!("{who} names no database URL file"));
        let url = secrets.value(&compose.secret_file(who, path));
        assert_eq!(pg_url(&url), expected, "{who}'s database URL {url}");
    }
    for service in compose.services().keys() {
        assert!(
            compose.flag(service, "--database-url").is_none(),
            "{service} has the database URL on its command line"
        );
    }
    assert_eq!(
        compose
            .depends_on(&setup)
            .get(&postgres)
            .map(String::as_str),
        Some("service_healthy")
    );
    assert_eq!(
        compose.depends_on(&daemon).get(&setup).map(String::as_str),
        Some("service_completed_successfully"),
        "the daemon starts once the schema, catalog and customers are in place"
    );
    for step in ["migrate", "catalog apply", "customers generate"] {
        assert!(
            setup_cmd.contains(step),
            "setup does not {step}: {setup_cmd}"
        );
    }
    // Files the jobs read inside the image are in the repository and copied there.
    let dockerfile = read("Dockerfile");
    for word in setup_cmd.split_whitespace() {
        if let Some(rel) = word.strip_prefix("/app/") {
            assert!(
                repo().join(rel).is_file(),
                "{word}: {rel} is not in the repository"
            );
            let top = rel.split('/').next().unwrap();
            assert!(
                dockerfile.lines().any(|l| l.starts_with("COPY")
                    && l.split_whitespace().last() == Some(&format!("/app/{top}"))),
                "the Dockerfile does not copy {top} to /app/{top}"
            );
        }
    }
}

/// The daemon listens beyond its container on the port it publishes, its healthcheck asks
/// that port, and Prometheus mounts the repository's config, which scrapes it there.
fn the_daemon_listens_where_it_is_published_checked_and_scraped(
    compose: &Compose,
    secrets: &Secrets,
) {
    let services = compose.services();
    let daemon = compose.by_command("run");
    let generator = compose.by_command("generate");
    let denv = compose.env(&daemon);
    let prometheus = yaml(PROMETHEUS);
    let (http_host, http_port) = host_port(&denv["CDRFLOW_HTTP"]);
    assert_eq!(
        http_host, "0.0.0.0",
        "the daemon must listen beyond its container"
    );
    // Beyond loopback, the API needs its token: from a secret file, and never waived.
    assert!(!denv.contains_key("CDRFLOW_API_TOKEN"), "{daemon}");
    let token_file = denv
        .get("CDRFLOW_API_TOKEN_FILE")
        .unwrap_or_else(|| panic!("{daemon} listens on {http_host} without an API token"));
    let token = secrets.value(&compose.secret_file(&daemon, token_file));
    assert!(token.len() >= 32, "a weak API token: {token}");
    assert!(
        !denv.contains_key("CDRFLOW_INSECURE_NO_AUTH")
            && !compose
                .command_of(&services[&daemon])
                .contains(&"--insecure-no-auth".to_string()),
        "{daemon} waives the API token"
    );
    assert!(compose.published(&daemon).contains(&http_port));
    let health: Vec<String> = seq(&services[&daemon]["healthcheck"]["test"])
        .iter()
        .filter_map(scalar)
        .collect();
    assert!(
        health
            .iter()
            .any(|h| h.contains(&format!(":{http_port}/healthz"))),
        "the daemon's healthcheck {health:?}"
    );
    assert_eq!(
        compose
            .depends_on(&generator)
            .get(&daemon)
            .map(String::as_str),
        Some("service_healthy")
    );

    // Prometheus mounts the repository's config and scrapes the daemon there.
    let prom = compose.by_image("prom/prometheus");
    let config_path = compose
        .flag(&prom, "--config.file")
        .unwrap_or_else(|| "/etc/prometheus/prometheus.yml".into());
    assert!(
        compose
            .mounts(&prom)
            .0
            .contains(&(format!("./{PROMETHEUS}"), config_path.clone())),
        "prometheus does not mount ./{PROMETHEUS} at {config_path}"
    );
    let jobs = seq(&prometheus["scrape_configs"]);
    let targets: Vec<(String, String)> = jobs
        .iter()
        .flat_map(|j| {
            let path = j["metrics_path"].as_str().unwrap_or("/metrics").to_string();
            seq(&j["static_configs"])
                .iter()
                .flat_map(|c| seq(&c["targets"]))
                .filter_map(|t| scalar(&t))
                .map(move |t| (t, path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        targets.contains(&(format!("{daemon}:{http_port}"), "/metrics".into())),
        "prometheus.yml does not scrape {daemon}:{http_port}/metrics: {targets:?}"
    );
    assert_eq!(prometheus["global"]["scrape_interval"].as_str(), Some("5s"));
}

/// Grafana mounts the provisioning and the dashboards where the provider reads them; the
/// data sources name the prometheus and postgres services, the latter with the read-only
/// login that the grafana-login job makes, a member of the role the migrations make, and
/// its password from the same secret file. Returns the provisioned data sources: uid →
/// type.
fn grafana_reads_the_provisioning_whose_sources_name_the_services(
    compose: &Compose,
    secrets: &Secrets,
) -> BTreeMap<String, String> {
    let providers = yaml(PROVIDERS);
    let datasources = yaml(DATASOURCES);
    let prom = compose.by_image("prom/prometheus");
    let postgres = compose.postgres_server();
    let penv = compose.env(&postgres);
    let reader = ReaderLoginJob::of(compose);
    let grafana = compose.by_image("grafana/grafana");
    let (binds, _) = compose.mounts(&grafana);
    assert!(binds.contains(&(
        "./grafana/provisioning".into(),
        "/etc/grafana/provisioning".into()
    )));
    let provider_paths: Vec<String> = seq(&providers["providers"])
        .iter()
        .filter_map(|p| p["options"]["path"].as_str().map(String::from))
        .collect();
    assert_eq!(provider_paths.len(), 1, "{provider_paths:?}");
    assert!(
        binds.contains(&("./grafana/dashboards".into(), provider_paths[0].clone())),
        "grafana does not mount ./grafana/dashboards at the provider's path {}",
        provider_paths[0]
    );

    // The data sources name the services, with the database's credentials.
    let prom_port = compose
        .flag(&prom, "--web.listen-address")
        .map(|a| host_port(&a).1)
        .unwrap_or(9090);
    let mut provisioned: BTreeMap<String, String> = BTreeMap::new();
    for ds in seq(&datasources["datasources"]) {
        let uid = ds["uid"].as_str().expect("data source uid").to_string();
        let kind = ds["type"].as_str().expect("data source type").to_string();
        let url = ds["url"].as_str().unwrap_or_default();
        match kind.as_str() {
            "prometheus" => assert_eq!(url, format!("http://{prom}:{prom_port}"), "{uid}"),
            "postgres" | "grafana-postgresql-datasource" => {
                assert_eq!(url, format!("{postgres}:5432"), "{uid}");
                assert_eq!(
                    ds["user"].as_str(),
                    Some(reader.login.as_str()),
                    "{uid}: not the read-only login"
                );
                let db = ds["jsonData"]["database"]
                    .as_str()
                    .or(ds["database"].as_str());
                assert_eq!(db, Some(penv["POSTGRES_DB"].as_str()), "{uid}");
                assert_eq!(ds["jsonData"]["sslmode"].as_str(), Some("disable"));
                // The password is a secret file in Grafana's container, the one the login
                // job set it from.
                let password = ds["secureJsonData"]["password"]
                    .as_str()
                    .unwrap_or_default();
                let path = password
                    .strip_prefix("$__file{")
                    .and_then(|p| p.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("{uid}: the password is not read from a file"));
                let file = compose.secret_file(&grafana, path);
                assert_eq!(file, reader.password_file, "{uid}: the password's file");
                assert!(secrets.value(&file).len() >= 32, "{uid}: a weak password");
                assert_eq!(
                    compose
                        .depends_on(&grafana)
                        .get(&reader.service)
                        .map(String::as_str),
                    Some("service_completed_successfully"),
                    "grafana starts once its login exists"
                );
            }
            other => panic!("unexpected data source type {other}"),
        }
        assert!(
            provisioned.insert(uid.clone(), kind).is_none(),
            "uid {uid} twice"
        );
    }
    provisioned
}

/// The one-shot job that makes Grafana's database login: a `psql -f` of a SQL file of the
/// repository, after the migrations, as the database's owner.
struct ReaderLoginJob {
    service: String,
    /// The LOGIN role it makes, a member of the reader role of the migrations.
    login: String,
    /// The secret file (./secrets/NAME) its password comes from.
    password_file: String,
}

impl ReaderLoginJob {
    fn of(compose: &Compose) -> ReaderLoginJob {
        let found: Vec<String> = compose
            .services()
            .into_iter()
            .filter(|(_, s)| {
                compose
                    .command_of(s)
                    .join(" ")
                    .split_whitespace()
                    .any(|w| w == "psql")
            })
            .map(|(n, _)| n)
            .collect();
        assert_eq!(found.len(), 1, "services running psql: {found:?}");
        let service = found[0].clone();
        let text = compose.command_of(&compose.service(&service)).join(" ");
        let command: Vec<String> = text.split_whitespace().map(String::from).collect();
        let postgres = compose.postgres_server();
        let penv = compose.env(&postgres);
        let after = |flag: &str| -> String {
            command
                .iter()
                .position(|w| w == flag)
                .and_then(|i| command.get(i + 1))
                .unwrap_or_else(|| panic!("{service}: no {flag} in {command:?}"))
                .clone()
        };
        assert_eq!(after("-h"), postgres, "{service} connects to");
        assert_eq!(after("-U"), penv["POSTGRES_USER"], "{service} connects as");
        assert_eq!(after("-d"), penv["POSTGRES_DB"], "{service} connects to");
        // The owner's password from the same file as the server's.
        let owner_password = compose.secret_file(&postgres, &penv["POSTGRES_PASSWORD_FILE"]);
        let cat = text
            .split("$(cat ")
            .nth(1)
            .and_then(|w| w.split(')').next())
            .unwrap_or_else(|| panic!("{service} reads no password file: {text}"));
        assert_eq!(
            compose.secret_file(&service, cat),
            owner_password,
            "{service}"
        );
        assert_eq!(
            compose
                .depends_on(&service)
                .get(&compose.by_command("migrate"))
                .map(String::as_str),
            Some("service_completed_successfully"),
            "{service} runs after the migrations, which make the reader role"
        );

        // The SQL file it runs, from the repository.
        let target = after("-f");
        let (binds, _) = compose.mounts(&service);
        let source = binds
            .iter()
            .find(|(_, t)| *t == target)
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| panic!("{service} runs {target}, which it does not mount"));
        let sql = read(source.trim_start_matches("./"));
        let login = sql
            .split("CREATE ROLE ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("{source} makes no role"))
            .to_string();
        assert!(
            sql.contains(&format!("CREATE ROLE {login} LOGIN IN ROLE {READER}"))
                && sql.contains(&format!("GRANT {READER} TO {login}")),
            "{source}: {login} is not a member of {READER}"
        );
        let migrations: String = std::fs::read_dir(repo().join("migrations"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert!(
            migrations.contains(&format!("CREATE ROLE {READER} NOLOGIN")),
            "no migration makes {READER}"
        );
        let password_path = sql
            .split("`cat ")
            .nth(1)
            .and_then(|r| r.split('`').next())
            .unwrap_or_else(|| panic!("{source} reads no password file"));
        assert!(
            sql.contains("PASSWORD :'password'"),
            "{source} does not set the password it read"
        );
        let password_file = compose.secret_file(&service, password_path);
        ReaderLoginJob {
            service,
            login,
            password_file,
        }
    }
}

/// Every data source a dashboard uses is provisioned with that uid and type; every query
/// sits on a data source of its language, and every metric it queries is one cdrflow
/// registers; every variable it uses is defined.
fn dashboard_uses_provisioned_sources_and_defined_variables(
    file: &str,
    d: &Json,
    provisioned: &BTreeMap<String, String>,
) {
    let metric_sources: String = std::fs::read_dir(repo().join("src/telemetry"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    let mut refs = vec![];
    datasource_refs(d, "", &mut refs);
    assert!(!refs.is_empty(), "{file} names no data source");
    for (at, r) in &refs {
        let uid = r["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}{at}: data source {r} without a uid"));
        assert_eq!(
            provisioned.get(uid),
            r["type"].as_str().map(String::from).as_ref(),
            "{file}{at}: data source {r} is not provisioned with that uid and type"
        );
    }
    let defined: BTreeSet<String> = variables(d)
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let registered = |m: &str| {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| m.strip_suffix(s))
            .filter(|f| metric_sources.contains(&format!("\"{f}\"")))
            .unwrap_or(m);
        metric_sources.contains(&format!("\"{family}\""))
    };
    for v in variables(d).iter().filter(|v| v["type"] == "query") {
        for m in metric_names(&variable_query(v)) {
            assert!(
                registered(&m),
                "{file}: variable {} queries {m}, which cdrflow does not register",
                v["name"]
            );
        }
    }
    let mut ids = BTreeSet::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or("").to_string();
        assert!(
            ids.insert(p["id"].as_i64()),
            "{file}: panel id {} twice",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "{file}: panel {title} has no query");
        for t in targets {
            let ds = if t["datasource"].is_null() {
                &p["datasource"]
            } else {
                &t["datasource"]
            };
            let kind = provisioned
                .get(ds["uid"].as_str().unwrap_or_default())
                .unwrap_or_else(|| panic!("{file}: {title} has no provisioned data source"));
            match (t["expr"].as_str(), t["rawSql"].as_str()) {
                (Some(expr), None) => {
                    assert_eq!(kind, "prometheus", "{file}: {title}");
                    for m in metric_names(expr) {
                        assert!(
                            registered(&m),
                            "{file}: {title} queries {m}, which cdrflow does not register"
                        );
                    }
                }
                (None, Some(_)) => assert!(
                    kind.contains("postgres"),
                    "{file}: {title}: SQL on a {kind} data source"
                ),
                _ => panic!("{file}: {title}: a target with neither expr nor rawSql"),
            }
        }
    }
    let mut texts = vec![];
    strings(d, &mut texts);
    for text in texts {
        for name in variable_refs(&text) {
            assert!(
                defined.contains(&name)
                    || BUILTINS.contains(&name.as_str())
                    || name.starts_with("__data.")
                    || name.starts_with("__value")
                    || name.starts_with("__text"),
                "{file}: `{text}` uses ${name}, which the dashboard does not define"
            );
        }
    }
}

/// Debian's Prometheus, on a port of its own, killed when the test ends.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    /// Start it with the repository's prometheus.yml, retargeted at `target` (host:port)
    /// and scraping every second.
    fn start(target: &str) -> Prometheus {
        let version = Command::new("prometheus").arg("--version").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "`prometheus` is not on PATH: scripts/test.sh installs Debian's package \
             (apt-get install prometheus)"
        );
        let dir = tempdir();
        let mut config = yaml(PROMETHEUS);
        config["global"]["scrape_interval"] = Yaml::from("1s");
        config["global"]["evaluation_interval"] = Yaml::from("1s");
        let jobs = config["scrape_configs"]
            .as_sequence_mut()
            .expect("scrape_configs");
        assert_eq!(jobs.len(), 1, "one scrape job: cdrflow");
        jobs[0]["static_configs"] =
            serde_yaml_ng::from_str(&format!("[{{targets: [\"{target}\"]}}]")).unwrap();
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus { child, port, log };
        let started = Instant::now();
        while http_get(port, "/-/ready").map(|(s, _)| s) != Some(200) {
            assert!(
                p.child.try_wait().unwrap().is_none(),
                "prometheus exited: {}",
                p.log_text()
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "prometheus not ready: {}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET an API path: the decoded JSON answer (also for 4xx errors, which carry one).
    fn api(&self, path_and_query: &str) -> Json {
        let (status, body) = http_get(self.port, path_and_query)
            .unwrap_or_else(|| panic!("GET {path_and_query}: no answer"));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {status} {e}: {body}"))
    }

    /// An instant query at `time` (Unix seconds).
    fn query(&self, expr: &str, time: f64) -> Json {
        self.api(&format!(
            "/api/v1/query?query={}&time={time:.3}",
            urlencode(expr)
        ))
    }

    /// The sum of an instant query's sample values, if it has any.
    fn sum(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr, now());
        let result = r["data"]["result"].as_array()?;
        if result.is_empty() {
            return None;
        }
        Some(result.iter().map(sample).sum())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sample(series: &Json) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn start_daemon(db: &TestDb, topic: &str, group: &str) -> Daemon {
    let mut d = Daemon::start(&DaemonConfig {
        topic,
        group,
        database_url: &db.url,
        idle_secs: None,
        extra: vec!["--no-publish".into()],
    });
    d.wait_up();
    d
}

/// Every PromQL expression of the Pipeline dashboard — panels, collapsed rows and
/// variable queries — is accepted by a real Prometheus scraping a real daemon through
/// traffic with anomalies, and the throughput and reject panels show that traffic.
#[tokio::test(flavor = "multi_thread")]
async fn every_promql_expression_of_the_pipeline_dashboard_evaluates_in_prometheus_scraping_the_daemon(
) {
    let db = TestDb::new().await;
    let topic = topic("cdr.raw.grafana", 2).await;
    let d = start_daemon(&db, &topic, "grafana-promql");
    let prometheus = Prometheus::start(&format!("127.0.0.1:{}", d.http_port));
    wait_for(
        "Prometheus to scrape the daemon",
        Duration::from_secs(30),
        || prometheus.sum("up{job=\"cdrflow\"}") == Some(1.0),
    );

    // Rate-limited, so that traffic spans several scrapes; the default anomaly mix gives
    // rejects of several reasons.
    let report = spawn_generate(
        &topic,
        &db.url,
        12_000,
        17,
        vec!["--rate".into(), "3000".into()],
    )
    .join()
    .expect("generator");
    let sent = report.sent as f64;
    wait_for(
        "the daemon to consume everything",
        Duration::from_secs(120),
        || d.metric("cdrflow_records_consumed_total") == Some(sent),
    );
    wait_for(
        "Prometheus to see everything consumed",
        Duration::from_secs(30),
        || prometheus.sum("cdrflow_records_consumed_total") == Some(sent),
    );
    // Evaluated at one instant whose rate windows hold the end of the traffic.
    let at = now();

    let dashboard = json(PIPELINE);
    let mut values: BTreeMap<String, String> = [
        ("__rate_interval", "15s"),
        ("__interval", "1s"),
        ("__interval_ms", "1000"),
        ("__range", "5m"),
        ("__range_s", "300"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut variable_queries = vec![];
    for v in variables(&dashboard) {
        let name = v["name"].as_str().unwrap().to_string();
        // Every variable is used with All selected: its allValue, `.*` for a regex match.
        assert_eq!(v["includeAll"], true, "variable {name}");
        values.insert(name, v["allValue"].as_str().unwrap_or(".*").to_string());
        if v["type"] == "query" {
            variable_queries.push(variable_query(&v));
        }
    }

    let targets = promql_targets(&dashboard);
    assert!(targets.len() >= 20, "only {} expressions", targets.len());
    let mut failures = vec![];
    let mut checked_traffic = 0;
    for (title, expr) in &targets {
        let promql = substitute(expr, &values);
        assert!(
            !promql.contains('$'),
            "{title}: unsubstituted variable in {promql}"
        );
        let r = prometheus.query(&promql, at);
        if r["status"] != "success" {
            failures.push(format!("{title}: {promql}\n  → {}", r["error"]));
            continue;
        }
        let lower = title.to_lowercase();
        if lower.contains("throughput") || lower.contains("reject") {
            checked_traffic += 1;
            let result = r["data"]["result"].as_array().cloned().unwrap_or_default();
            if !result.iter().any(|s| sample(s) > 0.0) {
                failures.push(format!(
                    "{title}: {promql}\n  → no positive series after traffic: {result:?}"
                ));
            }
        }
    }
    assert!(
        checked_traffic >= 3,
        "throughput and reject panels: {checked_traffic}"
    );

    for q in &variable_queries {
        let q = substitute(q, &values);
        let path = if let Some(args) = q
            .strip_prefix("label_values(")
            .and_then(|a| a.strip_suffix(')'))
        {
            match args.rsplit_once(',') {
                Some((selector, label)) => format!(
                    "/api/v1/label/{}/values?match[]={}&start={:.3}&end={at:.3}",
                    label.trim(),
                    urlencode(selector.trim()),
                    at - 300.0
                ),
                None => format!("/api/v1/label/{}/values", args.trim()),
            }
        } else if let Some(expr) = q
            .strip_prefix("query_result(")
            .and_then(|a| a.strip_suffix(')'))
        {
            format!("/api/v1/query?query={}&time={at:.3}", urlencode(expr))
        } else {
            panic!("variable query {q}: not a form this test knows")
        };
        let r = prometheus.api(&path);
        if r["status"] != "success" {
            failures.push(format!("variable {q}: {}", r["error"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions failed:\n{}\nprometheus log:\n{}",
        failures.len(),
        targets.len() + variable_queries.len(),
        failures.join("\n"),
        prometheus.log_text()
    );
    drop(prometheus);
    drop(d);
}

/// `drain` until the group's stored offsets reach the topic's end: a daemon that sees no
/// record within its idle time (a slow group join, or a rebalance waiting out a killed
/// member's session) exits before the traffic is in.
fn drain_to_end(database_url: &str, topic: &str, group: &str) {
    let ends = end_offsets(topic);
    for _ in 0..3 {
        drain(database_url, topic, group);
        let stored = stored_offsets(database_url, group);
        if stored == ends {
            return;
        }
        eprintln!("drained to {stored:?} of {ends:?}; draining again");
    }
    panic!("the daemon did not reach the end of {topic}");
}

/// Grafana's SQL macros, expanded as its PostgreSQL data source does for the time range
/// `from`..`to` (RFC 3339). A macro this test does not know fails it.
fn expand_macros(sql: &str, from: &str, to: &str) -> String {
    fn seconds(interval: &str) -> u64 {
        let i = interval.trim_matches(|c| c == '\'' || c == '"');
        let (n, unit) = i.split_at(i.len() - 1);
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("interval {interval}"));
        n * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => panic!("interval {interval}"),
        }
    }
    let mut out = String::new();
    let mut rest = sql;
    while let Some(i) = rest.find("$__") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 3..];
        let n = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        let name = &tail[..n];
        let Some(args) = tail[n..].strip_prefix('(') else {
            // Not a macro: a variable such as $__all is substituted later.
            out.push_str(&rest[i..i + 3]);
            rest = tail;
            continue;
        };
        let close = args
            .find(')')
            .unwrap_or_else(|| panic!("$__{name}( not closed"));
        let a: Vec<&str> = args[..close].split(',').map(str::trim).collect();
        out.push_str(&match (name, a.as_slice()) {
            ("timeFilter", [col]) => format!("{col} BETWEEN '{from}' AND '{to}'"),
            ("timeFrom", [""]) => format!("'{from}'"),
            ("timeTo", [""]) => format!("'{to}'"),
            ("time", [col]) => format!("{col} AS \"time\""),
            ("timeGroup", [col, interval]) => {
                let s = seconds(interval);
                format!("floor(extract(epoch from {col})/{s})*{s}")
            }
            ("timeGroupAlias", [col, interval]) => {
                let s = seconds(interval);
                format!("floor(extract(epoch from {col})/{s})*{s} AS \"time\"")
            }
            _ => panic!(
                "macro $__{name}({}) is not one this test expands",
                a.join(", ")
            ),
        });
        rest = &args[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Grafana's quoting of a multi-value or All variable in SQL: 'a','b'.
fn quote_all(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every SQL query of the Revenue dashboard — panels and variables — runs against a
/// generated, billed month with late usage, as a login in the read-only role Grafana uses,
/// with its variables substituted as Grafana does (all values, and one service and
/// region), and returns rows; time-series queries have the `time` column Grafana needs;
/// the invoice links open the daemon's PDF.
#[tokio::test(flavor = "multi_thread")]
async fn every_sql_query_of_the_revenue_dashboard_returns_rows_for_a_generated_and_billed_month() {
    let db = TestDb::new().await;
    let (code, out, err) = cdrflow(&[
        "customers",
        "generate",
        "--count",
        "500",
        "--seed",
        "23",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "customers generate: {out}{err}");
    let topic = topic("cdr.raw.grafanasql", 2).await;
    // September 2026, the same 500 customers (same seed), the default anomaly mix.
    let report = generate(&topic, &db, 20_000, 23, &[]);
    assert!(report.expected.suspense > 0 && !report.expected.rejected.is_empty());
    drain_to_end(&db.url, &topic, "grafana-sql");
    let (code, out, err) = cdrflow(&[
        "bill",
        "--period",
        "2026-09",
        "--no-pdf",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "bill: {out}{err}");

    // The busiest customer makes two calls and sends an SMS in September after the
    // month was billed: late usage.
    let client = db.client().await;
    let busiest = client
        .query_one(
            "SELECT u.customer_id, c.msisdn, c.region FROM usage_events u
               JOIN customers c USING (customer_id)
              WHERE u.period = '2026-09-01' AND c.region IS NOT NULL
              GROUP BY u.customer_id, c.msisdn, c.region
              ORDER BY count(*) DESC, u.customer_id LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (msisdn, region): (String, String) = (busiest.get(1), busiest.get(2));
    let late = [
        serde_json::json!({"record_type": "voice", "timestamp": "2026-09-29T10:00:00+01:00",
            "caller_id": msisdn, "callee_id": "+212661234567", "duration_sec": 95,
            "cell_id": "CASABLANCA_1", "technology": "4G"}),
        serde_json::json!({"record_type": "voice", "timestamp": "2026-09-30T18:12:40+01:00",
            "caller_id": msisdn, "callee_id": "+33612345678", "duration_sec": 61,
            "cell_id": "RABAT_3", "technology": "5G"}),
        serde_json::json!({"record_type": "sms", "timestamp": "2026-09-14T09:15:00+01:00",
            "sender_id": msisdn, "receiver_id": "0661234567",
            "cell_id": "CASABLANCA_2", "technology": "4G"}),
    ];
    let payloads: Vec<(Option<&[u8]>, Vec<u8>)> = late
        .iter()
        .map(|r| (None, serde_json::to_vec(r).unwrap()))
        .collect();
    produce_raw(&topic, 0, &payloads);
    // The daemon stays up for the invoice links.
    let d = start_daemon(&db, &topic, "grafana-sql");
    let started = Instant::now();
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM rating_adjustments WHERE kind = 'late'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{n} late adjustments; daemon log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Grafana reads as a login in the read-only role, and so do the queries below.
    let reader = ReaderLogin::new(&db).await;
    let client = reader.client().await;
    let dashboard = json(REVENUE);
    // What Grafana's variables offer here, from their own queries.
    let mut options: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut multi: BTreeMap<String, bool> = BTreeMap::new();
    for v in variables(&dashboard) {
        let name = v["name"].as_str().unwrap().to_string();
        multi.insert(name.clone(), v["multi"] == true || v["includeAll"] == true);
        let values: Vec<String> = match v["type"].as_str().unwrap() {
            "query" => {
                let sql = variable_query(&v);
                assert!(!sql.contains('$'), "variable {name}: {sql}");
                let rows = client
                    .query(&sql, &[])
                    .await
                    .unwrap_or_else(|e| panic!("variable {name}: {e}\n{sql}"));
                assert!(!rows.is_empty(), "variable {name} offers nothing:\n{sql}");
                let column = rows[0]
                    .columns()
                    .iter()
                    .position(|c| c.name() == "__value")
                    .unwrap_or(0);
                rows.iter().map(|r| r.get::<_, String>(column)).collect()
            }
            "custom" => v["query"]
                .as_str()
                .unwrap()
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            "textbox" | "constant" => vec![variable_query(&v)],
            other => panic!("variable {name}: type {other}"),
        };
        options.insert(name, values);
    }
    assert!(
        options["period"].contains(&"2026-09-01".to_string()),
        "periods offered: {:?}",
        options["period"]
    );
    assert!(
        options["region"].contains(&region),
        "{:?}",
        options["region"]
    );
    assert_eq!(options["service"], ["voice", "sms", "data"]);
    assert_eq!(options["cdrflow_url"], ["http://localhost:8080"]);

    // Two selections: everything, and one service and one region (the busy customer's).
    let url = format!("http://127.0.0.1:{}", d.http_port);
    let selections: Vec<BTreeMap<String, String>> = [
        (options["service"].clone(), options["region"].clone()),
        (vec!["voice".to_string()], vec![region.clone()]),
    ]
    .into_iter()
    .map(|(services, regions)| {
        let mut m = BTreeMap::new();
        m.insert("period".to_string(), "2026-09-01".to_string());
        m.insert("service".to_string(), quote_all(&services));
        m.insert("region".to_string(), quote_all(&regions));
        m.insert("cdrflow_url".to_string(), url.clone());
        m
    })
    .collect();
    assert!(!multi["period"], "one period at a time");
    assert!(multi["service"] && multi["region"]);

    // The time range: the month and everything processed since (committed_at is now).
    let from = "2026-09-01T00:00:00Z";
    let to = chrono::Utc::now() + chrono::Duration::hours(1);
    let to = to.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let targets = sql_targets(&dashboard);
    assert!(targets.len() >= 15, "only {} SQL queries", targets.len());
    let mut failures = vec![];
    let mut links_opened = 0;
    for (panel, format, raw) in &targets {
        let title = panel["title"].as_str().unwrap_or("");
        assert!(
            ["table", "time_series"].contains(&format.as_str()),
            "{title}: format {format}"
        );
        for (i, values) in selections.iter().enumerate() {
            let sql = substitute(&expand_macros(raw, from, &to), values);
            assert!(
                !sql.contains('$'),
                "{title}: unsubstituted variable in\n{sql}"
            );
            let rows = match client.query(&sql, &[]).await {
                Ok(rows) => rows,
                Err(e) => {
                    let e = e
                        .as_db_error()
                        .map_or(e.to_string(), |d| d.message().to_string());
                    failures.push(format!("{title} (selection {i}): {e}\n{sql}"));
                    continue;
                }
            };
            if rows.is_empty() {
                failures.push(format!("{title} (selection {i}): no rows\n{sql}"));
                continue;
            }
            let columns: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
            if format == "time_series" && !columns.contains(&"time") {
                failures.push(format!("{title}: a time series without a `time` column"));
            }
            // Data links: the fields they use are columns, and the link opens the PDF.
            let mut links = vec![];
            link_urls(&panel["fieldConfig"], &mut links);
            for link in &links {
                let mut row_values = values.clone();
                for name in variable_refs(link) {
                    if let Some(field) = name.strip_prefix("__data.fields.") {
                        let column = columns
                            .iter()
                            .position(|c| *c == field)
                            .unwrap_or_else(|| panic!("{title}: link {link} uses field {field}, not a column of {columns:?}"));
                        let value = rows
                            .iter()
                            .find_map(|r| r.get::<_, Option<String>>(column))
                            .unwrap_or_else(|| panic!("{title}: no {field} to link"));
                        row_values.insert(name.clone(), value);
                    }
                }
                let target = substitute(link, &row_values);
                assert!(!target.contains('$'), "{title}: link {target}");
                let path = target
                    .strip_prefix(&url)
                    .unwrap_or_else(|| panic!("{title}: link {target} is not on the daemon"));
                let (status, headers, body) = get_bytes(d.http_port, path);
                let content_type = headers.get("content-type").cloned().unwrap_or_default();
                assert_eq!(
                    (status, content_type.as_str()),
                    (200, "application/pdf"),
                    "{title}: {target}"
                );
                assert!(body.starts_with(b"%PDF"), "{title}: {target} is no PDF");
                links_opened += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        targets.len() * selections.len(),
        failures.join("\n\n")
    );
    assert!(links_opened >= 2, "invoice links opened: {links_opened}");
}

/// A LOGIN role of its own in the read-only role, as Grafana's login is, for one test;
/// dropped when the test ends (roles outlive databases: they belong to the server).
struct ReaderLogin {
    name: String,
    url: String,
}

impl ReaderLogin {
    async fn new(db: &TestDb) -> ReaderLogin {
        let name = format!("cdrflow_test_login_{}", suffix());
        db.client()
            .await
            .batch_execute(&format!("CREATE ROLE {name} LOGIN IN ROLE {READER}"))
            .await
            .expect("create a login in the reader role");
        // postgres://USER@host/db → postgres://NAME@host/db
        let (scheme, rest) = db.url.split_once("://").unwrap();
        let place = rest.split_once('@').map_or(rest, |(_, p)| p);
        let url = format!("{scheme}://{name}@{place}");
        ReaderLogin { name, url }
    }

    async fn client(&self) -> tokio_postgres::Client {
        cdrflow::storage::connect(&self.url)
            .await
            .expect("connect as the reader login")
    }
}

impl Drop for ReaderLogin {
    fn drop(&mut self) {
        crate::helpers::as_admin_from_drop(format!("DROP ROLE IF EXISTS {}", self.name));
    }
}

/// SQL text without its `--` comments and '...' literals, as lowercase words each with
/// whether a `(` follows it (a function call).
fn sql_words(sql: &str) -> Vec<(String, bool)> {
    let mut bare = String::new();
    for line in sql.lines() {
        let line = line.split("--").next().unwrap_or("");
        let mut in_literal = false;
        for c in line.chars() {
            match (in_literal, c) {
                (false, '\'') | (true, '\'') => {
                    in_literal = !in_literal;
                    bare.push(' ');
                }
                (true, _) => {}
                (false, c) => bare.push(c),
            }
        }
        bare.push('\n');
    }
    let mut words = vec![];
    let mut rest = bare.as_str();
    while let Some(i) = rest.find(|c: char| c.is_ascii_lowercase() || c == '_') {
        let tail = &rest[i..];
        let n = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let called = tail[n..].trim_start().starts_with('(');
        // A word that starts inside another (an upper-case or quoted one) is not one.
        let glued = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"');
        if !glued {
            words.push((tail[..n].to_string(), called));
        }
        rest = &tail[n..];
    }
    words
}

/// The read-only role reads exactly the relations the dashboards query — named in their
/// SQL, or read by the functions their SQL calls, and those functions' callees — and can
/// read each; it is refused every write: INSERT, UPDATE, DELETE and TRUNCATE on a table,
/// CREATE TABLE in the schema, refreshing the reports; and reading a table, or a column
/// of a per-event table, that no dashboard needs (SQLSTATE 42501 each).
#[tokio::test(flavor = "multi_thread")]
async fn the_reader_role_reads_exactly_what_the_dashboards_query_and_writes_nothing() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let reader = ReaderLogin::new(&db).await;

    let relations: BTreeMap<String, bool> = admin
        .query(
            "SELECT c.relname::text, has_any_column_privilege($1, c.oid, 'SELECT')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            &[&reader.name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let functions: BTreeMap<String, String> = admin
        .query(
            "SELECT p.proname::text, string_agg(p.prosrc, E'\\n')
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = current_schema() GROUP BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    // Every SQL text of both dashboards: panels' targets and query variables.
    let mut queries = vec![];
    for file in [PIPELINE, REVENUE] {
        let d = json(file);
        for (_, _, sql) in sql_targets(&d) {
            queries.push(sql);
        }
        for v in variables(&d) {
            if v["type"] == "query" && variable_query(&v).to_uppercase().contains("SELECT") {
                queries.push(variable_query(&v));
            }
        }
    }
    assert!(queries.len() >= 15, "{} SQL queries", queries.len());
    let mut needed = BTreeSet::new();
    let mut called = BTreeSet::new();
    let mut texts = queries.clone();
    while let Some(sql) = texts.pop() {
        for (word, is_call) in sql_words(&sql) {
            if is_call {
                if let Some(body) = functions.get(&word) {
                    if called.insert(word.clone()) {
                        texts.push(body.clone());
                    }
                }
            } else if relations.contains_key(&word) {
                needed.insert(word);
            }
        }
    }
    assert!(
        needed.contains("usage_buckets") && called.contains("report_rfm"),
        "{needed:?} {called:?}"
    );
    let granted: BTreeSet<String> = relations
        .iter()
        .filter(|(_, &may)| may)
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(
        granted, needed,
        "what {READER} may read, against what the dashboards query"
    );

    let client = reader.client().await;
    for r in &needed {
        client
            .query(&format!("SELECT 1 FROM {r} LIMIT 1"), &[])
            .await
            .unwrap_or_else(|e| panic!("{READER} cannot read {r}: {e}"));
    }
    let refused = [
        "INSERT INTO customers (msisdn, name, plan) VALUES ('+212600000999', 'x', 'basic')",
        "UPDATE customers SET name = 'x'",
        "DELETE FROM invoices",
        "TRUNCATE usage_events",
        "CREATE TABLE grafana_notes (note TEXT)",
        "SELECT * FROM rejected_records",
        "SELECT * FROM consumer_offsets",
        // Of the per-event tables, only the columns the dashboards use.
        "SELECT msisdn, peer_msisdn, cell_id FROM usage_events",
        "SELECT raw FROM suspense_records",
        "SELECT report_refresh('UTC')",
    ];
    for sql in refused {
        let e = client
            .batch_execute(sql)
            .await
            .err()
            .unwrap_or_else(|| panic!("{READER} may run {sql}"));
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {e:?}"
        );
    }
    drop(client);
    let login = reader.name.clone();
    drop(reader);
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = $1",
            &[&login],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the test's login {login} is dropped");
}

//! The command line: one module per subcommand. Settings come from flags, `CDRFLOW_*`
//! environment variables and a settings file (see [`config`]); every value is checked
//! before anything starts, and a wrong one is named in the error (exit status 2).

pub mod bill;
pub mod catalog;
pub mod config;
pub mod customers;
pub mod demo;
pub mod explain;
pub mod generate;
pub mod migrate;
pub mod replay;
pub mod report;
pub mod retention;
pub mod run;
pub mod stats;

use crate::kafka::settings::{
    check_property, ClientCertificate, KafkaSettings, Sasl, SaslMechanism, Secret, SecurityProtocol,
};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "cdrflow",
    version,
    about = "Telecom mediation, rating and billing engine: CDRs from Kafka, exact money out."
)]
pub struct Cli {
    /// Settings file (TOML; keys are the CDRFLOW_* variables' names without the prefix,
    /// in lower case). Default: ./cdrflow.toml if it exists. Flags and the environment
    /// override it.
    #[arg(long, global = true, env = "CDRFLOW_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: consume CDRs, mediate them, commit them exactly once.
    Run(run::RunArgs),
    /// Produce synthetic CDRs (with anomalies) to Kafka or a JSONL file.
    Generate(generate::GenerateArgs),
    /// Create the database if needed and apply the schema migrations.
    Migrate(migrate::MigrateArgs),
    /// Reconcile: records consumed against accepted, rejected, duplicates and suspense.
    Stats(stats::StatsArgs),
    /// The rating catalog: apply a file as a new version, show the active one.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Customers: generate synthetic ones or import a CSV file.
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
    /// How a stored event's price was made: the record, its normalization, the tariff
    /// lines with their arithmetic, the result.
    Explain(explain::ExplainArgs),
    /// Close a billing month and issue its invoices (Postgres, JSON, PDF).
    Bill(bill::BillArgs),
    /// Rewind a consumer group's stored offsets to process a range again (optionally
    /// re-pricing what was already accepted).
    Replay(replay::ReplayArgs),
    /// Everything end to end on a fresh database: migrate, catalog, customers, a month of
    /// CDRs with anomalies, the daemon until drained, suspense, the month's invoices, and
    /// a summary (reconciliation, revenue, invoices, throughput, where to look).
    Demo(demo::DemoArgs),
    /// Reports (revenue, ARPU, RFM, profitability, usage, data quality, late usage) as a
    /// table, CSV or JSON; `--list` names them.
    Report(report::ReportArgs),
    /// Archive the usage and rejects of the months before the kept ones (gzip CSV and a
    /// manifest, checked by reading them back), then drop them; invoices and report
    /// aggregates keep their rows.
    Retention(retention::RetentionArgs),
}

/// Shared database flag. The URL may hold a password: its environment value is never
/// shown in `--help`, and cdrflow never logs it.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "CDRFLOW_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/cdrflow"
    )]
    pub database_url: String,
}

/// The hidden flag that carries the settings file's `[kafka]` table (one `KEY=VALUE` per
/// entry, set as its default by [`config`]); `--kafka-property` values override it.
pub const FILE_PROPERTY_FLAG: &str = "kafka-file-property";

/// The shared Kafka flags, as given. Flattened into a command as [`KafkaSettings`], which
/// parses them into settings checked as a whole (a wrong one stops the command with exit
/// status 2, like a bad flag), so a command holds only settings that make sense.
#[derive(Clone, clap::Args)]
pub struct KafkaFlags {
    /// Kafka bootstrap servers (host:port, comma-separated).
    #[arg(long, env = "CDRFLOW_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// How to reach the brokers: ssl and sasl_ssl speak TLS, sasl_plaintext and sasl_ssl
    /// authenticate with SASL.
    #[arg(long, env = "CDRFLOW_KAFKA_SECURITY_PROTOCOL", value_enum, default_value_t = SecurityProtocol::Plaintext)]
    pub kafka_security_protocol: SecurityProtocol,
    /// SASL mechanism (sasl_plaintext and sasl_ssl).
    #[arg(
        long,
        env = "CDRFLOW_KAFKA_SASL_MECHANISM",
        value_enum,
        ignore_case = true
    )]
    pub kafka_sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    #[arg(long, env = "CDRFLOW_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// SASL password. Also read from a file: CDRFLOW_KAFKA_SASL_PASSWORD_FILE, or
    /// `kafka_sasl_password_file` in the settings file.
    #[arg(long, env = "CDRFLOW_KAFKA_SASL_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub kafka_sasl_password: Option<Secret>,
    /// CA certificates (PEM) to check the brokers' certificates against (ssl, sasl_ssl);
    /// default: the system's.
    #[arg(long, env = "CDRFLOW_KAFKA_SSL_CA", value_name = "FILE")]
    pub kafka_ssl_ca: Option<PathBuf>,
    /// Client certificate (PEM), for brokers that authenticate clients by TLS.
    #[arg(long, env = "CDRFLOW_KAFKA_SSL_CERTIFICATE", value_name = "FILE")]
    pub kafka_ssl_certificate: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "CDRFLOW_KAFKA_SSL_KEY", value_name = "FILE")]
    pub kafka_ssl_key: Option<PathBuf>,
    /// Password of the private key, if encrypted. Also read from a file:
    /// CDRFLOW_KAFKA_SSL_KEY_PASSWORD_FILE, or `kafka_ssl_key_password_file` in the
    /// settings file.
    #[arg(long, env = "CDRFLOW_KAFKA_SSL_KEY_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub kafka_ssl_key_password: Option<Secret>,
    /// Another librdkafka property for every Kafka client, as KEY=VALUE (repeatable);
    /// overrides the settings file's [kafka] table. Properties cdrflow sets itself are
    /// refused, with the setting that covers them.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE", value_parser = property)]
    pub kafka_properties: Vec<(String, String)>,
    #[arg(long = FILE_PROPERTY_FLAG, hide = true, value_parser = property)]
    pub kafka_file_properties: Vec<(String, String)>,
}

/// A secret's value, as given; never quoted in an error.
fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// `KEY=VALUE`, checked later as a whole (see [`KafkaFlags::settings`]): an error from
/// here would quote the value, which may be a credential.
fn property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err("expected KEY=VALUE, KEY a librdkafka property".to_string()),
    }
}

impl KafkaFlags {
    /// The settings, if they make sense together, with every error naming the setting.
    pub fn settings(self) -> Result<KafkaSettings, String> {
        let protocol = self.kafka_security_protocol;
        let mut settings = KafkaSettings::plaintext(self.brokers);
        settings.protocol = protocol;
        let sasl_given = [
            (
                "--kafka-sasl-mechanism",
                self.kafka_sasl_mechanism.is_some(),
            ),
            ("--kafka-sasl-username", self.kafka_sasl_username.is_some()),
            ("--kafka-sasl-password", self.kafka_sasl_password.is_some()),
        ];
        let needs = |flag: &str| {
            format!(
                "--kafka-security-protocol {} needs {flag}",
                protocol.as_str()
            )
        };
        if protocol.sasl() {
            settings.sasl = Some(Sasl {
                mechanism: self
                    .kafka_sasl_mechanism
                    .ok_or_else(|| needs("--kafka-sasl-mechanism"))?,
                username: self
                    .kafka_sasl_username
                    .ok_or_else(|| needs("--kafka-sasl-username"))?,
                password: self
                    .kafka_sasl_password
                    .ok_or_else(|| needs("--kafka-sasl-password"))?,
            });
        } else if let Some((flag, _)) = sasl_given.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{flag} is set, but --kafka-security-protocol is {}: SASL is only used with \
                 sasl_plaintext or sasl_ssl",
                protocol.as_str()
            ));
        }
        let tls_given = [
            ("--kafka-ssl-ca", self.kafka_ssl_ca.is_some()),
            (
                "--kafka-ssl-certificate",
                self.kafka_ssl_certificate.is_some(),
            ),
            ("--kafka-ssl-key", self.kafka_ssl_key.is_some()),
            (
                "--kafka-ssl-key-password",
                self.kafka_ssl_key_password.is_some(),
            ),
        ];
        if let Some((flag, _)) = tls_given.iter().find(|(_, given)| *given) {
            if !protocol.tls() {
                return Err(format!(
                    "{flag} is set, but --kafka-security-protocol is {}: TLS is only used \
                     with ssl or sasl_ssl",
                    protocol.as_str()
                ));
            }
        }
        for (flag, path) in [
            ("--kafka-ssl-ca", &self.kafka_ssl_ca),
            ("--kafka-ssl-certificate", &self.kafka_ssl_certificate),
            ("--kafka-ssl-key", &self.kafka_ssl_key),
        ] {
            if let Some(path) = path {
                readable(flag, path)?;
            }
        }
        settings.ssl_ca = self.kafka_ssl_ca;
        settings.client_certificate = match (
            self.kafka_ssl_certificate,
            self.kafka_ssl_key,
            self.kafka_ssl_key_password,
        ) {
            (Some(certificate), Some(key), key_password) => Some(ClientCertificate {
                certificate,
                key,
                key_password,
            }),
            (None, None, None) => None,
            (Some(_), None, _) => {
                return Err("--kafka-ssl-certificate needs --kafka-ssl-key, its private key".into())
            }
            (None, Some(_), _) => {
                return Err(
                    "--kafka-ssl-key needs --kafka-ssl-certificate, the certificate of \
                            the key"
                        .into(),
                )
            }
            (None, None, Some(_)) => {
                return Err("--kafka-ssl-key-password is set without --kafka-ssl-key".into())
            }
        };
        // The file's table first: a flag overrides a key of it.
        for (key, value) in self
            .kafka_file_properties
            .into_iter()
            .chain(self.kafka_properties)
        {
            check_property(&key, &value).map_err(|e| format!("--kafka-property: {e}"))?;
            settings.properties.insert(key, value);
        }
        settings
            .check()
            .map_err(|e| format!("the Kafka client settings: {e}"))?;
        Ok(settings)
    }
}

/// A file given for `flag` exists and can be read.
fn readable(flag: &str, path: &Path) -> Result<(), String> {
    let opened = std::fs::File::open(path).and_then(|f| f.metadata());
    match opened {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{flag} {}: not a file", path.display())),
        Err(e) => Err(format!("{flag} {}: cannot read it: {e}", path.display())),
    }
}

impl clap::Args for KafkaSettings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        KafkaFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        KafkaFlags::augment_args_for_update(cmd)
    }
}

impl clap::FromArgMatches for KafkaSettings {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        KafkaFlags::from_arg_matches(matches)?
            .settings()
            // A raw error is printed as it is: the line ends here.
            .map_err(|message| {
                clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("{message}\n"),
                )
            })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Command {
    /// Whether the command writes a report to stdout and talks to nothing but
    /// Postgres, so that its output may end early when the reader has had enough
    /// (`cdrflow stats | head`). Commands that hold broker connections keep SIGPIPE
    /// ignored: a write to a closed socket must be an error there, not the end.
    pub fn ends_with_its_reader(&self) -> bool {
        matches!(
            self,
            Command::Migrate(_)
                | Command::Stats(_)
                | Command::Catalog(_)
                | Command::Customers(_)
                | Command::Bill(_)
                | Command::Report(_)
                | Command::Retention(_)
        )
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Generate(args) => generate::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Stats(args) => stats::run(args).await,
        Command::Catalog(cmd) => catalog::run(cmd).await,
        Command::Customers(cmd) => customers::run(cmd).await,
        Command::Explain(args) => explain::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Bill(args) => bill::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Retention(args) => retention::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Kafka settings of `cdrflow run` with `flags`, or the error's text.
    fn kafka(flags: &[&str]) -> Result<KafkaSettings, String> {
        let mut argv = vec!["cdrflow", "run"];
        argv.extend(flags);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Run(run) => Ok(run.kafka),
            other => panic!("{other:?}"),
        }
    }

    fn error(flags: &[&str]) -> String {
        // The first paragraph: clap adds the usage.
        let e = kafka(flags).unwrap_err();
        e.split("\n\n")
            .next()
            .unwrap_or_default()
            .replace("error: ", "")
    }

    fn pem(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("cdrflow-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, "not checked here\n").unwrap();
        path.display().to_string()
    }

    const SASL_SSL: [&str; 8] = [
        "--kafka-security-protocol",
        "sasl_ssl",
        "--kafka-sasl-mechanism",
        "scram-sha-256",
        "--kafka-sasl-username",
        "billing",
        "--kafka-sasl-password",
        "s3cret",
    ];

    #[test]
    fn plaintext_is_the_default_and_sasl_takes_its_three_settings() {
        let s = kafka(&["--brokers", "k1:9092,k2:9092"]).unwrap();
        assert_eq!(s, KafkaSettings::plaintext("k1:9092,k2:9092"));
        let s = kafka(&SASL_SSL).unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslSsl);
        let sasl = s.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha256);
        assert_eq!(
            (sasl.username.as_str(), sasl.password.expose()),
            ("billing", "s3cret")
        );
    }

    #[test]
    fn a_sasl_protocol_without_its_credentials_is_refused_naming_the_missing_one() {
        assert_eq!(
            error(&SASL_SSL[..6]),
            "--kafka-security-protocol sasl_ssl needs --kafka-sasl-password"
        );
        assert_eq!(
            error(&["--kafka-security-protocol", "sasl_plaintext"]),
            "--kafka-security-protocol sasl_plaintext needs --kafka-sasl-mechanism"
        );
    }

    #[test]
    fn sasl_or_tls_settings_without_their_protocol_are_refused() {
        assert_eq!(
            error(&["--kafka-sasl-username", "billing"]),
            "--kafka-sasl-username is set, but --kafka-security-protocol is plaintext: SASL is only used with sasl_plaintext or sasl_ssl"
        );
        let ca = pem("ca-without-tls.pem");
        assert_eq!(
            error(&[
                "--kafka-security-protocol",
                "sasl_plaintext",
                "--kafka-sasl-mechanism",
                "PLAIN",
                "--kafka-sasl-username",
                "u",
                "--kafka-sasl-password",
                "p",
                "--kafka-ssl-ca",
                &ca
            ]),
            "--kafka-ssl-ca is set, but --kafka-security-protocol is sasl_plaintext: TLS is only used with ssl or sasl_ssl"
        );
    }

    #[test]
    fn a_missing_file_and_a_certificate_without_its_key_are_refused() {
        let e = error(&[
            "--kafka-security-protocol",
            "ssl",
            "--kafka-ssl-ca",
            "/nonexistent/ca.pem",
        ]);
        assert!(
            e.starts_with("--kafka-ssl-ca /nonexistent/ca.pem: cannot read it: "),
            "{e}"
        );
        let cert = pem("client.pem");
        assert_eq!(
            error(&[
                "--kafka-security-protocol",
                "ssl",
                "--kafka-ssl-certificate",
                &cert
            ]),
            "--kafka-ssl-certificate needs --kafka-ssl-key, its private key"
        );
        assert_eq!(
            error(&[
                "--kafka-security-protocol",
                "ssl",
                "--kafka-ssl-key-password",
                "s3cret"
            ]),
            "--kafka-ssl-key-password is set without --kafka-ssl-key"
        );
    }

    #[test]
    fn librdkafka_refuses_an_unreadable_pem_before_anything_starts() {
        let (cert, key) = (pem("garbage-cert.pem"), pem("garbage-key.pem"));
        let e = error(&[
            "--kafka-security-protocol",
            "ssl",
            "--kafka-ssl-certificate",
            &cert,
            "--kafka-ssl-key",
            &key,
            "--kafka-ssl-key-password",
            "s3cret",
        ]);
        assert!(e.starts_with("the Kafka client settings: "), "{e}");
        assert!(e.contains("ssl."), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn a_passthrough_flag_is_checked_and_never_quoted() {
        let s = kafka(&["--kafka-property", "client.id=billing-1"]).unwrap();
        assert_eq!(s.properties["client.id"], "billing-1");
        assert_eq!(
            error(&["--kafka-property", "sasl.password=s3cret"]),
            "--kafka-property: `sasl.password` is cdrflow's `kafka_sasl_password` setting (--kafka-sasl-password, CDRFLOW_KAFKA_SASL_PASSWORD): set it there"
        );
        let e = error(&["--kafka-property", "clinet.id=x"]);
        assert!(
            e.starts_with("--kafka-property: librdkafka refuses `clinet.id`: "),
            "{e}"
        );
        let e = error(&["--kafka-property", "no-equals-sign"]);
        assert!(e.contains("expected KEY=VALUE"), "{e}");
    }

    #[test]
    fn the_settings_debug_of_a_command_shows_no_secret() {
        let mut flags = SASL_SSL.to_vec();
        flags.extend(["--kafka-property", "ssl.keystore.password=s3cret"]);
        let cli = Cli::try_parse_from(["cdrflow", "run"].iter().chain(&flags)).unwrap();
        let shown = format!("{cli:?}");
        assert!(shown.contains("billing"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

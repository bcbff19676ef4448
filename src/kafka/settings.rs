//! How cdrflow reaches Kafka: the brokers, the security protocol, SASL credentials, TLS
//! files, and librdkafka properties passed through as given. Built once from the settings
//! (flags, environment, settings file: see `cli::KafkaFlags`) and checked before anything
//! starts; [`super::client::base_config`] turns it into the configuration every client
//! starts from. Secrets are [`Secret`]s, which never print, and the settings' `Debug`
//! shows the passthrough properties' names only (a value may be a credential).

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use crate::secret::Secret;

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// librdkafka's `sasl.mechanism`: the ones built into librdkafka with OpenSSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// The client's own certificate, for brokers that ask for one (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub key_password: Option<Secret>,
}

/// Everything a Kafka client of cdrflow is configured with. Build it with
/// [`KafkaSettings::plaintext`] and set the rest, then [`KafkaSettings::check`] it.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    pub protocol: SecurityProtocol,
    /// Present exactly when `protocol` is a SASL one.
    pub sasl: Option<Sasl>,
    /// CA certificates (PEM) the brokers' certificates are checked against; librdkafka's
    /// default trust store when absent.
    pub ssl_ca: Option<PathBuf>,
    pub client_certificate: Option<ClientCertificate>,
    /// Other librdkafka properties, each checked by [`check_property`].
    pub properties: BTreeMap<String, String>,
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("protocol", &self.protocol)
            .field("sasl", &self.sasl)
            .field("ssl_ca", &self.ssl_ca)
            .field("client_certificate", &self.client_certificate)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KafkaSettings {
    /// The brokers at `brokers`, reached without TLS or authentication.
    pub fn plaintext(brokers: impl Into<String>) -> KafkaSettings {
        KafkaSettings {
            brokers: brokers.into(),
            protocol: SecurityProtocol::Plaintext,
            sasl: None,
            ssl_ca: None,
            client_certificate: None,
            properties: BTreeMap::new(),
        }
    }

    /// Let librdkafka check the whole configuration without connecting: property names
    /// and values, and the TLS files (it loads the CA, certificate and key when a client
    /// is made). A throw-away consumer with no bootstrap servers, so nothing is dialled.
    pub fn check(&self) -> Result<(), String> {
        let mut config = super::client::base_config(self);
        config.remove("bootstrap.servers");
        config.set_log_level(RDKafkaLogLevel::Emerg);
        config
            .create::<BaseConsumer>()
            .map(drop)
            .map_err(|e| librdkafka_message(&e, self))
    }
}

/// librdkafka's own words for a configuration error, without any secret's value.
fn librdkafka_message(error: &KafkaError, settings: &KafkaSettings) -> String {
    let mut text = match error {
        KafkaError::ClientConfig(_, description, _, _) => description.clone(),
        KafkaError::ClientCreation(description) => description.clone(),
        other => other.to_string(),
    };
    let secrets = settings
        .sasl
        .iter()
        .map(|s| s.password.expose())
        .chain(
            settings
                .client_certificate
                .iter()
                .filter_map(|c| c.key_password.as_ref().map(Secret::expose)),
        )
        .chain(
            settings
                .properties
                .iter()
                .filter(|(k, _)| sensitive(k))
                .map(|(_, v)| v.as_str()),
        );
    for secret in secrets.filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
    }
    text
}

/// librdkafka properties cdrflow sets itself, refused in the passthrough (the `[kafka]`
/// table and `--kafka-property`), each with the cdrflow setting that covers it, or `None`
/// where cdrflow decides the value: its offsets live in Postgres (no auto commit or
/// store, where to start), its output is acknowledged by every replica (`acks`, delivery
/// timeouts), its memory is bounded (prefetch and queue sizes), its lag metric comes from
/// librdkafka's statistics, and its retries assume short socket timeouts. librdkafka's
/// aliases of these properties are listed too.
pub const RESERVED: &[(&str, Option<&str>)] = &[
    ("bootstrap.servers", Some("brokers")),
    ("metadata.broker.list", Some("brokers")),
    ("security.protocol", Some("kafka_security_protocol")),
    ("sasl.mechanism", Some("kafka_sasl_mechanism")),
    ("sasl.mechanisms", Some("kafka_sasl_mechanism")),
    ("sasl.username", Some("kafka_sasl_username")),
    ("sasl.password", Some("kafka_sasl_password")),
    ("ssl.ca.location", Some("kafka_ssl_ca")),
    ("ssl.certificate.location", Some("kafka_ssl_certificate")),
    ("ssl.key.location", Some("kafka_ssl_key")),
    ("ssl.key.password", Some("kafka_ssl_key_password")),
    ("group.id", Some("group")),
    ("session.timeout.ms", Some("kafka_session_timeout_ms")),
    ("heartbeat.interval.ms", Some("kafka_session_timeout_ms")),
    ("enable.auto.commit", None),
    ("enable.auto.offset.store", None),
    ("auto.offset.reset", None),
    ("max.poll.interval.ms", None),
    ("queued.max.messages.kbytes", None),
    ("fetch.wait.max.ms", None),
    ("statistics.interval.ms", None),
    ("socket.timeout.ms", None),
    ("log_level", None),
    ("acks", None),
    ("request.required.acks", None),
    ("message.timeout.ms", None),
    ("delivery.timeout.ms", None),
    ("linger.ms", None),
    ("queue.buffering.max.ms", None),
    ("queue.buffering.max.messages", None),
    ("batch.num.messages", None),
];

/// Why a passthrough property is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("`{property}` is cdrflow's `{setting}` setting (--{flag}, CDRFLOW_{env}): set it there", flag = .setting.replace('_', "-"), env = .setting.to_ascii_uppercase())]
    Covered {
        property: String,
        setting: &'static str,
    },
    #[error("`{property}` is set by cdrflow itself and cannot be changed")]
    Fixed { property: String },
    #[error("librdkafka refuses `{property}`: {message}")]
    Librdkafka { property: String, message: String },
}

/// Whether `key = value` may be passed through to librdkafka: not a property cdrflow
/// sets, and a name and value librdkafka accepts.
pub fn check_property(key: &str, value: &str) -> Result<(), PropertyError> {
    if let Some((_, setting)) = RESERVED.iter().find(|(name, _)| *name == key) {
        return Err(match setting {
            Some(setting) => PropertyError::Covered {
                property: key.to_string(),
                setting,
            },
            None => PropertyError::Fixed {
                property: key.to_string(),
            },
        });
    }
    ClientConfig::new()
        .set(key, value)
        .create_native_config()
        .map(drop)
        .map_err(|e| {
            let mut message = match e {
                KafkaError::ClientConfig(_, description, _, _) => description,
                other => other.to_string(),
            };
            if sensitive(key) && !value.is_empty() {
                message = message.replace(value, "***");
            }
            PropertyError::Librdkafka {
                property: key.to_string(),
                message,
            }
        })
}

/// Whether a property's value is likely a credential (passwords, secrets, inline keys),
/// to be masked in messages.
fn sensitive(key: &str) -> bool {
    ["password", "secret", "pem", "token", "jaas"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_cdrflow_sets_is_refused_with_the_setting_that_covers_it() {
        let e = check_property("bootstrap.servers", "h:9092").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`bootstrap.servers` is cdrflow's `brokers` setting (--brokers, CDRFLOW_BROKERS): set it there"
        );
        let e = check_property("sasl.password", "s3cret").unwrap_err();
        assert!(e.to_string().contains("--kafka-sasl-password"), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = check_property("enable.auto.commit", "true").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`enable.auto.commit` is set by cdrflow itself and cannot be changed"
        );
    }

    #[test]
    fn every_property_cdrflow_sets_is_reserved() {
        // What the clients set, security included, must be in RESERVED: nothing
        // cdrflow relies on can be overridden by the passthrough.
        let mut s = KafkaSettings::plaintext("h:9092");
        s.protocol = SecurityProtocol::SaslSsl;
        s.sasl = Some(Sasl {
            mechanism: SaslMechanism::ScramSha512,
            username: "u".into(),
            password: Secret::new("p"),
        });
        s.ssl_ca = Some("ca.pem".into());
        s.client_certificate = Some(ClientCertificate {
            certificate: "c.pem".into(),
            key: "k.pem".into(),
            key_password: Some(Secret::new("kp")),
        });
        let configs = [
            super::super::client::base_config(&s),
            super::super::client::consumer_config(&s, "g", 10_000, 16_384),
            super::super::client::producer_config(&s),
            crate::kafka::offsets::lookup_config(&s),
            crate::kafka::fetch::explain_config(&s),
        ];
        for config in &configs {
            for key in config.config_map().keys() {
                assert!(
                    RESERVED.iter().any(|(name, _)| name == key),
                    "{key} is set by cdrflow and not in RESERVED"
                );
            }
        }
    }

    #[test]
    fn librdkafka_names_an_unknown_property_and_a_bad_value() {
        let e = check_property("clinet.id", "x").unwrap_err().to_string();
        assert!(e.starts_with("librdkafka refuses `clinet.id`: "), "{e}");
        assert!(e.contains("No such configuration property"), "{e}");
        let e = check_property("compression.type", "zip")
            .unwrap_err()
            .to_string();
        assert!(e.contains("compression.type"), "{e}");
        check_property("client.id", "billing-1").unwrap();
        check_property("compression.type", "lz4").unwrap();
    }

    #[test]
    fn the_settings_debug_shows_no_secret() {
        let mut s = KafkaSettings::plaintext("h:9092");
        s.protocol = SecurityProtocol::SaslPlaintext;
        s.sasl = Some(Sasl {
            mechanism: SaslMechanism::Plain,
            username: "billing".into(),
            password: Secret::new("s3cret-pass"),
        });
        s.client_certificate = Some(ClientCertificate {
            certificate: "c.pem".into(),
            key: "k.pem".into(),
            key_password: Some(Secret::new("s3cret-key")),
        });
        s.properties
            .insert("ssl.keystore.password".into(), "s3cret-prop".into());
        let shown = format!("{s:?}");
        assert!(
            shown.contains("billing") && shown.contains("h:9092"),
            "{shown}"
        );
        assert!(shown.contains("ssl.keystore.password"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn librdkafka_checks_the_whole_configuration_without_connecting() {
        let mut s = KafkaSettings::plaintext("127.0.0.1:1");
        s.check().unwrap();
        s.protocol = SecurityProtocol::Ssl;
        s.ssl_ca = Some("/nonexistent/ca.pem".into());
        let e = s.check().unwrap_err();
        assert!(e.contains("ssl.ca.location"), "{e}");
    }
}

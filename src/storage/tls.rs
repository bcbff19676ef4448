//! TLS to PostgreSQL, as libpq reads it from the connection string: `sslmode`
//! (`disable`, `prefer` — the default —, `require`, `verify-ca`, `verify-full`),
//! `sslrootcert` (the CA file that signs the server's certificate, or `system` for the
//! operating system's CAs), and `sslcert` with `sslkey` (a client certificate). The
//! driver understands only `disable`, `prefer` and `require`, so these settings are taken
//! out of the string here and become an OpenSSL connector.
//!
//! As in libpq: `prefer` and `require` encrypt without checking who answers, and
//! `require` with an `sslrootcert` checks the chain as `verify-ca` does; `verify-ca`
//! checks that a trusted CA signed the server's certificate, and `verify-full` also that
//! the certificate names the host connected to. A `verify-*` mode without `sslrootcert`
//! trusts the system's CAs, which is what a managed database's public certificate needs.

use super::StorageError;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::X509;
use postgres_openssl::MakeTlsConnector;
use std::borrow::Cow;
use std::path::PathBuf;
use tokio_postgres::config::SslMode;

/// How much the connection checks of the server: libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode, StorageError> {
        Ok(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(StorageError::Url(format!(
                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            )))
            }
        })
    }
}

/// The TLS settings of one connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: Mode,
    /// `None`: the system's CAs.
    pub root_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// The TLS keys cdrflow reads itself; the driver is given the rest.
const KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// The connection string without its TLS settings, and those settings. Both forms the
/// driver accepts are read: `postgres://…?sslmode=…&…` and `host=… sslmode=…`.
pub fn split(url: &str) -> Result<(String, Tls), StorageError> {
    let mut found: Vec<(String, String)> = Vec::new();
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_uri(url, &mut found)?
    } else {
        split_key_values(url, &mut found)
    };
    let mut tls = Tls {
        mode: Mode::Prefer,
        root_cert: None,
        client_cert: None,
        client_key: None,
    };
    for (key, value) in found {
        match key.as_str() {
            "sslmode" => tls.mode = Mode::parse(&value)?,
            "sslrootcert" if value == "system" => tls.root_cert = None,
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(value)),
            "sslcert" => tls.client_cert = Some(PathBuf::from(value)),
            _ => tls.client_key = Some(PathBuf::from(value)),
        }
    }
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        return Err(StorageError::Url(
            "sslcert and sslkey go together: give both or neither".into(),
        ));
    }
    Ok((rest, tls))
}

fn split_uri(url: &str, found: &mut Vec<(String, String)>) -> Result<String, StorageError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok(url.to_string());
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if KEYS.contains(&key) {
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| StorageError::Url(format!("{key} is not UTF-8")))?;
            found.push((key.to_string(), value.into_owned()));
        } else {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// `key=value` pairs separated by spaces; a TLS setting's value may be quoted
/// (`sslrootcert='/etc/my ca.pem'`).
fn split_key_values(text: &str, found: &mut Vec<(String, String)>) -> String {
    let mut kept = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (pair, after) = next_pair(rest);
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = key.trim();
        if KEYS.contains(&key) {
            found.push((key.to_string(), unquote(value.trim()).into_owned()));
        } else {
            kept.push(pair);
        }
        rest = after.trim_start();
    }
    kept.join(" ")
}

/// The first `key=value` of `text` (a quoted value may hold spaces) and what follows it.
fn next_pair(text: &str) -> (&str, &str) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted && text[..i].contains('=') => {
                return (&text[..i], &text[i..])
            }
            _ => {}
        }
    }
    (text, "")
}

fn unquote(value: &str) -> Cow<'_, str> {
    match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => Cow::Owned(inner.replace("\\'", "'").replace("\\\\", "\\")),
        None => Cow::Borrowed(value),
    }
}

impl Tls {
    /// What the driver is told: whether to ask for TLS, and whether to go on without it.
    pub fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector that makes each connection's TLS session. The files are read here,
    /// so a missing or unreadable one is an error before any connection is tried.
    pub fn connector(&self) -> Result<MakeTlsConnector, StorageError> {
        let setup =
            |what: &str, e: openssl::error::ErrorStack| StorageError::Url(format!("{what}: {e}"));
        let mut builder =
            SslConnector::builder(SslMethod::tls_client()).map_err(|e| setup("TLS", e))?;
        let verify_chain = matches!(self.mode, Mode::VerifyCa | Mode::VerifyFull)
            || (self.mode == Mode::Require && self.root_cert.is_some());
        if verify_chain {
            builder.set_verify(SslVerifyMode::PEER);
            match &self.root_cert {
                // Only the file's CAs: the connector starts out trusting the system's.
                Some(path) => builder.set_cert_store(only(path)?),
                None => builder
                    .set_default_verify_paths()
                    .map_err(|e| setup("the system's CA certificates", e))?,
            }
        } else {
            builder.set_verify(SslVerifyMode::NONE);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            readable("sslcert", cert)?;
            readable("sslkey", key)?;
            builder
                .set_certificate_chain_file(cert)
                .map_err(|e| setup(&format!("sslcert {}", cert.display()), e))?;
            builder
                .set_private_key_file(key, SslFiletype::PEM)
                .map_err(|e| setup(&format!("sslkey {}", key.display()), e))?;
        }
        let mut connector = MakeTlsConnector::new(builder.build());
        if self.mode != Mode::VerifyFull {
            // Only verify-full holds the certificate to the host's name.
            connector.set_callback(|config, _| {
                config.set_verify_hostname(false);
                Ok(())
            });
        }
        Ok(connector)
    }
}

/// A trust store of the CA certificates in the PEM file `path`, and no others.
fn only(path: &std::path::Path) -> Result<X509Store, StorageError> {
    let pem = std::fs::read(path)
        .map_err(|e| StorageError::Url(format!("sslrootcert {}: {e}", path.display())))?;
    let bad = |e: openssl::error::ErrorStack| {
        StorageError::Url(format!("sslrootcert {}: {e}", path.display()))
    };
    let certs = X509::stack_from_pem(&pem).map_err(bad)?;
    if certs.is_empty() {
        return Err(StorageError::Url(format!(
            "sslrootcert {}: no PEM certificate in it",
            path.display()
        )));
    }
    let mut store = X509StoreBuilder::new().map_err(bad)?;
    for cert in certs {
        store.add_cert(cert).map_err(bad)?;
    }
    Ok(store.build())
}

fn readable(key: &str, path: &std::path::Path) -> Result<(), StorageError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| StorageError::Url(format!("{key} {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(url: &str) -> Tls {
        split(url).unwrap().1
    }

    #[test]
    fn the_tls_settings_leave_the_uri_and_the_rest_stays() {
        let (rest, tls) = split(
            "postgres://u:p@db.example:5432/billing?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca%20bundle.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@db.example:5432/billing?application_name=x"
        );
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca bundle.pem")));
        let (rest, _) = split("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        rest.parse::<tokio_postgres::Config>().unwrap();
    }

    #[test]
    fn the_tls_settings_leave_a_key_value_string() {
        let (rest, tls) =
            split("host=db.example sslmode=verify-ca sslrootcert='/etc/my ca.pem' dbname=billing")
                .unwrap();
        assert_eq!(rest, "host=db.example dbname=billing");
        assert_eq!(tls.mode, Mode::VerifyCa);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/my ca.pem")));
        rest.parse::<tokio_postgres::Config>().unwrap();
    }

    #[test]
    fn the_default_is_prefer_and_system_means_the_systems_cas() {
        assert_eq!(tls("postgres://u@h/db").mode, Mode::Prefer);
        assert_eq!(tls("postgres://u@h/db").ssl_mode(), SslMode::Prefer);
        let t = tls("postgres://u@h/db?sslmode=verify-full&sslrootcert=system");
        assert_eq!((t.mode, t.root_cert), (Mode::VerifyFull, None));
        assert_eq!(
            tls("postgres://u@h/db?sslmode=verify-ca").ssl_mode(),
            SslMode::Require
        );
        assert_eq!(
            tls("postgres://u@h/db?sslmode=disable").ssl_mode(),
            SslMode::Disable
        );
    }

    #[test]
    fn a_wrong_mode_or_half_a_client_certificate_is_named() {
        let e = split("postgres://u@h/db?sslmode=verify")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode `verify`"), "{e}");
        let e = split("postgres://u@h/db?sslcert=/c.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslcert and sslkey"), "{e}");
    }

    #[test]
    fn a_missing_ca_file_is_named_before_any_connection() {
        let t = tls("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let e = t.connector().map(drop).unwrap_err().to_string();
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
    }
}

//! A certificate authority made for one test: a self-signed CA and server certificates it
//! signs for the names a test server answers on, written as PEM files into a folder of
//! the test's own (removed when the test ends).

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::path::{Path, PathBuf};

pub struct TestCa {
    cert: X509,
    key: PKey<Private>,
    pub dir: PathBuf,
}

/// A server's certificate and key files.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let dir = std::env::temp_dir().join(format!("cdrflow-ca-{}", super::helpers::suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = new_key();
        let mut builder = builder(&format!("{name} test CA"), &key);
        builder
            .set_issuer_name(&subject(&format!("{name} test CA")))
            .unwrap();
        builder
            .append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        builder
            .append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        builder.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = builder.build();
        std::fs::write(dir.join("ca.pem"), cert.to_pem().unwrap()).unwrap();
        TestCa { cert, key, dir }
    }

    /// The CA's certificate, for a client's root store.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate for `names` (DNS names, or IP addresses such as 127.0.0.1),
    /// signed by this CA; `file` names its files in the CA's folder.
    pub fn issue(&self, file: &str, names: &[&str]) -> Issued {
        let key = new_key();
        let mut builder = builder(names[0], &key);
        builder.set_issuer_name(self.cert.subject_name()).unwrap();
        let mut san = SubjectAlternativeName::new();
        for name in names {
            if name.parse::<std::net::IpAddr>().is_ok() {
                san.ip(name);
            } else {
                san.dns(name);
            }
        }
        let context = builder.x509v3_context(Some(&self.cert), None);
        let san = san.build(&context).unwrap();
        builder.append_extension(san).unwrap();
        builder
            .append_extension(
                ExtendedKeyUsage::new()
                    .server_auth()
                    .client_auth()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        builder.sign(&self.key, MessageDigest::sha256()).unwrap();
        let cert = builder.build();
        let issued = Issued {
            cert: self.dir.join(format!("{file}.crt")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&issued.cert, cert.to_pem().unwrap()).unwrap();
        write_private(&issued.key, &key.private_key_to_pem_pkcs8().unwrap());
        issued
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn subject(common_name: &str) -> openssl::x509::X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", common_name).unwrap();
    name.build()
}

fn builder(common_name: &str, key: &PKey<Private>) -> X509Builder {
    let mut builder = X509Builder::new().unwrap();
    builder.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(128, MsbOption::MAYBE_ZERO, false).unwrap();
    builder
        .set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    builder.set_subject_name(&subject(common_name)).unwrap();
    builder.set_pubkey(key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    builder
}

/// A private key file only its owner reads: PostgreSQL refuses a key others can read.
fn write_private(path: &Path, pem: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(pem).unwrap();
}

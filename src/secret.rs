//! A secret value — a password, a key's passphrase, the API token — that must never
//! show: in logs, errors, `--help` or `Debug` output it is `***`. Only
//! [`Secret::expose`] gives the value, to hand it to the library or the comparison that
//! needs it.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

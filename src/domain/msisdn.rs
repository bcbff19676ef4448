//! Subscriber and peer numbers: parsing to E.164 with Google's numbering-plan metadata
//! (the `phonenumber` crate) and classifying a peer as domestic or international.
//!
//! Numbers arrive as `2126XXXXXXXX`, `+33XXXXXXXXX`, `06XXXXXXXX`, `00336…`; all become
//! `+<country code><national number>` and are only trusted after that.

use super::reject::{shown, RejectReason, Rejection};
use phonenumber::country;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// A number in E.164 form (`+212612345678`), validated against the numbering plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Msisdn(String);

impl Msisdn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a number belongs to the operator's home country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerClass {
    Domestic,
    International,
}

impl PeerClass {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerClass::Domestic => "domestic",
            PeerClass::International => "international",
        }
    }
}

/// A parsed number with the country it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNumber {
    pub msisdn: Msisdn,
    /// ISO 3166 alpha-2 of the number's country, when the plan names one.
    pub country: Option<String>,
    pub class: PeerClass,
}

/// The operator's numbering context: its home region decides how national numbers read.
#[derive(Debug, Clone)]
pub struct NumberPlan {
    home: country::Id,
    home_code: String,
}

/// How many distinct raw numbers the cache keeps before it starts over. Parsing with the
/// full metadata costs microseconds; subscribers and their peers repeat, so a bounded
/// cache removes most of that cost from the hot path without growing without limit.
const CACHE_CAPACITY: usize = 200_000;

impl NumberPlan {
    /// `region` is an ISO 3166 alpha-2 code such as `MA`.
    pub fn new(region: &str) -> Result<Self, String> {
        let home = country::Id::from_str(&region.to_ascii_uppercase()).map_err(|_| {
            format!("unknown numbering region `{region}` (expected ISO 3166 alpha-2, e.g. MA)")
        })?;
        // The calling code decides which numbers are domestic and lets `2126…` (country
        // code without the plus) be read as international form.
        let code = phonenumber::metadata::DATABASE
            .by_id(home.as_ref())
            .map(|m| m.country_code().to_string())
            .ok_or_else(|| format!("no numbering metadata for region `{region}`"))?;
        Ok(NumberPlan {
            home,
            home_code: code,
        })
    }

    pub fn home_region(&self) -> &str {
        self.home.as_ref()
    }

    /// Parse one number, national or international, into E.164.
    pub fn parse(&self, raw: &str) -> Result<ParsedNumber, Rejection> {
        let cleaned: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let malformed = || {
            Rejection::new(
                RejectReason::MalformedNumber,
                format!("`{}` is not a valid phone number", shown(raw)),
            )
        };
        if cleaned.is_empty() || cleaned.len() > 20 {
            return Err(malformed());
        }
        let (digits, international) = if let Some(rest) = cleaned.strip_prefix('+') {
            (rest, true)
        } else if let Some(rest) = cleaned.strip_prefix("00") {
            (rest, true)
        } else {
            (cleaned.as_str(), false)
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let number = if international {
            phonenumber::parse(None, format!("+{digits}")).ok()
        } else {
            // National form first (`06…`); then the home country code without its plus
            // (`2126…`), the form most switches write.
            phonenumber::parse(Some(self.home), digits)
                .ok()
                .filter(phonenumber::is_valid)
                .or_else(|| {
                    digits
                        .strip_prefix(self.home_code.as_str())
                        .and_then(|_| phonenumber::parse(None, format!("+{digits}")).ok())
                })
        };
        let number = number.filter(phonenumber::is_valid).ok_or_else(malformed)?;
        let country = number.country().id().map(|id| id.as_ref().to_string());
        let class = if number.country().code().to_string() == self.home_code {
            PeerClass::Domestic
        } else {
            PeerClass::International
        };
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        Ok(ParsedNumber {
            msisdn: Msisdn(e164),
            country,
            class,
        })
    }
}

/// A `NumberPlan` with a bounded memo of recent answers, for the normalizer's hot path.
#[derive(Debug)]
pub struct CachedNumberPlan {
    plan: NumberPlan,
    cache: HashMap<String, Result<ParsedNumber, Rejection>>,
}

impl CachedNumberPlan {
    pub fn new(plan: NumberPlan) -> Self {
        CachedNumberPlan {
            plan,
            cache: HashMap::new(),
        }
    }

    pub fn parse(&mut self, raw: &str) -> Result<ParsedNumber, Rejection> {
        if let Some(hit) = self.cache.get(raw) {
            return hit.clone();
        }
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache.clear();
        }
        let parsed = self.plan.parse(raw);
        self.cache.insert(raw.to_string(), parsed.clone());
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ma() -> NumberPlan {
        NumberPlan::new("MA").unwrap()
    }

    #[test]
    fn a_moroccan_number_with_country_code_and_no_plus_becomes_e164() {
        let n = ma().parse("212612345678").unwrap();
        assert_eq!(n.msisdn.as_str(), "+212612345678");
        assert_eq!(n.class, PeerClass::Domestic);
        assert_eq!(n.country.as_deref(), Some("MA"));
    }

    #[test]
    fn a_national_moroccan_number_becomes_e164() {
        assert_eq!(
            ma().parse("0612345678").unwrap().msisdn.as_str(),
            "+212612345678"
        );
        assert_eq!(
            ma().parse("06 12 34 56 78").unwrap().msisdn.as_str(),
            "+212612345678"
        );
    }

    #[test]
    fn a_french_number_is_international_with_its_country() {
        let n = ma().parse("+33612345678").unwrap();
        assert_eq!(n.msisdn.as_str(), "+33612345678");
        assert_eq!(n.class, PeerClass::International);
        assert_eq!(n.country.as_deref(), Some("FR"));
        assert_eq!(
            ma().parse("0033612345678").unwrap().msisdn.as_str(),
            "+33612345678"
        );
    }

    #[test]
    fn letters_are_a_malformed_number() {
        let err = ma().parse("abcde").unwrap_err();
        assert_eq!(err.reason, RejectReason::MalformedNumber);
    }

    #[test]
    fn a_too_short_number_is_malformed() {
        assert_eq!(
            ma().parse("0612").unwrap_err().reason,
            RejectReason::MalformedNumber
        );
        assert_eq!(
            ma().parse("").unwrap_err().reason,
            RejectReason::MalformedNumber
        );
    }

    #[test]
    fn an_unknown_region_is_refused_with_its_name() {
        let err = NumberPlan::new("ZZ").unwrap_err();
        assert!(err.contains("ZZ"), "{err}");
    }

    #[test]
    fn the_cache_answers_like_the_plan() {
        let mut cached = CachedNumberPlan::new(ma());
        for _ in 0..2 {
            assert_eq!(cached.parse("0612345678"), ma().parse("0612345678"));
            assert_eq!(cached.parse("xyz"), ma().parse("xyz"));
        }
    }
}

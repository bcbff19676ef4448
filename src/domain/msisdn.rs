//! Subscriber and peer numbers: parsing to E.164 with Google's numbering-plan metadata
//! (the `phonenumber` crate) and classifying a peer as domestic or international.
//!
//! Numbers arrive as `2126XXXXXXXX`, `+33XXXXXXXXX`, `06XXXXXXXX`, `00336…`; all become
//! `+<country code><national number>` and are only trusted after that.
//!
//! The two ends of an event are held to different standards. The subscriber's own number
//! is the key to an account, so it must be a valid number of the plan. The peer only
//! decides the zone: a call to a number outside the ranges the metadata lists as
//! assigned still happened and is still paid for, so a peer with the shape of an E.164
//! number and a known country code is accepted, classified by that code and marked
//! unverified. Only what is no phone number at all is `malformed_number`.

use super::reject::{shown, RejectReason, Rejection};
use foldhash::{HashMap, HashMapExt};
use phonenumber::country;
use phonenumber::metadata::Metadata;
use serde::{Deserialize, Serialize};
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
    /// The number is in no range the plan lists as assigned: it was read as a plausible
    /// E.164 string and classified by its country calling code alone.
    pub unverified: bool,
}

/// The fewest and most digits an E.164 number has, country code included.
const E164_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

/// The operator's numbering context: its home region decides how national numbers read.
#[derive(Debug, Clone)]
pub struct NumberPlan {
    home: country::Id,
    home_code: String,
    home_calling_code: u16,
}

/// How many distinct numbers the cache keeps, unless told otherwise, before it starts
/// over. Parsing with the full metadata costs far more than a hash lookup; subscribers
/// and their peers repeat, so a bounded cache removes most of that cost from the hot
/// path without growing without limit. A subscriber written three ways (`2126…`,
/// `+2126…`, `06…`) takes three entries.
pub const DEFAULT_CACHE_CAPACITY: usize = 900_000;

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
            .map(|m| m.country_code())
            .ok_or_else(|| format!("no numbering metadata for region `{region}`"))?;
        Ok(NumberPlan {
            home,
            home_code: code.to_string(),
            home_calling_code: code,
        })
    }

    /// Parse one number, national or international, into E.164: a valid number of the
    /// plan, as the subscriber's own number must be.
    pub fn parse(&self, raw: &str) -> Result<ParsedNumber, Rejection> {
        let cleaned = clean(raw);
        digits_of(&cleaned)
            .and_then(|(digits, international)| self.parse_digits(digits, international))
            .ok_or_else(|| malformed(raw))
    }

    /// Parse a peer number: as `parse` when the plan knows it, otherwise as a plausible
    /// E.164 number, unverified.
    pub fn parse_peer(&self, raw: &str) -> Result<ParsedNumber, Rejection> {
        let cleaned = clean(raw);
        digits_of(&cleaned)
            .and_then(|(digits, international)| self.parse_peer_digits(digits, international))
            .ok_or_else(|| malformed(raw))
    }

    fn parse_peer_digits(&self, digits: &str, international: bool) -> Option<ParsedNumber> {
        self.parse_digits(digits, international)
            .or_else(|| self.plausible(digits, international))
    }

    /// A number the plan does not list, read by its shape: 7 to 15 digits in international
    /// form that start with a known country calling code. Its country is the main country
    /// of that code (`+1` is US, `+7` RU), the home one for the home code; a code of no
    /// country (`+800`) has none and is priced in the rest of the world.
    ///
    /// Bare digits count as international form only when they start with the home code,
    /// as in `parse_digits`: anything else may be a national number without its trunk
    /// prefix (`712…` in Morocco), and reading it as `+7…` would price a domestic call as
    /// one to Russia. A national number (`06…`) the home plan refuses has the wrong length
    /// or range for the one plan it can belong to, and stays refused.
    fn plausible(&self, digits: &str, international: bool) -> Option<ParsedNumber> {
        if !international && !digits.starts_with(self.home_code.as_str()) {
            return None;
        }
        if !E164_DIGITS.contains(&digits.len()) || digits.starts_with('0') {
            return None;
        }
        let code = calling_code_of(digits)?;
        let (class, country) = if code == self.home_calling_code {
            (PeerClass::Domestic, Some(self.home.as_ref().to_string()))
        } else {
            (PeerClass::International, main_country(code))
        };
        Some(ParsedNumber {
            msisdn: Msisdn(format!("+{digits}")),
            country,
            class,
            unverified: true,
        })
    }

    /// Parse the digits of a cleaned number: all a result depends on. Each candidate
    /// reading is validated once.
    fn parse_digits(&self, digits: &str, international: bool) -> Option<ParsedNumber> {
        let valid = |number: phonenumber::PhoneNumber| {
            let plan = plan_of(&number)?;
            Some((number, plan))
        };
        let (number, plan) = if international {
            phonenumber::parse(None, format!("+{digits}"))
                .ok()
                .and_then(valid)
        } else {
            // National form first (`06…`); then the home country code without its plus
            // (`2126…`), the form most switches write.
            phonenumber::parse(Some(self.home), digits)
                .ok()
                .and_then(valid)
                .or_else(|| {
                    digits
                        .strip_prefix(self.home_code.as_str())
                        .and_then(|_| phonenumber::parse(None, format!("+{digits}")).ok())
                        .and_then(valid)
                })
        }?;
        let code = number.country().code();
        let class = if code == self.home_calling_code {
            PeerClass::Domestic
        } else {
            PeerClass::International
        };
        Some(ParsedNumber {
            // E.164 as the crate's formatter writes it, without its search for a format
            // that E.164 does not use.
            msisdn: Msisdn(format!("+{code}{}", number.national())),
            country: country::Id::from_str(plan.id())
                .ok()
                .map(|id| id.as_ref().to_string()),
            class,
            unverified: false,
        })
    }
}

/// The country calling code `digits` start with, if the metadata knows one. Calling
/// codes form a prefix code (no code begins another), so at most one of the 1 to 3
/// digit prefixes matches; the longest is tried first all the same.
fn calling_code_of(digits: &str) -> Option<u16> {
    let db = &*phonenumber::metadata::DATABASE;
    (1..=3)
        .rev()
        .filter_map(|n| digits.get(..n)?.parse::<u16>().ok())
        .find(|code| db.region(code).is_some())
}

/// ISO 3166 alpha-2 of the main country of a calling code: the metadata lists it first.
/// None for the codes of no country (`+800`, `+882`: region `001`).
fn main_country(code: u16) -> Option<String> {
    let regions = phonenumber::metadata::DATABASE.region(&code)?;
    let main = country::Id::from_str(regions.first()?).ok()?;
    Some(main.as_ref().to_string())
}

/// The numbering plan a parsed number belongs to, if it is a valid number of it: what
/// `phonenumber::is_valid` and `number.country().id()` each work out, found once. The
/// crate finds the plan of a code shared by several regions (`+212`: MA and EH) by
/// trying each region's number types, then types the number again for validity, and
/// again for its country; each typing tries the types one regex at a time, mobile last.
/// Here the plan is chosen by the same rule and the number is valid if any of the plan's
/// types matches, mobile and fixed line first: the same answer (a test compares the two
/// over many numbers) for a third of the work or less.
fn plan_of(number: &phonenumber::PhoneNumber) -> Option<&'static Metadata> {
    let db = &*phonenumber::metadata::DATABASE;
    let code = number.country().code();
    let national = number.national().to_string();
    let regions = db.region(&code)?;
    let plan = match regions.as_slice() {
        ["001"] => db.by_code(&code)?.into_iter().next()?,
        [region] => {
            country::Id::from_str(region).ok()?;
            db.by_id(*region)?
        }
        _ => regions.iter().find_map(|region| {
            let meta = db.by_id(*region)?;
            let chosen = match meta.leading_digits() {
                Some(leading) => leading.find(&national).is_some_and(|m| m.start() == 0),
                None => is_number_of(meta, &national),
            };
            chosen.then_some(meta)
        })?,
    };
    is_number_of(plan, &national).then_some(plan)
}

/// Whether `national` is a number of one of the plan's types.
fn is_number_of(plan: &Metadata, national: &str) -> bool {
    let d = plan.descriptors();
    d.general().is_match(national)
        && [
            d.mobile(),
            d.fixed_line(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ]
        .into_iter()
        .flatten()
        .any(|t| t.is_match(national))
}

/// The number without the formatting characters switches put in.
fn clean(raw: &str) -> String {
    raw.trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect()
}

/// The digits of a cleaned number and whether they are in international form (`+` or
/// `00`); None when it cannot be a number at all (empty, over 20 characters, not digits).
fn digits_of(cleaned: &str) -> Option<(&str, bool)> {
    if cleaned.is_empty() || cleaned.len() > 20 {
        return None;
    }
    let (digits, international) = if let Some(rest) = cleaned.strip_prefix('+') {
        (rest, true)
    } else if let Some(rest) = cleaned.strip_prefix("00") {
        (rest, true)
    } else {
        (cleaned, false)
    };
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then_some((digits, international))
}

fn malformed(raw: &str) -> Rejection {
    Rejection::new(
        RejectReason::MalformedNumber,
        format!("`{}` is not a valid phone number", shown(raw)),
    )
}

/// A `NumberPlan` with a bounded memo of recent answers, for the normalizer's hot path.
/// It is keyed by what a result depends on (the digits and their form), so `06 12…` and
/// `0612…` share an entry, and holds answers in a compact form that fits many of them.
/// An entry holds the peer's answer, from which the strict one follows (an unverified
/// number is no valid subscriber), so a number seen at both ends takes one entry.
#[derive(Debug)]
pub struct CachedNumberPlan {
    plan: NumberPlan,
    cache: HashMap<u128, Option<Compact>>,
    capacity: usize,
}

/// A parsed number in 16 bytes: the E.164 digits as an integer (no E.164 number starts
/// with 0 after its plus, and none has more than 15 digits).
#[derive(Debug, Clone, Copy)]
struct Compact {
    e164: u64,
    country: Option<[u8; 2]>,
    class: PeerClass,
    unverified: bool,
}

impl Compact {
    /// None for a result this form cannot hold exactly; it is then not cached.
    fn of(p: &ParsedNumber) -> Option<Compact> {
        let digits = p.msisdn.as_str().strip_prefix('+')?;
        if digits.is_empty()
            || digits.len() > 19
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let country = match &p.country {
            None => None,
            Some(c) => Some(<[u8; 2]>::try_from(c.as_bytes()).ok()?),
        };
        Some(Compact {
            e164: digits.parse().ok()?,
            country,
            class: p.class,
            unverified: p.unverified,
        })
    }

    fn expand(self) -> ParsedNumber {
        ParsedNumber {
            msisdn: Msisdn(format!("+{}", self.e164)),
            country: self
                .country
                .map(|c| c.iter().map(|&b| char::from(b)).collect()),
            class: self.class,
            unverified: self.unverified,
        }
    }
}

/// Digits and form as one integer: at most 20 digits (< 2^67), their count (so that
/// leading zeros count) and the form, in separate bits.
fn cache_key(digits: &str, international: bool) -> u128 {
    let value = digits
        .bytes()
        .fold(0u128, |n, b| n * 10 + u128::from(b - b'0'));
    value | (digits.len() as u128) << 67 | u128::from(international) << 72
}

impl CachedNumberPlan {
    pub fn new(plan: NumberPlan) -> Self {
        Self::with_capacity(plan, DEFAULT_CACHE_CAPACITY)
    }

    /// A cache of at most `capacity` numbers.
    pub fn with_capacity(plan: NumberPlan, capacity: usize) -> Self {
        CachedNumberPlan {
            plan,
            cache: HashMap::new(),
            capacity,
        }
    }

    /// Numbers cached.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// As `NumberPlan::parse`: the subscriber's own number, valid or refused.
    pub fn parse(&mut self, raw: &str) -> Result<ParsedNumber, Rejection> {
        match self.parse_peer(raw) {
            Ok(n) if !n.unverified => Ok(n),
            _ => Err(malformed(raw)),
        }
    }

    /// As `NumberPlan::parse_peer`.
    pub fn parse_peer(&mut self, raw: &str) -> Result<ParsedNumber, Rejection> {
        let cleaned = clean(raw);
        let Some((digits, international)) = digits_of(&cleaned) else {
            return Err(malformed(raw));
        };
        let key = cache_key(digits, international);
        let answer = match self.cache.get(&key) {
            Some(hit) => hit.map(Compact::expand),
            None => {
                let parsed = self.plan.parse_peer_digits(digits, international);
                let compact = parsed.as_ref().map(Compact::of);
                // A number the compact form cannot hold is parsed each time.
                if !matches!(compact, Some(None)) && self.capacity > 0 {
                    if self.cache.len() >= self.capacity {
                        self.cache.clear();
                    }
                    self.cache.insert(key, compact.flatten());
                }
                parsed
            }
        };
        answer.ok_or_else(|| malformed(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PeerClass::{Domestic, International};

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

    const ASSIGNED: bool = false;
    const UNVERIFIED: bool = true;

    /// Peers as switches and generators write them, each with what it must become,
    /// worked out by hand from the number and its country's plan: a valid number as the
    /// plan reads it; one in no assigned range (wrong length or leading digits for its
    /// country) by its country code, unverified. Columns: as written, E.164, country,
    /// class, unverified.
    #[rustfmt::skip]
    const ACCEPTED: &[(&str, &str, Option<&str>, PeerClass, bool)] = &[
        // +1 is shared by the US and Canada; a number of neither is the main country's.
        ("+12015550123",     "+12015550123",   Some("US"), International, ASSIGNED),
        ("+15062345678",     "+15062345678",   Some("CA"), International, ASSIGNED),
        ("+1123456789",      "+1123456789",    Some("US"), International, UNVERIFIED),
        ("001 123 456 789",  "+1123456789",    Some("US"), International, UNVERIFIED),
        // United Kingdom: +44 and 9 digits is one short of most British numbers.
        ("+447400123456",    "+447400123456",  Some("GB"), International, ASSIGNED),
        ("+441212345678",    "+441212345678",  Some("GB"), International, ASSIGNED),
        ("+44123456789",     "+44123456789",   Some("GB"), International, UNVERIFIED),
        ("+44 999 123 456",  "+44999123456",   Some("GB"), International, UNVERIFIED),
        // France: nine national digits; ten is no French number.
        ("+33612345678",     "+33612345678",   Some("FR"), International, ASSIGNED),
        ("0033612345678",    "+33612345678",   Some("FR"), International, ASSIGNED),
        ("+336123456789",    "+336123456789",  Some("FR"), International, UNVERIFIED),
        // Germany.
        ("+4915123456789",   "+4915123456789", Some("DE"), International, ASSIGNED),
        ("+4912345678",      "+4912345678",    Some("DE"), International, UNVERIFIED),
        // Spain: no number starts with 1.
        ("+34612345678",     "+34612345678",   Some("ES"), International, ASSIGNED),
        ("+34123456789",     "+34123456789",   Some("ES"), International, UNVERIFIED),
        // Italy: fixed lines keep their leading 0.
        ("+393123456789",    "+393123456789",  Some("IT"), International, ASSIGNED),
        ("+390236618300",    "+390236618300",  Some("IT"), International, ASSIGNED),
        ("+392123456789",    "+392123456789",  Some("IT"), International, UNVERIFIED),
        // +7 is shared by Russia and Kazakhstan; no number of either starts with 0.
        ("+79123456789",     "+79123456789",   Some("RU"), International, ASSIGNED),
        ("+70123456789",     "+70123456789",   Some("RU"), International, UNVERIFIED),
        // China: mobiles are eleven digits from 13 to 19.
        ("+8613123456789",   "+8613123456789", Some("CN"), International, ASSIGNED),
        ("+8612345678901",   "+8612345678901", Some("CN"), International, UNVERIFIED),
        // India.
        ("+918123456789",    "+918123456789",  Some("IN"), International, ASSIGNED),
        ("+910123456789",    "+910123456789",  Some("IN"), International, UNVERIFIED),
        // Brazil: no area code starts with 0.
        ("+5511961234567",   "+5511961234567", Some("BR"), International, ASSIGNED),
        ("+55012345678",     "+55012345678",   Some("BR"), International, UNVERIFIED),
        // Senegal: nine digits from 3 or 7.
        ("+221701234567",    "+221701234567",  Some("SN"), International, ASSIGNED),
        ("+221123456789",    "+221123456789",  Some("SN"), International, UNVERIFIED),
        // United Arab Emirates.
        ("+971501234567",    "+971501234567",  Some("AE"), International, ASSIGNED),
        // Morocco, home, in every form; 68x is no Moroccan mobile range.
        ("212612345678",     "+212612345678",  Some("MA"), Domestic,      ASSIGNED),
        ("+212612345678",    "+212612345678",  Some("MA"), Domestic,      ASSIGNED),
        ("00212612345678",   "+212612345678",  Some("MA"), Domestic,      ASSIGNED),
        ("0612345678",       "+212612345678",  Some("MA"), Domestic,      ASSIGNED),
        ("06 12 34 56 78",   "+212612345678",  Some("MA"), Domestic,      ASSIGNED),
        ("612345678",        "+212612345678",  Some("MA"), Domestic,      ASSIGNED),
        ("212685123456",     "+212685123456",  Some("MA"), Domestic,      UNVERIFIED),
        ("+212685123456",    "+212685123456",  Some("MA"), Domestic,      UNVERIFIED),
        ("00212685123456",   "+212685123456",  Some("MA"), Domestic,      UNVERIFIED),
        ("2126851234",       "+2126851234",    Some("MA"), Domestic,      UNVERIFIED),
        // A code of no country: international, priced in the rest of the world.
        ("+8001234",         "+8001234",       None,       International, UNVERIFIED),
    ];

    /// Peers that are no phone number, each refused as `malformed_number`.
    const REFUSED: &[&str] = &[
        "abcde",
        "06-CALL-ME",
        "+44 7400 12345a",
        // No country has the code 999 (nor 99 or 9).
        "+9991234567",
        "+999123",
        // No calling code starts with 0.
        "+0612345678",
        // Fewer than 7 digits, more than 15.
        "+441234",
        "12",
        "",
        "+4412345678901234",
        // A national number the home plan refuses can belong to no other plan.
        "0685123456",
        // Bare digits that do not start with the home code may be a national number
        // without its 0 (`33…` is no Moroccan number, but `712…` is one): never read as
        // another country's.
        "33612345678",
    ];

    fn reading(n: &ParsedNumber) -> (&str, Option<&str>, PeerClass, bool) {
        (
            n.msisdn.as_str(),
            n.country.as_deref(),
            n.class,
            n.unverified,
        )
    }

    #[test]
    fn peers_read_as_their_plan_says_or_by_their_country_code_and_non_numbers_are_refused() {
        let plan = ma();
        let mut cached = CachedNumberPlan::new(ma());
        for &(raw, e164, country, class, unverified) in ACCEPTED {
            for answer in [plan.parse_peer(raw), cached.parse_peer(raw)] {
                let n = answer.unwrap_or_else(|e| panic!("{raw}: {e:?}"));
                assert_eq!(reading(&n), (e164, country, class, unverified), "{raw}");
            }
        }
        for &raw in REFUSED {
            for answer in [plan.parse_peer(raw), cached.parse_peer(raw)] {
                let e = answer.expect_err(raw);
                assert_eq!(e.reason, RejectReason::MalformedNumber, "{raw}");
            }
        }
    }

    #[test]
    fn the_subscriber_number_must_be_a_valid_number_of_the_plan() {
        let plan = ma();
        let mut cached = CachedNumberPlan::new(ma());
        for &(raw, e164, country, class, unverified) in ACCEPTED {
            // The peer's answer first, so that the strict one comes from the cache.
            let _ = cached.parse_peer(raw);
            for answer in [plan.parse(raw), cached.parse(raw)] {
                if unverified {
                    let e = answer.expect_err(raw);
                    assert_eq!(e.reason, RejectReason::MalformedNumber, "{raw}");
                } else {
                    let n = answer.unwrap_or_else(|e| panic!("{raw}: {e:?}"));
                    assert_eq!(reading(&n), (e164, country, class, false), "{raw}");
                }
            }
        }
        for &raw in REFUSED {
            assert!(
                plan.parse(raw).is_err() && cached.parse(raw).is_err(),
                "{raw}"
            );
        }
    }

    #[test]
    fn the_cache_answers_like_the_plan() {
        let mut cached = CachedNumberPlan::new(ma());
        let numbers = [
            "0612345678",
            "06 12 34 56 78",
            "612345678",
            "212612345678",
            "+212612345678",
            "00212612345678",
            "+33612345678",
            "0033612345678",
            "33612345678",
            "+971501234567",
            "+0612345678",
            "00",
            "+",
            "0612",
            "xyz",
            "12345678901234567890",
            "123456789012345678901",
        ];
        // The first round fills the cache, the second answers from it.
        for _ in 0..2 {
            for n in numbers {
                assert_eq!(cached.parse(n), ma().parse(n), "{n}");
                assert_eq!(cached.parse_peer(n), ma().parse_peer(n), "{n}");
            }
        }
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity_and_still_answers_like_the_plan() {
        let mut cached = CachedNumberPlan::with_capacity(ma(), 5);
        for i in 0..40 {
            let n = format!("+2126123456{i:02}");
            assert_eq!(cached.parse(&n), ma().parse(&n), "{n}");
            assert!(cached.len() <= 5, "{} numbers cached", cached.len());
        }
        assert!(!cached.is_empty());
        let mut none = CachedNumberPlan::with_capacity(ma(), 0);
        assert_eq!(none.parse("0612345678"), ma().parse("0612345678"));
        assert!(none.is_empty());
    }

    #[test]
    fn the_cache_tells_apart_digits_that_differ_only_in_leading_zeros_or_form() {
        let keys = [
            cache_key("612345678", false),
            cache_key("0612345678", false),
            cache_key("00612345678", false),
            cache_key("612345678", true),
            cache_key("", false),
            cache_key("", true),
            cache_key("99999999999999999999", true),
        ];
        let distinct: std::collections::HashSet<u128> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len());
    }

    /// `plan_of` against the crate's own answers: valid or not and the E.164 form always
    /// the same; the country too, except that the crate looks for the country of a number
    /// with leading zeros (Italy's `+39 02…`) without them, finds no plan for `2…` and
    /// says None, where `plan_of` gives the region whose plan made the number valid.
    fn assert_plan_of_agrees(number: &phonenumber::PhoneNumber) {
        let crate_valid = phonenumber::is_valid(number);
        let ours = plan_of(number);
        assert_eq!(ours.is_some(), crate_valid, "{number:?}");
        let Some(plan) = ours else { return };
        assert_eq!(
            format!("+{}{}", number.country().code(), number.national()),
            number.format().mode(phonenumber::Mode::E164).to_string()
        );
        let ours = country::Id::from_str(plan.id()).ok();
        let crates = number.country().id();
        if number.national().zeros() == 0 || crates.is_some() {
            assert_eq!(ours, crates, "{number:?}");
        } else {
            let regions = phonenumber::metadata::DATABASE
                .region(&number.country().code())
                .unwrap_or_default();
            assert!(
                ours.is_some_and(|id| regions.contains(&id.as_ref())),
                "{number:?}"
            );
        }
    }

    #[test]
    fn plan_of_agrees_with_the_crate_on_numbers_of_shared_and_non_geographic_codes() {
        // +1 and +7 are shared by several regions, +212 by MA and EH, +262 by RE and YT,
        // +39 by IT and VA; +800 and +882 are non-geographic; some are valid, some not.
        for raw in [
            "+16502530000",
            "+12423570000",
            "+18092345678",
            "+74951234567",
            "+77172123456",
            "+212612345678",
            "+212528123456",
            "+212712345678",
            "+212512345678",
            "+262262123456",
            "+262269612345",
            "+80012345678",
            "+882123456789",
            "+390236618300",
            "+390669812345",
            "+447912345678",
            "+12530000",
            "+2126123",
        ] {
            assert_plan_of_agrees(&phonenumber::parse(None, raw).unwrap());
        }
        let milan = phonenumber::parse(None, "+390236618300").unwrap();
        assert_eq!(plan_of(&milan).map(|p| p.id()), Some("IT"));
    }

    proptest::proptest! {
        #[test]
        fn plan_of_agrees_with_the_crate_for_any_number(
            raw in "\\+(1|7|212|262|33|39|44|590|800|882|971)[0-9]{4,12}",
        ) {
            if let Ok(number) = phonenumber::parse(None, &raw) {
                assert_plan_of_agrees(&number);
            }
        }

        #[test]
        fn plan_of_agrees_with_the_crate_for_national_moroccan_numbers(
            raw in "0[5-8][0-9]{6,10}",
        ) {
            if let Ok(number) = phonenumber::parse(Some(country::Id::MA), &raw) {
                assert_plan_of_agrees(&number);
            }
        }

        #[test]
        fn a_peer_the_plan_knows_reads_as_a_subscriber_would_and_any_other_is_e164_shaped(
            raw in "(\\+|00)?(1|7|212|221|33|44|86|999)?[0-9]{0,13}",
        ) {
            let plan = ma();
            match (plan.parse(&raw), plan.parse_peer(&raw)) {
                (Ok(strict), peer) => proptest::prop_assert_eq!(Ok(strict), peer),
                (Err(_), Ok(peer)) => {
                    proptest::prop_assert!(peer.unverified);
                    let digits = peer.msisdn.as_str().strip_prefix('+').unwrap_or("");
                    proptest::prop_assert!((7..=15).contains(&digits.len()), "{}", peer.msisdn);
                    proptest::prop_assert!(!digits.starts_with('0'));
                }
                (Err(_), Err(e)) => {
                    proptest::prop_assert_eq!(e.reason, RejectReason::MalformedNumber)
                }
            }
        }

        #[test]
        fn the_cache_answers_like_the_plan_for_any_number(
            raw in "(\\+|00|0)?(212|33|971|44)?[0-9 -]{0,14}",
        ) {
            // One cache for every case, so that an answer cached for one input is
            // checked against every other input that maps to the same entry.
            static CACHED: std::sync::LazyLock<std::sync::Mutex<CachedNumberPlan>> =
                std::sync::LazyLock::new(|| std::sync::Mutex::new(CachedNumberPlan::new(ma())));
            let mut cached = CACHED.lock().unwrap();
            let plan = ma();
            proptest::prop_assert_eq!(cached.parse(&raw), plan.parse(&raw));
            proptest::prop_assert_eq!(cached.parse_peer(&raw), plan.parse_peer(&raw));
            proptest::prop_assert_eq!(cached.parse(&raw), plan.parse(&raw));
        }
    }
}

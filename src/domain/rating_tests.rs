//! Table-driven rating cases with hand-computed amounts, and property tests.
//!
//! Every expected amount in the table is worked out by hand from the catalog's prices and
//! the rules in the module comment (the arithmetic is in each row's comment); none is
//! obtained by calling the code under test. The property tests compare `rate` with a
//! second-by-second model of the shipped catalog written independently here.
//!
//! Times are written in UTC, as `NormalizedCdr` carries them; the comments give the
//! operator's local time. Africa/Casablanca is UTC+1, except during Ramadan, when it is
//! UTC+0: in 2026 (chrono-tz 0.10) from 2026-02-15 02:00 UTC (03:00 +01 → 02:00 +00) to
//! 2026-03-22 02:00 UTC (02:00 +00 → 03:00 +01). The ordinary cases are in
//! November 2026 (UTC+1): Mon 2026-11-02 … Sun 2026-11-08, Mon 2026-11-09.

use super::*;
use crate::domain::catalog::Catalog;
use crate::domain::msisdn::NumberPlan;
use crate::domain::record::Technology;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------
// Catalogs.

const SHIPPED: &str = include_str!("../../catalog/default.toml");

/// The shipped catalog with some exact text edits, each of which must match exactly once.
fn edited(edits: &[(&str, &str)]) -> Catalog {
    let mut text = SHIPPED.to_string();
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the edit of {from:?} must match exactly once in catalog/default.toml"
        );
        text = text.replacen(from, to, 1);
    }
    Catalog::parse(&text).unwrap_or_else(|e| panic!("the edited catalog is refused: {e}"))
}

/// The Sunday of the shipped week, cut at 02:30 local: offpeak 00:00–02:30, weekend
/// 02:30–24:00. Saturday stays weekend, Monday–Friday are unchanged. Every minute of the
/// week has exactly one band (the catalog checker would refuse it otherwise).
const SUNDAY_CUT_AT_0230: (&str, &str) = (
    "days = [\"sat\", \"sun\"]\nfrom = \"00:00\"\nto = \"24:00\"",
    "days = [\"sat\"]\nfrom = \"00:00\"\nto = \"24:00\"\n\n\
     [[bands]]\nname = \"offpeak\"\ndays = [\"sun\"]\nfrom = \"00:00\"\nto = \"02:30\"\n\n\
     [[bands]]\nname = \"weekend\"\ndays = [\"sun\"]\nfrom = \"02:30\"\nto = \"24:00\"",
);

const PARIS: (&str, &str) = (
    "timezone = \"Africa/Casablanca\"",
    "timezone = \"Europe/Paris\"",
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cat {
    /// catalog/default.toml as shipped.
    Shipped,
    /// data-max voice/domestic charged 1/1 at peak 1.00, offpeak 0.000003, weekend
    /// 0.000015 per minute; basic data/domestic at 0.000512 per MB in every band.
    Rounding,
    /// business voice/domestic minimum charge 1.00 instead of 0.50.
    Minimum,
    /// The shipped bands, in Europe/Paris.
    Paris,
    /// Europe/Paris with Sunday cut at 02:30 (`SUNDAY_CUT_AT_0230`).
    ParisSunday,
    /// Africa/Casablanca with Sunday cut at 02:30.
    CasablancaSunday,
    /// Saturday and Sunday evenings (20:00–24:00) offpeak, so that offpeak runs from
    /// Sunday 20:00 across the end of the week into Monday 08:00.
    SundayEveningOffpeak,
}

fn catalog(cat: Cat) -> Catalog {
    match cat {
        Cat::Shipped => Catalog::parse(SHIPPED).expect("the shipped catalog is valid"),
        Cat::Rounding => edited(&[
            (
                "charging = \"60/1\"\nprices = { peak = \"0.80\", offpeak = \"0.40\", weekend = \"0.40\" }",
                "charging = \"1/1\"\nprices = { peak = \"1.00\", offpeak = \"0.000003\", weekend = \"0.000015\" }",
            ),
            (
                "prices = { peak = \"0.10\", offpeak = \"0.10\", weekend = \"0.10\" }",
                "prices = { peak = \"0.000512\", offpeak = \"0.000512\", weekend = \"0.000512\" }",
            ),
        ]),
        Cat::Minimum => edited(&[("minimum_charge = \"0.50\"", "minimum_charge = \"1.00\"")]),
        Cat::Paris => edited(&[PARIS]),
        Cat::ParisSunday => edited(&[PARIS, SUNDAY_CUT_AT_0230]),
        Cat::CasablancaSunday => edited(&[SUNDAY_CUT_AT_0230]),
        Cat::SundayEveningOffpeak => edited(&[(
            "days = [\"sat\", \"sun\"]\nfrom = \"00:00\"\nto = \"24:00\"",
            "days = [\"sat\", \"sun\"]\nfrom = \"00:00\"\nto = \"20:00\"\n\n\
             [[bands]]\nname = \"offpeak\"\ndays = [\"sat\", \"sun\"]\nfrom = \"20:00\"\nto = \"24:00\"",
        )]),
    }
}

pub(crate) fn shipped() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| catalog(Cat::Shipped))
}

// ---------------------------------------------------------------------------------------
// Events.

pub(crate) const ME: &str = "+212612345678";
pub(crate) const MA: &str = "+212661234567";
pub(crate) const FR: &str = "+33612345678";
const ES: &str = "+34612345678";
const DZ: &str = "+213551234567";
const TN: &str = "+21620123456";
const AE: &str = "+971501234567";
const SA: &str = "+966501234567";
/// Brazil is in no international zone: rest of world.
const BR: &str = "+5511987654321";
/// Numbers in no assigned range, classified by their country code alone.
const GB_UNASSIGNED: &str = "+44123456789";
const US_UNASSIGNED: &str = "+1123456789";
const MA_UNASSIGNED: &str = "+212685123456";

fn number_plan() -> &'static NumberPlan {
    static P: OnceLock<NumberPlan> = OnceLock::new();
    P.get_or_init(|| NumberPlan::new("MA").expect("MA is a numbering region"))
}

pub(crate) fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

pub(crate) fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(crate) fn event(kind: RecordType, at: &str) -> NormalizedCdr {
    NormalizedCdr {
        record_id: format!("test-{}-{at}", kind.as_str()),
        record_type: kind,
        subscriber: number_plan().parse(ME).expect("valid subscriber").msisdn,
        peer: None,
        peer_country: None,
        peer_class: None,
        peer_unverified: false,
        event_time: utc(at),
        duration_sec: None,
        volume_bytes: None,
        session_duration_sec: None,
        cell_id: "CASABLANCA_12".into(),
        city: Some("Casablanca".into()),
        region: "Casablanca-Settat".into(),
        technology: Technology::G4,
        roaming_country: None,
    }
}

pub(crate) fn with_peer(mut cdr: NormalizedCdr, peer: &str) -> NormalizedCdr {
    let p = number_plan()
        .parse_peer(peer)
        .unwrap_or_else(|e| panic!("{peer}: {e:?}"));
    cdr.peer_country = p.country;
    cdr.peer_class = Some(p.class);
    cdr.peer_unverified = p.unverified;
    cdr.peer = Some(p.msisdn);
    cdr
}

pub(crate) fn voice(at: &str, seconds: i32, peer: &str) -> NormalizedCdr {
    let mut cdr = with_peer(event(RecordType::Voice, at), peer);
    cdr.duration_sec = Some(seconds);
    cdr
}

pub(crate) fn sms(at: &str, peer: &str) -> NormalizedCdr {
    with_peer(event(RecordType::Sms, at), peer)
}

pub(crate) fn data(at: &str, bytes: i64) -> NormalizedCdr {
    let mut cdr = event(RecordType::Data, at);
    cdr.volume_bytes = Some(bytes);
    cdr.session_duration_sec = Some(600);
    cdr
}

pub(crate) fn roaming(mut cdr: NormalizedCdr, visited: &str) -> NormalizedCdr {
    cdr.roaming_country = Some(visited.to_string());
    cdr
}

// ---------------------------------------------------------------------------------------
// The table.

struct Row {
    name: &'static str,
    cat: Cat,
    plan: &'static str,
    cdr: NormalizedCdr,
    zone: &'static str,
    units: i64,
    /// (band, units, amount) of each part, in time order.
    parts: Vec<(&'static str, i64, &'static str)>,
    fee: &'static str,
    topup: &'static str,
    amount: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn row(
    name: &'static str,
    cat: Cat,
    plan: &'static str,
    cdr: NormalizedCdr,
    zone: &'static str,
    units: i64,
    parts: Vec<(&'static str, i64, &'static str)>,
    amount: &'static str,
) -> Row {
    Row {
        name,
        cat,
        plan,
        cdr,
        zone,
        units,
        parts,
        fee: "0",
        topup: "0",
        amount,
    }
}

impl Row {
    fn fee(mut self, fee: &'static str) -> Self {
        self.fee = fee;
        self
    }
    fn topup(mut self, topup: &'static str) -> Self {
        self.topup = topup;
        self
    }
}

// Ordinary instants (November 2026, Africa/Casablanca = UTC+1).
/// Mon 2026-11-02 10:00 local.
const MON_PEAK: &str = "2026-11-02T09:00:00Z";
/// Mon 2026-11-02 22:00 local.
const MON_OFFPEAK: &str = "2026-11-02T21:00:00Z";
/// Sat 2026-11-07 12:00 local.
const SAT_WEEKEND: &str = "2026-11-07T11:00:00Z";

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    use Cat::*;
    vec![
        // --- Voice, domestic, each band (basic: 60/60, fee 0.10, 0.90/0.45/0.40). ---
        // 90 s → 120 s charged; 0.90*120/60 = 1.800000; + fee 0.10 = 1.900000
        row("basic voice domestic peak", Shipped, "basic", voice(MON_PEAK, 90, MA), "domestic", 120,
            vec![("peak", 120, "1.800000")], "1.900000").fee("0.10"),
        // 90 s → 120 s; 0.45*120/60 = 0.900000; + 0.10 = 1.000000
        row("basic voice domestic offpeak", Shipped, "basic", voice(MON_OFFPEAK, 90, MA), "domestic", 120,
            vec![("offpeak", 120, "0.900000")], "1.000000").fee("0.10"),
        // 60 s → 60 s; 0.40*60/60 = 0.400000; + 0.10 = 0.500000
        row("basic voice domestic weekend", Shipped, "basic", voice(SAT_WEEKEND, 60, MA), "domestic", 60,
            vec![("weekend", 60, "0.400000")], "0.500000").fee("0.10"),
        // --- 60/60 at the boundary, one second over, shorter than the block. Tue 10:00 local. ---
        // 60 s → 60; 0.90 + 0.10 = 1.000000
        row("60/60 exactly one minute", Shipped, "basic", voice("2026-11-03T09:00:00Z", 60, MA), "domestic", 60,
            vec![("peak", 60, "0.900000")], "1.000000").fee("0.10"),
        // 61 s → 120; 0.90*2 = 1.800000; + 0.10 = 1.900000
        row("60/60 one second over a minute", Shipped, "basic", voice("2026-11-03T09:00:00Z", 61, MA), "domestic", 120,
            vec![("peak", 120, "1.800000")], "1.900000").fee("0.10"),
        // 1 s → 60; 0.90 + 0.10 = 1.000000
        row("60/60 one second call", Shipped, "basic", voice("2026-11-03T09:00:00Z", 1, MA), "domestic", 60,
            vec![("peak", 60, "0.900000")], "1.000000").fee("0.10"),
        // --- 30/30 (student domestic 0.60/0.30/0.30, no fee). ---
        // 30 s → 30; 0.60*30/60 = 0.300000
        row("30/30 exactly one block", Shipped, "student", voice(MON_PEAK, 30, MA), "domestic", 30,
            vec![("peak", 30, "0.300000")], "0.300000"),
        // 31 s → 60; 0.60*60/60 = 0.600000
        row("30/30 one second over a block", Shipped, "student", voice(MON_PEAK, 31, MA), "domestic", 60,
            vec![("peak", 60, "0.600000")], "0.600000"),
        // 1 s → 30; 0.60*30/60 = 0.300000
        row("30/30 one second call", Shipped, "student", voice(MON_PEAK, 1, MA), "domestic", 30,
            vec![("peak", 30, "0.300000")], "0.300000"),
        // 61 s → 30 + 60 = 90; 0.30*90/60 = 0.450000
        row("30/30 offpeak 61 s", Shipped, "student", voice(MON_OFFPEAK, 61, MA), "domestic", 90,
            vec![("offpeak", 90, "0.450000")], "0.450000"),
        // --- 60/1 (data-max domestic 0.80/0.40/0.40, no fee, no minimum). ---
        // 60 s → 60; 0.80*60/60 = 0.800000
        row("60/1 exactly one minute", Shipped, "data-max", voice(MON_PEAK, 60, MA), "domestic", 60,
            vec![("peak", 60, "0.800000")], "0.800000"),
        // 61 s → 61; 0.80*61/60 = 0.81333.. → 0.813333
        row("60/1 one second over a minute", Shipped, "data-max", voice(MON_PEAK, 61, MA), "domestic", 61,
            vec![("peak", 61, "0.813333")], "0.813333"),
        // 1 s → 60; 0.800000
        row("60/1 one second call", Shipped, "data-max", voice(MON_PEAK, 1, MA), "domestic", 60,
            vec![("peak", 60, "0.800000")], "0.800000"),
        // 150 s → 150; 0.40*150/60 = 1.000000
        row("60/1 weekend 150 s", Shipped, "data-max", voice(SAT_WEEKEND, 150, MA), "domestic", 150,
            vec![("weekend", 150, "1.000000")], "1.000000"),
        // --- Minimum charge (business domestic 60/1, 0.70/0.50/0.50, minimum 0.50). ---
        // 60 s offpeak: 0.50*60/60 = 0.50 = minimum 0.50 → top-up 0; 0.500000
        row("minimum charge exactly reached", Shipped, "business", voice(MON_OFFPEAK, 60, MA), "domestic", 60,
            vec![("offpeak", 60, "0.500000")], "0.500000"),
        // 90 s peak: 0.70*90/60 = 1.050000 > 0.50 → no top-up
        row("minimum charge exceeded", Shipped, "business", voice(MON_PEAK, 90, MA), "domestic", 90,
            vec![("peak", 90, "1.050000")], "1.050000"),
        // Minimum 1.00: 60 s offpeak 0.500000 → top-up 0.50 → 1.000000
        row("minimum charge tops up an offpeak minute", Minimum, "business", voice(MON_OFFPEAK, 60, MA), "domestic", 60,
            vec![("offpeak", 60, "0.500000")], "1.000000").topup("0.50"),
        // Minimum 1.00: 30 s → 60 s peak 0.700000 → top-up 0.30 → 1.000000
        row("minimum charge tops up a short peak call", Minimum, "business", voice(MON_PEAK, 30, MA), "domestic", 60,
            vec![("peak", 60, "0.700000")], "1.000000").topup("0.30"),
        // Minimum 1.00: 120 s peak 0.70*2 = 1.400000 > 1.00 → no top-up
        row("minimum charge not needed", Minimum, "business", voice(MON_PEAK, 120, MA), "domestic", 120,
            vec![("peak", 120, "1.400000")], "1.400000"),
        // --- Zero-second calls: nothing at all (no fee, no minimum). ---
        row("zero-second call with a connection fee", Shipped, "basic", voice(MON_PEAK, 0, MA), "domestic", 0,
            vec![], "0"),
        row("zero-second call with a minimum charge", Minimum, "business", voice(MON_PEAK, 0, MA), "domestic", 0,
            vec![], "0"),
        // --- Voice, international, each zone and band. ---
        // DZ → intl-maghreb, business 60/1 peak 3.50: 3.50*120/60 = 7.000000. Thu 10:00 local.
        row("voice intl-maghreb peak", Shipped, "business", voice("2026-11-05T09:00:00Z", 120, DZ), "intl-maghreb", 120,
            vec![("peak", 120, "7.000000")], "7.000000"),
        // FR → intl-europe, offpeak 3.50: 3.50*90/60 = 5.250000. Thu 21:00 local.
        row("voice intl-europe offpeak", Shipped, "business", voice("2026-11-05T20:00:00Z", 90, FR), "intl-europe", 90,
            vec![("offpeak", 90, "5.250000")], "5.250000"),
        // AE → intl-gulf, weekend 4.50: 4.50*75/60 = 5.625000. Sun 15:00 local.
        row("voice intl-gulf weekend", Shipped, "business", voice("2026-11-08T14:00:00Z", 75, AE), "intl-gulf", 75,
            vec![("weekend", 75, "5.625000")], "5.625000"),
        // BR → intl-world (rest of world), peak 8.00: 8*61/60 = 8.1333.. → 8.133333. Mon 11:00 local.
        row("voice intl-world peak", Shipped, "business", voice("2026-11-02T10:00:00Z", 61, BR), "intl-world", 61,
            vec![("peak", 61, "8.133333")], "8.133333"),
        // --- Voice to numbers in no assigned range: priced by their country code. ---
        // +44 → GB → intl-europe, business peak 4.00: 4.00*60/60 = 4.000000. Mon 10:00 local.
        row("voice to an unassigned british number", Shipped, "business", voice(MON_PEAK, 60, GB_UNASSIGNED), "intl-europe", 60,
            vec![("peak", 60, "4.000000")], "4.000000"),
        // +1 → US (rest of world) → intl-world, business peak 8.00: 8*60/60 = 8.000000.
        row("voice to an unassigned american number", Shipped, "business", voice(MON_PEAK, 60, US_UNASSIGNED), "intl-world", 60,
            vec![("peak", 60, "8.000000")], "8.000000"),
        // +212 → home → domestic, business peak 0.70: 0.70*60/60 = 0.700000.
        row("voice to an unassigned moroccan number", Shipped, "business", voice(MON_PEAK, 60, MA_UNASSIGNED), "domestic", 60,
            vec![("peak", 60, "0.700000")], "0.700000"),
        // basic 60/60, no fee outside domestic: 61 s → 120; 7.00*2 = 14.000000. Tue 06:00 local.
        row("voice intl-world offpeak per started minute", Shipped, "basic", voice("2026-11-03T05:00:00Z", 61, BR), "intl-world", 120,
            vec![("offpeak", 120, "14.000000")], "14.000000"),
        // ES → intl-europe, student 30/30: 31 s → 60; 3.50 → 3.500000. Sat 20:00 local.
        row("voice intl-europe weekend 30/30", Shipped, "student", voice("2026-11-07T19:00:00Z", 31, ES), "intl-europe", 60,
            vec![("weekend", 60, "3.500000")], "3.500000"),
        // SA → intl-gulf, student 30/30: 30 s; 4.50*30/60 = 2.250000. Wed 23:00 local.
        row("voice intl-gulf offpeak 30/30", Shipped, "student", voice("2026-11-04T22:00:00Z", 30, SA), "intl-gulf", 30,
            vec![("offpeak", 30, "2.250000")], "2.250000"),
        // TN → intl-maghreb, data-max 60/1 weekend 3.00: 3*100/60 = 5.000000. Sun 09:00 local.
        row("voice intl-maghreb weekend", Shipped, "data-max", voice("2026-11-08T08:00:00Z", 100, TN), "intl-maghreb", 100,
            vec![("weekend", 100, "5.000000")], "5.000000"),
        // --- Voice, roaming (by the visited country). ---
        // In FR → roam-europe, 60/60 12.00: 90 s → 120; 12*2 = 24.000000
        row("voice roam-europe peak", Shipped, "business", roaming(voice(MON_PEAK, 90, MA), "FR"), "roam-europe", 120,
            vec![("peak", 120, "24.000000")], "24.000000"),
        // In US → roam-world (rest of world), 20.00: 30 s → 60; 20.000000 (no fee in roaming)
        row("voice roam-world offpeak", Shipped, "basic", roaming(voice(MON_OFFPEAK, 30, MA), "US"), "roam-world", 60,
            vec![("offpeak", 60, "20.000000")], "20.000000"),
        // In TR (roam-europe, not intl-europe), student roaming 60/60: 61 s → 120; 24.000000
        row("voice roam-europe weekend", Shipped, "student", roaming(voice(SAT_WEEKEND, 61, MA), "TR"), "roam-europe", 120,
            vec![("weekend", 120, "24.000000")], "24.000000"),
        // roaming_country MA is home: domestic; 0.90 + 0.10 = 1.000000
        row("voice roaming in MA is domestic", Shipped, "basic", roaming(voice(MON_PEAK, 60, MA), "MA"), "domestic", 60,
            vec![("peak", 60, "0.900000")], "1.000000").fee("0.10"),
        // In ES calling BR: roam-europe 12.00 (not intl-world); 60 s → 12.000000
        row("international peer while roaming is priced by the roaming zone", Shipped, "business",
            roaming(voice(MON_PEAK, 60, BR), "ES"), "roam-europe", 60,
            vec![("peak", 60, "12.000000")], "12.000000"),
        // In BR calling FR: roam-world 20.00; 60 s → 20.000000. Sun 12:00 local.
        row("voice roam-world weekend with a european peer", Shipped, "data-max",
            roaming(voice("2026-11-08T11:00:00Z", 60, FR), "BR"), "roam-world", 60,
            vec![("weekend", 60, "20.000000")], "20.000000"),
        // In MA calling FR: intl-europe, business peak 4.00; 60 s → 4.000000
        row("voice roaming in MA to FR is international", Shipped, "business",
            roaming(voice(MON_PEAK, 60, FR), "MA"), "intl-europe", 60,
            vec![("peak", 60, "4.000000")], "4.000000"),
        // --- SMS: one message at the band of its send time. ---
        row("sms domestic peak", Shipped, "basic", sms(MON_PEAK, MA), "domestic", 1,
            vec![("peak", 1, "0.200000")], "0.200000"), // 0.20
        row("sms domestic offpeak", Shipped, "student", sms(MON_OFFPEAK, MA), "domestic", 1,
            vec![("offpeak", 1, "0.150000")], "0.150000"), // 0.15
        row("sms domestic weekend", Shipped, "business", sms(SAT_WEEKEND, MA), "domestic", 1,
            vec![("weekend", 1, "0.150000")], "0.150000"), // 0.15
        row("sms intl-maghreb peak", Shipped, "basic", sms(MON_PEAK, TN), "intl-maghreb", 1,
            vec![("peak", 1, "1.000000")], "1.000000"), // 1.00
        row("sms intl-europe offpeak", Shipped, "student", sms(MON_OFFPEAK, FR), "intl-europe", 1,
            vec![("offpeak", 1, "1.500000")], "1.500000"), // 1.50
        row("sms intl-gulf weekend", Shipped, "business", sms(SAT_WEEKEND, AE), "intl-gulf", 1,
            vec![("weekend", 1, "1.500000")], "1.500000"), // 1.50
        row("sms intl-world peak", Shipped, "data-max", sms(MON_PEAK, BR), "intl-world", 1,
            vec![("peak", 1, "2.500000")], "2.500000"), // 2.50
        row("sms roam-europe peak", Shipped, "basic", roaming(sms(MON_PEAK, MA), "DE"), "roam-europe", 1,
            vec![("peak", 1, "3.000000")], "3.000000"), // 3.00
        row("sms roam-world offpeak", Shipped, "student", roaming(sms(MON_OFFPEAK, MA), "US"), "roam-world", 1,
            vec![("offpeak", 1, "5.000000")], "5.000000"), // 5.00
        // In IT to BR: roam-europe 3.00, not intl-world 2.50
        row("sms roam-europe weekend to a rest-of-world peer", Shipped, "business",
            roaming(sms(SAT_WEEKEND, BR), "IT"), "roam-europe", 1,
            vec![("weekend", 1, "3.000000")], "3.000000"),
        row("sms roaming in MA is domestic", Shipped, "basic", roaming(sms(SAT_WEEKEND, MA), "MA"), "domestic", 1,
            vec![("weekend", 1, "0.200000")], "0.200000"), // 0.20
        // --- Data: per started KB (or block), priced per MB, band at session start. ---
        // 1024 B → 1 KB; 0.10*1/1024 = 0.00009765625 → 0.000098
        row("data exactly 1024 bytes", Shipped, "basic", data(MON_PEAK, 1024), "domestic", 1,
            vec![("peak", 1, "0.000098")], "0.000098"),
        // 1025 B → 2 KB; 0.10*2/1024 = 0.0001953125 → 0.000195
        row("data 1025 bytes is two started KB", Shipped, "basic", data(MON_PEAK, 1025), "domestic", 2,
            vec![("peak", 2, "0.000195")], "0.000195"),
        row("data zero bytes", Shipped, "basic", data(MON_PEAK, 0), "domestic", 0, vec![], "0"),
        // 1 MiB → 1024 KB; 0.05*1024/1024 = 0.050000
        row("data domestic offpeak", Shipped, "student", data(MON_OFFPEAK, 1_048_576), "domestic", 1024,
            vec![("offpeak", 1024, "0.050000")], "0.050000"),
        // 5 MiB → 5120 KB; 0.05*5120/1024 = 0.250000
        row("data domestic weekend", Shipped, "business", data(SAT_WEEKEND, 5_242_880), "domestic", 5120,
            vec![("weekend", 5120, "0.250000")], "0.250000"),
        // data-max block 100 KB: 1 B → 1 KB → 100 KB; 0.02*100/1024 = 0.001953125 → 0.001953
        row("data block_kb 100 one byte", Shipped, "data-max", data(MON_PEAK, 1), "domestic", 100,
            vec![("peak", 100, "0.001953")], "0.001953"),
        // 102400 B = 100 KB → 100; 0.001953
        row("data block_kb 100 exactly one block", Shipped, "data-max", data(MON_PEAK, 102_400), "domestic", 100,
            vec![("peak", 100, "0.001953")], "0.001953"),
        // 102401 B → 101 KB → 200 KB; 0.02*200/1024 = 0.00390625 → 0.003906
        row("data block_kb 100 one byte over", Shipped, "data-max", data(MON_PEAK, 102_401), "domestic", 200,
            vec![("peak", 200, "0.003906")], "0.003906"),
        row("data block_kb 100 zero bytes", Shipped, "data-max", data(MON_PEAK, 0), "domestic", 0, vec![], "0"),
        // In DE: roam-europe 5.00; 1024 KB → 5.000000
        row("data roam-europe peak", Shipped, "basic", roaming(data(MON_PEAK, 1_048_576), "DE"), "roam-europe", 1024,
            vec![("peak", 1024, "5.000000")], "5.000000"),
        // In US: roam-world 10.00; 2048 KB → 10*2048/1024 = 20.000000
        row("data roam-world offpeak", Shipped, "student", roaming(data(MON_OFFPEAK, 2_097_152), "US"), "roam-world", 2048,
            vec![("offpeak", 2048, "20.000000")], "20.000000"),
        // In BR: roam-world 10.00; 1025 B → 2 KB; 10*2/1024 = 0.01953125 → 0.019531
        row("data roam-world weekend", Shipped, "business", roaming(data(SAT_WEEKEND, 1025), "BR"), "roam-world", 2,
            vec![("weekend", 2, "0.019531")], "0.019531"),
        // data-max's block_kb is on its domestic tariff only: in TR 1025 B → 2 KB;
        // 5*2/1024 = 0.009765625 → 0.009766
        row("data roaming has no block", Shipped, "data-max", roaming(data(MON_PEAK, 1025), "TR"), "roam-europe", 2,
            vec![("peak", 2, "0.009766")], "0.009766"),
        // In MA: domestic 0.10; 1024 KB → 0.100000
        row("data roaming in MA is domestic", Shipped, "basic", roaming(data(MON_PEAK, 1_048_576), "MA"), "domestic", 1024,
            vec![("peak", 1024, "0.100000")], "0.100000"),
        // Session starts Fri 19:59 local (18:59Z), lasts 600 s into offpeak: all at peak.
        // 0.05*1024/1024 = 0.050000
        row("data session crossing 20:00 is in the band of its start", Shipped, "student",
            data("2026-11-06T18:59:00Z", 1_048_576), "domestic", 1024,
            vec![("peak", 1024, "0.050000")], "0.050000"),
        // --- Calls across band boundaries. ---
        // Tue 07:59:00 local, 120 s business: offpeak 60 s 0.50*60/60 = 0.500000,
        // peak 60 s 0.70*60/60 = 0.700000 → 1.200000 (> minimum 0.50)
        row("a call crossing 08:00 is split", Shipped, "business", voice("2026-11-03T06:59:00Z", 120, MA), "domestic", 120,
            vec![("offpeak", 60, "0.500000"), ("peak", 60, "0.700000")], "1.200000"),
        // Wed 19:59:30 local, 90 s to FR: peak 30 s 4*30/60 = 2.000000, offpeak 60 s
        // 3.5*60/60 = 3.500000 → 5.500000
        row("a call crossing 20:00 is split", Shipped, "business", voice("2026-11-04T18:59:30Z", 90, FR), "intl-europe", 90,
            vec![("peak", 30, "2.000000"), ("offpeak", 60, "3.500000")], "5.500000"),
        // Thu 19:59:30 local, 20 s → 60 s charged laid from the start: peak 30 s
        // 0.90*30/60 = 0.450000, offpeak 30 s 0.45*30/60 = 0.225000; + 0.10 = 0.775000
        row("the rounded-up step is priced in the band where it falls", Shipped, "basic",
            voice("2026-11-05T18:59:30Z", 20, MA), "domestic", 60,
            vec![("peak", 30, "0.450000"), ("offpeak", 30, "0.225000")], "0.775000").fee("0.10"),
        // Fri 23:59:00 local, 120 s: offpeak 60 s 0.450000, weekend 60 s 0.400000; + 0.10
        row("a call crossing midnight friday to saturday enters the weekend", Shipped, "basic",
            voice("2026-11-06T22:59:00Z", 120, MA), "domestic", 120,
            vec![("offpeak", 60, "0.450000"), ("weekend", 60, "0.400000")], "0.950000").fee("0.10"),
        // Sun 23:59:00 local, 180 s: weekend 60 s 0.400000, offpeak 120 s 0.45*2 = 0.900000;
        // + 0.10 = 1.400000
        row("a call crossing midnight sunday to monday leaves the weekend", Shipped, "basic",
            voice("2026-11-08T22:59:00Z", 180, MA), "domestic", 180,
            vec![("weekend", 60, "0.400000"), ("offpeak", 120, "0.900000")], "1.400000").fee("0.10"),
        // Fri 19:00 local, 6 h: peak 3600 s 0.90*60 = 54, offpeak 14400 s 0.45*240 = 108,
        // weekend 3600 s 0.40*60 = 24; + 0.10 = 186.100000
        row("a six-hour call crosses three bands", Shipped, "basic", voice("2026-11-06T18:00:00Z", 21600, MA), "domestic", 21600,
            vec![("peak", 3600, "54.000000"), ("offpeak", 14400, "108.000000"), ("weekend", 3600, "24.000000")],
            "186.100000").fee("0.10"),
        // Mon 07:59:50 local, 31 s → 60 (30/30): offpeak 10 s 0.30*10/60 = 0.050000,
        // peak 50 s 0.60*50/60 = 0.500000 → 0.550000
        row("a 30/30 call crossing 08:00 is split after rounding up", Shipped, "student",
            voice("2026-11-09T06:59:50Z", 31, MA), "domestic", 60,
            vec![("offpeak", 10, "0.050000"), ("peak", 50, "0.500000")], "0.550000"),
        // Tue 07:59:59 local, 61 s to BR: offpeak 1 s 7/60 = 0.11666.. → 0.116667,
        // peak 60 s 8.000000 → 8.116667
        row("a one-second part is rounded on its own", Shipped, "business",
            voice("2026-11-03T06:59:59Z", 61, BR), "intl-world", 61,
            vec![("offpeak", 1, "0.116667"), ("peak", 60, "8.000000")], "8.116667"),
        // --- Rounding to 6 decimals, half away from zero (edited prices, 1/1 charging). ---
        // 7 s peak at 1.00: 7/60 = 0.1166666.. → 0.116667
        row("a seventh decimal is rounded", Rounding, "data-max", voice(MON_PEAK, 7, MA), "domestic", 7,
            vec![("peak", 7, "0.116667")], "0.116667"),
        // 10 s offpeak at 0.000003: 0.00003/60 = 0.0000005 → 0.000001 (half away from zero;
        // half-to-even would give 0.000000)
        row("a half millionth is rounded away from zero", Rounding, "data-max", voice(MON_OFFPEAK, 10, MA), "domestic", 10,
            vec![("offpeak", 10, "0.000001")], "0.000001"),
        // 10 s weekend at 0.000015: 0.00015/60 = 0.0000025 → 0.000003 (half-to-even: 0.000002)
        row("two and a half millionths round up", Rounding, "data-max", voice(SAT_WEEKEND, 10, MA), "domestic", 10,
            vec![("weekend", 10, "0.000003")], "0.000003"),
        // Mon 19:59:53 local, 17 s: peak 7 s 0.116667 + offpeak 10 s 0.000001 = 0.116668
        // (rounding the unsplit sum 0.11666716.. would give 0.116667)
        row("each part is rounded before the parts are added", Rounding, "data-max",
            voice("2026-11-02T18:59:53Z", 17, MA), "domestic", 17,
            vec![("peak", 7, "0.116667"), ("offpeak", 10, "0.000001")], "0.116668"),
        // 1 KB at 0.000512/MB: 0.000512/1024 = 0.0000005 → 0.000001
        row("a half millionth of data is rounded away from zero", Rounding, "basic", data(MON_PEAK, 1000), "domestic", 1,
            vec![("peak", 1, "0.000001")], "0.000001"),
        // --- DST: real elapsed seconds, split at the instant of the offset change. ---
        // Europe/Paris, shipped bands (Sunday all weekend). Sun 2026-03-29 00:30Z = 01:30 CET;
        // 3600 s end at 01:30Z = 03:30 CEST (2 h on the wall clock). 0.40*60 = 24; + 0.10
        row("paris spring-forward is charged its elapsed seconds", Paris, "basic",
            voice("2026-03-29T00:30:00Z", 3600, MA), "domestic", 3600,
            vec![("weekend", 3600, "24.000000")], "24.100000").fee("0.10"),
        // Sun 2026-10-25 00:30Z = 02:30 CEST; 3600 s end at 01:30Z = 02:30 CET (0 h on the
        // wall clock). 24.000000 + 0.10
        row("paris fall-back is charged its elapsed seconds", Paris, "basic",
            voice("2026-10-25T00:30:00Z", 3600, MA), "domestic", 3600,
            vec![("weekend", 3600, "24.000000")], "24.100000").fee("0.10"),
        // Sunday cut at 02:30. 00:50Z = 01:50 CET offpeak 600 s to the jump at 01:00Z,
        // then 03:00 CEST weekend 600 s: 0.45*10 = 4.50 + 0.40*10 = 4.00 + 0.10 = 8.600000
        row("paris spring-forward changes band at the jump", ParisSunday, "basic",
            voice("2026-03-29T00:50:00Z", 1200, MA), "domestic", 1200,
            vec![("offpeak", 600, "4.500000"), ("weekend", 600, "4.000000")], "8.600000").fee("0.10"),
        // Sat 23:50Z = Sun 01:50 CEST, 7200 s: offpeak 01:50–02:30 CEST 2400 s (0.45*40 = 18),
        // weekend 02:30–03:00 CEST 1800 s (0.40*30 = 12), offpeak 02:00–02:30 CET 1800 s
        // (0.45*30 = 13.50), weekend 02:30–02:50 CET 1200 s (0.40*20 = 8); + 0.10 = 51.600000
        row("paris fall-back repeated hour is priced twice by its bands", ParisSunday, "basic",
            voice("2026-10-24T23:50:00Z", 7200, MA), "domestic", 7200,
            vec![("offpeak", 2400, "18.000000"), ("weekend", 1800, "12.000000"),
                 ("offpeak", 1800, "13.500000"), ("weekend", 1200, "8.000000")],
            "51.600000").fee("0.10"),
        // Casablanca, Ramadan starts 2026-02-15 02:00Z (03:00 +01 → 02:00 +00), Sunday cut at
        // 02:30. 01:00Z = 02:00 +01, 7200 s: offpeak 1800 (13.50), weekend 1800 (12.00),
        // offpeak 02:00–02:30 +00 1800 (13.50), weekend 1800 (12.00); + 0.10 = 51.100000
        row("casablanca ramadan start repeats 02:00-03:00", CasablancaSunday, "basic",
            voice("2026-02-15T01:00:00Z", 7200, MA), "domestic", 7200,
            vec![("offpeak", 1800, "13.500000"), ("weekend", 1800, "12.000000"),
                 ("offpeak", 1800, "13.500000"), ("weekend", 1800, "12.000000")],
            "51.100000").fee("0.10"),
        // Ramadan ends 2026-03-22 02:00Z (02:00 +00 → 03:00 +01). 01:45Z = 01:45 +00, 1800 s:
        // offpeak 900 s (0.45*15 = 6.75), weekend from 03:00 +01 900 s (0.40*15 = 6.00); + 0.10
        row("casablanca ramadan end skips 02:00-03:00", CasablancaSunday, "basic",
            voice("2026-03-22T01:45:00Z", 1800, MA), "domestic", 1800,
            vec![("offpeak", 900, "6.750000"), ("weekend", 900, "6.000000")], "12.850000").fee("0.10"),
        // Mon 2026-03-02, Ramadan (UTC+0): 07:59:30Z = 07:59:30 local, 60 s business:
        // offpeak 30 s 0.50*30/60 = 0.250000, peak 30 s 0.70*30/60 = 0.350000 → 0.600000
        row("during ramadan peak starts at 08:00 UTC", Shipped, "business",
            voice("2026-03-02T07:59:30Z", 60, MA), "domestic", 60,
            vec![("offpeak", 30, "0.250000"), ("peak", 30, "0.350000")], "0.600000"),
    ]
}

#[test]
fn every_row_of_the_hand_computed_table_is_rated_as_computed() {
    let rows = rows();
    assert!(rows.len() >= 45, "only {} rows", rows.len());
    let mut catalogs = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for r in &rows {
        let cat = catalogs.entry(r.cat).or_insert_with(|| catalog(r.cat));
        let rating = match rate(cat, r.plan, &r.cdr) {
            Ok(rating) => rating,
            Err(e) => {
                failures.push(format!("{}: rating failed: {e}", r.name));
                continue;
            }
        };
        let mut wrong = Vec::new();
        if rating.zone != r.zone {
            wrong.push(format!("zone {} (expected {})", rating.zone, r.zone));
        }
        if rating.units != r.units {
            wrong.push(format!("units {} (expected {})", rating.units, r.units));
        }
        let got: Vec<(String, i64, Decimal)> = rating
            .parts
            .iter()
            .map(|p| (p.band.clone(), p.units, p.amount))
            .collect();
        let want: Vec<(String, i64, Decimal)> = r
            .parts
            .iter()
            .map(|(b, u, a)| (b.to_string(), *u, dec(a)))
            .collect();
        if got != want {
            wrong.push(format!("parts {got:?} (expected {want:?})"));
        }
        if rating.connection_fee != dec(r.fee) {
            wrong.push(format!(
                "fee {} (expected {})",
                rating.connection_fee, r.fee
            ));
        }
        if rating.minimum_topup != dec(r.topup) {
            wrong.push(format!(
                "top-up {} (expected {})",
                rating.minimum_topup, r.topup
            ));
        }
        if rating.amount != dec(r.amount) {
            wrong.push(format!("amount {} (expected {})", rating.amount, r.amount));
        }
        if rating.amount.scale() > AMOUNT_DECIMALS {
            wrong.push(format!("amount {} has more than 6 decimals", rating.amount));
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}", r.name, wrong.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn the_table_covers_every_service_zone_kind_and_band() {
    let c = shipped();
    let mut seen = BTreeSet::new();
    let mut zones = BTreeSet::new();
    for r in rows().iter().filter(|r| r.cat == Cat::Shipped) {
        zones.insert((r.cdr.record_type.as_str(), r.zone));
        let kind = c
            .zones
            .iter()
            .find(|z| z.name == r.zone)
            .expect("a zone")
            .kind;
        for (band, _, _) in &r.parts {
            seen.insert((r.cdr.record_type.as_str(), format!("{kind:?}"), *band));
        }
    }
    for service in ["voice", "sms", "data"] {
        for kind in ["Domestic", "International", "Roaming"] {
            if service == "data" && kind == "International" {
                continue;
            }
            for band in ["peak", "offpeak", "weekend"] {
                assert!(
                    seen.contains(&(service, kind.to_string(), band)),
                    "no row for {service} {kind} {band}"
                );
            }
        }
        for zone in &c.zones {
            if service == "data" && zone.kind == ZoneKind::International {
                continue;
            }
            assert!(
                zones.contains(&(service, zone.name.as_str())),
                "no row for {service} in {}",
                zone.name
            );
        }
    }
}

#[test]
fn the_table_peers_parse_to_the_countries_the_rows_assume() {
    for (number, country, class) in [
        (MA, "MA", PeerClass::Domestic),
        (FR, "FR", PeerClass::International),
        (ES, "ES", PeerClass::International),
        (DZ, "DZ", PeerClass::International),
        (TN, "TN", PeerClass::International),
        (AE, "AE", PeerClass::International),
        (SA, "SA", PeerClass::International),
        (BR, "BR", PeerClass::International),
    ] {
        let p = number_plan().parse(number).unwrap();
        assert_eq!(
            (p.country.as_deref(), p.class),
            (Some(country), class),
            "{number}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Named cases: where the parts start, DST, periods, errors.

fn starts(r: &Rating) -> Vec<(String, DateTime<Utc>, i64)> {
    r.parts
        .iter()
        .map(|p| (p.band.clone(), p.from, p.units))
        .collect()
}

fn part(band: &str, from: &str, units: i64) -> (String, DateTime<Utc>, i64) {
    (band.to_string(), utc(from), units)
}

#[test]
fn a_call_crossing_peak_end_is_split_at_the_boundary() {
    // Wed 2026-11-04 19:59:30 local; 90 s to FR on business 60/1.
    let r = rate(
        shipped(),
        "business",
        &voice("2026-11-04T18:59:30Z", 90, FR),
    )
    .unwrap();
    assert_eq!(
        starts(&r),
        vec![
            part("peak", "2026-11-04T18:59:30Z", 30),
            // 20:00:00 local
            part("offpeak", "2026-11-04T19:00:00Z", 60),
        ]
    );
    assert_eq!(r.amount, dec("5.5"));
}

#[test]
fn a_call_across_the_spring_forward_is_charged_its_real_elapsed_seconds() {
    let c = catalog(Cat::Paris);
    // Sun 2026-03-29 01:30 CET → 03:30 CEST: two hours on the wall clock, one hour elapsed.
    let start = utc("2026-03-29T00:30:00Z");
    let end = start + TimeDelta::seconds(3600);
    let tz = c.operator.timezone;
    let wall = end.with_timezone(&tz).naive_local() - start.with_timezone(&tz).naive_local();
    assert_eq!(wall, TimeDelta::hours(2));
    let r = rate(&c, "basic", &voice("2026-03-29T00:30:00Z", 3600, MA)).unwrap();
    assert_eq!((r.measured, r.units), (3600, 3600));
    // Split at the offset change and merged again: the band is the same.
    assert_eq!(
        starts(&r),
        vec![part("weekend", "2026-03-29T00:30:00Z", 3600)]
    );
    assert_eq!(r.amount, dec("24.10"));
}

#[test]
fn a_call_across_the_fall_back_is_charged_its_real_elapsed_seconds() {
    let c = catalog(Cat::Paris);
    // Sun 2026-10-25 02:30 CEST → 02:30 CET: no time on the wall clock, one hour elapsed.
    let r = rate(&c, "basic", &voice("2026-10-25T00:30:00Z", 3600, MA)).unwrap();
    assert_eq!(r.units, 3600);
    assert_eq!(
        starts(&r),
        vec![part("weekend", "2026-10-25T00:30:00Z", 3600)]
    );
    assert_eq!(r.amount, dec("24.10"));
}

#[test]
fn a_call_spanning_the_spring_forward_gap_changes_band_at_the_instant_of_the_jump() {
    // Sunday offpeak until 02:30 local, weekend after. 01:59:59 CET is followed by
    // 03:00:00 CEST (2026-03-29 01:00Z), which is weekend: 02:00–02:30 never happens.
    let c = catalog(Cat::ParisSunday);
    let r = rate(&c, "basic", &voice("2026-03-29T00:50:00Z", 1200, MA)).unwrap();
    assert_eq!(
        starts(&r),
        vec![
            part("offpeak", "2026-03-29T00:50:00Z", 600),
            part("weekend", "2026-03-29T01:00:00Z", 600),
        ]
    );
    // 0.45*600/60 = 4.50, 0.40*600/60 = 4.00, + 0.10
    assert_eq!(r.amount, dec("8.60"));
    // The second just before the jump is still offpeak; the one at the jump is weekend.
    let r = rate(&c, "basic", &voice("2026-03-29T00:59:59Z", 2, MA)).unwrap();
    assert_eq!(
        starts(&r),
        vec![
            part("offpeak", "2026-03-29T00:59:59Z", 1),
            part("weekend", "2026-03-29T01:00:00Z", 59),
        ]
    );
}

#[test]
fn in_the_fall_back_repeated_hour_each_occurrence_is_priced_by_its_band() {
    // Sunday offpeak until 02:30 local, weekend after; 02:00–03:00 local happens at
    // 00:00–01:00Z (CEST) and again at 01:00–02:00Z (CET).
    let c = catalog(Cat::ParisSunday);
    let r = rate(&c, "basic", &voice("2026-10-24T23:50:00Z", 7200, MA)).unwrap();
    assert_eq!(
        starts(&r),
        vec![
            part("offpeak", "2026-10-24T23:50:00Z", 2400), // 01:50 CEST
            part("weekend", "2026-10-25T00:30:00Z", 1800), // 02:30 CEST
            part("offpeak", "2026-10-25T01:00:00Z", 1800), // 02:00 CET
            part("weekend", "2026-10-25T01:30:00Z", 1200), // 02:30 CET
        ]
    );
    // 18 + 12 + 13.50 + 8 + 0.10
    assert_eq!(r.amount, dec("51.60"));
}

#[test]
fn casablanca_ramadan_changes_of_offset_split_calls_like_any_dst_change() {
    let c = catalog(Cat::CasablancaSunday);
    // 2026-02-15 02:00Z: 03:00 +01 → 02:00 +00; 02:00–03:00 local happens twice.
    let r = rate(&c, "basic", &voice("2026-02-15T01:00:00Z", 7200, MA)).unwrap();
    assert_eq!(
        starts(&r),
        vec![
            part("offpeak", "2026-02-15T01:00:00Z", 1800), // 02:00 +01
            part("weekend", "2026-02-15T01:30:00Z", 1800), // 02:30 +01
            part("offpeak", "2026-02-15T02:00:00Z", 1800), // 02:00 +00
            part("weekend", "2026-02-15T02:30:00Z", 1800), // 02:30 +00
        ]
    );
    assert_eq!(r.amount, dec("51.10"));
    // 2026-03-22 02:00Z: 02:00 +00 → 03:00 +01; the band of 03:00 applies at once.
    let r = rate(&c, "basic", &voice("2026-03-22T01:45:00Z", 1800, MA)).unwrap();
    assert_eq!(
        starts(&r),
        vec![
            part("offpeak", "2026-03-22T01:45:00Z", 900), // 01:45 +00
            part("weekend", "2026-03-22T02:00:00Z", 900), // 03:00 +01
        ]
    );
    assert_eq!(r.amount, dec("12.85"));
}

#[test]
fn a_band_running_across_the_end_of_the_week_is_one_part_until_it_changes() {
    // Offpeak from Sunday 20:00 to Monday 08:00 local. Sun 2026-11-08 23:00 local, 10 h
    // on basic 60/60: offpeak 9 h to Mon 08:00 (0.45*540 = 243), peak 1 h (0.90*60 = 54);
    // + 0.10 = 297.10
    let c = catalog(Cat::SundayEveningOffpeak);
    let r = rate(&c, "basic", &voice("2026-11-08T22:00:00Z", 36_000, MA)).unwrap();
    assert_eq!(
        starts(&r),
        vec![
            part("offpeak", "2026-11-08T22:00:00Z", 32_400),
            part("peak", "2026-11-09T07:00:00Z", 3600),
        ]
    );
    assert_eq!(r.amount, dec("297.10"));
    // Sunday 19:59 local is still weekend, for one minute.
    assert_eq!(band_at(&c, utc("2026-11-08T18:59:00Z")), (2, 60));
    // Sunday 23:59 local: 8 h 1 min of offpeak left.
    assert_eq!(band_at(&c, utc("2026-11-08T22:59:00Z")), (1, 481 * 60));
}

#[test]
fn an_event_just_after_local_midnight_belongs_to_the_next_local_month() {
    // Sat 2026-10-31 23:30Z = Sun 2026-11-01 00:30 local (UTC+1).
    let r = rate(shipped(), "basic", &sms("2026-10-31T23:30:00Z", MA)).unwrap();
    assert_eq!(r.period, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
    // 2026-10-31 22:30Z = 23:30 local: still October.
    let r = rate(shipped(), "basic", &sms("2026-10-31T22:30:00Z", MA)).unwrap();
    assert_eq!(r.period, NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
}

#[test]
fn the_wholesale_cost_is_priced_on_the_charged_units() {
    // basic voice/domestic wholesale 0.12/min: 90 s → 120 s; 0.12*2 = 0.24
    let r = rate(shipped(), "basic", &voice(MON_PEAK, 90, MA)).unwrap();
    assert_eq!(r.cost, dec("0.24"));
    // data-max data/domestic wholesale 0.01/MB on 200 KB: 0.01*200/1024 = 0.001953125 → 0.001953
    let r = rate(shipped(), "data-max", &data(MON_PEAK, 102_401)).unwrap();
    assert_eq!((r.measured, r.units, r.cost), (101, 200, dec("0.001953")));
    // sms to BR on basic: 0.90 per message
    let r = rate(shipped(), "basic", &sms(MON_PEAK, BR)).unwrap();
    assert_eq!(r.cost, dec("0.90"));
}

#[test]
fn an_unknown_plan_or_a_missing_quantity_is_an_error_not_a_price() {
    assert_eq!(
        rate(shipped(), "gold", &sms(MON_PEAK, MA)).unwrap_err(),
        RatingError::UnknownPlan("gold".into())
    );
    let mut call = voice(MON_PEAK, 60, MA);
    call.duration_sec = None;
    assert_eq!(
        rate(shipped(), "basic", &call).unwrap_err(),
        RatingError::MissingQuantity("voice", "duration")
    );
    let mut session = data(MON_PEAK, 1);
    session.volume_bytes = None;
    assert_eq!(
        rate(shipped(), "basic", &session).unwrap_err(),
        RatingError::MissingQuantity("data", "volume")
    );
}

// ---------------------------------------------------------------------------------------
// Property tests over the shipped catalog.

const PLANS: [&str; 4] = ["basic", "student", "business", "data-max"];
const PEERS: [&str; 8] = [MA, FR, ES, DZ, TN, AE, SA, BR];
const VISITED: [Option<&str>; 7] = [
    None,
    None,
    Some("MA"),
    Some("FR"),
    Some("TR"),
    Some("US"),
    Some("BR"),
];
/// 2024-01-01T00:00:00Z; events fall in the five years after it (three Ramadans with
/// their offset changes, leap day 2024).
const EPOCH: i64 = 1_704_067_200;
const FIVE_YEARS: i64 = 5 * 365 * 86_400;
const FIVE_GB: i64 = 5 * 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
struct Case {
    plan: &'static str,
    cdr: NormalizedCdr,
}

fn build(
    plan: usize,
    service: usize,
    peer: usize,
    visited: usize,
    at: i64,
    seconds: i32,
    bytes: i64,
) -> Case {
    let at = DateTime::from_timestamp(EPOCH + at, 0)
        .expect("in range")
        .to_rfc3339();
    let cdr = match service {
        0 => voice(&at, seconds, PEERS[peer]),
        1 => sms(&at, PEERS[peer]),
        _ => data(&at, bytes),
    };
    let cdr = match VISITED[visited] {
        Some(v) => roaming(cdr, v),
        None => cdr,
    };
    Case {
        plan: PLANS[plan],
        cdr,
    }
}

fn cases() -> impl Strategy<Value = Case> {
    (
        0..PLANS.len(),
        0usize..3,
        0..PEERS.len(),
        0..VISITED.len(),
        0..FIVE_YEARS,
        0i32..20_000,
        0..=FIVE_GB,
    )
        .prop_map(|(p, s, peer, v, at, secs, bytes)| build(p, s, peer, v, at, secs, bytes))
}

/// The shipped week, written out independently of the catalog code.
fn shipped_band(t: DateTime<Utc>) -> &'static str {
    let local = t.with_timezone(&chrono_tz::Africa::Casablanca);
    match local.weekday() {
        chrono::Weekday::Sat | chrono::Weekday::Sun => "weekend",
        _ if (8..20).contains(&local.hour()) => "peak",
        _ => "offpeak",
    }
}

/// The shipped zones, written out independently of the catalog code.
fn shipped_zone(cdr: &NormalizedCdr) -> &'static str {
    const EUROPE: [&str; 10] = ["FR", "ES", "IT", "BE", "NL", "DE", "PT", "GB", "CH", "LU"];
    match cdr.roaming_country.as_deref() {
        Some(v) if v != "MA" => {
            return if EUROPE.contains(&v) || v == "TR" {
                "roam-europe"
            } else {
                "roam-world"
            }
        }
        _ => {}
    }
    if cdr.record_type == RecordType::Data || cdr.peer_class != Some(PeerClass::International) {
        return "domestic";
    }
    match cdr.peer_country.as_deref().unwrap_or("") {
        "DZ" | "TN" | "LY" | "MR" => "intl-maghreb",
        c if EUROPE.contains(&c) => "intl-europe",
        "AE" | "SA" | "QA" | "KW" | "BH" | "OM" => "intl-gulf",
        _ => "intl-world",
    }
}

fn round6(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
}

/// The rules of the module comment, applied second by second: (zone, units, parts
/// (band, from, units, amount), amount).
#[allow(clippy::type_complexity)]
fn model(
    case: &Case,
) -> (
    &'static str,
    i64,
    Vec<(&'static str, DateTime<Utc>, i64, Decimal)>,
    Decimal,
) {
    let c = shipped();
    let cdr = &case.cdr;
    let zone = shipped_zone(cdr);
    let zi = c.zones.iter().position(|z| z.name == zone).unwrap();
    let tariff = c
        .plan(case.plan)
        .unwrap()
        .tariff(c.zones.len(), cdr.record_type, zi)
        .unwrap();
    let price = |band: &str| tariff.prices[c.bands.iter().position(|b| b == band).unwrap()];
    let start = cdr.event_time;
    let (units, parts) = match cdr.record_type {
        RecordType::Voice => {
            let s = cdr.duration_sec.unwrap() as i64;
            let ch = tariff.charging.unwrap();
            let charged = if s == 0 {
                0
            } else if s <= ch.first {
                ch.first
            } else {
                let rest = s - ch.first;
                ch.first + (rest / ch.step + i64::from(rest % ch.step != 0)) * ch.step
            };
            let mut runs: Vec<(&'static str, DateTime<Utc>, i64)> = Vec::new();
            for i in 0..charged {
                let t = start + TimeDelta::seconds(i);
                let b = shipped_band(t);
                match runs.last_mut() {
                    Some((lb, _, n)) if *lb == b => *n += 1,
                    _ => runs.push((b, t, 1)),
                }
            }
            let parts = runs
                .into_iter()
                .map(|(b, t, n)| {
                    (
                        b,
                        t,
                        n,
                        round6(price(b) * Decimal::from(n) / Decimal::from(60)),
                    )
                })
                .collect();
            (charged, parts)
        }
        RecordType::Sms => {
            let b = shipped_band(start);
            (1, vec![(b, start, 1, price(b))])
        }
        RecordType::Data => {
            let bytes = cdr.volume_bytes.unwrap();
            let kb = bytes / 1024 + i64::from(bytes % 1024 != 0);
            let block = tariff.block_kb;
            let charged = (kb / block + i64::from(kb % block != 0)) * block;
            let b = shipped_band(start);
            let parts = if charged == 0 {
                vec![]
            } else {
                vec![(
                    b,
                    start,
                    charged,
                    round6(price(b) * Decimal::from(charged) / Decimal::from(1024)),
                )]
            };
            (charged, parts)
        }
    };
    let mut amount: Decimal = parts.iter().map(|p| p.3).sum();
    if units > 0 {
        amount += tariff.connection_fee;
        if amount < tariff.minimum_charge {
            amount = tariff.minimum_charge;
        }
    }
    (zone, units, parts, amount)
}

fn check_parts_add_up(r: &Rating, cdr: &NormalizedCdr) -> Result<(), TestCaseError> {
    prop_assert!(r.amount >= Decimal::ZERO, "negative amount {}", r.amount);
    prop_assert!(r.connection_fee >= Decimal::ZERO && r.minimum_topup >= Decimal::ZERO);
    prop_assert!(r.amount.scale() <= AMOUNT_DECIMALS);
    for p in &r.parts {
        prop_assert!(p.units > 0 && p.amount >= Decimal::ZERO, "{p:?}");
        prop_assert!(p.amount.scale() <= AMOUNT_DECIMALS, "{p:?}");
    }
    let units: i64 = r.parts.iter().map(|p| p.units).sum();
    prop_assert_eq!(units, r.units);
    let sum: Decimal = r.parts.iter().map(|p| p.amount).sum();
    prop_assert_eq!(sum + r.connection_fee + r.minimum_topup, r.amount);
    if r.units == 0 {
        prop_assert!(r.parts.is_empty());
        prop_assert_eq!(r.amount, Decimal::ZERO);
    }
    if let Some(first) = r.parts.first() {
        prop_assert_eq!(first.from, cdr.event_time);
    }
    for w in r.parts.windows(2) {
        prop_assert!(
            w[0].from < w[1].from,
            "part starts do not increase: {:?}",
            w
        );
        prop_assert_ne!(&w[0].band, &w[1].band, "neighbouring parts in one band");
        if r.service == RecordType::Voice {
            // The parts tile [start, start + units s) with no gap and no overlap.
            prop_assert_eq!(w[1].from, w[0].from + TimeDelta::seconds(w[0].units));
        }
    }
    if r.service != RecordType::Voice {
        prop_assert!(r.parts.len() <= 1);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An amount is never negative, and it is exactly its parts, fee and top-up; the
    /// parts' units are the rating's units; parts start at the event and strictly later
    /// each time, never two neighbours in one band, and a call's parts tile its charged
    /// interval second by second.
    #[test]
    fn amounts_are_never_negative_and_the_parts_add_up(case in cases()) {
        let r = rate(shipped(), case.plan, &case.cdr).unwrap();
        check_parts_add_up(&r, &case.cdr)?;
    }

    /// Same start, more seconds: never cheaper. Same start, more bytes: never cheaper.
    #[test]
    fn a_longer_call_or_a_bigger_session_never_costs_less(case in cases(), extra_secs in 0i32..7200, extra_bytes in 0i64..(1 << 30)) {
        let r = rate(shipped(), case.plan, &case.cdr).unwrap();
        let mut more = case.cdr.clone();
        more.duration_sec = more.duration_sec.map(|s| s + extra_secs);
        more.volume_bytes = more.volume_bytes.map(|b| b + extra_bytes);
        let r2 = rate(shipped(), case.plan, &more).unwrap();
        prop_assert!(r2.units >= r.units, "{} < {}", r2.units, r.units);
        prop_assert!(r2.amount >= r.amount, "{} < {} for {:?}", r2.amount, r.amount, more);
    }

    /// The same event, plan and catalog (even a catalog parsed again) give the same rating.
    #[test]
    fn rating_is_deterministic(case in cases()) {
        let a = rate(shipped(), case.plan, &case.cdr).unwrap();
        let b = rate(shipped(), case.plan, &case.cdr).unwrap();
        prop_assert_eq!(&a, &b);
        let c = rate(&catalog(Cat::Shipped), case.plan, &case.cdr).unwrap();
        prop_assert_eq!(&a, &c);
    }

    /// `rate` agrees with the rules applied second by second, with bands and zones
    /// written out by hand for the shipped catalog.
    #[test]
    fn rating_agrees_with_a_second_by_second_model_of_the_shipped_catalog(case in cases()) {
        let r = rate(shipped(), case.plan, &case.cdr).unwrap();
        let (zone, units, parts, amount) = model(&case);
        prop_assert_eq!(r.zone.as_str(), zone);
        prop_assert_eq!(r.units, units);
        let got: Vec<(&str, DateTime<Utc>, i64, Decimal)> =
            r.parts.iter().map(|p| (p.band.as_str(), p.from, p.units, p.amount)).collect();
        prop_assert_eq!(got, parts);
        prop_assert_eq!(r.amount, amount);
    }

    /// `split` tiles [start, start + seconds) in any time zone and band layout: each part
    /// starts where the previous ended, its band is the band of every second it covers
    /// (checked at its first and last second), and the band changes between neighbours.
    #[test]
    fn split_tiles_the_interval_and_each_part_is_in_one_band(
        which in 0usize..4,
        at in 0..FIVE_YEARS,
        seconds in 0i64..200_000,
    ) {
        let c = split_catalogs()[which].clone();
        let start = DateTime::from_timestamp(EPOCH + at, 0).unwrap();
        let parts = split(&c, start, seconds);
        let total: i64 = parts.iter().map(|p| p.2).sum();
        prop_assert_eq!(total, seconds);
        let mut next = start;
        for (i, (band, from, n)) in parts.iter().enumerate() {
            prop_assert_eq!(*from, next);
            prop_assert!(*n > 0);
            prop_assert_eq!(band_at(&c, *from).0, *band);
            prop_assert_eq!(band_at(&c, *from + TimeDelta::seconds(n - 1)).0, *band);
            if i > 0 {
                prop_assert_ne!(parts[i - 1].0, *band);
                prop_assert_ne!(band_at(&c, *from - TimeDelta::seconds(1)).0, *band);
            }
            next = *from + TimeDelta::seconds(*n);
        }
    }
}

fn split_catalogs() -> &'static [Catalog; 4] {
    static C: OnceLock<[Catalog; 4]> = OnceLock::new();
    C.get_or_init(|| {
        [
            catalog(Cat::Shipped),
            catalog(Cat::ParisSunday),
            catalog(Cat::CasablancaSunday),
            catalog(Cat::SundayEveningOffpeak),
        ]
    })
}

#[test]
fn a_call_starting_within_a_second_is_laid_on_the_clock_from_that_second() {
    // Friday 19:59:59.600 local (+01) for 60 s on basic (60/60): rated from 19:59:59,
    // 1 s peak (0.90 × 1/60 = 0.015000) + 59 s offpeak (0.45 × 59/60 = 0.442500)
    // + connection 0.10 = 0.557500.
    let mut cdr = voice("2026-10-09T18:59:59Z", 60, "+212661234567");
    cdr.event_time += TimeDelta::milliseconds(600);
    let r = rate(shipped(), "basic", &cdr).unwrap();
    assert_eq!(
        starts(&r),
        vec![
            part("peak", "2026-10-09T18:59:59Z", 1),
            part("offpeak", "2026-10-09T19:00:00Z", 59)
        ]
    );
    assert_eq!(r.amount, dec("0.5575"));
}

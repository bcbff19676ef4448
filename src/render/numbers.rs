//! Numbers as a person reads them in text: counts and money amounts with thousands
//! separators, money with the decimals of its currency's minor unit.

use crate::domain::billing::{fixed, minor_unit};
use rust_decimal::Decimal;

/// 1234567 → "1,234,567".
pub fn count(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", grouped(&n.unsigned_abs().to_string()))
}

/// An amount in `currency`, rounded half away from zero to the decimals of its minor unit
/// (ISO 4217; 2 for an unknown code), with thousands separators: 1234567.891 EUR →
/// "1,234,567.89". A negative amount that rounds to zero shows no sign.
pub fn money(amount: Decimal, currency: &str) -> String {
    let d = fixed(amount, minor_unit(currency));
    let sign = if d.is_sign_negative() && !d.is_zero() {
        "-"
    } else {
        ""
    };
    let text = d.abs().to_string();
    match text.split_once('.') {
        Some((whole, decimals)) => format!("{sign}{}.{decimals}", grouped(whole)),
        None => format!("{sign}{}", grouped(&text)),
    }
}

fn grouped(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn counts_and_amounts_are_grouped_by_thousands() {
        assert_eq!(count(0_u64), "0");
        assert_eq!(count(999_u64), "999");
        assert_eq!(count(1_000_u64), "1,000");
        assert_eq!(count(-1_234_567_i64), "-1,234,567");
        assert_eq!(money(d("0"), "EUR"), "0.00");
        assert_eq!(money(d("1234567.891"), "EUR"), "1,234,567.89");
        assert_eq!(money(d("0.005"), "EUR"), "0.01");
        assert_eq!(money(d("-1000.5"), "EUR"), "-1,000.50");
        assert_eq!(money(d("-0.001"), "EUR"), "0.00");
        assert_eq!(money(d("12.000000"), "EUR"), "12.00");
    }

    #[test]
    fn amounts_have_the_decimals_of_their_currency() {
        assert_eq!(money(d("1234567.5"), "JPY"), "1,234,568");
        assert_eq!(money(d("-0.4"), "JPY"), "0");
        assert_eq!(money(d("1234.5675"), "BHD"), "1,234.568");
        assert_eq!(money(d("1234.5"), "MAD"), "1,234.50");
        assert_eq!(money(d("1234.5"), "XYZ"), "1,234.50");
    }
}

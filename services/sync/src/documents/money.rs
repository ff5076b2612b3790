//! Decimal prices as whole millionths, so costs add up exactly in SQL without a decimal type.

/// Millionths of a currency unit in `amount` (`"0.05"` is 50 000); `None` unless it is a
/// non-negative decimal with at most six places.
pub fn to_micros(amount: &str) -> Option<i64> {
    let amount = amount.trim();
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |text: &str| text.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

/// The decimal text of `micros` millionths, with at least two places (`"0.05"`, `"1.234"`).
pub fn from_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    let fraction = format!("{:06}", micros % 1_000_000);
    let trimmed = fraction.trim_end_matches('0');
    let places = if trimmed.len() < 2 {
        &fraction[..2]
    } else {
        trimmed
    };
    format!("{sign}{}.{places}", micros / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_exactly() {
        assert_eq!(to_micros("0.05"), Some(50_000));
        assert_eq!(to_micros("12"), Some(12_000_000));
        assert_eq!(to_micros("0.000001"), Some(1));
        assert_eq!(from_micros(50_000), "0.05");
        assert_eq!(from_micros(3 * 50_000), "0.15");
        assert_eq!(from_micros(1_234_000), "1.234");
        assert_eq!(from_micros(0), "0.00");
    }

    #[test]
    fn non_decimals_are_refused() {
        for bad in ["", "-1", "1.2345678", "1,5", "abc", ".5"] {
            assert_eq!(to_micros(bad), None, "{bad}");
        }
    }
}

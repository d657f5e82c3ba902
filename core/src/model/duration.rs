//! Durations as Istio reads them: Go's notation (`300ms`, `1.5s`, `1h30m`, `0`).

use std::fmt;

/// A non-negative duration read from Go's notation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let text = if d.subsec_nanos() == 0 {
            format!("{}s", d.as_secs())
        } else {
            let frac = format!("{:09}", d.subsec_nanos());
            format!("{}.{}s", d.as_secs(), frac.trim_end_matches('0'))
        };
        s.serialize_str(&text)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Duration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses Go's duration notation: an optional `+`, then one or more decimal numbers (with
/// an optional fraction) each followed by a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`);
/// a bare `0` is zero. Negative durations are refused: no Istio field takes one.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?} (expected a number with a unit, as in 300ms, 1.5s or 1h)"
        )
    };
    let mut rest = text;
    if let Some(r) = rest.strip_prefix('-') {
        if r.trim_start_matches(['0', '.']).is_empty() && !r.is_empty() {
            rest = r;
        } else {
            return Err(format!(
                "invalid duration {text:?}: durations cannot be negative"
            ));
        }
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, r) = rest.split_at(int_len);
        let (frac_part, r) = match r.strip_prefix('.') {
            Some(r) => {
                let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                r.split_at(n)
            }
            None => ("", r),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = r
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(r.len());
        let (unit, r) = r.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err(format!("invalid duration {text:?}: missing unit")),
            _ => return Err(format!("invalid duration {text:?}: unknown unit {unit:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut nanos = int.checked_mul(scale).ok_or_else(bad)?;
        // The fraction, scaled by the unit; digits beyond nanosecond precision are dropped
        // as Go drops them.
        let mut place = scale;
        for c in frac_part.chars() {
            place /= 10;
            if place == 0 {
                break;
            }
            nanos += u128::from(c.to_digit(10).unwrap_or(0)) * place;
        }
        total = total.checked_add(nanos).ok_or_else(bad)?;
        rest = r;
    }
    // Go's durations are int64 nanoseconds.
    if total > i64::MAX as u128 {
        return Err(format!("invalid duration {text:?}: too large"));
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    let sub = u32::try_from(total % 1_000_000_000).map_err(|_| bad())?;
    Ok(std::time::Duration::new(secs, sub))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration as D;

    #[test]
    fn go_notation() {
        assert_eq!(parse_duration("1.5s"), Ok(D::from_millis(1500)));
        assert_eq!(parse_duration("100ms"), Ok(D::from_millis(100)));
        assert_eq!(parse_duration("1h"), Ok(D::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(D::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(D::ZERO));
        assert_eq!(parse_duration("0s"), Ok(D::ZERO));
        assert_eq!(parse_duration(".5s"), Ok(D::from_millis(500)));
        assert_eq!(parse_duration("10us"), Ok(D::from_micros(10)));
        assert_eq!(parse_duration("2µs"), Ok(D::from_micros(2)));
        assert_eq!(parse_duration("+3s"), Ok(D::from_secs(3)));
        assert_eq!(parse_duration("1.000000001s"), Ok(D::new(1, 1)));
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "1",
            "s",
            "1x",
            "1.s.",
            "-1s",
            "1 s",
            "ten seconds",
            "9999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

//! Times in replay requests: RFC 3339 strings (`2021-04-17T16:43:37.075Z`, offsets such as
//! `+02:00` allowed) or integers of nanoseconds since the Unix epoch.

use crate::venues::parse_rfc3339;

/// Parses a time given as text: an integer of nanoseconds since the epoch, or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !s.contains("--") {
        if let Ok(ns) = s.parse::<i64>() {
            return Ok(ns);
        }
    }
    parse_rfc3339_any(s).ok_or_else(|| {
        format!(
            "time {:?} is neither RFC 3339 (2021-04-17T16:43:37Z) nor integer nanoseconds since the epoch",
            s.chars().take(64).collect::<String>()
        )
    })
}

/// RFC 3339 with `Z` or a `±HH:MM` offset.
fn parse_rfc3339_any(s: &str) -> Option<i64> {
    if s.ends_with('Z') || s.ends_with('z') {
        let mut z = s.to_string();
        z.pop();
        z.push('Z');
        let z = z.replacen('t', "T", 1);
        return parse_rfc3339(&z).map(|n| n.0);
    }
    if s.len() < 26 {
        return None;
    }
    let (base, off) = s.split_at(s.len() - 6);
    let b = off.as_bytes();
    if !(b[0] == b'+' || b[0] == b'-') || b[3] != b':' {
        return None;
    }
    let h: i64 = off[1..3].parse().ok()?;
    let m: i64 = off[4..6].parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    let sign = if b[0] == b'+' { 1 } else { -1 };
    let utc = parse_rfc3339(&format!("{base}Z"))?.0;
    utc.checked_sub(sign * (h * 3600 + m * 60) * 1_000_000_000)
}

/// Formats ns since the epoch as RFC 3339 UTC with nanoseconds (`/datasets` shows both).
pub fn format_rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_forms() {
        assert_eq!(
            parse_time("1618677817075687000"),
            Ok(1_618_677_817_075_687_000)
        );
        assert_eq!(
            parse_time("2021-04-17T16:43:37.075687Z"),
            Ok(1_618_677_817_075_687_000)
        );
        assert_eq!(
            parse_time("2021-04-17T18:43:37.075687+02:00"),
            Ok(1_618_677_817_075_687_000)
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("").is_err());
        assert_eq!(
            format_rfc3339(1_618_677_817_075_687_000),
            "2021-04-17T16:43:37.075687000Z"
        );
    }
}

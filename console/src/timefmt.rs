//! Times and durations as admins type and read them: UTC timestamps
//! ("2025-03-01 08:30:00 UTC", typed as "2025-03-01 08:30" or RFC 3339),
//! relative ages ("12s ago") and durations ("24h", "3days").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ClientError;

/// Milliseconds since the Unix epoch, now. A clock before 1970 reads as 0.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Formats Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`. Zero (the wire's
/// "not set") prints as `-`.
pub fn format_unix_ms(ms: i64) -> String {
    if ms == 0 {
        return "-".to_owned();
    }
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// How long ago `then_ms` was, seen from `now_ms`: "12s ago", "5m ago",
/// "3h ago", "4d ago". Zero prints as "never"; times in the future (clock
/// skew) as "just now".
pub fn format_ago(now_ms: i64, then_ms: i64) -> String {
    if then_ms == 0 {
        return "never".to_owned();
    }
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        s if s <= 0 => "just now".to_owned(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 48 * 3600 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// Parses a duration such as `90s`, `15m`, `24h`, `7days` or `1h 30m`.
pub fn parse_duration(input: &str) -> Result<Duration, ClientError> {
    humantime::parse_duration(input.trim()).map_err(|e| {
        ClientError::Invalid(format!(
            "invalid duration {input:?}: {e}; use e.g. 30m, 24h or 7days"
        ))
    })
}

/// Parses a point in time given either as a duration back from `now_ms`
/// (`2h` = two hours ago) or as a UTC time (`2025-03-01T08:00:00Z`,
/// `2025-03-01 08:00:00`). Returns Unix milliseconds.
pub fn parse_since(input: &str, now_ms: i64) -> Result<i64, ClientError> {
    let trimmed = input.trim();
    if let Ok(ago) = humantime::parse_duration(trimmed) {
        let ago_ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(ago_ms).max(1));
    }
    if let Some(ms) = utc_time(trimmed) {
        return Ok(ms.max(1));
    }
    Err(ClientError::Invalid(format!(
        "invalid time {input:?}: use a duration back from now (e.g. 2h, 3days) \
         or a UTC time like 2025-03-01T08:00:00Z"
    )))
}

/// Parses a point in time: a UTC time such as `2025-03-01 14:00` or
/// `2025-03-01 14:00:30` (a trailing `Z` or ` UTC` is fine), or RFC 3339
/// with an offset (`2025-03-01T15:00:00+01:00`). Returns Unix milliseconds.
pub fn parse_time(input: &str) -> Result<i64, ClientError> {
    utc_time(input.trim()).ok_or_else(|| {
        ClientError::Invalid(format!(
            "invalid time {input:?}: use a UTC time like \"2025-03-01 14:00\" \
             or RFC 3339 like 2025-03-01T14:00:00Z"
        ))
    })
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.frac]]` with an optional zone: `Z`, ` UTC` or
/// `±HH:MM`. No zone means UTC.
fn utc_time(input: &str) -> Option<i64> {
    // The shortest form: "YYYY-MM-DD HH:MM".
    const MIN_LEN: usize = 16;
    let (base, offset_secs) = if let Some(base) = input
        .strip_suffix('Z')
        .or_else(|| input.strip_suffix('z'))
        .or_else(|| input.strip_suffix(" UTC"))
    {
        (base, 0)
    } else {
        match input.len().checked_sub(6).filter(|at| *at >= MIN_LEN) {
            Some(at) if input.is_char_boundary(at) && matches!(&input[at..at + 1], "+" | "-") => {
                let (base, zone) = input.split_at(at);
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let (h, m) = zone.get(1..)?.split_once(':')?;
                if h.len() != 2 || m.len() != 2 {
                    return None;
                }
                let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
                if h > 23 || m > 59 {
                    return None;
                }
                (base, sign * (h * 3600 + m * 60))
            }
            _ => (input, 0),
        }
    };
    if base.len() < MIN_LEN || base.contains(['Z', 'z', '+']) {
        return None;
    }
    let with_secs;
    let base = if base.len() == MIN_LEN {
        with_secs = format!("{base}:00");
        &with_secs
    } else {
        base
    };
    let at = humantime::parse_rfc3339_weak(base).ok()?;
    let ms = match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_millis()).ok()?,
    };
    Some(ms - offset_secs * 1000)
}

/// The time of day of Unix milliseconds in UTC, `HH:MM:SS`.
pub fn format_time_of_day(ms: i64) -> String {
    let of_day = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// A time close to `now_ms` in few words: `14:00 UTC` on the same UTC day,
/// else `2025-03-02 14:00 UTC`. Zero prints as `-`.
pub fn format_near(ms: i64, now_ms: i64) -> String {
    if ms == 0 {
        return "-".to_owned();
    }
    let full = format_unix_ms(ms);
    // "YYYY-MM-DD HH:MM:SS UTC" → without the seconds.
    let (date, rest) = full.split_at(10);
    let hm = rest.get(1..6).unwrap_or_default();
    if ms.div_euclid(86_400_000) == now_ms.div_euclid(86_400_000) {
        format!("{hm} UTC")
    } else {
        format!("{date} {hm} UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        let cases = [
            (0, "-"),
            (1, "1970-01-01 00:00:00 UTC"),
            (951_782_400_000, "2000-02-29 00:00:00 UTC"),
            (1_709_251_199_999, "2024-02-29 23:59:59 UTC"),
            (1_735_689_600_000, "2025-01-01 00:00:00 UTC"),
            (1_740_818_096_000, "2025-03-01 08:34:56 UTC"),
            (-1000, "1969-12-31 23:59:59 UTC"),
        ];
        for (ms, want) in cases {
            assert_eq!(format_unix_ms(ms), want, "{ms}");
        }
    }

    #[test]
    fn formats_relative_ages() {
        let now = 1_000_000_000_000;
        let cases = [
            (0, "never"),
            (now, "just now"),
            (now + 5_000, "just now"),
            (now - 12_000, "12s ago"),
            (now - 59_999, "59s ago"),
            (now - 60_000, "1m ago"),
            (now - 3_599_000, "59m ago"),
            (now - 3_600_000, "1h ago"),
            (now - 47 * 3_600_000, "47h ago"),
            (now - 48 * 3_600_000, "2d ago"),
        ];
        for (then, want) in cases {
            assert_eq!(format_ago(now, then), want, "{then}");
        }
    }

    #[test]
    fn parses_durations() {
        let cases: [(&str, Option<u64>); 7] = [
            ("24h", Some(86_400)),
            ("90s", Some(90)),
            ("7days", Some(7 * 86_400)),
            ("1h 30m", Some(5400)),
            (" 15m ", Some(900)),
            ("soon", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = parse_duration(input).ok().map(|d| d.as_secs());
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn parses_since() {
        let now = 1_740_818_096_000;
        let cases = [
            ("2h", Some(now - 7_200_000)),
            ("2025-03-01T08:00:00Z", Some(1_740_816_000_000)),
            ("2025-03-01 08:00:00", Some(1_740_816_000_000)),
            ("2025-03-01 08:00", Some(1_740_816_000_000)),
            ("yesterday", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_since(input, now).ok(), want, "{input:?}");
        }
    }

    #[test]
    fn parses_times() {
        let at_8 = 1_740_816_000_000; // 2025-03-01 08:00:00 UTC
        let cases = [
            ("2025-03-01 08:00", Some(at_8)),
            (" 2025-03-01 08:00 ", Some(at_8)),
            ("2025-03-01 08:00 UTC", Some(at_8)),
            ("2025-03-01T08:00", Some(at_8)),
            ("2025-03-01 08:00:30", Some(at_8 + 30_000)),
            ("2025-03-01T08:00:00Z", Some(at_8)),
            ("2025-03-01T08:00:00.250Z", Some(at_8 + 250)),
            ("2025-03-01T08:00:00+00:00", Some(at_8)),
            ("2025-03-01T09:30:00+01:30", Some(at_8)),
            ("2025-03-01T03:00:00-05:00", Some(at_8)),
            ("2025-03-01 09:00+01:00", Some(at_8)),
            ("2025-03-01", None),
            ("2025-03-01 8:00", None),
            ("2025-03-01 08:00+1", None),
            ("2025-03-01T08:00:00+25:00", None),
            ("2025-02-30 08:00", None),
            ("14:00", None),
            ("tomorrow", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_time(input).ok(), want, "{input:?}");
        }
    }

    #[test]
    fn formats_short_times() {
        let at = 1_740_818_096_000; // 2025-03-01 08:34:56 UTC
        assert_eq!(format_time_of_day(at), "08:34:56");
        assert_eq!(format_near(at, at - 3_600_000), "08:34 UTC");
        assert_eq!(format_near(at, at + 86_400_000), "2025-03-01 08:34 UTC");
        assert_eq!(format_near(0, at), "-");
    }
}

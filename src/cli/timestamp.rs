//! Kafka timestamps (milliseconds since the Unix epoch) as ISO-8601 UTC text.

/// Kafka's `RecordBatch.NO_TIMESTAMP`: the batch carries no timestamp.
pub const NO_TIMESTAMP: i64 = -1;

const MS_PER_DAY: i64 = 86_400_000;

/// Renders `ms` since 1970-01-01T00:00:00Z as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic
/// Gregorian calendar). Total over `i64`: years beyond 0..=9999 get a sign, as ISO 8601's
/// expanded years do.
pub fn iso8601_utc(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+05}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Milliseconds since the epoch of `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM]` (a space
/// may replace `T`; no zone means UTC).
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    // Split off the zone: Z, or +HH:MM / -HH:MM after the time.
    let (time, offset_minutes) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let zone = &rest[i + 1..];
        let (h, m) = zone.split_once(':').unwrap_or((zone, "0"));
        let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
        let sign = if rest.as_bytes()[i] == b'-' { -1 } else { 1 };
        (&rest[..i], sign * minutes)
    } else {
        (rest, 0)
    };
    let mut ms_of_day = 0;
    if !time.is_empty() {
        let mut parts = time.splitn(3, ':');
        let hour: i64 = parts.next()?.parse().ok()?;
        let minute: i64 = parts.next()?.parse().ok()?;
        let (second, milli) = match parts.next() {
            None => (0, 0),
            Some(sec) => {
                let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
                let second: i64 = whole.parse().ok()?;
                let digits: String = frac.chars().take(3).collect();
                if !frac.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let milli = if digits.is_empty() {
                    0
                } else {
                    format!("{digits:0<3}").parse::<i64>().ok()?
                };
                (second, milli)
            }
        };
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        ms_of_day = ((hour * 60 + minute) * 60 + second) * 1000 + milli;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400_000 + ms_of_day - offset_minutes * 60_000)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date: Howard Hinnant's
/// `days_from_civil`, the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Milliseconds in an ISO-8601 duration of days and smaller units, as Java's
/// `Duration.parse` reads them: `PnDTnHnMn.nS` (`PT1H`, `P2D`, `PT30M`, `PT1.5S`,
/// `P1DT12H`). Years, months and weeks are refused (their length varies), as are
/// negative durations. `None` when it does not parse or overflows.
pub fn parse_iso8601_duration(s: &str) -> Option<i64> {
    let upper = s.trim().to_ascii_uppercase();
    let body = upper.strip_prefix('P')?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (body, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    let mut total: i64 = 0;
    if !date.is_empty() {
        let days: i64 = date.strip_suffix('D')?.parse().ok()?;
        total = total.checked_add(days.checked_mul(MS_PER_DAY)?)?;
    }
    let mut rest = time.unwrap_or("");
    // Each unit at most once, in order H, M, S.
    for (unit, ms_per_unit) in [('H', 3_600_000i64), ('M', 60_000), ('S', 1_000)] {
        let Some(i) = rest.find(unit) else { continue };
        let (number, after) = (&rest[..i], &rest[i + 1..]);
        rest = after;
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !frac.is_empty() && (unit != 'S' || !frac.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        total = total.checked_add(whole.parse::<i64>().ok()?.checked_mul(ms_per_unit)?)?;
        if !frac.is_empty() {
            let digits: String = frac.chars().take(3).collect();
            total = total.checked_add(format!("{digits:0<3}").parse::<i64>().ok()?)?;
        }
    }
    rest.is_empty().then_some(total)
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>), over 400-year eras of
/// 146 097 days, with years starting on 1 March so the leap day comes last.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
                                            // [0, 399]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    // [0, 365]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_render_as_iso_8601() {
        // Checked against `date -u -d @SECONDS`.
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (951_868_799_999, "2000-02-29T23:59:59.999Z"),
            (1_700_000_000_004, "2023-11-14T22:13:20.004Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "+10000-01-01T00:00:00.000Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (-62_167_219_200_001, "-0001-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(iso8601_utc(ms), text, "ms = {ms}");
        }
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        let month_len = |y: i64, m: i64| match m {
            2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        // Walk ±1000 years day by day: each date is the calendar successor of the last.
        let mut prev = civil_from_days(-365_250);
        for days in -365_249..365_250 {
            let (y, m, d) = prev;
            let expected = if d < month_len(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            prev = civil_from_days(days);
            assert_eq!(prev, expected, "days = {days}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn iso8601_round_trips_with_the_renderer() {
        for ms in [0, 951_782_400_000, 1_700_000_000_004, 4_107_542_400_000, -1] {
            assert_eq!(parse_iso8601(&iso8601_utc(ms)), Some(ms), "{ms}");
        }
        assert_eq!(parse_iso8601("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_iso8601("1970-01-01T01:00"), Some(3_600_000));
        assert_eq!(parse_iso8601("1970-01-01 00:00:01.5"), Some(1_500));
        assert_eq!(parse_iso8601("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_iso8601("1970-01-01T00:00:00-00:30"), Some(1_800_000));
        assert_eq!(parse_iso8601("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_iso8601("2023-13-01"), None);
        assert_eq!(parse_iso8601("2023-01-01T25:00"), None);
        assert_eq!(parse_iso8601("2023-01-01T00:00:00.x"), None);
    }

    #[test]
    fn durations_parse_like_java() {
        assert_eq!(parse_iso8601_duration("PT1H"), Some(3_600_000));
        assert_eq!(parse_iso8601_duration("pt30m"), Some(1_800_000));
        assert_eq!(parse_iso8601_duration("P2D"), Some(2 * 86_400_000));
        assert_eq!(parse_iso8601_duration("P1DT12H30M5.25S"), Some(131_405_250));
        assert_eq!(parse_iso8601_duration("PT0S"), Some(0));
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "PT1",
            "P1M",
            "P1W",
            "PT-1H",
            "PT1.5H",
            "PT1S1H",
            "PT1H1H",
            "P99999999999999999D",
        ] {
            assert_eq!(parse_iso8601_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        // The same text as Java's `Instant.ofEpochMilli(Long.MAX_VALUE / MIN_VALUE)`.
        assert_eq!(iso8601_utc(i64::MAX), "+292278994-08-17T07:12:55.807Z");
        assert_eq!(iso8601_utc(i64::MIN), "-292275055-05-16T16:47:04.192Z");
    }
}

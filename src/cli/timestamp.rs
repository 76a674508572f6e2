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
    fn extremes_do_not_overflow() {
        // The same text as Java's `Instant.ofEpochMilli(Long.MAX_VALUE / MIN_VALUE)`.
        assert_eq!(iso8601_utc(i64::MAX), "+292278994-08-17T07:12:55.807Z");
        assert_eq!(iso8601_utc(i64::MIN), "-292275055-05-16T16:47:04.192Z");
    }
}

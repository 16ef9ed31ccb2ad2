//! Calendar arithmetic for the timestamps the simulator writes (no date crate needed).

/// (year, month, day, hour, minute, second) in UTC for seconds since the epoch.
pub fn from_unix(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::from_unix(1_682_640_000), (2023, 4, 28, 0, 0, 0));
        assert_eq!(super::from_unix(1_440_938_160), (2015, 8, 30, 12, 36, 0));
        assert_eq!(super::from_unix(0), (1970, 1, 1, 0, 0, 0));
    }
}

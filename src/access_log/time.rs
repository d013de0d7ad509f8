//! Wall-clock times as access logs write them, in UTC: nginx's `$time_local`
//! (`07/Dec/2026:15:04:05 +0000`) and RFC 3339 (`2026-12-07T15:04:05.123Z`), from a small
//! civil-date conversion (days since 1970 to year, month, day) rather than a date library.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC time broken down to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utc {
    pub(crate) year: i64,
    /// 1 to 12.
    pub(crate) month: u32,
    /// 1 to 31.
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) millis: u32,
}

impl Utc {
    /// `t` in UTC; times before 1970 (a clock set very wrong) count back from it.
    pub(crate) fn from_system(t: SystemTime) -> Self {
        let (secs, millis) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
            Err(e) => {
                let d = e.duration();
                let mut secs = -(d.as_secs() as i64);
                let mut millis = d.subsec_millis();
                if millis > 0 {
                    secs -= 1;
                    millis = 1000 - millis;
                }
                (secs, millis)
            }
        };
        Self::from_unix(secs, millis)
    }

    /// Seconds since 1970-01-01T00:00:00Z (and the milliseconds past them).
    pub(crate) fn from_unix(secs: i64, millis: u32) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            millis,
        }
    }

    /// `07/Dec/2026:15:04:05 +0000`, as nginx's and Apache's common log formats write it.
    pub(crate) fn write_clf(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
            self.day,
            MONTHS[self.month as usize - 1],
            self.year,
            self.hour,
            self.minute,
            self.second
        );
    }

    /// `2026-12-07T15:04:05.123Z` (RFC 3339).
    pub(crate) fn write_rfc3339(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        );
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day): Howard Hinnant's
/// `civil_from_days`, which counts in 400-year eras starting on March 1st so that leap days
/// fall at the end of each year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clf(secs: i64) -> String {
        let mut s = String::new();
        Utc::from_unix(secs, 0).write_clf(&mut s);
        s
    }

    #[test]
    fn known_dates() {
        assert_eq!(clf(0), "01/Jan/1970:00:00:00 +0000");
        // `date -u -d @951782400`: the 2000 leap day (divisible by 400).
        assert_eq!(clf(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(clf(951_868_799), "29/Feb/2000:23:59:59 +0000");
        assert_eq!(clf(951_955_199), "01/Mar/2000:23:59:59 +0000");
        // 2100 is not a leap year: 28 Feb is followed by 1 Mar.
        assert_eq!(clf(4_107_542_399), "28/Feb/2100:23:59:59 +0000");
        assert_eq!(clf(4_107_542_400), "01/Mar/2100:00:00:00 +0000");
        assert_eq!(clf(1_796_655_845), "07/Dec/2026:15:04:05 +0000");
        assert_eq!(clf(-1), "31/Dec/1969:23:59:59 +0000");
        let mut s = String::new();
        Utc::from_unix(1_796_655_845, 7).write_rfc3339(&mut s);
        assert_eq!(s, "2026-12-07T15:04:05.007Z");
    }

    /// Every day from 1900 to 2300 follows the one before: the day, month and year roll over
    /// where the Gregorian calendar says.
    #[test]
    fn days_follow_each_other() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut prev = civil_from_days(-25_567); // 1900-01-01
        assert_eq!(prev, (1900, 1, 1));
        for days in -25_566..146_000 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = prev;
            let expected = if pd < len(py, pm) {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), expected, "day {days}");
            prev = (y, m, d);
        }
    }

    #[test]
    fn before_the_epoch() {
        let t = UNIX_EPOCH - std::time::Duration::from_millis(1500);
        let u = Utc::from_system(t);
        assert_eq!(
            (u.year, u.month, u.day, u.second, u.millis),
            (1969, 12, 31, 58, 500)
        );
    }
}

//! Value parsers shared by the options: durations (`30s`, `500ms`), octal modes, IP lists, log
//! filters, counts of at least one. Each error says what form was expected, on one line.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// A duration written as `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() % 1_000_000 != 0 {
            write!(f, "{}ms", d.as_millis().max(1))
        } else if d.subsec_millis() != 0 || d.as_secs() == 0 {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}s", d.as_secs())
        }
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Self)
    }
}

/// `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30s, 500ms or 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s, m or h)")),
    };
    Ok(d)
}

/// A duration that must not be zero (timeouts).
pub(crate) fn parse_timeout(s: &str) -> Result<HumanDuration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("'{s}': a timeout must be longer than 0")),
        d => Ok(HumanDuration(d)),
    }
}

/// A list of IP addresses (`--web-server-addrs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpList(pub Vec<IpAddr>);

/// A count of at least 1.
pub(crate) fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// An octal file mode from 0 to 777 (`660`, `0o600`).
pub(crate) fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "'{s}' is not an octal mode from 0 to 777 (like 660)"
        )),
    }
}

/// `IP,IP,...`, as `FCGI_WEB_SERVER_ADDRS` is written.
pub(crate) fn parse_ip_list(s: &str) -> Result<IpList, String> {
    gatehouse_fastcgi::Config::web_server_addrs_from_env(s)
        .map(IpList)
        .map_err(|e| e.to_string())
}

/// A `tracing` filter: a level or a directive list such as `info,gatehouse_fastcgi=debug`.
pub(crate) fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("'{s}' is not a log level or filter: {e}"))
}

/// One file name extension of `--cgi-extensions cgi,sh,.pl` (a leading `.` is dropped).
pub(crate) fn parse_extension(s: &str) -> Result<String, String> {
    let ext = s.trim().trim_start_matches('.');
    if ext.is_empty() || ext.contains('/') {
        return Err(format!(
            "'{s}' is not a file name extension (write a list like cgi,sh,pl)"
        ));
    }
    Ok(ext.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("1h").unwrap().0, Duration::from_secs(3600));
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(90),
            Duration::ZERO,
        ] {
            assert_eq!(parse_duration(&HumanDuration(d).to_string()).unwrap(), d);
        }
    }

    #[test]
    fn modes_ips_and_extensions() {
        assert_eq!(parse_mode("660").unwrap(), 0o660);
        assert_eq!(parse_mode("0o600").unwrap(), 0o600);
        assert!(parse_mode("8").is_err());
        assert_eq!(parse_ip_list(" 127.0.0.1, ::1 ,").unwrap().0.len(), 2);
        assert!(parse_ip_list("").is_err());
        assert_eq!(parse_extension(" .sh").unwrap(), "sh");
        for bad in ["", ".", "a/b"] {
            assert!(parse_extension(bad).is_err(), "{bad:?}");
        }
    }
}

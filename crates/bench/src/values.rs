//! Value parsers for the command line: durations (`500ms`, `2m`), byte sizes (`64KiB`,
//! `10MiB`), `Name: value` headers and backslash escapes for `--expect-body`.

use std::time::Duration;

use bytes::Bytes;

/// Parses `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("bad duration {s:?}"))
}

/// Parses a byte count: `512`, `64k`/`64KiB`, `10M`/`10MiB`, `1G`/`1GiB` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("bad size unit in {s:?} (k, KiB, M, MiB, G, GiB)")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses `Name: value` into a trimmed pair; the name must be an HTTP token.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("bad header {s:?}: expected 'Name: value'"))?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("bad header name {name:?}"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("header {name} has CR, LF or NUL in its value"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Parses `NAME=VALUE` (a CGI variable): the name is not empty and has no `=` or NUL.
pub fn parse_param(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("bad --param {s:?}: expected NAME=VALUE"))?;
    if name.is_empty() || name.contains('\0') || value.contains('\0') {
        return Err(format!("bad --param {s:?}: empty name or NUL"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Turns `\n`, `\r`, `\t`, `\\` and `\xHH` into bytes.
pub fn parse_escaped(s: &str) -> Result<Bytes, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = [bytes.next(), bytes.next()];
                let digits: Option<Vec<u8>> = hex.into_iter().collect();
                let value = digits
                    .and_then(|d| std::str::from_utf8(&d).ok().map(str::to_owned))
                    .and_then(|d| u8::from_str_radix(&d, 16).ok())
                    .ok_or_else(|| format!("bad \\x escape in {s:?}"))?;
                out.push(value);
            }
            _ => return Err(format!("bad escape in {s:?} (\\n \\r \\t \\\\ \\xHH)")),
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_parsers() {
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("99999999999999G").is_err());
        assert_eq!(parse_escaped("a\\x41\\t\\\\"), Ok(Bytes::from("aA\t\\")));
        assert!(parse_escaped("\\x4").is_err());
        assert!(parse_header("X: a\rb").is_err());
        assert_eq!(parse_param("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_param("EMPTY="), Ok(("EMPTY".into(), String::new())));
    }
}

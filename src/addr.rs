//! Listener addresses as the command line spells them: `HOST:PORT`, `[V6]:PORT`, `unix:/path`,
//! `fd:N`, `systemd:NAME`.
//!
//! Parsing happens while the command line is read, so a bad address is a usage error (exit 2)
//! before anything is bound. Host names are resolved here too: `localhost:9000` binds every
//! address `localhost` resolves to.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// TCP on every address `text` resolved to (one for an IP literal).
    Tcp {
        /// The address as written, for messages.
        text: String,
        /// The resolved socket addresses, without duplicates.
        addrs: Vec<SocketAddr>,
    },
    /// A unix-domain stream socket at this path.
    Unix(PathBuf),
    /// A listening socket this process inherited on file descriptor `N`.
    Fd(RawFd),
    /// Every socket systemd passed with `FileDescriptorName=NAME` (socket activation); planning
    /// turns it into their `Fd`s.
    Systemd(String),
}

impl ListenAddr {
    /// A TCP address from one socket address.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self::Tcp {
            text: addr.to_string(),
            addrs: vec![addr],
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { text, .. } => f.write_str(text),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Fd(fd) => write!(f, "fd:{fd}"),
            Self::Systemd(name) => write!(f, "systemd:{name}"),
        }
    }
}

/// Why an address did not parse. The message names the form that was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrError(String);

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddrError {}

const FORMS: &str = "expected HOST:PORT, [V6]:PORT, unix:/path, fd:N or systemd:NAME";

impl FromStr for ListenAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let bad = |why: &str| AddrError(format!("bad address '{s}': {why}"));
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the socket path is empty"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if let Some(n) = s.strip_prefix("fd:") {
            return match n.parse::<RawFd>() {
                Ok(fd) if fd >= 0 => Ok(Self::Fd(fd)),
                _ => Err(bad("fd:N takes a file descriptor number (0 or more)")),
            };
        }
        if let Some(name) = s.strip_prefix("systemd:") {
            // systemd's rule for FileDescriptorName=: 1 to 255 printable ASCII characters, no ':'.
            let valid = !name.is_empty()
                && name.len() <= 255
                && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !valid {
                return Err(bad(
                    "systemd:NAME takes a FileDescriptorName= (1 to 255 printable ASCII \
                     characters, no ':' or space)",
                ));
            }
            return Ok(Self::Systemd(name.to_owned()));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self::tcp(addr));
        }
        parse_host_port(s).map_err(|why| bad(&why))
    }
}

/// `HOST:PORT` where HOST is a name to resolve (IP literals were handled by the caller).
fn parse_host_port(s: &str) -> Result<ListenAddr, String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("no port; {FORMS}"));
    };
    if host.is_empty() {
        return Err(format!(
            "no host; {FORMS} (0.0.0.0:PORT for every IPv4 address)"
        ));
    }
    if host.starts_with('[') || host.contains(':') {
        return Err(format!("bad IPv6 address; {FORMS}"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port '{port}' is not a number from 0 to 65535"))?;
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host '{host}': {e}"))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in resolved {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(format!("host '{host}' resolves to no address"));
    }
    Ok(ListenAddr::Tcp {
        text: s.to_owned(),
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ListenAddr, String> {
        s.parse::<ListenAddr>().map_err(|e| e.to_string())
    }

    #[test]
    fn ip_literals() {
        assert_eq!(
            parse("127.0.0.1:9000").unwrap(),
            ListenAddr::tcp("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            parse("[::1]:0").unwrap(),
            ListenAddr::tcp("[::1]:0".parse().unwrap())
        );
        assert_eq!(parse("0.0.0.0:9000").unwrap().to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn unix_and_fd() {
        assert_eq!(
            parse("unix:/run/gh.sock").unwrap(),
            ListenAddr::Unix("/run/gh.sock".into())
        );
        assert_eq!(
            parse("unix:/run/gh.sock").unwrap().to_string(),
            "unix:/run/gh.sock"
        );
        assert_eq!(parse("fd:0").unwrap(), ListenAddr::Fd(0));
        assert_eq!(parse("fd:3").unwrap().to_string(), "fd:3");
        assert_eq!(
            parse("systemd:fastcgi").unwrap(),
            ListenAddr::Systemd("fastcgi".into())
        );
        assert_eq!(parse("systemd:web-1").unwrap().to_string(), "systemd:web-1");
    }

    #[test]
    fn host_names_resolve() {
        let ListenAddr::Tcp { text, addrs } = parse("localhost:9000").unwrap() else {
            panic!("not tcp")
        };
        assert_eq!(text, "localhost:9000");
        assert!(!addrs.is_empty());
        assert!(addrs
            .iter()
            .all(|a| a.port() == 9000 && a.ip().is_loopback()));
    }

    #[test]
    fn bad_forms_say_why() {
        for (input, says) in [
            ("9000", "no port"),
            ("127.0.0.1", "no port"),
            (":9000", "no host"),
            ("127.0.0.1:99999", "not a number"),
            ("127.0.0.1:http", "not a number"),
            ("::1:9000", "IPv6"),
            ("[::1]9000", "IPv6"),
            ("unix:", "empty"),
            ("fd:", "file descriptor"),
            ("fd:-1", "file descriptor"),
            ("fd:x", "file descriptor"),
            ("systemd:", "FileDescriptorName"),
            ("systemd:a:b", "FileDescriptorName"),
            ("systemd:a b", "FileDescriptorName"),
            ("no-such-host.invalid:80", "cannot resolve"),
        ] {
            let err = parse(input).unwrap_err();
            assert!(err.contains(says), "{input}: {err}");
            assert!(err.contains(input), "{input}: {err}");
            assert!(!err.contains('\n'), "{input}: {err}");
        }
    }
}

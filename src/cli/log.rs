//! The logging options: the access log (`--access-log`, `--access-log-format`, nginx's
//! `access_log` and uWSGI's `req-logger`) and the daemon's own log format (`--log-format`).

use std::path::Path;

use clap::Args;

use crate::access_log::{Format, Target};

/// Where the logs go and how they look.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Write one line per request to PATH (`-`: standard output).
    ///
    /// Every front end is logged (FastCGI, SCGI, HTTP, CGI mode). The file is opened for
    /// appending (created 0640 when missing, by the user the daemon serves as) and opened
    /// again on SIGUSR1 (logrotate). Lines are written by a thread of their own at most a
    /// second after the request; when the disk cannot keep up, lines are dropped and a warning
    /// counts them (see README, "Access log").
    #[arg(long, value_name = "PATH|-", value_parser = parse_access_log)]
    pub access_log: Option<Target>,

    /// Access log lines: `combined` (nginx's and Apache's) or `json` (one object a line).
    #[arg(long, value_name = "FORMAT", default_value = "combined",
          value_parser = parse_access_log_format)]
    pub access_log_format: Format,

    /// The daemon's own log on stderr: `text` or `json` (one object a line).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = parse_log_format)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// tracing-subscriber's JSON lines.
    Json,
}

fn parse_access_log(s: &str) -> Result<Target, String> {
    match s {
        "-" => Ok(Target::Stdout),
        "" => Err("the access log needs a path (or - for standard output)".to_owned()),
        _ => {
            // Absolute, so that a reopen opens the same path whatever the directory is then.
            let path = std::path::absolute(Path::new(s))
                .map_err(|e| format!("'{s}': cannot make the path absolute: {e}"))?;
            if path.is_dir() {
                return Err(format!("'{s}' is a directory; give the log file's path"));
            }
            Ok(Target::File(path))
        }
    }
}

fn parse_access_log_format(s: &str) -> Result<Format, String> {
    match s {
        "combined" => Ok(Format::Combined),
        "json" => Ok(Format::Json),
        _ => Err(format!(
            "'{s}' is not an access log format (combined or json)"
        )),
    }
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("'{s}' is not a log format (text or json)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse_access_log("-"), Ok(Target::Stdout));
        match parse_access_log("rel/access.log") {
            Ok(Target::File(p)) => assert!(p.is_absolute() && p.ends_with("rel/access.log")),
            other => panic!("{other:?}"),
        }
        assert!(parse_access_log("").is_err());
        assert!(parse_access_log("/").unwrap_err().contains("directory"));
        assert_eq!(parse_access_log_format("json"), Ok(Format::Json));
        assert!(parse_access_log_format("common").is_err());
        assert_eq!(parse_log_format("json"), Ok(LogFormat::Json));
        assert!(parse_log_format("xml").is_err());
    }
}

//! Request body spooling: which apps get their whole body read before they run, where it goes,
//! and how much is accepted.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::process::parse_size;

/// Request body options.
#[derive(Debug, Clone, Args)]
pub struct SpoolArgs {
    /// Which apps get the whole request body read before they run: cgi, all or off.
    ///
    /// nginx (fastcgi_pass, scgi_pass, proxy_pass) stops sending a request body once the
    /// response head arrives: an app that answers while it still reads (a CGI script that
    /// echoes, a WSGI app yielding as it reads) would wait forever for the rest. A spooled body
    /// is read first (memory, then an unlinked temp file), so that cannot happen at any size,
    /// and a slow upload holds no CGI slot or Python thread. `cgi` (the default): CGI scripts,
    /// which commonly answer while reading; `all`: also WSGI and built-in apps (uWSGI's
    /// post-buffering; WSGI apps otherwise stream wsgi.input as it arrives); `off`: none.
    #[arg(long, value_name = "APPS", value_enum, default_value_t = SpoolApps::Cgi)]
    pub spool_request_body: SpoolApps,

    /// Directory of the spool's temp files (unlinked as soon as they are made) [default: the
    /// system temp dir, $TMPDIR or /tmp].
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Bytes of a spooled body kept in memory before the rest goes to a temp file.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256K")]
    pub spool_memory: u64,

    /// The largest request body a spooled app accepts; a longer one is answered 413.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1G")]
    pub max_spool_bytes: u64,
}

/// The apps whose request bodies are spooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpoolApps {
    /// CGI scripts (`cgi:`).
    Cgi,
    /// Every app.
    All,
    /// None.
    Off,
}

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
    /// which commonly answer while reading (WSGI apps stream wsgi.input, and spool the rest of
    /// it only when they start answering mid-body); `all`: every app (uWSGI's post-buffering);
    /// `off`: none, not even the rest.
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

/// Response buffering options (nginx's proxy buffering).
#[derive(Debug, Clone, Args)]
pub struct ResponseSpoolArgs {
    /// Which front ends buffer answers for slow clients: http, all or off.
    ///
    /// A buffering front end takes what the app writes without waiting for the client: up to
    /// the per-request budget in memory, the rest in an unlinked temp file under --spool-dir,
    /// so a CGI script or WSGI thread is done as soon as its answer is, whatever the client's
    /// speed. `http` (the default): the HTTP front end, which faces clients directly; FastCGI
    /// and SCGI sit behind a web server that reads answers at once and buffers them itself
    /// (nginx's fastcgi_buffering, scgi_buffering). `all`: every front end (a front server
    /// that does not buffer); `off`: none (a slow client makes the app wait).
    #[arg(long, value_name = "FRONT_ENDS", value_enum, default_value_t = SpoolFrontEnds::Http)]
    pub spool_response: SpoolFrontEnds,

    /// Bytes of answers kept in memory for slow clients over all requests of a process; past
    /// it every new chunk goes straight to its temp file.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "32M")]
    pub response_buffer_memory: u64,

    /// The most of one answer held in its temp file (nginx's proxy_max_temp_file_size); past
    /// it the app waits for the client.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1G")]
    pub max_response_spool_bytes: u64,
}

/// The front ends whose answers are buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpoolFrontEnds {
    /// HTTP.
    Http,
    /// HTTP, FastCGI and SCGI.
    All,
    /// None.
    Off,
}

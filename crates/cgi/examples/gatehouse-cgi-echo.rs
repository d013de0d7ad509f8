//! A CGI program serving the built-in `echo` app: what the lighttpd test runs and what
//! `bench-startup.sh` times. The `gatehouse` binary does the same in CGI mode.

use std::sync::Arc;

use gatehouse_dispatch::{builtin, Dispatcher};

fn main() {
    let Some(echo) = builtin::by_name("echo") else {
        eprintln!("gatehouse-cgi-echo: the echo app is missing");
        std::process::exit(gatehouse_cgi::EXIT_UNANSWERED);
    };
    std::process::exit(gatehouse_cgi::run(Arc::new(Dispatcher::single(echo))));
}

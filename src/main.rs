//! The `gatehouse` binary: parse the command line, build the apps it names, then either answer
//! one request as a CGI program or run the daemon, and map the outcome to an exit status (0
//! clean shutdown, 1 could not start, 2 usage error or an app that cannot start). Everything
//! else lives in the library (`src/lib.rs`), which programs embedding gatehouse share.

use std::process::ExitCode;

use gatehouse::cli::Cli;
use gatehouse::Mode;

fn main() -> ExitCode {
    // As a CGI program nothing may reach stdout before the response: errors go to stderr.
    let cli = match Cli::try_from_args(gatehouse::args_os()) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    let mode = gatehouse::mode(&cli);
    if cli.config.check_config {
        gatehouse::init_logging(&cli, mode);
        return gatehouse::check_config(&cli, mode);
    }
    if mode == Mode::Cgi {
        gatehouse::scrub_cgi_environment();
    }
    // Before any thread exists: a worker process takes what its master handed it from the
    // environment here.
    let master = mode == Mode::Daemon && gatehouse::is_master(&cli);
    gatehouse::init_logging(&cli, mode);
    if master {
        return gatehouse::exit_code(gatehouse::run_master(&cli));
    }
    if mode == Mode::Daemon {
        // Builds the app itself: after binding and dropping privileges when --user is given.
        return gatehouse::exit_code(gatehouse::serve_command_line(&cli));
    }
    let app = match gatehouse::build_app(&cli, mode) {
        Ok(app) => app,
        Err(e) => return gatehouse::exit_code(Err(e)),
    };
    std::process::exit(gatehouse::run_cgi(&cli, app))
}

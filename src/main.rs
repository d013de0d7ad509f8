//! The `gatehouse` binary: parse the command line, resolve APP, run the daemon, map the outcome
//! to an exit status (0 clean shutdown, 1 could not start, 2 usage error). Everything else lives
//! in the library (`src/lib.rs`), which programs embedding gatehouse share.

use std::process::ExitCode;

use gatehouse::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_from_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    let result = gatehouse::resolve_app(&cli.app).and_then(|app| gatehouse::run(&cli, app));
    gatehouse::exit_code(result)
}

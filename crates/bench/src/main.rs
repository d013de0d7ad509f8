//! `gatehouse-bench`: see the library's documentation and `gatehouse-bench --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    gatehouse_bench::main_with(gatehouse_bench::args::Cli::parse())
}

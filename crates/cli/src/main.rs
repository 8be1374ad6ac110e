//! The `edgeway` binary: argument parsing and wiring, nothing else.
//!
//! Every subcommand lives in its own module under `cmd/`; [`app`] is the composition root
//! they all build from. Errors reach the
//! user in one place, [`main`], printed with their whole cause chain.
//!
//! Exit codes: 0 success, 1 an error, 2 bad command-line usage (from clap).

mod app;
mod cli;
mod cmd;
mod config;
mod progress;
mod shipped;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr. `EDGEWAY_LOG` (or `RUST_LOG`) overrides the level, with
/// tracing's filter syntax; llama.cpp's own chatter is kept at warnings.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info,llama-cpp-2=warn,llama_cpp_2=error,tower_http=warn",
        1 => "debug,llama-cpp-2=info,llama_cpp_2=error,tower_http=debug",
        _ => "trace",
    };
    let filter = std::env::var("EDGEWAY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

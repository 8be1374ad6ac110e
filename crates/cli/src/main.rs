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
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `outer: cause: …`, leaving out a cause whose text the message
/// before it already holds (many error types put their source in their own message).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
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

#[cfg(test)]
mod describe_tests {
    use super::describe;

    /// An error that, like many here, puts its source in its own message.
    #[derive(Debug)]
    struct Read {
        source: std::io::Error,
    }

    impl std::fmt::Display for Read {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read model.gguf: {}", self.source)
        }
    }

    impl std::error::Error for Read {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_the_message_already_holds_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(Read { source: io }).context("cannot load the model");
        assert_eq!(describe(&error), "cannot load the model: cannot read model.gguf: No such file or directory");
        let plain = anyhow::anyhow!("disk full").context("cannot write the log");
        assert_eq!(describe(&plain), "cannot write the log: disk full");
    }
}

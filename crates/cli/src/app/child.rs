//! `edgeway serve` as a child of this binary, for the benchmarks and the red team.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A `edgeway serve` child process, killed on drop.
pub struct ServeProcess {
    /// The process.
    pub child: Child,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `edgeway serve` on `model` on a free loopback port, with `extra_args`, and waits until
/// its /health answers (at most a minute).
pub fn start_server(model: &Path, threads: u32, extra_args: &[String]) -> anyhow::Result<ServeProcess> {
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

//! Helpers for the integration suite: a real `edgeway serve` process on
//! loopback, running the real SmolLM2-135M model.
//!
//! The model must be in the cache first (`scripts/test.sh` pulls it); its path
//! can also be given with `EDGEWAY_TEST_MODEL`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The GGUF file the suite runs: `EDGEWAY_TEST_MODEL`, or the cached default model.
pub fn test_model() -> PathBuf {
    if let Some(path) = std::env::var_os("EDGEWAY_TEST_MODEL") {
        return PathBuf::from(path);
    }
    let path = shared_data_dir().join("models").join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the test model is missing at {}; run `edgeway model pull smollm2-135m` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The data directory whose model cache the suite shares: `EDGEWAY_DATA_DIR`, else the default.
pub fn shared_data_dir() -> PathBuf {
    std::env::var_os("EDGEWAY_DATA_DIR").map(PathBuf::from).unwrap_or_else(edgeway_models::ModelCache::default_data_dir)
}

/// A fresh data directory for one server: state of its own (no developer's classifier, scorer
/// or knowledge base leaks in), with the shared model and package caches linked into it.
fn server_data_dir(port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeway-test-{port}-data"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a data directory");
    let shared = shared_data_dir();
    for cache in ["models", "packages"] {
        if shared.join(cache).is_dir() {
            std::os::unix::fs::symlink(shared.join(cache), dir.join(cache)).expect("link the shared cache");
        }
    }
    dir
}

/// A free loopback port (the OS picks; the listener is closed before use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port")
}

/// A running `edgeway serve`; killed on drop.
pub struct Server {
    pub port: u16,
    child: Child,
    stderr_log: PathBuf,
    /// This server's own query log.
    pub query_log: PathBuf,
    /// This server's own data directory (removed on drop), unless the arguments named one.
    data_dir: Option<PathBuf>,
}

impl Server {
    /// Starts the server on the test model with extra flags and waits until it is ready.
    pub fn start(extra_args: &[&str]) -> Self {
        let model = test_model();
        let mut args: Vec<String> =
            vec!["serve".into(), "--model".into(), model.display().to_string(), "--alias".into(), "smollm2".into()];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        Self::start_with(&args).expect("server did not become ready")
    }

    /// Starts `edgeway` with exactly these arguments plus a port; `Err(stderr)` if it exits early.
    pub fn start_with(args: &[String]) -> Result<Self, String> {
        let port = free_port();
        let stderr_log = std::env::temp_dir().join(format!("edgeway-test-{port}.log"));
        // The arguments' own query log, else a fresh one per server.
        let named_log = args.iter().position(|arg| arg == "--log-path").and_then(|at| args.get(at + 1));
        let query_log = match named_log {
            Some(path) => PathBuf::from(path),
            None => {
                let fresh = std::env::temp_dir().join(format!("edgeway-test-{port}.db"));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", fresh.display()));
                }
                fresh
            }
        };
        let data_dir = (!args.iter().any(|arg| arg == "--data-dir")).then(|| server_data_dir(port));
        let mut command = Command::new(env!("CARGO_BIN_EXE_edgeway"));
        if let Some(dir) = &data_dir {
            command.arg("--data-dir").arg(dir);
        }
        let child = command
            .args(args)
            .args(["--port", &port.to_string(), "--threads", "1"])
            .args(named_log.is_none().then_some("--log-path"))
            .args(named_log.is_none().then_some(&query_log))
            .env("EDGEWAY_LOG", "info,llama-cpp-2=warn,llama_cpp_2=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_log).expect("create log"))
            .spawn()
            .expect("cannot start edgeway");
        let mut server = Self { port, child, stderr_log, query_log, data_dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.child.try_wait() {
                return Err(server.stderr());
            }
            if let Ok(response) = reqwest::blocking::get(server.url("/health")) {
                if response.status() == 200 {
                    return Ok(server);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not ready after 60 s:\n{}", server.stderr()))
    }

    /// What the server has logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// POSTs JSON and returns status and parsed body.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = client().post(self.url(path)).json(body).send().expect("request failed");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// POSTs JSON with extra headers; returns status, response headers and parsed body.
    pub fn post_with_headers(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = client().post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().expect("request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().unwrap_or(Value::Null))
    }

    /// Kills the server process now (the cloud going down).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// GETs and returns status and parsed body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = client().get(self.url(path)).send().expect("request failed");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// POSTs a streaming request and returns every `data:` payload, `[DONE]` included.
    pub fn stream(&self, path: &str, body: &Value) -> Vec<String> {
        let response = client().post(self.url(path)).json(body).send().expect("request failed");
        assert_eq!(response.status(), 200, "stream request failed");
        sse_data(BufReader::new(response))
    }

    /// Slots busy according to /health.
    pub fn busy_slots(&self) -> u64 {
        self.get("/health").1["slots_busy"].as_u64().expect("slots_busy")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_log);
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.query_log.display()));
        }
    }
}

/// A client whose timeout only catches a hung server: the suite shares a
/// small, busy machine (CI may run beside other work), where four answers
/// of 300 tokens decoding together can take minutes. Speed is measured in
/// `bench/`, never here.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().expect("client")
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(reader: impl BufRead) -> Vec<String> {
    reader.lines().map_while(Result::ok).filter_map(|line| line.strip_prefix("data: ").map(str::to_owned)).collect()
}

/// Concatenated `delta.content` of chat chunks.
pub fn chat_stream_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

/// A one-message chat request.
pub fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({ "messages": [{ "role": "user", "content": content }] });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

/// Reads from `reader` until `needle` has been seen (or EOF); returns what was read.
pub fn read_until(reader: &mut impl Read, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Runs `edgeway` with these arguments (warnings only in its log) and waits for it.
pub fn edgeway(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgeway"))
        .args(args)
        .env("EDGEWAY_LOG", "warn")
        .output()
        .expect("cannot run edgeway")
}

/// Everything a finished command printed, stdout then stderr.
pub fn output_text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A fresh, empty scratch directory for one test.
pub fn temp_dir(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeway-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Runs `tests/interop/SCRIPT` with the Python that `interpreter_var` names (set by
/// `scripts/test.sh`; `python3` when unset) against `server` and returns its stdout;
/// a failure shows both streams, the server's log, and says which packages the
/// script needs.
#[allow(dead_code)]
pub fn run_python_script(server: &Server, interpreter_var: &str, script: &str, args: &[&str], needs: &str) -> String {
    let python = std::env::var(interpreter_var).unwrap_or_else(|_| "python3".into());
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed (is {needs} installed for {python}? scripts/test.sh installs it):\n{stdout}\n{stderr}\n\
         server log:\n{}",
        server.stderr()
    );
    stdout
}

/// The query log's rows for `sql` (one row mapped by `row`), polled until there are at
/// least `at_least` of them or 10 s have passed: the log is written by a background thread.
#[allow(dead_code)]
pub fn logged_rows<T>(
    server: &Server,
    sql: &str,
    at_least: usize,
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let conn = rusqlite::Connection::open(&server.query_log).unwrap();
        let mut statement = conn.prepare(sql).unwrap();
        let rows: Vec<T> = statement.query_map([], &row).unwrap().collect::<Result<_, _>>().unwrap();
        if rows.len() >= at_least || std::time::Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Creates a key with `edgeway keys create NAME FLAGS` in `server`'s key table; returns the key.
pub fn create_key(server: &Server, name: &str, flags: &[&str]) -> String {
    let log = server.query_log.display().to_string();
    let mut args = vec!["keys", "create", name, "--log-path", &log];
    args.extend_from_slice(flags);
    let output = edgeway(&args);
    assert!(output.status.success(), "{}", output_text(&output));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

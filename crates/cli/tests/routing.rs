//! Hybrid routing end to end: a gateway `edgeway serve` in front of a real
//! second server process on loopback playing the cloud (another `edgeway
//! serve`, or Python's own `http.server` and a socket that never answers for
//! the failure cases).

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{chat, free_port, Server};
use serde_json::{json, Value};

const EASY: &str = "Hi! What is the capital of France?";
const HARD: &str = "Explain step by step why the sum of the first n odd numbers is n^2, then prove it by induction \
    and compare the two arguments. Format the answer as a numbered list.";

/// A gateway whose cloud tier is `cloud_url`, waiting at most `timeout` seconds for it.
/// A gateway in front of `cloud_url`, routing on the transparent scorer at its default thresholds
/// (the shipped scorer's routing of these prompts is calibration's business, not these tests').
fn gateway_to(cloud_url: &str, timeout: &str) -> Server {
    Server::start(&[
        "--cloud-url",
        cloud_url,
        "--cloud-model",
        "smollm2",
        "--cloud-timeout",
        timeout,
        "--scorer",
        "transparent",
    ])
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A real process that is not ours: Python's http.server answers POST with 501.
struct PythonProcess(Child);

impl PythonProcess {
    /// Starts Python with `args` and waits until it listens on `port`.
    fn start(port: u16, args: &[&str]) -> Self {
        let python = std::env::var("EDGEWAY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let child =
            Command::new(python).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("python3");
        let mut process = Self(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(process.0.try_wait().ok().flatten().is_none(), "python {args:?} exited before it listened");
            assert!(Instant::now() < deadline, "python {args:?} did not listen on {port} within 120 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn easy_stays_at_the_edge_and_hard_goes_to_the_cloud() {
    let cloud = Server::start(&[]);
    let gateway = gateway_to(&cloud.url("/v1"), "5");
    let request = |text: &str| chat(text, json!({"max_tokens": 8, "temperature": 0}));

    let (status, headers, body) = gateway.post_with_headers("/v1/chat/completions", &request(EASY), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-edgeway-route"), "edge");
    assert_eq!(header(&headers, "x-edgeway-route-reason"), "score_below_threshold");
    assert_eq!(body["model"], "smollm2");
    assert!(["rapl", "cpu-time-model"].contains(&header(&headers, "x-edgeway-energy-source")), "{headers:?}");
    assert!(header(&headers, "x-edgeway-energy-j").parse::<f64>().unwrap() > 0.0);
    assert_eq!(header(&headers, "x-edgeway-cost").parse::<f64>().unwrap(), 0.0);

    let (status, headers, body) = gateway.post_with_headers("/v1/chat/completions", &request(HARD), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-edgeway-route"), "cloud");
    assert_eq!(body["model"], "cloud");
    let score: f32 = header(&headers, "x-edgeway-score").parse().unwrap();
    assert!(score >= 0.5, "score {score}");
    // The cloud really answered: same model, greedy, so the same text as asking it directly.
    let (_, direct) = cloud.post("/v1/chat/completions", &request(HARD));
    assert_eq!(body["choices"][0]["message"]["content"], direct["choices"][0]["message"]["content"]);

    // Forcing: a header, or a model name.
    let (_, headers, _) =
        gateway.post_with_headers("/v1/chat/completions", &request(HARD), &[("x-edgeway-route", "edge")]);
    assert_eq!(
        (header(&headers, "x-edgeway-route"), header(&headers, "x-edgeway-route-reason")),
        ("edge", "forced_by_header")
    );
    let mut forced = request(EASY);
    forced["model"] = json!("cloud");
    let (_, headers, _) = gateway.post_with_headers("/v1/chat/completions", &forced, &[]);
    assert_eq!(
        (header(&headers, "x-edgeway-route"), header(&headers, "x-edgeway-route-reason")),
        ("cloud", "forced_by_model")
    );

    let (_, models) = gateway.get("/v1/models");
    // Chat models first (every tier's, lowest first, then the router's own name), then the embedding model.
    let chat_ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["meta"]["kind"] != "embedding")
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(chat_ids, ["smollm2", "cloud", "auto"]);
}

#[test]
fn cloud_streams_pass_through_token_by_token() {
    let cloud = Server::start(&[]);
    let gateway = gateway_to(&cloud.url("/v1"), "5");
    let request = chat(HARD, json!({"max_tokens": 24, "temperature": 0, "stream": true}));
    let events = gateway.stream("/v1/chat/completions", &request);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(events.len() > 10, "expected one chunk per token, got {}", events.len());
    let direct = cloud.stream("/v1/chat/completions", &request);
    assert_eq!(common::chat_stream_text(&events), common::chat_stream_text(&direct));
    // The last chunk says what the stream cost, since headers could not.
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["x_edgeway"]["route"], "cloud", "{last}");
    assert!(last["x_edgeway"]["cost"].is_number());
}

#[test]
fn a_cloud_killed_before_the_request_falls_back_to_the_edge() {
    let mut cloud = Server::start(&[]);
    // A long cooldown: the second request must find the cloud still cooling down even on a slow, busy machine.
    let config = std::env::temp_dir().join(format!("edgeway-routing-cooldown-{}.toml", std::process::id()));
    std::fs::write(&config, "[routing]\ncooldown_secs = 120\n").unwrap();
    let gateway = Server::start(&[
        "--cloud-url",
        &cloud.url("/v1"),
        "--cloud-model",
        "smollm2",
        "--cloud-timeout",
        "5",
        "--config",
        config.to_str().unwrap(),
        "--scorer",
        "transparent",
    ]);
    cloud.kill();
    let request = chat(HARD, json!({"max_tokens": 8, "temperature": 0}));
    let (status, headers, body) = gateway.post_with_headers("/v1/chat/completions", &request, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-edgeway-route"), "edge");
    assert_eq!(header(&headers, "x-edgeway-route-reason"), "fallback_cloud_failed");
    assert!(header(&headers, "x-edgeway-fallback").contains("unreachable"), "{headers:?}");
    assert!(!body["choices"][0]["message"]["content"].as_str().unwrap().is_empty());
    // While the cloud cools down it is not tried: no waiting on it.
    let (_, headers, _) = gateway.post_with_headers("/v1/chat/completions", &request, &[]);
    assert_eq!(header(&headers, "x-edgeway-route-reason"), "cloud_unavailable");
    assert_eq!(gateway.get("/health").1["cloud_up"], false);
    // The log records what happened: both answered at the edge, one as a fallback.
    let edge = wait_for_logged(&gateway, 2).routes.into_iter().find(|r| r.route == "edge").unwrap_or_default();
    assert_eq!((edge.requests, edge.fallbacks, edge.errors), (2, 1, 0));
    let metrics = common::client().get(gateway.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("edgeway_cloud_up 0"), "{metrics}");
}

#[test]
fn a_cloud_answering_5xx_falls_back_to_the_edge() {
    let port = free_port();
    let _cloud = PythonProcess::start(port, &["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"]);
    let gateway = gateway_to(&format!("http://127.0.0.1:{port}/v1"), "5");
    let request = chat(HARD, json!({"max_tokens": 8, "stream": true}));
    let events = gateway.stream("/v1/chat/completions", &request);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(!common::chat_stream_text(&events).is_empty());
    let (_, headers, _) = gateway.post_with_headers("/v1/chat/completions", &chat(HARD, json!({"max_tokens": 4})), &[]);
    assert_eq!(header(&headers, "x-edgeway-route"), "edge");
}

#[test]
fn a_stalled_cloud_times_out_and_the_edge_answers() {
    let port = free_port();
    let listen = format!(
        "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
         s.bind(('127.0.0.1',{port})); s.listen(8); conns=[s.accept() for _ in range(8)]; time.sleep(60)"
    );
    let _cloud = PythonProcess::start(port, &["-c", &listen]);
    let gateway = gateway_to(&format!("http://127.0.0.1:{port}/v1"), "1");
    let started = Instant::now();
    let (status, headers, body) =
        gateway.post_with_headers("/v1/chat/completions", &chat(HARD, json!({"max_tokens": 4})), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-edgeway-route-reason"), "fallback_cloud_failed");
    assert!(header(&headers, "x-edgeway-fallback").contains("did not answer"), "{headers:?}");
    // Two tries of 1 s each, then the edge: well before the stalled socket would give up (60 s).
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
fn a_cloud_killed_mid_stream_ends_with_a_well_formed_error() {
    let mut cloud = Server::start(&[]);
    // A generous timeout: on a loaded test machine the cloud's first token may be slow,
    // and a timeout before it would (rightly) hand the request to the edge instead.
    let gateway = gateway_to(&cloud.url("/v1"), "20");
    let request = chat(HARD, json!({"max_tokens": 1500, "temperature": 1.0, "stream": true, "ignore_eos": true}));
    let mut response = common::client().post(gateway.url("/v1/chat/completions")).json(&request).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-edgeway-route"), "cloud");
    common::read_until(&mut response, "\"content\":\"");
    cloud.kill();
    let mut rest = String::new();
    let _ = response.read_to_string(&mut rest);
    let events = common::sse_data(rest.as_bytes());
    let last: Value =
        serde_json::from_str(events.last().expect("at least one more event")).expect("a JSON error event");
    assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("cloud")), "{last}");
    let cloud_route = wait_for_logged(&gateway, 1).routes.into_iter().find(|r| r.route == "cloud").unwrap_or_default();
    assert_eq!((cloud_route.requests, cloud_route.errors), (1, 1), "the cut stream is logged as an error");
}

#[test]
fn every_request_is_logged_with_route_cost_and_status() {
    let cloud = Server::start(&[]);
    let config = std::env::temp_dir().join(format!("edgeway-routing-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[cloud]\nbase_url = \"{}\"\nmodel = \"smollm2\"\nprice_input_per_mtok = 1000.0\nprice_output_per_mtok = 2000.0\n",
            cloud.url("/v1")
        ),
    )
    .unwrap();
    let gateway = Server::start(&["--config", config.to_str().unwrap(), "--scorer", "transparent"]);
    let ask =
        |text: &str| gateway.post("/v1/chat/completions", &chat(text, json!({"max_tokens": 6, "temperature": 0})));
    assert_eq!(ask(EASY).0, 200);
    assert_eq!(ask(HARD).0, 200);
    assert_eq!(gateway.post("/v1/chat/completions", &chat(HARD, json!({"temperature": 9}))).0, 400);

    let stats = wait_for_logged(&gateway, 2);
    let route = |name: &str| stats.routes.iter().find(|r| r.route == name).cloned().unwrap_or_default();
    assert_eq!(route("edge").requests, 1);
    assert_eq!(route("cloud").requests, 1);
    let cloud_stats = route("cloud");
    assert!(cloud_stats.prompt_tokens > 0 && cloud_stats.completion_tokens > 0);
    let expected = (cloud_stats.prompt_tokens as f64 * 1000.0 + cloud_stats.completion_tokens as f64 * 2000.0) / 1e6;
    assert!((cloud_stats.cost - expected).abs() < 1e-9, "cost {} vs {expected}", cloud_stats.cost);
    assert_eq!(route("edge").cost, 0.0);
    assert!(route("edge").energy_j > 0.0, "edge answers are charged their energy");
    assert_eq!(route("cloud").energy_j, 0.0, "the cloud's energy is not ours to know");
    assert!(route("edge").mean_ttft_ms > 0.0);
    // A non-streamed edge answer reaches the server in one piece; its first token still came earlier.
    assert!(route("edge").mean_ttft_ms < route("edge").mean_latency_ms, "{:?}", route("edge"));

    let metrics = common::client().get(gateway.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("edgeway_requests_total{route=\"cloud\""), "{metrics}");
    assert!(metrics.contains("edgeway_cost_total{route=\"cloud\"}"), "{metrics}");

    let output = Command::new(env!("CARGO_BIN_EXE_edgeway"))
        .args(["stats", "--log-path", gateway.query_log.to_str().unwrap(), "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("edge") && text.contains("cloud") && text.contains("saved"), "{text}");
    let _ = std::fs::remove_file(&config);
}

#[test]
fn low_confidence_edge_answers_escalate_to_the_cloud() {
    let cloud = Server::start(&[]);
    let request = chat(EASY, json!({"max_tokens": 8, "temperature": 0}));
    // Every real answer has a negative mean log-probability: a threshold of 0 always escalates…
    let strict =
        Server::start(&["--cloud-url", &cloud.url("/v1"), "--cloud-model", "smollm2", "--escalate-below", "0"]);
    let (status, headers, _) = strict.post_with_headers("/v1/chat/completions", &request, &[]);
    assert_eq!(status, 200);
    assert_eq!(
        (header(&headers, "x-edgeway-route"), header(&headers, "x-edgeway-route-reason")),
        ("cloud", "low_edge_confidence")
    );
    // …and one of -100 never does, nor does it leak logprobs nobody asked for.
    let lenient =
        Server::start(&["--cloud-url", &cloud.url("/v1"), "--cloud-model", "smollm2", "--escalate-below", "-100"]);
    let (status, headers, body) = lenient.post_with_headers("/v1/chat/completions", &request, &[]);
    assert_eq!(status, 200);
    assert_eq!(
        (header(&headers, "x-edgeway-route"), header(&headers, "x-edgeway-route-reason")),
        ("edge", "confident_at_edge")
    );
    assert_eq!(body["choices"][0]["logprobs"], Value::Null);
}

#[test]
fn with_nothing_configured_the_shipped_scorer_and_thresholds_route() {
    let cloud = Server::start(&[]);
    let gateway = Server::start(&["--cloud-url", &cloud.url("/v1"), "--cloud-model", "smollm2"]);
    assert!(gateway.stderr().contains("shipped scorer loaded"), "{}", gateway.stderr());
    let (status, headers, body) =
        gateway.post_with_headers("/v1/chat/completions", &chat(HARD, json!({"max_tokens": 8, "temperature": 0})), &[]);
    assert_eq!(status, 200, "{body}");
    let score: f32 = header(&headers, "x-edgeway-score").parse().unwrap();
    assert!((0.0..=1.0).contains(&score), "the shipped scorer's probability: {score}");
    // The score alone, or the edge answer's confidence under the shipped escalation limit, decided.
    let reasons = ["score_below_threshold", "score_at_or_above_threshold", "confident_at_edge", "low_edge_confidence"];
    assert!(reasons.contains(&header(&headers, "x-edgeway-route-reason")), "{headers:?}");
}

#[test]
fn over_the_power_budget_edge_work_moves_to_the_cloud() {
    let cloud = Server::start(&[]);
    let gateway = Server::start(&[
        "--cloud-url",
        &cloud.url("/v1"),
        "--cloud-model",
        "smollm2",
        "--power-budget",
        "0.001",
        "--scorer",
        "transparent",
    ]);
    let request = chat(EASY, json!({"max_tokens": 8, "temperature": 0}));
    // Idle, the edge draws nothing: the first easy request is answered there…
    let (_, headers, _) = gateway.post_with_headers("/v1/chat/completions", &request, &[]);
    assert_eq!(header(&headers, "x-edgeway-route"), "edge");
    // /health shows the draw at once: the power window is 10 s, and a cloud answer on a busy
    // machine can take longer than that, so it is read before the next request, not after.
    let (_, health) = gateway.get("/health");
    assert!(health["power_watts"].as_f64().unwrap() > 0.0, "{health}");
    // …and the energy it used puts the edge over its (tiny) budget for the next one.
    let (status, headers, _) = gateway.post_with_headers("/v1/chat/completions", &request, &[]);
    assert_eq!(status, 200);
    assert_eq!(
        (header(&headers, "x-edgeway-route"), header(&headers, "x-edgeway-route-reason")),
        ("cloud", "power_budget")
    );
}

/// The gateway's query log once it holds at least `requests` rows (the writer commits in the background).
fn wait_for_logged(gateway: &Server, requests: u64) -> edgeway_store::Stats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = edgeway_store::Stats::load(&gateway.query_log, 0).unwrap();
        if stats.total_requests() >= requests || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until an OpenAI-compatible server answers `GET /v1/models`.
fn wait_for_models(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    let url = format!("http://127.0.0.1:{port}/v1/models");
    while Instant::now() < deadline {
        if reqwest::blocking::get(&url).is_ok_and(|r| r.status().is_success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the upstream on port {port} did not come up within {within:?}");
}

#[test]
fn a_cloud_this_project_did_not_write_llama_cpp_python_server() {
    let port = free_port();
    let model = common::test_model();
    let _cloud = PythonProcess::start(
        port,
        &[
            "-m",
            "llama_cpp.server",
            "--model",
            model.to_str().unwrap(),
            "--model_alias",
            "smol-python",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--n_ctx",
            "2048",
        ],
    );
    wait_for_models(port, Duration::from_secs(120));
    let url = format!("http://127.0.0.1:{port}/v1");
    let gateway = Server::start(&[
        "--cloud-url",
        &url,
        "--cloud-model",
        "smol-python",
        "--cloud-timeout",
        "30",
        "--scorer",
        "transparent",
    ]);

    let (status, headers, body) = gateway.post_with_headers(
        "/v1/chat/completions",
        &chat(HARD, json!({"max_tokens": 12, "temperature": 0})),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-edgeway-route"), "cloud", "{headers:?}");
    assert!(!body["choices"][0]["message"]["content"].as_str().unwrap_or_default().is_empty(), "{body}");
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{body}");

    let events = gateway.stream("/v1/chat/completions", &chat(HARD, json!({"max_tokens": 12, "stream": true})));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(!common::chat_stream_text(&events).is_empty());
}

/// A cloud that ignores `response_format`: a real second process (Python's
/// http.server) that streams plain prose to every chat request.
const PROSE_CLOUD: &str = r#"
import http.server, json, sys
class Prose(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        chunk = {"choices": [{"index": 0, "delta": {"content": "Sure! The part looks fine."}}]}
        end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Prose).serve_forever()
"#;

#[test]
fn a_cloud_answer_in_the_wrong_shape_falls_back_or_fails_as_configured() {
    let port = free_port();
    let _cloud = PythonProcess::start(port, &["-c", PROSE_CLOUD, &port.to_string()]);
    let url = format!("http://127.0.0.1:{port}/v1");
    let schema = json!({"type": "object", "properties": {"defect": {"type": "boolean"}}, "required": ["defect"]});
    let body = chat(
        "Inspect panel 7 and report.",
        json!({"max_tokens": 30, "temperature": 0,
               "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}}),
    );

    let fallback = Server::start(&["--cloud-url", &url, "--cloud-model", "prose", "--structured-route", "cloud"]);
    let (status, headers, answer) = fallback.post_with_headers("/v1/chat/completions", &body, &[]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(header(&headers, "x-edgeway-route"), "edge", "{headers:?}");
    assert_eq!(header(&headers, "x-edgeway-route-reason"), "fallback_cloud_invalid", "{headers:?}");
    assert!(header(&headers, "x-edgeway-fallback").contains("wrong shape"), "{headers:?}");
    assert_eq!(answer["x_edgeway"]["format"]["verdict"], "valid", "{answer}");

    let strict = Server::start(&[
        "--cloud-url",
        &url,
        "--cloud-model",
        "prose",
        "--structured-route",
        "cloud",
        "--invalid-cloud-answer",
        "error",
    ]);
    let (status, answer) = strict.post("/v1/chat/completions", &body);
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "upstream_answer_invalid", "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("not JSON"), "{answer}");

    let passing = Server::start(&[
        "--cloud-url",
        &url,
        "--cloud-model",
        "prose",
        "--structured-route",
        "cloud",
        "--invalid-cloud-answer",
        "pass",
    ]);
    let (status, answer) = passing.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["x_edgeway"]["format"]["verdict"], "invalid", "{answer}");
}

/// A cloud that calls tools: a real second process (Python's http.server) that streams
/// two parallel calls, their arguments in pieces, as OpenAI does, and records what it was sent.
const TOOL_CLOUD: &str = r#"
import http.server, json, sys
class Tools(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        sent = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        with open(sys.argv[2], "a") as seen:
            seen.write(json.dumps(sent) + "\n")
        def call(index, id, name, arguments):
            return {"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": arguments}}
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [call(0, "call_a", "get_weather", "")]}}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [call(1, "call_b", "get_weather", "{\"city\": \"Rome\"}")]}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        ]
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        body = body.encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Tools).serve_forever()
"#;

#[test]
fn tools_pass_through_the_cloud_route_on_both_apis() {
    let port = free_port();
    let seen = common::temp_dir("routing", "tool-cloud").join("seen.jsonl");
    let _cloud = PythonProcess::start(port, &["-c", TOOL_CLOUD, &port.to_string(), seen.to_str().unwrap()]);
    let url = format!("http://127.0.0.1:{port}/v1");
    let gateway = Server::start(&["--cloud-url", &url, "--cloud-model", "tooly", "--tools-route", "cloud"]);
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let history = json!([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "cold"}
    ]);
    let body = json!({"messages": history, "tools": tools, "tool_choice": "required", "stream": true});
    let events = gateway.stream("/v1/chat/completions", &body);
    let pieces: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["tool_calls"].as_array().cloned())
        .flatten()
        .collect();
    let indices: Vec<u64> = pieces.iter().filter_map(|p| p["index"].as_u64()).collect();
    assert_eq!(indices, [0, 0, 0, 1], "{events:?}");
    let arguments: String =
        pieces.iter().filter(|p| p["index"] == 0).filter_map(|p| p["function"]["arguments"].as_str()).collect();
    assert_eq!(arguments, "{\"city\": \"Paris\"}");
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls", "{last}");
    assert_eq!(last["x_edgeway"]["format"]["verdict"], "valid", "{last}");

    // What the cloud was sent: the tools, the choice and the history with its call and result.
    let sent: Value = serde_json::from_str(std::fs::read_to_string(&seen).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather", "{sent}");
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(sent["messages"][2]["tool_call_id"], "call_0");

    // Ollama's API: whole calls with object arguments.
    let ollama = json!({"model": "auto", "stream": false, "tools": tools,
        "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}]});
    let (status, answer) = gateway.post("/api/chat", &ollama);
    assert_eq!(status, 200, "{answer}");
    let calls = answer["message"]["tool_calls"].as_array().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(calls.len(), 2, "{answer}");
    assert_eq!(calls[0]["function"]["arguments"], json!({"city": "Paris"}));
    assert_eq!(calls[1]["function"]["index"], 1);
    assert_eq!(answer["done_reason"], "stop");
}

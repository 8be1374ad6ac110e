//! Hostile and careless clients at the socket: half-sent headers, idle keep-alive
//! connections, bodies that stop arriving, a client that stops reading its stream, and
//! more connections than the server allows. A real `edgeway serve` on loopback.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{chat, read_until, Server};
use serde_json::json;

/// A server with these `[server]` settings (timeouts in seconds) and extra flags.
fn server_with(section: &str, flags: &[&str]) -> (Server, std::path::PathBuf) {
    let dir = common::temp_dir("connections", &format!("{:x}", fxhash(section)));
    let config = dir.join("edgeway.toml");
    std::fs::write(&config, format!("[server]\n{section}\n")).unwrap();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(flags);
    (Server::start(&args), dir)
}

fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3))
}

/// The value of one metric line (`name{labels} value`) in `/metrics`, 0 when absent.
fn metric(server: &Server, series: &str) -> f64 {
    let text = common::client().get(server.url("/metrics")).send().unwrap().text().unwrap();
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

/// Waits up to `limit` for `done`; whether it happened.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

/// Whether the server has closed `socket` (EOF or reset), waiting at most `wait` for it.
fn closed_by_server(socket: &mut TcpStream, wait: Duration) -> bool {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => {
                return !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
            }
        }
    }
}

#[test]
fn five_thousand_half_open_connections_and_a_stalled_reader_leave_room_for_a_normal_request() {
    // The test process holds 5,000 sockets too.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (server, _dir) = server_with(
        "header_timeout_secs = 30\nsend_timeout_secs = 2\nsend_buffer_bytes = 8192\nmax_connections = 8000\n\
         max_connections_per_client = 8000",
        &["--parallel", "2"],
    );

    // A client that asks for a long stream, reads its first token, and then never reads again.
    let body = chat(
        "Write a very long essay about the history of Rome.",
        json!({"max_tokens": 3500, "ignore_eos": true, "stream": true}),
    )
    .to_string();
    // A small receive window, so that what the client leaves unread fills it quickly.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], server.port)).into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    write!(
        stalled,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
    .unwrap();
    read_until(&mut stalled, "\"content\":\"");

    // 5,000 connections that send half a request header and then nothing, from 16 threads (a
    // virtual machine's network may admit only a few hundred new connections a second, and a
    // SYN it drops costs that connect a second).
    let port = server.port;
    let openers: Vec<_> = (0..16)
        .map(|thread| {
            std::thread::spawn(move || {
                (thread..5000)
                    .step_by(16)
                    .map(|_| {
                        let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                        socket.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: loc").unwrap();
                        socket
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut half_open: Vec<TcpStream> = openers.into_iter().flat_map(|opener| opener.join().unwrap()).collect();
    assert_eq!(half_open.len(), 5000);

    // Once the server holds them all (the kernel completes handshakes faster than a busy server
    // accepts, and a full accept queue would delay anyone's connect by a SYN retry)...
    assert!(
        eventually(Duration::from_secs(30), || metric(&server, "edgeway_connections_open ") >= 5001.0),
        "the server did not take all 5,000 connections: {} open",
        metric(&server, "edgeway_connections_open ")
    );
    // ...a normal request is answered at once, beside them (after a second's pause, so that a
    // network that rate-limits new connections has let the flood through).
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (status, answer) = server.post("/v1/chat/completions", &chat("Say hi.", json!({"max_tokens": 4})));
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert!(took < Duration::from_secs(1), "a normal request took {took:?} beside 5,000 idle connections");
    assert_eq!(server.get("/health").0, 200);

    // The half-open ones are closed after the header timeout (30 s, checked every 0.5 s).
    assert!(
        eventually(Duration::from_secs(90), || metric(&server, "edgeway_connections_open ") <= 2.0),
        "connections still open: {}",
        metric(&server, "edgeway_connections_open ")
    );
    let still_open = half_open
        .iter_mut()
        .map(|socket| closed_by_server(socket, Duration::from_millis(200)))
        .filter(|closed| !closed)
        .count();
    assert_eq!(still_open, 0, "half-open connections the server did not close");
    assert_eq!(metric(&server, "edgeway_connections_closed_total{reason=\"header_timeout\"}"), 5000.0);

    // The stalled reader's connection is dropped once its writes wait past the send timeout,
    // which stops its generation and frees the slot.
    assert!(
        eventually(Duration::from_secs(60), || metric(
            &server,
            "edgeway_connections_closed_total{reason=\"send_timeout\"}"
        ) == 1.0),
        "the stalled reader was not dropped:\n{}",
        server.stderr()
    );
    assert!(
        eventually(Duration::from_secs(10), || server.busy_slots() == 0),
        "the stalled reader's slot is still busy"
    );
    drop(stalled);
}

#[test]
fn caps_idle_keepalive_and_slow_bodies_each_get_a_clean_end() {
    let (server, _dir) = server_with(
        "max_connections_per_client = 8\nkeepalive_timeout_secs = 3\nbody_timeout_secs = 1\nheader_timeout_secs = 30",
        &[],
    );

    // Over the per-client cap: a 503 with Retry-After and the API's error shape, then close.
    // Each of the 8 held connections has had an answer, so the server has surely accepted it.
    let held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut socket = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            socket.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
            assert!(read_until(&mut socket, "\r\n\r\n").starts_with("HTTP/1.1 200"));
            socket
        })
        .collect();
    let mut over = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    over.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    over.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = over.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"code\":\"too_many_connections\""), "{answer}");
    drop(held);
    assert!(
        eventually(Duration::from_secs(10), || server.get("/health").0 == 200),
        "a slot did not free after the held connections closed"
    );
    assert!(metric(&server, "edgeway_connections_closed_total{reason=\"client_full\"}") >= 1.0);

    // A keep-alive connection that goes quiet after its answer is closed after the keep-alive timeout.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    read_until(&mut idle, "\r\n\r\n");
    assert!(closed_by_server(&mut idle, Duration::from_secs(10)), "an idle keep-alive connection stayed open");
    assert!(metric(&server, "edgeway_connections_closed_total{reason=\"idle\"}") >= 1.0);

    // A body that stops arriving: 408 in the API's error shape.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"messages\":",
    )
    .unwrap();
    let answer = read_until(&mut slow, "}}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
}

#[test]
fn client_named_domains_cannot_grow_the_metrics() {
    let server = Server::start(&[]);
    for domain in ["a7f3", "b91c", "c0de", "d00d", "e5e5", "code"] {
        let (status, _, body) = server.post_with_headers(
            "/v1/chat/completions",
            &chat("Hi", json!({"max_tokens": 2})),
            &[("x-edgeway-domain", domain)],
        );
        assert_eq!(status, 200, "{body}");
    }
    let text = common::client().get(server.url("/metrics")).send().unwrap().text().unwrap();
    let domains: std::collections::BTreeSet<&str> =
        text.lines().filter_map(|line| line.split("domain=\"").nth(1)?.split('"').next()).collect();
    assert_eq!(domains.into_iter().collect::<Vec<_>>(), ["code", "other"], "{text}");
}

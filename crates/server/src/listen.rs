//! Accepting connections under limits: how many there may be (in all and per client address),
//! and how long each may sit idle, dribble its request header, or refuse to read its answer.
//!
//! `axum::serve` holds a connection for as long as the client keeps it open, so a few
//! processes sending half a request header each and then nothing (slowloris) exhausted the
//! server's file descriptors and `/health` stopped answering. Here every accepted connection
//! is admitted by a [`Gate`] (a clean `503` beyond the caps) and watched by a per-connection
//! timer that closes it when it breaks one of the [`ConnectionLimits`], as nginx does with
//! `client_header_timeout`, `keepalive_timeout`, `send_timeout` and `limit_conn`. The request
//! body's timeout is tower-http's `RequestBodyTimeoutLayer`, in [`crate::app`].
//!
//! Hand-written because hyper's own header timeout cannot tell a keep-alive wait from a header
//! that is arriving slowly, and nothing in hyper notices a client that stopped reading.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

use crate::metrics::{Closed, Metrics};

/// How many connections there may be and how long each may stall.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// Open connections in all; one more is answered `503` and closed.
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_per_client: usize,
    /// Time for a request header to arrive whole: from the connection's start for the first
    /// request, from its first byte for later ones.
    pub header_timeout: Duration,
    /// Time a connection may wait, idle, for its next request after an answer.
    pub keepalive_timeout: Duration,
    /// Longest pause while a request body arrives.
    pub body_timeout: Duration,
    /// Longest time a write to the client may wait (the client stopped reading).
    pub send_timeout: Duration,
    /// The kernel's send buffer per connection (`SO_SNDBUF`), when set: how much of an answer may
    /// wait unread before a write stalls. `None` keeps the kernel's auto-tuning.
    pub send_buffer: Option<usize>,
}

impl Default for ConnectionLimits {
    /// Defaults for a box on a shared network: nginx's keep-alive and send timeouts, a shorter
    /// header timeout (slow headers are the attack), and caps far above what one box serves.
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_client: 256,
            header_timeout: Duration::from_secs(15),
            keepalive_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            send_buffer: None,
        }
    }
}

impl ConnectionLimits {
    /// How often a connection's timer looks at it: a quarter of the shortest timeout, between
    /// 50 ms and 1 s (a connection closes at most that late).
    fn tick(&self) -> Duration {
        let shortest = self.header_timeout.min(self.keepalive_timeout).min(self.send_timeout);
        (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// Why a connection is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Full,
    /// `max_per_client` are open from this address.
    ClientFull,
}

/// Counts open connections, in all and per client address.
#[derive(Debug)]
pub struct Gate {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
    drained: Notify,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl Gate {
    /// A gate with these caps.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_client, open: Mutex::default(), drained: Notify::new() })
    }

    /// Lets a connection from `client` in, or says why not; it counts until the [`Admission`] drops.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Admission, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let from_client = open.per_client.entry(client).or_default();
        if *from_client >= self.max_per_client {
            return Err(Refusal::ClientFull);
        }
        *from_client += 1;
        open.total += 1;
        Ok(Admission { gate: Arc::clone(self), client })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Waits until every admitted connection has closed.
    async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One admitted connection; dropping it lets the next one in.
#[derive(Debug)]
pub struct Admission {
    gate: Arc<Gate>,
    client: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(count) = open.per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&self.client);
            }
        }
        if open.total == 0 {
            self.gate.drained.notify_waiters();
        }
    }
}

/// What one connection is doing, as its timer needs to know: kept in milliseconds since the
/// connection opened, `0` meaning "not now".
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Requests being answered (more than one only on HTTP/2).
    in_flight: AtomicUsize,
    /// Answers finished.
    answered: AtomicU64,
    /// When the first byte of the next request header arrived.
    head_since: AtomicU64,
    /// When the last answer finished.
    idle_since: AtomicU64,
    /// When a write began waiting on the client.
    write_blocked_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            answered: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the connection opened, at least 1 (0 means "not now").
    fn now(&self) -> u64 {
        (self.opened.elapsed().as_millis() as u64).max(1)
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 && self.head_since.load(Ordering::Relaxed) == 0 {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        self.idle_since.store(self.now(), Ordering::Relaxed);
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn write_result<T>(&self, poll: &Poll<io::Result<T>>) {
        match poll {
            Poll::Pending => {
                let _ = self.write_blocked_since.compare_exchange(0, self.now(), Ordering::Relaxed, Ordering::Relaxed);
            }
            Poll::Ready(_) => self.write_blocked_since.store(0, Ordering::Relaxed),
        }
    }

    /// The limit this connection has broken, if any, at `now`.
    fn overdue(&self, limits: &ConnectionLimits, now: u64) -> Option<Closed> {
        let past = |since: u64, limit: Duration| since != 0 && now.saturating_sub(since) > limit.as_millis() as u64;
        if past(self.write_blocked_since.load(Ordering::Relaxed), limits.send_timeout) {
            return Some(Closed::SendTimeout);
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let head_since = self.head_since.load(Ordering::Relaxed);
        if head_since != 0 {
            return past(head_since, limits.header_timeout).then_some(Closed::HeaderTimeout);
        }
        if self.answered.load(Ordering::Relaxed) == 0 {
            // The first request: its header must arrive within the header timeout of the connection's start.
            return past(1, limits.header_timeout).then_some(Closed::HeaderTimeout);
        }
        past(self.idle_since.load(Ordering::Relaxed), limits.keepalive_timeout).then_some(Closed::Idle)
    }
}

/// A socket that tells its [`Activity`] when bytes arrive and when a write stalls.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.activity.write_result(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.activity.write_result(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.activity.write_result(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that tells its connection's [`Activity`] when it is done (sent or dropped).
struct Tracked {
    body: Body,
    activity: Arc<Activity>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.activity.request_finished();
    }
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes, then lets the
/// connections that are open finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let gate = Gate::new(limits.max_connections, limits.max_per_client);
    metrics.watch_connections(Arc::clone(&gate));
    let limits = Arc::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error, &mut last_accept_error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let admission = match gate.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                metrics.connection_closed(match refusal {
                    Refusal::Full => Closed::Full,
                    Refusal::ClientFull => Closed::ClientFull,
                });
                refuse(&stream, refusal);
                continue;
            }
        };
        let connection = Connection {
            stream,
            peer,
            router: router.clone(),
            limits: Arc::clone(&limits),
            metrics: Arc::clone(&metrics),
            stop: stop_rx.clone(),
        };
        tokio::spawn(connection.run(admission));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    gate.drained().await;
    Ok(())
}

/// Logs a failed `accept` (at most once a second) and pauses: with no descriptors left
/// (`EMFILE`), accepting again at once would spin.
async fn accept_failed(error: &io::Error, last: &mut Option<Instant>) {
    if last.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
        tracing::warn!(%error, "cannot accept a connection");
        *last = Some(Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Answers a connection that is over a cap with `503` (best effort, never waiting on the
/// client) and closes it.
fn refuse(stream: &TcpStream, refusal: Refusal) {
    let reason = match refusal {
        Refusal::Full => "the server has as many connections open as it allows",
        Refusal::ClientFull => "this address has as many connections open as the server allows one client",
    };
    let body = format!(
        "{{\"error\":{{\"message\":\"{reason}; try again later\",\"type\":\"server_error\",\"code\":\"too_many_connections\"}}}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // What the client already sent is read first, so that closing does not reset the connection
    // before the answer is read.
    let mut scratch = [0u8; 4096];
    let _ = stream.try_read(&mut scratch);
    let _ = stream.try_write(response.as_bytes());
    tracing::debug!(?refusal, "connection refused");
}

/// One admitted connection and what it needs to be served.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, admission: Admission) {
        let Self { stream, peer, router, limits, metrics, mut stop } = self;
        let _ = stream.set_nodelay(true);
        if let Some(bytes) = limits.send_buffer {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(bytes);
        }
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched { stream, activity: Arc::clone(&activity) });
        let service_activity = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let activity = Arc::clone(&service_activity);
            activity.request_started();
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(Body::new)).await.unwrap_or_else(|never| match never {});
                Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, activity })))
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // The timer above keeps time for headers; hyper's own would also cut keep-alive waits.
        builder.http1().header_read_timeout(None);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let mut timer = tokio::time::interval(limits.tick());
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    break;
                }
                _ = timer.tick() => {
                    if let Some(closed) = activity.overdue(&limits, activity.now()) {
                        tracing::debug!(%peer, ?closed, "closing a connection");
                        metrics.connection_closed(closed);
                        break;
                    }
                }
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        drop(admission);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_millis(1000),
            keepalive_timeout: Duration::from_millis(5000),
            send_timeout: Duration::from_millis(2000),
            ..ConnectionLimits::default()
        }
    }

    /// An activity whose clock reads are given, not taken.
    fn at(activity: &Activity, now: u64) -> Option<Closed> {
        activity.overdue(&limits(), now)
    }

    #[test]
    fn a_new_connection_has_the_header_timeout_to_send_its_first_request() {
        let activity = Activity::new();
        assert_eq!(at(&activity, 1001), None);
        assert_eq!(at(&activity, 1002), Some(Closed::HeaderTimeout));
    }

    #[test]
    fn a_request_in_flight_is_never_timed_out_for_its_header_or_idleness() {
        let activity = Activity::new();
        activity.request_started();
        assert_eq!(at(&activity, 1_000_000), None);
    }

    #[test]
    fn after_an_answer_the_keepalive_timeout_applies_until_a_byte_arrives() {
        let activity = Activity::new();
        activity.request_started();
        activity.request_finished();
        let idle = activity.idle_since.load(Ordering::Relaxed);
        assert_eq!(at(&activity, idle + 5000), None);
        assert_eq!(at(&activity, idle + 5001), Some(Closed::Idle));
        // A byte of the next header: from then on the header timeout counts.
        activity.head_since.store(idle + 100, Ordering::Relaxed);
        assert_eq!(at(&activity, idle + 1100), None);
        assert_eq!(at(&activity, idle + 1101), Some(Closed::HeaderTimeout));
    }

    #[test]
    fn a_write_that_waits_past_the_send_timeout_closes_even_mid_request() {
        let activity = Activity::new();
        activity.request_started();
        activity.write_result::<usize>(&Poll::Pending);
        let since = activity.write_blocked_since.load(Ordering::Relaxed);
        assert_eq!(at(&activity, since + 2000), None);
        assert_eq!(at(&activity, since + 2001), Some(Closed::SendTimeout));
        // Progress clears it.
        activity.write_result(&Poll::Ready(Ok(1usize)));
        assert_eq!(at(&activity, since + 100_000), None);
    }

    #[test]
    fn the_gate_caps_each_client_and_the_total_and_frees_on_drop() {
        let gate = Gate::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = gate.admit(a).expect("first");
        let _second = gate.admit(a).expect("second");
        assert_eq!(gate.admit(a).unwrap_err(), Refusal::ClientFull);
        let _third = gate.admit(b).expect("other client");
        assert_eq!(gate.admit(b).unwrap_err(), Refusal::Full);
        drop(first);
        assert_eq!(gate.open(), 2);
        gate.admit(a).expect("room again");
    }
}

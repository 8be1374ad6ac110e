//! `GET /metrics`: Prometheus counters and histograms for every request.
//!
//! Fed from the same finished-request records as the query log, so the two
//! always agree; load gauges (busy slots, queue depth) are read at scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use edgeway_core::BackendLoad;
use edgeway_store::{LogStatus, QueryRecord, ShipStats};

use crate::listen::Gate;

/// Why the server closed or refused a connection, for `edgeway_connections_closed_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Closed {
    /// Refused: the server had `max_connections` open.
    Full,
    /// Refused: the client's address had `max_per_client` open.
    ClientFull,
    /// The request header did not arrive in time.
    HeaderTimeout,
    /// Idle past the keep-alive timeout.
    Idle,
    /// The client stopped reading its answer.
    SendTimeout,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ClientFull => "client_full",
            Self::HeaderTimeout => "header_timeout",
            Self::Idle => "idle",
            Self::SendTimeout => "send_timeout",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    domain: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BoxLabels {
    box_id: String,
}

/// The fleet shipper's series, by the box's id (they exist only when the box ships).
#[derive(Clone, Default)]
struct ShipFamilies {
    backlog: Family<BoxLabels, Gauge>,
    shipped: Family<BoxLabels, Counter>,
    failures: Family<BoxLabels, Counter>,
    center_up: Family<BoxLabels, Gauge>,
    last_ok: Family<BoxLabels, Gauge<f64, AtomicU64>>,
}

/// The fleet shipper's figures and the series they are exported as.
struct Shipping {
    box_id: BoxLabels,
    stats: Arc<ShipStats>,
    families: ShipFamilies,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    route: String,
    kind: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 5 ms to ~80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    ttft: Family<RouteLabels, Histogram, fn() -> Histogram>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<RouteLabels, Counter<f64, AtomicU64>>,
    energy: Family<RouteLabels, Counter<f64, AtomicU64>>,
    busy_slots: Gauge,
    queued: Gauge,
    power: Gauge<f64, AtomicU64>,
    cloud_up: Gauge,
    connections_open: Gauge,
    connections_closed: Family<ClosedLabels, Counter>,
    gate: OnceLock<Arc<Gate>>,
    log_writable: Gauge,
    log_held: Gauge,
    log_dropped: Counter,
    fallbacks: Family<RouteLabels, Counter>,
    power_budget: Gauge<f64, AtomicU64>,
    responses: Family<ResponseLabels, Counter>,
    shipping: OnceLock<Shipping>,
    ship_families: ShipFamilies,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `edgeway_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("edgeway");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(seconds_histogram);
        let ttft = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(seconds_histogram);
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost = Family::<RouteLabels, Counter<f64, AtomicU64>>::default();
        let energy = Family::<RouteLabels, Counter<f64, AtomicU64>>::default();
        let busy_slots = Gauge::default();
        let queued = Gauge::default();
        let power = Gauge::<f64, AtomicU64>::default();
        let cloud_up = Gauge::default();
        let connections_open = Gauge::default();
        let connections_closed = Family::<ClosedLabels, Counter>::default();
        let log_writable = Gauge::default();
        let log_held = Gauge::default();
        let log_dropped = Counter::default();
        let fallbacks = Family::<RouteLabels, Counter>::default();
        let power_budget = Gauge::<f64, AtomicU64>::default();
        let responses = Family::<ResponseLabels, Counter>::default();
        registry.register("requests", "Requests by route, domain and status", requests.clone());
        registry.register("request_duration_seconds", "Time from arrival to the last token", latency.clone());
        registry.register("time_to_first_token_seconds", "Time from arrival to the first token", ttft.clone());
        registry.register("tokens", "Tokens by route and kind (prompt, completion)", tokens.clone());
        registry.register("cost", "Money spent, in the configured prices' currency", cost.clone());
        registry.register("energy_joules", "Energy used on this device", energy.clone());
        registry.register("slots_busy", "Edge slots generating now", busy_slots.clone());
        registry.register("queue_depth", "Requests waiting for an edge slot", queued.clone());
        registry.register("power_watts", "The edge's average power draw over the last seconds", power.clone());
        registry.register(
            "cloud_up",
            "1 while the cloud tier is in service, 0 while it cools down or none is configured",
            cloud_up.clone(),
        );
        registry.register("connections_open", "Client connections open now", connections_open.clone());
        registry.register(
            "connections_closed",
            "Connections the server refused (full, client_full) or closed (header_timeout, idle, send_timeout)",
            connections_closed.clone(),
        );
        registry.register(
            "query_log_writable",
            "1 while the query log is written, 0 while writes fail (a full disk)",
            log_writable.clone(),
        );
        registry.register(
            "query_log_held",
            "Query-log records held in memory until the disk takes them",
            log_held.clone(),
        );
        registry.register(
            "query_log_dropped",
            "Query-log records given up on after writes failed too long",
            log_dropped.clone(),
        );
        registry.register(
            "fallbacks",
            "Requests answered by another tier after the one chosen failed, by the route that answered",
            fallbacks.clone(),
        );
        registry.register("power_budget_watts", "The edge's power budget in watts (0: none)", power_budget.clone());
        registry.register(
            "http_responses",
            "HTTP responses by status code, requests refused before they were parsed included",
            responses.clone(),
        );
        let ship_families = ShipFamilies::default();
        registry.register(
            "fleet_backlog_rows",
            "Logged rows not yet shipped to the fleet center",
            ship_families.backlog.clone(),
        );
        registry.register(
            "fleet_shipped_rows",
            "Rows the fleet center committed since start",
            ship_families.shipped.clone(),
        );
        registry.register(
            "fleet_ship_failures",
            "Shipping attempts that failed (center down, slow or refusing)",
            ship_families.failures.clone(),
        );
        registry.register(
            "fleet_center_up",
            "1 while the last shipping attempt reached the center",
            ship_families.center_up.clone(),
        );
        registry.register(
            "fleet_last_shipped_timestamp_seconds",
            "When the center last committed a shipment or took a report (Unix seconds)",
            ship_families.last_ok.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            ttft,
            tokens,
            cost,
            energy,
            busy_slots,
            queued,
            power,
            cloud_up,
            connections_open,
            connections_closed,
            gate: OnceLock::new(),
            log_writable,
            log_held,
            log_dropped,
            fallbacks,
            power_budget,
            responses,
            shipping: OnceLock::new(),
            ship_families,
        }
    }

    /// Exports the fleet shipper's `stats` under `box_id` from now on; later calls are ignored.
    pub fn watch_shipping(&self, box_id: &str, stats: Arc<ShipStats>) {
        let box_id = BoxLabels { box_id: box_id.to_owned() };
        let _ = self.shipping.set(Shipping { box_id, stats, families: self.ship_families.clone() });
    }

    /// Sets the power budget gauge (`None`: no budget, shown as 0).
    pub fn set_power_budget(&self, watts: Option<f64>) {
        self.power_budget.set(watts.unwrap_or(0.0));
    }

    /// Counts one HTTP response by its status code.
    pub fn response(&self, code: u16) {
        self.responses.get_or_create(&ResponseLabels { code }).inc();
    }

    /// Sets the query log's gauges from its writer's status (at scrape time).
    pub fn set_log_status(&self, status: &LogStatus) {
        self.log_writable.set(i64::from(status.error.is_none()));
        self.log_held.set(status.held as i64);
        let counted = self.log_dropped.get();
        if status.dropped > counted {
            self.log_dropped.inc_by(status.dropped - counted);
        }
    }

    /// Reads the open-connection gauge from `gate` at each scrape.
    pub fn watch_connections(&self, gate: Arc<Gate>) {
        let _ = self.gate.set(gate);
    }

    /// Counts one connection the server refused or closed.
    pub fn connection_closed(&self, reason: Closed) {
        self.connections_closed.get_or_create(&ClosedLabels { reason: reason.as_str() }).inc();
    }

    /// Counts one finished request.
    pub fn observe(&self, record: &QueryRecord) {
        let route = RouteLabels { route: record.route.clone() };
        let domain = record.domain.clone().unwrap_or_else(|| "none".into());
        self.requests
            .get_or_create(&RequestLabels { route: record.route.clone(), domain, status: record.status.clone() })
            .inc();
        self.latency.get_or_create(&route).observe(record.latency_ms / 1000.0);
        if let Some(ttft) = record.ttft_ms {
            self.ttft.get_or_create(&route).observe(ttft / 1000.0);
        }
        let token_labels = |kind| TokenLabels { route: record.route.clone(), kind };
        self.tokens.get_or_create(&token_labels("prompt")).inc_by(u64::from(record.prompt_tokens));
        self.tokens.get_or_create(&token_labels("completion")).inc_by(u64::from(record.completion_tokens));
        if record.fallback_from.is_some() {
            self.fallbacks.get_or_create(&route).inc();
        }
        self.cost.get_or_create(&route).inc_by(record.cost);
        if let Some(joules) = record.energy_j {
            self.energy.get_or_create(&route).inc_by(joules);
        }
    }

    /// The text exposition, with the load gauges as they are now.
    pub fn render(&self, load: Option<BackendLoad>) -> String {
        if let Some(load) = load {
            self.busy_slots.set(i64::from(load.busy_slots));
            self.queued.set(i64::from(load.queued));
            self.power.set(load.power_watts.unwrap_or(0.0));
            self.cloud_up.set(i64::from(load.cloud_up.unwrap_or(false)));
        }
        if let Some(gate) = self.gate.get() {
            self.connections_open.set(gate.open() as i64);
        }
        if let Some(shipping) = self.shipping.get() {
            shipping.render();
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Shipping {
    /// Brings the series up to the shipper's figures.
    fn render(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let (label, families) = (&self.box_id, &self.families);
        families.backlog.get_or_create(label).set(self.stats.backlog.load(Relaxed) as i64);
        let catch_up = |counter: &Family<BoxLabels, Counter>, now: u64| {
            let counter = counter.get_or_create(label);
            counter.inc_by(now.saturating_sub(counter.get()));
        };
        catch_up(&families.shipped, self.stats.shipped.load(Relaxed));
        catch_up(&families.failures, self.stats.failures.load(Relaxed));
        families.center_up.get_or_create(label).set(i64::from(self.stats.center_up.load(Relaxed)));
        families.last_ok.get_or_create(label).set(self.stats.last_ok_ms.load(Relaxed) as f64 / 1000.0);
    }
}

/// Middleware counting every response by status code (`edgeway_http_responses_total`), outside
/// the authentication and the body limit so their refusals count too.
pub async fn count_responses(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    metrics.response(response.status().as_u16());
    response
}

/// The OpenMetrics exposition rewritten in Prometheus' classic text format (0.0.4), for clients
/// that do not ask for OpenMetrics (`curl`, `promtool check metrics`, older scrapers).
///
/// The two differ for counters: OpenMetrics names the family (`# TYPE edgeway_requests counter`)
/// and suffixes its samples (`edgeway_requests_total`), and the classic format expects the help
/// and type under the sample's own name. It has no `# UNIT` and no `# EOF` either. Hand-written
/// because `prometheus-client` encodes OpenMetrics only, and these three rules are all it takes.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_a_counter_s_help_and_type_after_its_samples() {
        let openmetrics = "# HELP edgeway_requests Requests answered.\n# TYPE edgeway_requests counter\n\
                           edgeway_requests_total{route=\"edge\"} 1\n# HELP edgeway_power_watts Power.\n\
                           # TYPE edgeway_power_watts gauge\n# UNIT edgeway_power_watts watts\nedgeway_power_watts 7.5\n# EOF\n";
        assert_eq!(
            classic_text(openmetrics),
            "# HELP edgeway_requests_total Requests answered.\n# TYPE edgeway_requests_total counter\n\
             edgeway_requests_total{route=\"edge\"} 1\n# HELP edgeway_power_watts Power.\n\
             # TYPE edgeway_power_watts gauge\nedgeway_power_watts 7.5\n"
        );
    }

    #[test]
    fn a_request_shows_up_in_every_family() {
        let metrics = Metrics::new();
        let record = QueryRecord {
            route: "edge".into(),
            domain: Some("code".into()),
            status: "ok".into(),
            latency_ms: 120.0,
            ttft_ms: Some(30.0),
            prompt_tokens: 10,
            completion_tokens: 5,
            energy_j: Some(1.5),
            fallback_from: Some("the cloud timed out".into()),
            ..QueryRecord::default()
        };
        metrics.observe(&record);
        metrics.set_power_budget(Some(12.0));
        metrics.response(401);
        let text = metrics.render(Some(BackendLoad {
            busy_slots: 1,
            queued: 2,
            power_watts: Some(7.5),
            cloud_up: Some(true),
        }));
        for needle in [
            "edgeway_requests_total{route=\"edge\",domain=\"code\",status=\"ok\"} 1",
            "edgeway_tokens_total{route=\"edge\",kind=\"completion\"} 5",
            "edgeway_energy_joules_total{route=\"edge\"} 1.5",
            "edgeway_queue_depth 2",
            "edgeway_power_watts 7.5",
            "edgeway_cloud_up 1",
            "edgeway_time_to_first_token_seconds_count{route=\"edge\"} 1",
            "edgeway_fallbacks_total{route=\"edge\"} 1",
            "edgeway_power_budget_watts 12.0",
            "edgeway_http_responses_total{code=\"401\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}

//! The dashboard page: server-rendered HTML (maud escapes every value) with the charts inline
//! as SVG and the style in `/dashboard/style.css`; no script.

use edgeway_store::dashboard::{Overview, RouteSummary, Window};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::chart::{time_series, Line, PALETTE};
use super::view::{Power, View};

/// The whole page for `view`; `model` names the box's default model in the title.
pub fn render(view: &View, model: &str) -> String {
    let overview = &view.overview;
    let total: u64 = overview.routes.iter().map(|r| r.requests).sum();
    let edge: u64 = overview.routes.iter().filter(|r| r.route == "edge").map(|r| r.requests).sum();
    let cost: f64 = overview.routes.iter().map(|r| r.cost).sum();
    let with_text = overview.recent.iter().any(|r| r.prompt_text.is_some());
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("edgeway · {model}")))
            body {
                header {
                    h1 { "edgeway" span.model { (model) } }
                    nav {
                        (window_links(overview.window, "/dashboard", "/dashboard/api/overview"))
                        a href="/dashboard/logout" { "log out" }
                    }
                }
                section.cards {
                    (card("requests", &total.to_string()))
                    (card("answered at the edge", &share(edge, total)))
                    (card("spent", &money(cost)))
                    @if !view.savings.is_empty() {
                        (card("saved against all-cloud", &money(view.savings.iter().map(|s| s.saved).sum())))
                    }
                    (card("failed", &overview.statuses.iter().map(|(_, n)| n).sum::<u64>().to_string()))
                    (card("edge power, peak", &power_card(&view.power)))
                    @if let Some(fleet) = &view.fleet {
                        (card("rows not yet at the fleet center", &fleet.backlog.to_string()))
                    }
                }
                @if let Some(fleet) = &view.fleet {
                    p.fleet {
                        "Fleet: box " strong { (fleet.box_id) }
                        @if let Some(site) = &fleet.site { " at " (site) }
                        ", center " @if fleet.center_up { "reachable" } @else { strong.error { "unreachable" } }
                        ", " (fleet.shipped) " rows shipped since start"
                        @if let Some(ms) = fleet.last_shipped_ms { ", last at " (time_of_day(ms)) " UTC" }
                        @if let Some(version) = fleet.config_version { ", fleet config version " (version) }
                        "."
                    }
                }
                section.charts {
                    (PreEscaped(requests_chart(overview)))
                    (PreEscaped(problems_chart(overview)))
                    (PreEscaped(power_chart(view)))
                }
                h2 { "Per route" }
                (routes_table(&overview.routes))
                h2 { "Per domain" }
                (domains_table(view))
                h2 { "Routing" }
                (routing_section(view))
                h2 { "Failures by status" }
                @if overview.statuses.is_empty() {
                    p { "None in this window." }
                } @else {
                    table {
                        tr { th { "status" } th { "requests" } }
                        @for (status, n) in &overview.statuses { tr { td { (status) } td.n { (n) } } }
                    }
                }
                h2 { "Guard" }
                @if overview.guard.is_empty() {
                    p { "No injection or extraction decisions in this window." }
                } @else {
                    table {
                        tr { th { "detector" } th { "action" } th { "decisions" } th { "keys" } }
                        @for g in &overview.guard {
                            tr { td { (g.detector) } td { (g.action) } td.n { (g.events) } td.n { (g.keys) } }
                        }
                    }
                }
                @if !overview.flagged_keys.is_empty() {
                    h3 { "Keys the extraction detector acted on" }
                    table {
                        tr { th { "key" } th { "latest action" } th { "score" } th { "when (UTC)" } }
                        @for k in &overview.flagged_keys {
                            tr {
                                td { (k.key_id) } td { (k.action) }
                                td.n { (k.score.map_or_else(|| "–".into(), |s| format!("{s:.2}"))) }
                                td { (time_of_day(k.ts_ms)) }
                            }
                        }
                    }
                }
                @if !view.collections.is_empty() {
                    h2 { "Knowledge base" }
                    table {
                        tr { th { "collection" } th { "embedding model" } th { "documents" } th { "chunks" } }
                        @for c in &view.collections {
                            tr { td { (c.name) } td { (c.embedding_model) } td.n { (c.documents) } td.n { (c.chunks) } }
                        }
                    }
                }
                @if !overview.inspections.is_empty() {
                    h2 { "Inspections" }
                    table {
                        tr { th { "label" } th { "images" } }
                        @for (label, n) in &overview.inspections { tr { td { (label) } td.n { (n) } } }
                    }
                }
                h2 { "Latest requests" }
                table {
                    tr {
                        th { "time (UTC)" } th { "key" } th { "domain" } th { "route" } th { "model" } th { "tokens in/out" } th { "latency" } th { "spent" } th { "status" }
                        @if with_text { th { "prompt" } }
                    }
                    @for r in &overview.recent {
                        tr {
                            td { (time_of_day(r.ts_ms)) } td { (r.key_id.as_deref().unwrap_or("–")) }
                            td { (r.domain.as_deref().unwrap_or("–")) } td { (r.route) } td { (r.model.as_deref().unwrap_or("–")) }
                            td.n { (r.prompt_tokens) "/" (r.completion_tokens) } td.n { (format!("{:.0} ms", r.latency_ms)) }
                            td.n { (money(r.cost)) } td { (r.status) }
                            @if with_text { td.text { (r.prompt_text.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
        }
    };
    page.into_string()
}

/// Per domain: requests, the edge's share, tokens, and money against all-cloud when the cloud's prices are known.
fn domains_table(view: &View) -> Markup {
    let priced = !view.savings.is_empty();
    html! {
        table {
            tr {
                th { "domain" } th { "requests" } th { "at the edge" } th { "tokens in" } th { "tokens out" } th { "spent" }
                th { "per request" }
                @if priced { th { "all-cloud" } th { "saved" } }
            }
            @for (i, d) in view.overview.domains.iter().enumerate() {
                tr {
                    td { (d.domain) } td.n { (d.requests) } td.n { (share(d.edge_requests, d.requests)) }
                    td.n { (d.prompt_tokens) } td.n { (d.completion_tokens) } td.n { (money(d.cost)) }
                    td.n { (money(d.cost / d.requests.max(1) as f64)) }
                    @if let Some(s) = view.savings.get(i).filter(|_| priced) {
                        td.n { (money(s.all_cloud)) } td.n { (money(s.saved)) }
                    }
                }
            }
        }
        @if !priced {
            p { "Savings against all-cloud need the cloud's prices ("
                code { "price_input_per_mtok" } ", " code { "price_output_per_mtok" } " in " code { "[cloud]" } ")." }
        }
    }
}

/// The thresholds in force, where they came from, and the calibration curve.
fn routing_section(view: &View) -> Markup {
    let routing = &view.routing;
    if routing.default_threshold.is_none() {
        return html! { p { "No cloud tier: every request is answered at the edge." } };
    }
    html! {
        p {
            "Scorer: " strong { (routing.scorer) } ". A request whose score is at or above its domain's threshold goes to the cloud."
        }
        table {
            tr { th { "domain" } th { "threshold" } }
            @if let Some(t) = routing.default_threshold { tr { td { em { "every other domain" } } td.n { (format!("{t:.3}")) } } }
            @for (domain, t) in &routing.thresholds { tr { td { (domain) } td.n { (format!("{t:.3}")) } } }
        }
        @if !routing.tier_thresholds.is_empty() {
            p { "A score at or above a tier's threshold starts the request at that tier:" }
            table {
                tr { th { "domain" } th { "tier" } th { "threshold" } }
                @for (domain, tier, t) in &routing.tier_thresholds {
                    tr {
                        td { @if let Some(domain) = domain { (domain) } @else { em { "every other domain" } } }
                        td.n { (tier) } td.n { (format!("{t:.3}")) }
                    }
                }
            }
        }
        @match &routing.calibration {
            Some(c) => p {
                "Calibrated"
                @if let Some(at) = &c.at { " " (at) }
                @if let Some(run) = &c.run { " from run " code { (run) } }
                @if let Some(items) = c.items { " (" (items) " graded items)" }
                @if let Some(target) = c.target { ", aiming at " (format!("{:.0} %", target * 100.0)) " of cloud-only quality" }
                "."
            },
            None => p { "Not calibrated on this box: these are the shipped defaults or hand-set values (" code { "edgeway calibrate" } " measures better ones)." },
        }
        @if view.calibration_plot {
            img.plot src="/dashboard/calibration.svg" alt="held-out quality against the share sent to the cloud, per scorer";
        }
    }
}

fn power_card(power: &Power) -> String {
    match power.budget_watts {
        Some(budget) => format!("{:.1} / {budget:.0} W", power.peak_watts),
        None => format!("{:.1} W", power.peak_watts),
    }
}

/// The window's name in links.
/// Links to the page at `page` for each window (the current one in bold), and to its JSON at `api`.
pub(super) fn window_links(current: Window, page: &str, api: &str) -> Markup {
    html! {
        @for (window, name) in [(Window::Hour, "last hour"), (Window::Day, "last day"), (Window::Week, "last week")] {
            @if window == current {
                strong { (name) }
            } @else {
                a href={ (page) "?window=" (window_name(window)) } { (name) }
            }
        }
        a href={ (api) "?window=" (window_name(current)) } { "JSON" }
    }
}

fn window_name(window: Window) -> &'static str {
    match window {
        Window::Hour => "hour",
        Window::Day => "day",
        Window::Week => "week",
    }
}

/// The `<head>` of every dashboard page: its title and the style sheet.
pub fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            link rel="stylesheet" href="/dashboard/style.css";
            // No icon: without this line the browser asks for /favicon.ico, which a server with
            // keys refuses.
            link rel="icon" href="data:,";
        }
    }
}

pub(super) fn card(label: &str, value: &str) -> Markup {
    html! { div.card { div.value { (value) } div.label { (label) } } }
}

pub(super) fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    format!("{:.1} %", 100.0 * part as f64 / whole as f64)
}

fn millis(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |ms| format!("{ms:.0} ms"))
}

fn time_of_day(ts_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_ms).map_or_else(String::new, |t| t.format("%m-%d %H:%M:%S").to_string())
}

fn routes_table(routes: &[RouteSummary]) -> Markup {
    html! {
        table {
            tr {
                th { "route" } th { "requests" } th { "failed" } th { "fallbacks" } th { "latency p50" } th { "latency p95" }
                th { "first token p50" } th { "first token p95" } th { "tokens/s" } th { "spent" } th { "energy / request" }
            }
            @for r in routes {
                tr {
                    td { (r.route) } td.n { (r.requests) } td.n { (r.errors) } td.n { (r.fallbacks) }
                    td.n { (millis(r.latency_p50_ms)) } td.n { (millis(r.latency_p95_ms)) }
                    td.n { (millis(r.ttft_p50_ms)) } td.n { (millis(r.ttft_p95_ms)) }
                    td.n { (r.tokens_per_s.map_or_else(|| "–".into(), |t| format!("{t:.1}"))) }
                    td.n { (money(r.cost)) }
                    td.n { (r.energy_j_per_request.map_or_else(|| "–".into(), |j| format!("{j:.1} J"))) }
                }
            }
        }
    }
}

/// Most lines in the requests chart; smaller series are summed into "other".
const MAX_LINES: usize = 6;

/// Requests per slice, one line per route and model (the busiest [`MAX_LINES`]; the rest
/// summed as "other").
fn requests_chart(overview: &Overview) -> String {
    let n = overview.buckets.len();
    let mut series: Vec<(String, Vec<f64>)> = overview
        .requests
        .iter()
        .map(|s| {
            let label = match &s.model {
                Some(model) => format!("{} · {model}", s.route),
                None => s.route.clone(),
            };
            (label, s.counts.iter().map(|&c| c as f64).collect())
        })
        .collect();
    series.sort_by(|a, b| b.1.iter().sum::<f64>().total_cmp(&a.1.iter().sum::<f64>()));
    if series.len() > MAX_LINES {
        let rest = series.split_off(MAX_LINES - 1);
        let mut other = vec![0.0; n];
        for (_, values) in rest {
            for (slot, value) in other.iter_mut().zip(values) {
                *slot += value;
            }
        }
        series.push(("other".into(), other));
    }
    let lines: Vec<Line> = series
        .into_iter()
        .zip(PALETTE.iter().cycle())
        .map(|((label, values), colour)| Line { label, colour, values })
        .collect();
    time_series("requests by route and model", &slice_unit(overview.window), overview.bucket_ms, n, &lines)
}

/// Failures, fallbacks and escalations per slice.
fn problems_chart(overview: &Overview) -> String {
    let to_f64 = |v: &[u64]| v.iter().map(|&c| c as f64).collect();
    let lines = [
        Line { label: "failed".into(), colour: PALETTE[3], values: to_f64(&overview.errors) },
        Line { label: "fallbacks".into(), colour: PALETTE[1], values: to_f64(&overview.fallbacks) },
        Line { label: "escalations".into(), colour: PALETTE[4], values: to_f64(&overview.escalations) },
    ];
    time_series(
        "failures, fallbacks and escalations",
        &slice_unit(overview.window),
        overview.bucket_ms,
        overview.buckets.len(),
        &lines,
    )
}

/// The edge's mean power per slice, with the budget as a flat line when one is set.
fn power_chart(view: &View) -> String {
    let overview = &view.overview;
    let n = overview.buckets.len();
    let mut lines = vec![Line { label: "edge draw".into(), colour: PALETTE[2], values: view.power.draw_watts.clone() }];
    if let Some(budget) = view.power.budget_watts {
        lines.push(Line { label: "budget".into(), colour: PALETTE[3], values: vec![budget; n] });
    }
    time_series("edge power (mean per slice)", "watts", overview.bucket_ms, n, &lines)
}

/// Money, with enough places to show fractions of a cent.
pub(super) fn money(amount: f64) -> String {
    if amount != 0.0 && amount.abs() < 0.01 {
        format!("{amount:.6}")
    } else {
        format!("{amount:.4}")
    }
}

fn slice_unit(window: Window) -> String {
    match window {
        Window::Hour => "per minute",
        Window::Day => "per 15 minutes",
        Window::Week => "per hour",
    }
    .into()
}

//! The fleet's dashboard, pointed at the center (`edgeway fleet dashboard`): the same
//! aggregates `edgeway stats --fleet` prints, for the whole fleet and per site, and every box's
//! status, over a selectable window. `GET /fleet?window=hour|day|week` (HTML, no script),
//! `GET /fleet/api/overview` (the same as JSON), `GET /dashboard/style.css`.
//!
//! It reads aggregates only (no query text), from a [`FleetSource`] the caller provides, so
//! this crate knows nothing of PostgreSQL.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use edgeway_store::dashboard::Window;
use edgeway_store::{BoxStatus, Stats};
use futures::future::BoxFuture;
use maud::{html, Markup, DOCTYPE};
use serde::Serialize;

use super::page::{card, head, money, share, window_links};
use super::{html_response, style, OverviewQuery};
use crate::error::ApiError;

/// Where the fleet's numbers come from (the center).
pub trait FleetSource: Send + Sync + 'static {
    /// The aggregates of the last `window`.
    fn load(&self, window: Window) -> BoxFuture<'_, Result<FleetView, String>>;
}

/// What the fleet dashboard shows for one window.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    /// The window.
    pub window: Window,
    /// The whole fleet first (`site: None`), then each site.
    pub groups: Vec<FleetGroup>,
    /// Every box that reported or shipped.
    pub boxes: Vec<BoxStatus>,
}

/// The aggregates of the whole fleet or of one site.
#[derive(Debug, Clone, Serialize)]
pub struct FleetGroup {
    /// `None` for the whole fleet; `Some("")` for boxes without a site.
    pub site: Option<String>,
    /// Per route.
    pub stats: Stats,
}

/// The fleet dashboard's routes over `source`; `/` leads to the page.
pub fn router(source: Arc<dyn FleetSource>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/fleet") }))
        .route("/fleet", get(page))
        .route("/fleet/api/overview", get(overview))
        .route("/dashboard/style.css", get(style))
        .with_state(source)
}

async fn page(
    State(source): State<Arc<dyn FleetSource>>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let view = load(source.as_ref(), query).await?;
    Ok(html_response(render(&view)))
}

async fn overview(
    State(source): State<Arc<dyn FleetSource>>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    Ok(Json(load(source.as_ref(), query).await?).into_response())
}

async fn load(
    source: &dyn FleetSource,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<FleetView, ApiError> {
    let window = super::window(query)?;
    source.load(window).await.map_err(|error| {
        ApiError::Backend(edgeway_core::BackendError::Unavailable(format!("cannot read the fleet center: {error}")))
    })
}

/// The whole page.
fn render(view: &FleetView) -> String {
    let total: u64 = view.groups.first().map_or(0, |group| group.stats.total_requests());
    let edge: u64 = view.groups.first().map_or(0, |group| edge_requests(&group.stats));
    let cost = view.groups.first().map_or(0.0, |group| group.stats.total_cost());
    let backlog: i64 = view.boxes.iter().map(|b| b.backlog).sum();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head("edgeway · fleet"))
            body {
                header {
                    h1 { "edgeway" span.model { "fleet" } }
                    nav {
                        (window_links(view.window, "/fleet", "/fleet/api/overview"))
                    }
                }
                section.cards {
                    (card("boxes", &view.boxes.len().to_string()))
                    (card("requests", &total.to_string()))
                    (card("answered at the edge", &share(edge, total)))
                    (card("spent", &money(cost)))
                    (card("rows not yet at the center", &backlog.to_string()))
                }
                @if view.groups.is_empty() {
                    p { "No requests at the center in this window." }
                }
                @for group in &view.groups {
                    h2 {
                        @match group.site.as_deref() {
                            None => "The whole fleet",
                            Some("") => "Boxes without a site",
                            Some(site) => { "Site " (site) },
                        }
                    }
                    (routes_table(&group.stats))
                }
                h2 { "Boxes" }
                (boxes_table(&view.boxes))
            }
        }
    };
    page.into_string()
}

fn edge_requests(stats: &Stats) -> u64 {
    stats.routes.iter().filter(|r| r.route == "edge").map(|r| r.requests).sum()
}

fn routes_table(stats: &Stats) -> Markup {
    let total = stats.total_requests();
    html! {
        table {
            tr {
                th { "route" } th { "requests" } th { "share" } th { "errors" } th { "fallbacks" }
                th { "tokens in" } th { "tokens out" } th { "cost / request" } th { "mean latency" }
                th { "mean time to first token" } th { "J / request" }
            }
            @for route in &stats.routes {
                @let n = route.requests.max(1) as f64;
                tr {
                    td { (route.route) }
                    td.n { (route.requests) }
                    td.n { (share(route.requests, total)) }
                    td.n { (route.errors) }
                    td.n { (route.fallbacks) }
                    td.n { (route.prompt_tokens) }
                    td.n { (route.completion_tokens) }
                    td.n { (money(route.cost / n)) }
                    td.n { (format!("{:.0} ms", route.mean_latency_ms)) }
                    td.n { (format!("{:.0} ms", route.mean_ttft_ms)) }
                    td.n { @if route.energy_j > 0.0 { (format!("{:.2}", route.energy_j / n)) } @else { "–" } }
                }
            }
        }
    }
}

fn boxes_table(boxes: &[BoxStatus]) -> Markup {
    html! {
        @if boxes.is_empty() {
            p { "No box has reported yet." }
        } @else {
            table {
                tr {
                    th { "box" } th { "site" } th { "last seen" } th { "backlog" } th { "config version" }
                    th { "requests" } th { "edge share" } th { "cost / request" }
                }
                @for b in boxes {
                    tr {
                        td { (b.box_id) }
                        td { (b.site.as_deref().unwrap_or("–")) }
                        td.n { (format!("{:.0} s ago", b.seen_secs_ago)) }
                        td.n { (b.backlog) }
                        td.n { (b.config_version.map_or_else(|| "–".into(), |v| v.to_string())) }
                        td.n { (b.requests) }
                        td.n { (b.edge_share.map_or_else(|| "–".into(), |s| format!("{:.1} %", s * 100.0))) }
                        td.n { (b.cost_per_query.map_or_else(|| "–".into(), money)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use edgeway_store::RouteStats;

    use super::*;

    #[test]
    fn the_page_escapes_what_boxes_report_and_names_every_site() {
        let route =
            |route: &str, requests| RouteStats { route: route.into(), requests, cost: 0.5, ..Default::default() };
        let stats = Stats { routes: vec![route("edge", 3), route("cloud", 1)] };
        let view = FleetView {
            window: Window::Day,
            groups: vec![
                FleetGroup { site: None, stats: stats.clone() },
                FleetGroup { site: Some("<b>plant</b>".into()), stats },
            ],
            boxes: vec![BoxStatus {
                box_id: "box-1".into(),
                site: Some("<b>plant</b>".into()),
                seen_secs_ago: 2.0,
                backlog: 7,
                config_version: Some(3),
                requests: 4,
                edge_share: Some(0.75),
                cost_per_query: Some(0.25),
            }],
        };
        let html = render(&view);
        assert!(html.contains("Site &lt;b&gt;plant&lt;/b&gt;") && !html.contains("<b>plant"));
        assert!(html.contains("75.0 %") && html.contains("The whole fleet"), "{html}");
        assert!(html.contains("<strong>last day</strong>"));
    }
}

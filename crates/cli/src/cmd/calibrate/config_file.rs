//! Writing what calibration chose into the config file, keeping the rest of it (keys and comments).

use super::*;

/// Thresholds for the config: in `[0, 1]`, rounded so the file stays readable.
pub(super) fn config_threshold(threshold: f32) -> f64 {
    (f64::from(threshold.clamp(0.0, 1.0)) * 10_000.0).round() / 10_000.0
}

/// The `[routing]` keys calibration owns, set in `document` (other keys and comments are kept).
pub(super) fn set_routing(
    document: &mut toml_edit::DocumentMut,
    policy: &RoutingPolicy,
    scorer: Option<WrittenScorer>,
) -> anyhow::Result<()> {
    use toml_edit::{value, Item, Table};
    let routing = routing_table(document)?;
    routing["threshold"] = value(config_threshold(policy.default_threshold));
    set_scorer(routing, scorer);
    match policy.escalate_below {
        Some(limit) => routing["escalate_below_logprob"] = value((limit * 1000.0).round() / 1000.0),
        None => {
            routing.remove("escalate_below_logprob");
        }
    }
    // Domains defined in [[routing.domains]] keep their threshold there; the rest go in [routing.thresholds].
    let mut remaining = policy.domain_thresholds.clone();
    if let Some(domains) = routing.get_mut("domains").and_then(Item::as_array_of_tables_mut) {
        for domain in domains.iter_mut() {
            let name = domain.get("name").and_then(Item::as_str).map(str::to_owned);
            match name.and_then(|name| remaining.remove(&name)) {
                Some(threshold) => domain["threshold"] = value(config_threshold(threshold)),
                None => {
                    domain.remove("threshold");
                }
            }
        }
    }
    let mut thresholds = Table::new();
    for (domain, threshold) in remaining {
        thresholds[domain.as_str()] = value(config_threshold(threshold));
    }
    routing.remove("thresholds");
    if !thresholds.is_empty() {
        routing["thresholds"] = Item::Table(thresholds);
    }
    Ok(())
}

/// The `[routing]` table of `document`, created if missing.
pub(super) fn routing_table(document: &mut toml_edit::DocumentMut) -> anyhow::Result<&mut toml_edit::Table> {
    let routing = document.entry("routing").or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    routing.as_table_mut().context("`routing` in the config is not a table")
}

/// The scorer the thresholds were chosen for: a trained one and its file, or the transparent one.
pub(super) fn set_scorer(routing: &mut toml_edit::Table, scorer: Option<WrittenScorer>) {
    use toml_edit::value;
    match scorer {
        Some(WrittenScorer { kind, path }) => {
            routing["scorer"] = value(kind);
            match path {
                Some(path) => routing["scorer_path"] = value(path.display().to_string()),
                None => {
                    routing.remove("scorer_path");
                }
            }
        }
        None => {
            routing["scorer"] = value("transparent");
            routing.remove("scorer_path");
        }
    }
}

pub(super) fn routing_toml(policy: &RoutingPolicy, scorer: Option<WrittenScorer>) -> anyhow::Result<String> {
    let mut document = toml_edit::DocumentMut::new();
    set_routing(&mut document, policy, scorer)?;
    Ok(document.to_string())
}

/// Writes the policy (and where it came from) into the config file (created if missing),
/// keeping everything else in it.
pub(super) fn write_config(
    path: &Path,
    policy: &RoutingPolicy,
    scorer: Option<WrittenScorer>,
    provenance: Option<&Provenance>,
) -> anyhow::Result<()> {
    let mut document = read_config(path)?;
    set_routing(&mut document, policy, scorer)?;
    if let Some(provenance) = provenance {
        set_provenance(&mut document, provenance)?;
    }
    save_config(path, &document)
}

/// The config file as an editable document (empty if the file is missing).
pub(super) fn read_config(path: &Path) -> anyhow::Result<toml_edit::DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    text.parse().with_context(|| format!("{} is not valid TOML; fix it or pass --dry-run", path.display()))
}

/// Replaces the config file with `document`, through a temporary file so a failed write leaves the old one.
pub(super) fn save_config(path: &Path, document: &toml_edit::DocumentMut) -> anyhow::Result<()> {
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, document.to_string()).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Where calibrated thresholds came from, kept in `[routing.calibration]` for the dashboard.
pub(super) struct Provenance<'a> {
    /// The evaluation run.
    pub run: &'a str,
    /// Graded items used.
    pub items: usize,
    /// The share of the upper tier's quality aimed for.
    pub target: f64,
    /// The curve drawn, if one was.
    pub plot: Option<&'a Path>,
}

/// Sets `[routing.calibration]` in `document`: now, the run, its size, the target and the plot
/// (as an absolute path, so `serve` finds it from any directory).
pub(super) fn set_provenance(document: &mut toml_edit::DocumentMut, provenance: &Provenance) -> anyhow::Result<()> {
    use toml_edit::{value, Item, Table};
    let mut table = Table::new();
    table["at"] = value(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    table["run"] = value(provenance.run);
    table["items"] = value(provenance.items as i64);
    table["target"] = value(provenance.target);
    if let Some(plot) = provenance.plot {
        let absolute = std::path::absolute(plot).unwrap_or_else(|_| plot.to_owned());
        table["plot"] = value(absolute.display().to_string());
    }
    routing_table(document)?["calibration"] = Item::Table(table);
    Ok(())
}

/// A tier's key in the config: its number (`1 = 0.3`).
pub(super) fn tier_key(tier: u32) -> String {
    tier.to_string()
}

/// Sets `[routing.tier_thresholds]`, the `tier_thresholds` of each `[[routing.domains]]` entry and the
/// scorer keys in `document` (other keys and comments are kept). Returns the domains with thresholds of
/// their own but no entry to hold them.
pub(super) fn set_tier_routing(
    document: &mut toml_edit::DocumentMut,
    thresholds: &LadderThresholds,
    scorer: Option<WrittenScorer>,
) -> anyhow::Result<Vec<String>> {
    use toml_edit::{value, InlineTable, Item, Table};
    let routing = routing_table(document)?;
    set_scorer(routing, scorer);
    // An existing [routing.tier_thresholds] keeps its place and the comments above it.
    if !routing.get("tier_thresholds").is_some_and(Item::is_table) {
        routing.remove("tier_thresholds");
        routing["tier_thresholds"] = Item::Table(Table::new());
    }
    let tiers = routing["tier_thresholds"].as_table_mut().context("tier_thresholds was just made a table")?;
    tiers.clear();
    for (tier, threshold) in &thresholds.default {
        tiers[tier_key(*tier).as_str()] = value(config_threshold(*threshold));
    }
    let mut remaining = thresholds.per_domain.clone();
    if let Some(domains) = routing.get_mut("domains").and_then(Item::as_array_of_tables_mut) {
        for domain in domains.iter_mut() {
            let name = domain.get("name").and_then(Item::as_str).map(str::to_owned);
            match name.and_then(|name| remaining.remove(&name)) {
                Some(own) => {
                    let mut table = InlineTable::new();
                    for (tier, threshold) in own {
                        table.insert(tier_key(tier), config_threshold(threshold).into());
                    }
                    domain["tier_thresholds"] = value(table);
                }
                None => {
                    domain.remove("tier_thresholds");
                }
            }
        }
    }
    Ok(remaining.into_keys().collect())
}

/// The `[routing]` part of `document`, for printing.
pub(super) fn routing_only(document: &toml_edit::DocumentMut) -> String {
    let mut routing = toml_edit::DocumentMut::new();
    if let Some(item) = document.get("routing") {
        routing.insert("routing", item.clone());
    }
    routing.to_string()
}

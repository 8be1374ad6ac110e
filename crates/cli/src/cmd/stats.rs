//! `edgeway stats`: what the query log says about routing, cost and energy.

use anyhow::Context;
use edgeway_store::Stats;

use crate::app::DataDir;
use crate::cli::StatsArgs;
use crate::config::FileConfig;

pub fn run(data_dir: &DataDir, args: &StatsArgs) -> anyhow::Result<()> {
    let since_ms = edgeway_store::record::since_hours_ms(args.since_hours);
    if let Some(url) = &args.fleet {
        return fleet(url, since_ms, args);
    }
    let path = data_dir.query_log(args.log_path.as_deref());
    anyhow::ensure!(path.is_file(), "no query log at {}; `edgeway serve` writes one as it answers", path.display());
    let stats = Stats::load(&path, since_ms).with_context(|| format!("cannot read {}", path.display()))?;
    if stats.total_requests() == 0 {
        println!("no requests logged in {}", path.display());
        return Ok(());
    }
    print(&stats, args)
}

/// The fleet's center: the whole fleet, then each site.
fn fleet(url: &str, since_ms: i64, args: &StatsArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let groups = runtime.block_on(async {
        let ca_file = args.fleet_ca_file.as_deref();
        let client = edgeway_fleet::ship::connect(url, std::time::Duration::from_secs(30), ca_file)
            .await
            .context("cannot reach the fleet center")?;
        anyhow::Ok(edgeway_fleet::center::stats(&client, since_ms).await?)
    })?;
    if groups.is_empty() {
        println!("no requests at the fleet center yet");
    }
    for (site, stats) in &groups {
        match site {
            None => println!("== the whole fleet"),
            Some(site) if site.is_empty() => println!("\n== boxes without a site"),
            Some(site) => println!("\n== site {site}"),
        }
        print(stats, args)?;
    }
    Ok(())
}

/// The table, the totals and the savings against all-cloud.
fn print(stats: &Stats, args: &StatsArgs) -> anyhow::Result<()> {
    let total = stats.total_requests();
    println!(
        "{:<6} {:>9} {:>7} {:>7} {:>9} {:>11} {:>11} {:>12} {:>10} {:>10} {:>10}",
        "ROUTE",
        "REQUESTS",
        "SHARE",
        "ERRORS",
        "FALLBACK",
        "TOKENS IN",
        "TOKENS OUT",
        "COST/QUERY",
        "LATENCY",
        "TTFT",
        "J/QUERY"
    );
    for route in &stats.routes {
        let n = route.requests as f64;
        println!(
            "{:<6} {:>9} {:>6.1}% {:>7} {:>9} {:>11} {:>11} {:>12.6} {:>8.0}ms {:>8.0}ms {:>10}",
            route.route,
            route.requests,
            100.0 * n / total as f64,
            route.errors,
            route.fallbacks,
            route.prompt_tokens,
            route.completion_tokens,
            route.cost / n,
            route.mean_latency_ms,
            route.mean_ttft_ms,
            if route.energy_j > 0.0 { format!("{:.2}", route.energy_j / n) } else { "-".into() },
        );
    }
    let cost = stats.total_cost();
    println!("\n{total} requests, total cost {cost:.6}, {:.6} per query", cost / total as f64);

    let file = FileConfig::load(args.config.as_deref()).unwrap_or_default();
    let cloud = file.cloud.into_iter().next().unwrap_or_default();
    let price_in = args.price_input.or(cloud.price_input_per_mtok);
    let price_out = args.price_output.or(cloud.price_output_per_mtok);
    match (price_in, price_out) {
        (Some(price_in), Some(price_out)) => {
            let all_cloud = stats.all_cloud_cost(price_in, price_out);
            let saved = all_cloud - cost;
            let share = if all_cloud > 0.0 { 100.0 * saved / all_cloud } else { 0.0 };
            println!("all-cloud would have cost {all_cloud:.6}: saved {saved:.6} ({share:.1}%)");
        }
        _ => println!(
            "(set cloud prices in [cloud] or with --price-input/--price-output to see savings against all-cloud)"
        ),
    }
    Ok(())
}

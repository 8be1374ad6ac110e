//! `edgeway fleet`: the center's schema, retention and status.

use anyhow::Context;
use edgeway_fleet::center;

use crate::cli::{FleetCenterArgs, FleetCommand, FleetPruneArgs};

/// How long a command waits for the center.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `edgeway fleet …`.
pub fn run(command: &FleetCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match command {
            FleetCommand::Init(args) => {
                let password = match &args.box_password_env {
                    Some(var) => Some(std::env::var(var).with_context(|| format!("${var} is not set"))?),
                    None => None,
                };
                let mut client = connect(&args.center).await?;
                let role = args.box_role.as_deref().map(|role| (role, password.as_deref()));
                let version = center::init(&mut client, role).await?;
                println!("the fleet schema is at version {version}");
                if let Some(role) = &args.box_role {
                    println!("boxes ship as `{role}`: insert into the log, report status, read the config");
                }
            }
            FleetCommand::Prune(args) => {
                let keep = keep_days(args)?;
                let client = connect(&args.center).await?;
                let dropped = center::prune(&client, keep).await?;
                println!("dropped {} day(s) older than {keep} days{}", dropped.len(), list(&dropped));
            }
            FleetCommand::Push(args) => {
                let pushed = crate::config::fleet_version(&args.config)?;
                let client = connect(&args.center).await?;
                let version = center::push_config(&client, &pushed, args.site.as_deref(), args.note.as_deref()).await?;
                let whom =
                    args.site.as_deref().map_or_else(|| "every box".to_owned(), |site| format!("the boxes of {site}"));
                let travels = if pushed.scorer.is_some() { ", with its trained scorer" } else { "" };
                println!("published config version {version} for {whom}{travels}:\n{}", pushed.routing);
            }
            FleetCommand::Dashboard(args) => {
                let listener = tokio::net::TcpListener::bind(&args.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", args.listen))?;
                println!("the fleet's dashboard: http://{}/fleet (Ctrl-C stops it)", listener.local_addr()?);
                let source =
                    std::sync::Arc::new(crate::app::fleet::Center::new(&args.center.url, args.center.ca_file.clone()));
                edgeway_server::run_fleet_dashboard(listener, source, crate::app::shutdown_signal()).await?;
            }
            FleetCommand::Status(args) => {
                let client = connect(&args.center).await?;
                let boxes = center::status(&client, args.hours).await?;
                if boxes.is_empty() {
                    println!("no box has reported yet");
                }
                println!(
                    "{:<20} {:<12} {:>10} {:>8} {:>7} {:>9} {:>10} {:>14}",
                    "box", "site", "last seen", "backlog", "config", "requests", "edge share", "cost / query"
                );
                for b in boxes {
                    println!(
                        "{:<20} {:<12} {:>9.0}s {:>8} {:>7} {:>9} {:>10} {:>14}",
                        b.box_id,
                        b.site.as_deref().unwrap_or("–"),
                        b.seen_secs_ago,
                        b.backlog,
                        b.config_version.map_or_else(|| "–".into(), |v| v.to_string()),
                        b.requests,
                        b.edge_share.map_or_else(|| "–".into(), |s| format!("{:.1} %", s * 100.0)),
                        b.cost_per_query.map_or_else(|| "–".into(), |c| format!("{c:.6}")),
                    );
                }
                println!("(traffic over the last {} hours)", args.hours);
            }
        }
        Ok(())
    })
}

async fn connect(center: &FleetCenterArgs) -> anyhow::Result<edgeway_fleet::Client> {
    edgeway_fleet::ship::connect(&center.url, TIMEOUT, center.ca_file.as_deref())
        .await
        .context("cannot reach the fleet center")
}

/// `--keep`: `90d` or `90`.
fn keep_days(args: &FleetPruneArgs) -> anyhow::Result<u32> {
    let text = args.keep.trim();
    text.strip_suffix('d')
        .unwrap_or(text)
        .parse()
        .with_context(|| format!("--keep takes days, like `90d`; got '{}'", args.keep))
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(": {}", names.join(", "))
    }
}

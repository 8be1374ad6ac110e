//! `edgeway keys`: API keys in the query log's database.

use std::path::PathBuf;

use anyhow::Context;
use edgeway_store::{ApiKeyRecord, KeyLimits, KeyStore};

use crate::app::DataDir;
use crate::cli::{KeyCreateArgs, KeyStoreArgs, KeysCommand};

pub fn run(data_dir: &DataDir, command: &KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => create(&open(data_dir, &args.store)?, args),
        KeysCommand::List(args) => list(&open(data_dir, args)?),
        KeysCommand::Revoke(args) => {
            let store = open(data_dir, &args.store)?;
            match store.revoke(&args.key, edgeway_store::record::now_ms())? {
                Some(key) => {
                    println!("revoked {} ({}, {})", key.name, key.id, key.prefix);
                    Ok(())
                }
                None => anyhow::bail!("no active key with id or name '{}'; see `edgeway keys list`", args.key),
            }
        }
    }
}

fn database(data_dir: &DataDir, args: &KeyStoreArgs) -> PathBuf {
    data_dir.query_log(args.log_path.as_deref())
}

fn open(data_dir: &DataDir, args: &KeyStoreArgs) -> anyhow::Result<KeyStore> {
    let path = database(data_dir, args);
    KeyStore::open(&path).with_context(|| format!("cannot open the key table in {}", path.display()))
}

fn create(store: &KeyStore, args: &KeyCreateArgs) -> anyhow::Result<()> {
    let name = args.name.trim();
    anyhow::ensure!(!name.is_empty(), "a key needs a name");
    anyhow::ensure!(!store.name_taken(name)?, "a key named '{name}' exists already; pick another name");
    let key = edgeway_guard::key::generate()
        .map_err(|error| anyhow::anyhow!("the OS gave no random bytes for the key: {error}"))?;
    let limits = KeyLimits {
        requests_per_min: args.rpm,
        tokens_per_min: args.tpm,
        tokens_per_day: args.tpd,
        models: args.models.iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect(),
        routes: args.routes.clone(),
        allow_logprobs: !args.no_logprobs,
        admin: args.admin,
    };
    store.insert(&ApiKeyRecord {
        id: key.id.clone(),
        name: name.to_owned(),
        prefix: key.prefix.clone(),
        hash: key.hash,
        created_ms: edgeway_store::record::now_ms(),
        revoked_ms: None,
        limits: limits.clone(),
    })?;
    eprintln!("created key '{name}' ({}): {}", key.id, describe(&limits));
    eprintln!("this is the only time the key is shown; servers using this database require a key from now on");
    println!("{}", key.secret);
    Ok(())
}

/// The limits in one line.
fn describe(limits: &KeyLimits) -> String {
    let mut parts = Vec::new();
    let or_any = |v: Option<String>| v.unwrap_or_else(|| "∞".into());
    parts.push(format!("{} req/min", or_any(limits.requests_per_min.map(|v| v.to_string()))));
    parts.push(format!("{} tok/min", or_any(limits.tokens_per_min.map(|v| v.to_string()))));
    parts.push(format!("{} tok/day", or_any(limits.tokens_per_day.map(|v| v.to_string()))));
    if !limits.models.is_empty() {
        parts.push(format!("models {}", limits.models.join(",")));
    }
    if !limits.routes.is_empty() {
        parts.push(format!("routes {}", limits.routes.join(",")));
    }
    if limits.admin {
        parts.push("admin (opens the dashboard)".into());
    }
    if !limits.allow_logprobs {
        parts.push("no logprobs".into());
    }
    parts.join(", ")
}

fn list(store: &KeyStore) -> anyhow::Result<()> {
    let keys = store.list()?;
    if keys.is_empty() {
        println!("no keys; the server is open to anyone who can reach it (create one with `edgeway keys create NAME`)");
        return Ok(());
    }
    let now = edgeway_store::record::now_ms();
    let day_start = now - now.rem_euclid(86_400_000);
    println!(
        "{:<18} {:<16} {:<14} {:<8} {:>12} {:>10}  LIMITS",
        "ID", "NAME", "KEY", "STATE", "TOKENS TODAY", "REQ TODAY"
    );
    for key in keys {
        let state = if key.revoked_ms.is_some() { "revoked" } else { "active" };
        println!(
            "{:<18} {:<16} {:<14} {:<8} {:>12} {:>10}  {}",
            key.id,
            key.name,
            key.prefix,
            state,
            store.tokens_since(&key.id, day_start)?,
            store.requests_since(&key.id, day_start)?,
            describe(&key.limits)
        );
    }
    Ok(())
}

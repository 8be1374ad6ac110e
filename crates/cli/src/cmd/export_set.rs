//! `edgeway export-set`: the user's own logged traffic as an evaluation set.

use std::io::Write;

use anyhow::Context;

use crate::app::DataDir;
use crate::cli::ExportSetArgs;

pub fn run(data_dir: &DataDir, args: &ExportSetArgs) -> anyhow::Result<()> {
    let path = data_dir.query_log(args.log_path.as_deref());
    anyhow::ensure!(path.is_file(), "no query log at {}; `edgeway serve` writes one as it answers", path.display());
    let since_ms = edgeway_store::record::since_hours_ms(args.since_hours);
    let prompts = edgeway_store::logged_prompts(&path, since_ms, args.limit)
        .with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(
        !prompts.is_empty(),
        "no logged prompts in {}: the log keeps prompt text unless serve ran with --no-log-text",
        path.display()
    );
    let mut text = String::new();
    for prompt in &prompts {
        text.push_str(&edgeway_eval::dataset::logged_set_line(prompt.id, prompt.domain.as_deref(), &prompt.text));
        text.push('\n');
    }
    let mut file = std::fs::File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{} questions from {} → {}", prompts.len(), path.display(), args.out.display());
    println!(
        "next: edgeway eval --set {} --judge qwen2.5-1.5b   (or add a \"reference\" to each line and drop --judge)",
        args.out.display()
    );
    Ok(())
}

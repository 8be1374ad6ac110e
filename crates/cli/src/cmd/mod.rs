//! One module per subcommand.

mod bench;
mod calibrate;
mod compare;
mod eval;
mod keys;
mod knowledge;
mod model;
mod quantize;
mod redteam;
mod serve;
mod stats;

use std::path::PathBuf;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(cli.data_dir, *args),
        Command::Model(command) => model::run(&data_dir(cli.data_dir, None), command),
        Command::Bench(command) => bench::run(&data_dir(cli.data_dir, None), &command),
        Command::Stats(args) => stats::run(&data_dir(cli.data_dir, None), &args),
        Command::Eval(args) => eval::run(cli.data_dir, *args),
        Command::Calibrate(args) => calibrate::run(cli.data_dir, *args),
        Command::Ingest(args) => knowledge::ingest(&data_dir(cli.data_dir, None), &args),
        Command::Query(args) => knowledge::query(&data_dir(cli.data_dir, None), &args),
        Command::Collections(args) => knowledge::collections(&data_dir(cli.data_dir, None), &args),
        Command::Quantize(args) => quantize::quantize(&data_dir(cli.data_dir, None), &args),
        Command::Convert(args) => quantize::convert(&data_dir(cli.data_dir, None), &args),
        Command::Compare(args) => compare::run(&data_dir(cli.data_dir, None), &args),
        Command::Keys(command) => keys::run(&data_dir(cli.data_dir, None), &command),
        Command::Redteam(args) => redteam::run(&data_dir(cli.data_dir, None), &args),
    }
}

/// `text` safe inside HTML or SVG text and attribute values.
pub(crate) fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The data directory: the flag (or `EDGEWAY_DATA_DIR`), then the config file, then the default.
fn data_dir(flag: Option<PathBuf>, from_file: Option<PathBuf>) -> PathBuf {
    flag.or(from_file).unwrap_or_else(edgeway_models::ModelCache::default_data_dir)
}

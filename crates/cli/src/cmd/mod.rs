//! One module per subcommand.

mod bench;
mod calibrate;
mod compare;
mod eval;
mod export_set;
mod fleet;
mod keys;
mod knowledge;
mod model;
mod quantize;
mod redteam;
mod serve;
mod stats;
mod vision;

use crate::app::DataDir;
use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(cli.data_dir, *args),
        Command::Model(command) => model::run(&DataDir::resolve(cli.data_dir, None), command),
        Command::Bench(command) => bench::run(&DataDir::resolve(cli.data_dir, None), &command),
        Command::Stats(args) => stats::run(&DataDir::resolve(cli.data_dir, None), &args),
        Command::ExportSet(args) => export_set::run(&DataDir::resolve(cli.data_dir, None), &args),
        Command::Eval(args) => eval::run(cli.data_dir, *args),
        Command::Calibrate(args) => calibrate::run(cli.data_dir, *args),
        Command::Ingest(args) => knowledge::ingest(&DataDir::resolve(cli.data_dir, None), &args),
        Command::Query(args) => knowledge::query(&DataDir::resolve(cli.data_dir, None), &args),
        Command::Collections(args) => knowledge::collections(&DataDir::resolve(cli.data_dir, None), &args),
        Command::Quantize(args) => quantize::quantize(&DataDir::resolve(cli.data_dir, None), &args),
        Command::Convert(args) => quantize::convert(&DataDir::resolve(cli.data_dir, None), &args),
        Command::Compare(args) => compare::run(&DataDir::resolve(cli.data_dir, None), &args),
        Command::Keys(command) => keys::run(&DataDir::resolve(cli.data_dir, None), &command),
        Command::Redteam(args) => redteam::run(&DataDir::resolve(cli.data_dir, None), &args),
        Command::Vision(command) => vision::run(&DataDir::resolve(cli.data_dir, None), &command),
        Command::Fleet(command) => fleet::run(&command),
    }
}

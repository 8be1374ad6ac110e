#!/usr/bin/env bash
# Regenerates the routing edgeway ships with (crates/cli/shipped/): the learned scorer and the
# thresholds `edgeway calibrate` chooses for it on the calibration half of an evaluation run of
# the default traffic mix (bench/calibrate.sh makes one). The held-out half stays unseen, so
# calibrate's "shipped defaults" row on that run measures the shipped routing honestly.
#
# Usage: scripts/ship-defaults.sh [QUERY_LOG] [RUN]
#   QUERY_LOG  default: bench/out/calibration/queries.db
#   RUN        default: qwen2.5-0.5b+qwen2.5-1.5b@mix600 (bench/calibrate.sh's mix run)
set -euo pipefail
cd "$(dirname "$0")/.."
log=${1:-bench/out/calibration/queries.db}
run=${2:-qwen2.5-0.5b+qwen2.5-1.5b@mix600}
dir=crates/cli/shipped
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -p edgeway
: > "$work/routing.toml"
target/release/edgeway calibrate --log-path "$log" --run "$run" --target 0.95 --scorer learned \
  --config "$work/routing.toml" --scorer-path "$work/scorer.json" --plot "$work/plot.svg" > "$work/report.txt"
items=$(grep -m1 -o '[0-9]* paired items, [0-9]* to calibrate' "$work/report.txt")
{
  echo "# The routing edgeway ships with, for its shipped scorer (scorer.json beside this file)."
  echo "# Calibrated by scripts/ship-defaults.sh on run \`$run\`"
  echo "# ($items), target 95 % of cloud-only quality."
  echo "# \`edgeway calibrate\` on your own graded answers replaces it."
  grep -v -E '^(scorer|scorer_path|plot) =' "$work/routing.toml"
} > "$dir/routing.toml"
cp "$work/scorer.json" "$dir/scorer.json"
# The dashboard shows this curve while the shipped thresholds are in force (shipped.rs embeds it).
cp "$work/plot.svg" docs/calibration-mix.svg
sed -n '/^held-out split/,/^plot:/p' "$work/report.txt"
echo "wrote $dir/routing.toml, $dir/scorer.json and docs/calibration-mix.svg"

#!/usr/bin/env bash
# Calibration benchmark (issues 4 and 18): does routing pay on traffic that looks like an edge box's?
#
# Cloud = Qwen2.5-Coder-1.5B served by a second `edgeway serve` on loopback, priced like a small
# hosted model. Edge = Qwen2.5-Coder-0.5B, and SmolLM2-135M as the lower edge tier. Runs:
#
#   mix         the default traffic mix (docs/traffic-mix.md), constrained answers, both sides
#   mix+free    the same items, the edge answering free-form (with/without the constraint)
#   mix smol    the same items at SmolLM2-135M (cloud answers from `mix`)
#   mix ladder  SmolLM2-135M → Qwen2.5-Coder-0.5B → cloud as three tiers (calibrate --tiers)
#   hard        the old benchmark, MMLU + ARC-Easy + ARC-Challenge: the hard case no mix may hide
#
# Each is calibrated on one half of its items and reported on the other (calibrate's split):
# the share of cloud calls needed to reach 95 % of cloud-only quality for the learned (hashed
# words), embedding (MiniLM) and transparent scorers against random routing and the oracle,
# APGR, the calibrated policy's cost against all-cloud, and the per-domain and per-set splits.
# A summary table comes last.
#
# Usage: bench/calibrate.sh
# Env:   LIMIT (600 mix items; HARD_LIMIT 200 per hard set), THREADS (2),
#        OUT (bench/out/calibration), CLOUD_PORT (8091), SEED (the mix's sampling seed, 0),
#        BIN (an edgeway binary to use instead of building one: a copy, so rebuilding the tree
#        during a day-long run does not swap it mid-run)
# Every run is resumable: run the script again after an interruption and it carries on where
# the query log stops. On a 2-core box the whole benchmark takes about a day (the mix's cloud
# answers are most of it); LIMIT=200 gives a first look in a few hours.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${LIMIT:-600}
hard_limit=${HARD_LIMIT:-200}
threads=${THREADS:-2}
seed=${SEED:-0}
out=${OUT:-bench/out/calibration}
port=${CLOUD_PORT:-8091}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [[ -n ${BIN:-} ]]; then
  bin=$BIN
else
  scripts/setup.sh
  cargo build --release -p edgeway
  bin=target/release/edgeway
fi
for model in smollm2-135m qwen2.5-0.5b qwen2.5-1.5b all-minilm-l6-v2; do "$bin" model pull "$model"; done

cat > "$out/edgeway.toml" <<TOML
# The "cloud": Qwen2.5-Coder-1.5B in a second edgeway process, priced like a small hosted model.
[cloud]
base_url = "http://127.0.0.1:$port/v1"
model = "qwen2.5-1.5b"
price_input_per_mtok = 0.50
price_output_per_mtok = 1.50
timeout_secs = 300

[log]
path = "$out/queries.db"
TOML

"$bin" serve --model qwen2.5-1.5b --port "$port" --threads "$threads" --parallel 1 --no-embeddings \
  --log-path "$out/cloud-server.db" > "$out/cloud-server.log" 2>&1 &
cloud_pid=$!
trap 'kill $cloud_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -fs "http://127.0.0.1:$port/health" > /dev/null && break
  sleep 0.5
done

eval_run() { "$bin" eval --config "$out/edgeway.toml" --threads "$threads" "$@"; }
mix=(--mix default --seed "$seed" --limit "$limit")
hard=(--set mmlu --set arc-easy --set arc-challenge --limit "$hard_limit")
mix_run="qwen2.5-0.5b+qwen2.5-1.5b@mix$limit"
free_run="qwen2.5-0.5b@mix$limit+free"
smol_run="smollm2-135m@mix$limit"
hard_run="qwen2.5-0.5b+qwen2.5-1.5b@hard$hard_limit"

eval_run --model qwen2.5-0.5b "${mix[@]}" --route both --run "$mix_run"
# The other edge answers reuse the cloud's answers from the first run (--cloud-run below).
eval_run --model qwen2.5-0.5b "${mix[@]}" --route edge --answer-format free --run "$free_run"
eval_run --model smollm2-135m "${mix[@]}" --route edge --run "$smol_run"
# SmolLM2 again, as tier 0 of a ladder inside the mix run (SmolLM2 → Qwen-0.5B → cloud), so
# `calibrate --tiers tier0,edge=1,cloud=2` finds all three answers to each item under one run.
cat > "$out/ladder.toml" <<TOML
[[models]]
name = "smollm2-135m"
model = "smollm2-135m"
tier = 0

[[models]]
name = "qwen2.5-0.5b"
model = "qwen2.5-0.5b"
tier = 1

$(sed -n '/^\[cloud\]/,$p' "$out/edgeway.toml")
TOML
"$bin" eval --config "$out/ladder.toml" --threads "$threads" "${mix[@]}" --route tier0 --run "$mix_run"
eval_run --model qwen2.5-0.5b "${hard[@]}" --route both --run "$hard_run"

calibrate() {
  local name=$1 run=$2 cloud_run=$3
  "$bin" calibrate --config "$out/edgeway.toml" --run "$run" --cloud-run "$cloud_run" --target 0.95 \
    --scorer embedding --dry-run --plot "$out/$name.svg" --json "$out/$name.json" | tee "$out/$name.txt"
}
calibrate mix "$mix_run" "$mix_run"
calibrate mix-free "$free_run" "$mix_run"
calibrate mix-smol "$smol_run" "$mix_run"
calibrate hard "$hard_run" "$hard_run"
"$bin" calibrate --config "$out/ladder.toml" --run "$mix_run" --tiers tier0,edge=1,cloud=2 --target 0.95 \
  --dry-run --json "$out/mix-ladder.json" | tee "$out/mix-ladder.txt"

echo
echo "summary (held-out halves; cloud share needed for 95 % of cloud-only quality; targets: learned" \
  "≤ 0.5× random and ≤ 1.5× oracle, calibrated cost ≤ 0.3× all-cloud)"
printf '%-10s %6s %7s %7s  %-34s %-34s %11s %11s %10s\n' \
  run items edge cloud "learned: share ×random ×oracle" "embedding: share ×random ×oracle" \
  transparent oracle "cost×cloud"
for name in mix mix-free mix-smol hard; do
  jq -r --arg name "$name" '
    def row($s): (.held_out.scorers[] | select(.scorer == $s));
    def pct: if . == null then "n/a" else (. * 1000 | round / 10 | tostring) + "%" end;
    def x: if . == null then "n/a" else (. * 100 | round / 100 | tostring) + "×" end;
    (row("oracle").cloud_share_to_target) as $oracle
    | (row("random").cloud_share_to_target) as $random
    | def triple($s): (row($s).cloud_share_to_target) as $v
        | "\($v | pct) \(if $v and $random then $v / $random else null end | x) \(if $v and $oracle then $v / $oracle else null end | x)";
    (.held_out.outcomes | map({key: .policy, value: .}) | from_entries) as $o
    | [$name, (.items.held_out | tostring), (.held_out.edge_quality | pct), (.held_out.cloud_quality | pct),
       triple("learned"), (if row("embedding") then triple("embedding") else "n/a" end),
       (row("transparent").cloud_share_to_target | pct), ($oracle | pct),
       ($o["calibrated"].cost_per_query / $o["all cloud"].cost_per_query | x)]
    | @tsv' "$out/$name.json" |
    awk -F'\t' '{ printf "%-10s %6s %7s %7s  %-34s %-34s %11s %11s %10s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
done
echo "reports, plots and JSON in $out"

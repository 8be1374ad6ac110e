#!/usr/bin/env bash
# Calibration benchmark (issue 4): edge = SmolLM2-135M and Qwen2.5-Coder-0.5B,
# cloud = Qwen2.5-Coder-1.5B served by a second `edgeway serve` on loopback,
# on MMLU + ARC-Easy + ARC-Challenge. Calibrated on one half of the items,
# reported on the other: the share of cloud calls needed to reach 95 % of
# cloud-only accuracy for the learned scorer, the transparent scorer, random
# routing and the oracle, plus APGR and CPT as RouteLLM defines them.
#
# Usage: bench/calibrate.sh
# Env:   LIMIT (300 items per set), THREADS (2), OUT (bench/out/calibration), CLOUD_PORT (8091)
# Runs are resumable: run it again after an interruption and it carries on.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${LIMIT:-300}
threads=${THREADS:-2}
out=${OUT:-bench/out/calibration}
port=${CLOUD_PORT:-8091}
mkdir -p "$out"
out=$(cd "$out" && pwd)

scripts/setup.sh
cargo build --release
bin=target/release/edgeway
for model in smollm2-135m qwen2.5-0.5b qwen2.5-1.5b; do "$bin" model pull "$model"; done

cat > "$out/edgeway.toml" <<TOML
# The "cloud": Qwen2.5-Coder-1.5B in a second edgeway process, priced like a small hosted model.
[cloud]
base_url = "http://127.0.0.1:$port/v1"
model = "qwen2.5-1.5b"
price_input_per_mtok = 0.50
price_output_per_mtok = 1.50
timeout_secs = 120

[log]
path = "$out/queries.db"
TOML

"$bin" serve --model qwen2.5-1.5b --port "$port" --threads "$threads" --parallel 1 \
  --log-path "$out/cloud-server.db" > "$out/cloud-server.log" 2>&1 &
cloud_pid=$!
trap 'kill $cloud_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/health" > /dev/null && break
  sleep 0.5
done

sets=(--set mmlu --set arc-easy --set arc-challenge --limit "$limit")
smol_run="smollm2-135m+qwen2.5-1.5b"
qwen_run="qwen2.5-0.5b+qwen2.5-1.5b"
"$bin" eval --config "$out/edgeway.toml" --model smollm2-135m --threads "$threads" "${sets[@]}" --run "$smol_run"
# The second edge model reuses the cloud's answers from the first run.
"$bin" eval --config "$out/edgeway.toml" --model qwen2.5-0.5b --threads "$threads" "${sets[@]}" --route edge --run "$qwen_run"

for run in "$smol_run" "$qwen_run"; do
  name=${run%%+*}
  "$bin" calibrate --config "$out/edgeway.toml" --run "$run" --cloud-run "$smol_run" --target 0.95 --dry-run \
    --plot "$out/$name.svg" --json "$out/$name.json" | tee "$out/$name.txt"
done
echo "reports, plots and JSON in $out"

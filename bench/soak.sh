#!/usr/bin/env bash
# Soak: an hour (DURATION) of mixed traffic against `edgeway serve` with a cloud tier that is
# killed every few minutes (FAULT_EVERY), keys with quotas, embeddings and retrieval; the
# server's RSS, open descriptors, threads and query-log size sampled every 10 s, written to
# OUT/soak.csv, plotted to OUT/soak.svg, and printed as a table (end of warm-up against end).
#
# Usage: bench/soak.sh      Env: DURATION (3600), FAULT_EVERY (300), WORKERS (4), OUT (bench/out/soak),
#   SERVE_CONFIG (a config file for the edge server), THEN (a command run after the soak while the
#   server is still up, with EDGEWAY_URL and EDGEWAY_LOG set)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-3600}
fault_every=${FAULT_EVERY:-300}
workers=${WORKERS:-4}
out=${OUT:-bench/out/soak}
mkdir -p "$out"

scripts/setup.sh
cargo build --release
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import httpx" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check "httpx==0.28.1"
bin=target/release/edgeway
$bin model pull smollm2-135m >/dev/null
$bin model pull all-minilm-l6-v2 >/dev/null

data=$(mktemp -d)
trap 'kill $edge_pid 2>/dev/null || true; rm -rf "$data"' EXIT
log="$data/queries.db"
kb="$data/knowledge.db"
$bin ingest crates/rag/tests/fixtures/conveyor_guide.md --collection manuals --knowledge-path "$kb" >/dev/null
key=$($bin keys create soak --log-path "$log")
limited=$($bin keys create limited --rpm 1 --log-path "$log")

cloud_port=18791
edge_port=18792
cloud_cmd="$bin serve --model smollm2-135m --alias cloud --port $cloud_port --threads 1 --no-embeddings --log-path $data/cloud.db"
config_args=()
[ -n "${SERVE_CONFIG:-}" ] && config_args=(--config "$SERVE_CONFIG")
$bin serve "${config_args[@]}" --model smollm2-135m --port "$edge_port" --threads 1 --parallel 2 --log-path "$log" --knowledge-path "$kb" \
  --cloud-url "http://127.0.0.1:$cloud_port/v1" --cloud-model cloud --cloud-timeout 10 >"$out/edgeway.log" 2>&1 &
edge_pid=$!
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$edge_port/health" >/dev/null && break; sleep 1; done

.venv/bin/python bench/soak.py --url "http://127.0.0.1:$edge_port" --pid "$edge_pid" --log "$log" \
  --key "$key" --limited-key "$limited" --cloud-cmd "$cloud_cmd" --duration "$duration" \
  --fault-every "$fault_every" --workers "$workers" --out "$out" | tee "$out/soak.md"
if [ -n "${THEN:-}" ]; then
  EDGEWAY_URL="http://127.0.0.1:$edge_port" EDGEWAY_LOG="$log" bash -c "$THEN"
fi

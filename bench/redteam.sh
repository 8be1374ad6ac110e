#!/usr/bin/env bash
# Red-team benchmark (issue 7): the same attacks against SmolLM2-135M at each
# quantization we can make (Q8_0, Q4_K_M, Q4_0, and the shipped Q4_1), then
# against `edgeway serve` itself with its defences on (injection screen and
# extraction detector set to block), through its HTTP API.
#
# Usage: bench/redteam.sh
# Env:   PER_FAMILY (30 attempts per family), OUT (bench/out/redteam), PORT (8093)
set -euo pipefail
cd "$(dirname "$0")/.."
per_family=${PER_FAMILY:-30}
out=${OUT:-bench/out/redteam}
port=${PORT:-8093}
mkdir -p "$out/models"
out=$(cd "$out" && pwd)

scripts/setup.sh
cargo build --release
bin=target/release/edgeway
"$bin" model pull smollm2-135m
for kind in q8_0 q4_k_m q4_0; do
  [ -f "$out/models/smollm2-$kind.gguf" ] || "$bin" quantize smollm2-135m "$out/models/smollm2-$kind.gguf" --type "$kind"
done

"$bin" redteam --per-family "$per_family" \
  --target "$out/models/smollm2-q8_0.gguf" --target "$out/models/smollm2-q4_k_m.gguf" \
  --target "$out/models/smollm2-q4_0.gguf" --target smollm2-135m \
  --json "$out/quantizations.json" --html "$out/quantizations.html" | tee "$out/quantizations.txt"

# edgeway itself, defences on.
"$bin" serve --model smollm2-135m --port "$port" --no-embeddings --log-path "$out/defended.db" \
  --injection-action block --extraction-action block > "$out/defended-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
"$bin" redteam --per-family "$per_family" --target "http://127.0.0.1:$port/v1" \
  --json "$out/defended.json" --html "$out/defended.html" | tee "$out/defended.txt"
echo "results: $out/*.txt, *.json, *.html"

#!/usr/bin/env bash
# The prompt-injection screen with a local model as judge (`serve --injection-judge`),
# measured through the real server on the corpora scripts/injection-corpus.py builds:
# thresholds per channel from benign training texts, recall and false positives on the
# independent set, with and without the judge (bench/injection_judge.py).
#
# Usage: bench/injection-judge.sh
# Env:   MODEL (qwen2.5-1.5b), CALIBRATION (60 benign training texts per channel),
#        BENIGN (100 independent benign texts per channel; every attack is sent),
#        OUT (bench/out/injection-judge), PORT (8097)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-qwen2.5-1.5b}
out=${OUT:-bench/out/injection-judge}
port=${PORT:-8097}
mkdir -p "$out"

scripts/setup.sh
cargo build --release -p edgeway
bin=target/release/edgeway
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import yaml" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check "pyyaml==6.0.2"
corpus=bench/out/injection/corpus
[ -f "$corpus/independent.jsonl" ] || .venv/bin/python scripts/injection-corpus.py --cache bench/out/injection/packages --out "$corpus"
"$bin" model pull "$model" >/dev/null

rm -f "$out"/judge.db*
"$bin" serve --model "$model" --alias judge --port "$port" --no-embeddings --log-path "$out/judge.db" \
  --injection-action flag --injection-judge judge --injection-judge-threshold 0 > "$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done

.venv/bin/python bench/injection_judge.py "http://127.0.0.1:$port" "$out/judge.db" "$corpus" "$out/scores.jsonl" \
  "${CALIBRATION:-60}" "${BENIGN:-100}" | tee "$out/report.md"

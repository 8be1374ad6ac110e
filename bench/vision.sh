#!/usr/bin/env bash
# Inspection at FP32 and INT8 on the synthetic plate set, in one run, one table:
# image and pixel AUROC (`edgeway vision eval`), model size and load time,
# images/s and latency end to end through HTTP with 1 and 4 clients on this 2-core box
# (`edgeway bench inspect` against `edgeway serve --inspect`), energy per image
# (the query log), and the anchor: the same inspection by ONNX Runtime called
# directly from Python on the same images (bench/vision_anchor.py).
#
#   bench/vision.sh                 # OUT=bench/out/vision, BIN=target/release/edgeway
#   BASE=brick bench/vision.sh      # the brick-texture set instead of plates
#   REQUESTS=800 bench/vision.sh
#   SPIN=1 bench/vision.sh         # serve with --inspect-spin (a box that only inspects)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:-bench/out/vision}"
bin="${BIN:-target/release/edgeway}"
base="${BASE:-plate}"
requests="${REQUESTS:-400}"
mkdir -p "$out"
[ -x "$bin" ] || cargo build --release
scripts/vision-data.sh --install
scripts/vision-tools.sh
python=.venv/bin/python
data="$out/$base"
[ -d "$data/test" ] || scripts/vision-data.sh "$data" --base "$base"
[ -f "$out/lite0.onnx" ] || "$bin" vision convert --out "$out/lite0.onnx"
[ -f "$out/$base.patchcore" ] \
  || "$bin" vision fit --good "$data/train/good" --model "$out/lite0.onnx" --out "$out/$base.patchcore"
[ -f "$out/lite0.int8.onnx" ] \
  || "$bin" vision quantize --images "$data/train/good" --model "$out/lite0.onnx" --out "$out/lite0.int8.onnx"

declare -A backbone=([fp32]="$out/lite0.onnx" [int8]="$out/lite0.int8.onnx")
for precision in fp32 int8; do
  echo "== $precision: accuracy" >&2
  "$bin" vision eval "$data" --model "${backbone[$precision]}" --detector "$out/$base.patchcore" \
    --no-pictures --json "$out/eval-$precision.json" --threads 2 >/dev/null
  echo "== $precision: through HTTP" >&2
  port=$((18000 + RANDOM % 1000))
  rm -f "$out/log-$precision.db"*
  "$bin" serve --port "$port" --no-embeddings --log-path "$out/log-$precision.db" \
    --inspect "$base=$out/$base.patchcore" --inspect-backbone "${backbone[$precision]}" --inspect-threads 2 \
    ${SPIN:+--inspect-spin} \
    2>"$out/serve-$precision.log" &
  server=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/v2/models/$base/ready" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$out/serve-$precision.log" >&2; exit 1; }
    sleep 0.2
  done
  "$bin" bench inspect --port "$port" --images "$data/test" --requests "$requests" --concurrency 4 \
    --json "$out/http-$precision.json"
  "$bin" bench inspect --port "$port" --images "$data/test" --requests "$((requests / 2))" --concurrency 1 \
    --json "$out/http1-$precision.json"
  kill "$server"; wait "$server" 2>/dev/null || true
  echo "== $precision: anchor (ONNX Runtime from Python)" >&2
  "$python" bench/vision_anchor.py "${backbone[$precision]}" "$out/$base.patchcore" "$data/test" 2 "$((requests / 2))" \
    > "$out/anchor-$precision.json"
done
"$python" bench/vision_report.py "$out"

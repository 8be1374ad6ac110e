#!/usr/bin/env bash
# The inspection model's red team, FP32 against INT8, in one run: a score-only
# Square Attack (L∞ ≤ ε, a fixed query budget) on at least 100 defective plates,
# evasion rate per ε with 95 % Wilson intervals, transfer both ways, and JPEG
# re-encoding as a defence (clean cost, replayed, adaptive).
#
#   bench/vision-redteam.sh          # OUT=bench/out/vision-redteam, BIN=target/release/edgeway
#   QUERIES=200 EPSILONS=2,4,8,16 bench/vision-redteam.sh
#   ATTACKER=guided bench/vision-redteam.sh   # the attacker who also holds good parts (redteam-guided.json)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:-bench/out/vision-redteam}"
bin="${BIN:-target/release/edgeway}"
queries="${QUERIES:-100}"
epsilons="${EPSILONS:-2,4,8,16}"
defence="${DEFENCE:-jpeg:75}"
attacker="${ATTACKER:-square}"
report="$out/redteam.json"
[ "$attacker" = square ] || report="$out/redteam-$attacker.json"
mkdir -p "$out"
[ -x "$bin" ] || cargo build --release
scripts/vision-data.sh --install
scripts/vision-tools.sh
data="$out/plate"
[ -d "$data/test" ] || scripts/vision-data.sh "$data" --base plate --test-defective 120
[ -f "$out/lite0.onnx" ] || "$bin" vision convert --out "$out/lite0.onnx"
[ -f "$out/plate.patchcore" ] \
  || "$bin" vision fit --good "$data/train/good" --model "$out/lite0.onnx" --out "$out/plate.patchcore"
[ -f "$out/lite0.int8.onnx" ] \
  || "$bin" vision quantize --images "$data/train/good" --model "$out/lite0.onnx" --out "$out/lite0.int8.onnx"
"$bin" vision redteam "$data" --detector "$out/plate.patchcore" --model "$out/lite0.onnx" \
  --int8 "$out/lite0.int8.onnx" --epsilons "$epsilons" --queries "$queries" --limit 120 \
  --defence "$defence" --attacker "$attacker" --threads 2 --json "$report"
[ "$attacker" = square ] || exit 0
# Heat-map pictures of the test set and the pictures for docs/vision.md.
"$bin" vision eval "$data" --model "$out/lite0.int8.onnx" --detector "$out/plate.patchcore" \
  --pictures "$out/heatmaps" --threads 2 >/dev/null
.venv/bin/python bench/vision_plot.py "$out" docs

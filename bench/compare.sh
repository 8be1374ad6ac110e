#!/usr/bin/env bash
# Quantization workbench (issue 6): every figure in docs/quantization.md.
#
# For each model, produces the quantizations this machine can make from what
# ships (all-MiniLM-L6-v2 ships in FP32; the generative models ship already
# quantized, so their most precise file is the baseline), then runs
# `edgeway compare` on them: size, load time, peak RSS, prompt/generation
# speed, energy per token, perplexity and graded accuracy (generative), cosine
# to FP32 and recall@5 (embedding). Tables, JSON and plots go to $OUT.
#
# Usage: bench/compare.sh [minilm] [smollm2] [gemma3] [qwen]   (default: minilm smollm2 gemma3)
# Env:   LIMIT (50 items per graded set), THREADS (2), QUESTIONS (500), OUT (bench/out/compare)
# Run it on an otherwise idle machine: speed and energy are measured, and a
# second busy process on a 2-core box halves them.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${LIMIT:-50}
threads=${THREADS:-2}
questions=${QUESTIONS:-500}
out=${OUT:-bench/out/compare}
mkdir -p "$out/models"
out=$(cd "$out" && pwd)
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(minilm smollm2 gemma3)

scripts/setup.sh
cargo build --release
bin=target/release/edgeway

# quantize SOURCE NAME TYPE...: writes $out/models/NAME-TYPE.gguf for each type.
quantize() {
  local source=$1 name=$2
  shift 2
  for kind in "$@"; do
    "$bin" quantize "$source" "$out/models/$name-$kind.gguf" --type "$kind" --force
  done
}

compare() {
  local name=$1
  shift
  "$bin" compare "$@" --threads "$threads" --limit "$limit" --questions "$questions" \
    --markdown "$out/$name.md" --json "$out/$name.json" --plot "$out/$name.svg"
}

for model in "${models[@]}"; do
  case $model in
    minilm)
      "$bin" model pull all-minilm-l6-v2
      "$bin" convert all-minilm-l6-v2 "$out/models/minilm-f32.gguf" --type f32 --force
      quantize "$out/models/minilm-f32.gguf" minilm q8_0 q4_k_m q4_0
      compare minilm "$out/models/minilm-f32.gguf" all-minilm-l6-v2 \
        "$out/models/minilm-q8_0.gguf" "$out/models/minilm-q4_k_m.gguf" "$out/models/minilm-q4_0.gguf"
      ;;
    smollm2)
      "$bin" model pull smollm2-135m
      quantize smollm2-135m smollm2 q8_0 q4_k_m q4_0
      compare smollm2 smollm2-135m "$out/models/smollm2-q8_0.gguf" \
        "$out/models/smollm2-q4_k_m.gguf" "$out/models/smollm2-q4_0.gguf" --baseline smollm2-135m
      ;;
    gemma3)
      "$bin" model pull gemma3-270m
      quantize gemma3-270m gemma3 q8_0 q4_0
      compare gemma3 gemma3-270m "$out/models/gemma3-q8_0.gguf" "$out/models/gemma3-q4_0.gguf" \
        --baseline gemma3-270m
      ;;
    qwen)
      "$bin" model pull qwen2.5-0.5b
      quantize qwen2.5-0.5b qwen q8_0 q4_k_m q4_0
      compare qwen qwen2.5-0.5b "$out/models/qwen-q8_0.gguf" "$out/models/qwen-q4_k_m.gguf" \
        "$out/models/qwen-q4_0.gguf" --baseline qwen2.5-0.5b
      ;;
    *) echo "unknown model set: $model (minilm, smollm2, gemma3, qwen)" >&2; exit 2 ;;
  esac
done
echo "results: $out/*.md, *.json, *.svg"

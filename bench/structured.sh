#!/usr/bin/env bash
# Structured output: generation tok/s with a JSON schema (grammar-constrained
# sampling) against free text on the same prompts and model, in one run, and
# the share of answers that parse and match the schema without and with it.
# Usage: bench/structured.sh [MODEL] [ROUNDS]   (default smollm2-135m, 7)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release
model=${1:-smollm2-135m}
target/release/edgeway model pull "$model" >/dev/null
target/release/edgeway bench structured --model "$model" --rounds "${2:-7}"

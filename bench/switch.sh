#!/usr/bin/env bash
# Model switching: edgeway's model pool against llama-cpp-python switching the same GGUF
# files by hand (cold and from the page cache), and the first model's generation speed
# with two models configured against one (target ≥ 0.98×). One run, interleaved rounds;
# prints Markdown tables (see bench/switch.py for what is measured and how).
#
# Usage: bench/switch.sh [SMALL [LARGE]]   (default: smollm2-135m qwen2.5-0.5b)
# Env:   ROUNDS (5), CTX (2048), OUT (bench/out)
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:-smollm2-135m}
large=${2:-qwen2.5-0.5b}
out=${OUT:-bench/out}
mkdir -p "$out"

scripts/setup.sh
cargo build --release
# llama-cpp-python, the anchor, in the project virtualenv (as scripts/test.sh installs it).
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import llama_cpp" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check "llama-cpp-python[server]==0.3.36"

# `model pull` ends its line with the file's path.
path_of() { target/release/edgeway model pull "$1" | tail -1 | sed "s/.*: //"; }
small_path=$(path_of "$small")
large_path=$(path_of "$large")
.venv/bin/python bench/switch.py --edgeway target/release/edgeway --small "$small_path" --large "$large_path" \
  --rounds "${ROUNDS:-5}" --ctx "${CTX:-2048}" --json "$out/switch.json" | tee "$out/switch.md"

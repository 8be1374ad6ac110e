#!/usr/bin/env bash
# Runs each fuzz target for a fixed time (default 60 s each) with cargo-fuzz
# on the nightly toolchain, from seed inputs made here (nothing is committed):
# the first 64 KiB of the test model (a real GGUF header, metadata and
# tensor table) and a few request bodies. Exits non-zero on a crash; the
# crashing input is left in fuzz/artifacts/.
#
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
rustup toolchain list | grep -q nightly || { echo "needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 2; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

data_dir=${EDGEWAY_DATA_DIR:-$HOME/.cache/edgeway}
mkdir -p fuzz/corpus/gguf_metadata fuzz/corpus/http_request
model="$data_dir/models/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] && head -c 65536 "$model" > fuzz/corpus/gguf_metadata/smollm2-head
printf 'GGUF\003\000\000\000' > fuzz/corpus/gguf_metadata/magic
printf '\000{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"logprobs":true,"top_logprobs":2}' \
  > fuzz/corpus/http_request/chat
printf '\001{"prompt":"Once","max_tokens":3,"stop":["."],"echo":true}' > fuzz/corpus/http_request/completion
printf '\002{"input":["a","b"],"encoding_format":"base64"}' > fuzz/corpus/http_request/embeddings

cd fuzz
for target in gguf_metadata http_request; do
  echo "fuzzing $target for $seconds s"
  cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
done
echo "no crashes"

#!/usr/bin/env bash
# Concurrency benchmark: `edgeway serve` against llama.cpp's own `llama-server` on the same
# model, threads, slots and context, driven by the same client (bench/concurrency.py) at 1, 4,
# 8 and 16 concurrent streams: aggregate generated tokens/s, time to first token p50/p99 and
# inter-token latency p99, side by side, with the ratio's 95 % interval over rounds.
#
# llama-server is built from the llama.cpp inside the llama-cpp-python sdist on PyPI (see below
# for why not from the crate's copy), without its web page.
#
# Usage: bench/concurrency.sh [MODEL]   (default: qwen2.5-0.5b)
# Env:   THREADS (2), SLOTS (4), CTX (8192), LEVELS (1,4,8,16), ROUNDS (3), MAX_TOKENS (64), OUT (bench/out),
#        MODEL_FILE (the GGUF, for a model not named here), BUILD_ONLY (build both servers, run nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-qwen2.5-0.5b}
threads=${THREADS:-2}
slots=${SLOTS:-4}
ctx=${CTX:-8192}
levels=${LEVELS:-1,4,8,16}
rounds=${ROUNDS:-3}
max_tokens=${MAX_TOKENS:-64}
out=${OUT:-bench/out}
mkdir -p "$out"

scripts/setup.sh
cargo build --release
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import httpx" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check "httpx==0.28.1"

# --- llama-server -------------------------------------------------------------
# The llama-cpp-sys-2 crate ships llama.cpp's library and common/ but not the server's sources,
# and the nearest ones on PyPI (the llama.cpp inside the llama-cpp-python 0.3.36 sdist) are for a
# newer llama.cpp: its server does not compile against the crate's common/ and mtmd (tried:
# missing `fs_open_ifstream`, a changed `mtmd_memory_usage`). So llama-server is built from that
# sdist's whole llama.cpp tree, with the same flags as edgeway's build; the two servers run
# llama.cpp versions a few weeks apart, which the table's single-stream row shows.
build=target/llama-server
if [ ! -x "$build/bin/llama-server" ]; then
  sdist_dir=$(mktemp -d)
  python3 -m pip download --no-deps --no-binary :all: --disable-pip-version-check -q -d "$sdist_dir" "llama-cpp-python==0.3.36"
  tar -xzf "$sdist_dir"/llama_cpp_python-*.tar.gz -C "$sdist_dir"
  work=target/llama-server-src
  rm -rf "$work" && cp -r "$(echo "$sdist_dir"/llama_cpp_python-*/vendor/llama.cpp)" "$work"
  rm -rf "$sdist_dir" "$build"
  # No AMX kernels, as in .cargo/config.toml: they crash on AMX CPUs.
  no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  CFLAGS="$no_amx" CXXFLAGS="$no_amx" cmake -S "$work" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >/dev/null
  cmake --build "$build" --target llama-server -j "$(nproc)" >/dev/null
fi

[ -z "${BUILD_ONLY:-}" ] || exit 0

# --- both servers, started side by side, measured one at a time -------------
target/release/edgeway model pull "$model" >/dev/null
case "$model" in
  smollm2-135m) file=SmolLM2-135M-Instruct.Q4_1.gguf ;;
  qwen2.5-0.5b) file=qwen2.5-coder-0.5b-instruct.gguf ;;
  *) echo "concurrency.sh: give the GGUF file of $model as MODEL_FILE" >&2; file= ;;
esac
gguf=${MODEL_FILE:-${EDGEWAY_DATA_DIR:-$HOME/.cache/edgeway}/models/$file}
[ -f "$gguf" ] || { echo "concurrency.sh: no model file at $gguf" >&2; exit 1; }
edge_port=18781
llama_port=18782
target/release/edgeway serve --model "$gguf" --alias bench --port "$edge_port" --threads "$threads" \
  --parallel "$slots" --ctx-size "$ctx" --stream-interval-ms 0 --no-embeddings --log-path "$out/concurrency-queries.db" \
  >"$out/concurrency-edgeway.log" 2>&1 &
edge_pid=$!
"$build/bin/llama-server" -m "$gguf" --alias bench --port "$llama_port" -t "$threads" -tb "$threads" \
  -np "$slots" -c "$ctx" --no-webui >"$out/concurrency-llama-server.log" 2>&1 &
llama_pid=$!
trap 'kill $edge_pid $llama_pid 2>/dev/null || true' EXIT
for url in "http://127.0.0.1:$edge_port/health" "http://127.0.0.1:$llama_port/health"; do
  for _ in $(seq 300); do curl -sf "$url" >/dev/null && break; sleep 1; done
done
.venv/bin/python bench/concurrency.py --server "edgeway=http://127.0.0.1:$edge_port" \
  --server "llama-server=http://127.0.0.1:$llama_port" --levels "$levels" --rounds "$rounds" \
  --max-tokens "$max_tokens" --json "$out/concurrency-$model.json" | tee "$out/concurrency-$model.md"

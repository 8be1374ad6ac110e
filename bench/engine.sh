#!/usr/bin/env bash
# Engine benchmark: edgeway through its HTTP API against llama.cpp's own
# llama-bench, same model, same threads, interleaved rounds, one table per model.
#
# llama-bench comes from the llama.cpp sources edgeway links (vendored in the
# llama-cpp-sys-2 crate). That crate ships the library sources but not the
# llama-bench tool itself, so the tool's two source files are taken from the
# llama.cpp tree inside the llama-cpp-python sdist on PyPI and built against
# the vendored library, so both sides run the very same llama.cpp.
#
# Usage: bench/engine.sh [MODEL...]   (default: smollm2-135m gemma3-270m)
# Env:   THREADS (2), REPS (7), OUT (bench/out)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
reps=${REPS:-7}
out=${OUT:-bench/out}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2-135m gemma3-270m)
mkdir -p "$out"

scripts/setup.sh
cargo build --release

# --- llama-bench from the vendored llama.cpp -------------------------------
llama_src=$(cargo metadata --format-version 1 | python3 -c '
import json, sys, os
meta = json.load(sys.stdin)
pkg = next(p for p in meta["packages"] if p["name"] == "llama-cpp-sys-2")
print(os.path.join(os.path.dirname(pkg["manifest_path"]), "llama.cpp"))')
work=target/llama-bench-src
build=target/llama-bench
if [ ! -x "$build/bin/llama-bench" ]; then
  sdist_dir=$(mktemp -d)
  python3 -m pip download --no-deps --no-binary :all: --disable-pip-version-check -q -d "$sdist_dir" "llama-cpp-python==0.3.36"
  tar -xzf "$sdist_dir"/llama_cpp_python-*.tar.gz -C "$sdist_dir"
  rm -rf "$work" && cp -r "$llama_src" "$work"
  cp "$sdist_dir"/llama_cpp_python-*/vendor/llama.cpp/tools/llama-bench/* "$work/tools/llama-bench/"
  echo 'add_subdirectory(llama-bench)' > "$work/tools/CMakeLists.txt"
  mkdir -p "$work/app" && : > "$work/app/CMakeLists.txt"
  rm -rf "$sdist_dir"
  cmake -S "$work" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON >/dev/null
  cmake --build "$build" --target llama-bench -j "$(nproc)" >/dev/null
fi

# --- one table per model ----------------------------------------------------
for model in "${models[@]}"; do
  target/release/edgeway model pull "$model" >/dev/null
  target/release/edgeway bench engine --model "$model" --threads "$threads" --repetitions "$reps" \
    --llama-bench "$build/bin/llama-bench" --json "$out/engine-$model.json" | tee "$out/engine-$model.md"
  echo
done

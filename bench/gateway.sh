#!/usr/bin/env bash
# Gateway overhead: latency edgeway adds to a cloud call, p50 and p99, against
# calling the same upstream directly, in one run.
# Usage: bench/gateway.sh [REQUESTS]   (default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release
target/release/edgeway model pull smollm2-135m >/dev/null
target/release/edgeway bench gateway --requests "${1:-5000}"

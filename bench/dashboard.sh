#!/usr/bin/env bash
# Dashboard load time on a big query log: ROWS (1,000,000) requests spread over the last week
# (edge, cloud and refused; several models, domains and keys), written straight into a query
# log that edgeway created, then `edgeway serve` on it and GET /dashboard and
# /dashboard/api/overview for each window, REPEAT (5) times; prints the median and the worst
# (after one first load, timed apart, that folds the imported rows into the rollups).
#
# Usage: bench/dashboard.sh      Env: ROWS, REPEAT, OUT (bench/out/dashboard)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-1000000}
repeat=${REPEAT:-5}
out=${OUT:-bench/out/dashboard}
mkdir -p "$out"
cargo build --release -p edgeway
bin=target/release/edgeway
$bin model pull smollm2-135m >/dev/null
log="$out/queries.db"
rm -f "$log" "$log-wal" "$log-shm"
$bin keys list --log-path "$log" >/dev/null 2>&1   # creates and migrates the schema
python3 bench/dashboard_rows.py "$log" "$rows"

port=18795
$bin serve --model smollm2-135m --port "$port" --threads 1 --no-embeddings --log-path "$log" >"$out/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done

# The rows were written behind edgeway's back, so the first read folds them into the rollups
# (the log writer starts on that at startup too); timed on its own.
first=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/dashboard/api/overview?window=week")
echo "first load after start (folds the $rows imported rows into the rollups): ${first} s"
echo
echo "| request | rows in the log | median (ms) | worst (ms) |"
echo "|---|---|---|---|"
for path in "/dashboard?window=hour" "/dashboard?window=day" "/dashboard?window=week" "/dashboard/api/overview?window=week"; do
  times=()
  for _ in $(seq "$repeat"); do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port$path")")
  done
  python3 - "$path" "$rows" "${times[@]}" <<'PY'
import statistics, sys
path, rows, times = sys.argv[1], int(sys.argv[2]), [1000 * float(t) for t in sys.argv[3:]]
print(f"| `GET {path}` | {rows:,} | {statistics.median(times):.0f} | {max(times):.0f} |")
PY
done

#!/usr/bin/env bash
# The fleet: rows/s into a central PostgreSQL from BOXES simulated boxes shipping ROWS logged
# requests each, and the latency shipping adds to a box (shipping on, off, and to a hung center, in one run).
# Starts its own throwaway PostgreSQL cluster on a loopback port (as the postgres user when run
# as root: initdb refuses root) and removes it afterwards.
#
# Usage: bench/fleet.sh      Env: BOXES (4), ROWS (25000), BATCH (500), REQUESTS (1000)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test   # postgresql
cargo build --release -p edgeway
bin=$PWD/target/release/edgeway
$bin model pull smollm2-135m >/dev/null

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner=()
if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$dir"; as_owner=(runuser -u postgres --); fi
"${as_owner[@]}" "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
trap '"${as_owner[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
# Durable as a center would run it (fsync on), loopback only.
"${as_owner[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null

$bin bench fleet --url "postgres://postgres@127.0.0.1:$port/postgres" --boxes "${BOXES:-4}" --rows "${ROWS:-25000}" \
  --batch "${BATCH:-500}" --requests "${REQUESTS:-1000}"

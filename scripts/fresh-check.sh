#!/usr/bin/env bash
# Proves the README's two commands on a fresh machine: builds a minimal
# Debian 12 root with debootstrap (no compiler, no cmake, no libclang, no
# python3, no curl, no CA certificates), copies this working tree into it
# (tracked and untracked files, not ignored ones: no target/, no .venv), and
# runs, inside a chroot with an empty cargo home and an empty model cache:
#
#   1. ./scripts/setup.sh && cargo run --release -- serve
#      then, from outside, waits for /health and asks one chat question:
#      the time from the start to that first answer is what a new user waits;
#   2. ./scripts/test.sh
#
# The Rust toolchain is the one thing a fresh machine is assumed to have (it
# cannot come from a package registry): this machine's is bind-mounted
# read-only. Everything else must be installed by the scripts themselves.
# The machine's own network setup (resolv.conf, local CA certificates, proxy
# variables) is carried in too. Needs root (debootstrap, chroot, mounts) and
# the Debian mirror that this machine's apt already uses. Takes 30-60 minutes on 2 cores.
#
# Usage: scripts/fresh-check.sh [--serve-only] [--keep]
#   --serve-only  stop after the first answer (skip the test suite)
#   --keep        leave the root in $FRESH_ROOT for inspection
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${FRESH_ROOT:-/var/tmp/edgeway-fresh}
port=8080
serve_only=false keep=false
for arg in "$@"; do
  case $arg in
    --serve-only) serve_only=true ;;
    --keep) keep=true ;;
    *) echo "usage: $0 [--serve-only] [--keep]" >&2; exit 2 ;;
  esac
done

say() { echo "fresh-check: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "error: needs root (debootstrap, chroot, mounts)"; exit 1; }
command -v debootstrap >/dev/null || {
  say "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
toolchain=$(dirname "$(dirname "$(rustup which rustc 2>/dev/null || command -v rustc)")")
[ -x "$toolchain/bin/cargo" ] || { say "error: no Rust toolchain found next to rustc ($toolchain)"; exit 1; }
if curl -s -o /dev/null "http://127.0.0.1:$port/health"; then
  say "error: something already listens on port $port; stop it first"
  exit 1
fi
# The mirror this machine's apt uses (deb822 sources or the one-line format).
mirror=$(grep -hoP '^URIs:\s*\K\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 || true)
[ -n "$mirror" ] || mirror=$(grep -hoP '^deb\s+(\[[^]]*\]\s+)?\K\S+' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 || true)
[ -n "$mirror" ] || { say "error: cannot find this machine's Debian mirror in /etc/apt"; exit 1; }

cleanup() {
  [ -n "${serve_pid:-}" ] && kill -- "-$serve_pid" 2>/dev/null || true
  for mount in "$root/opt/rust" "$root/dev/pts" "$root/dev" "$root/proc" "$root/sys"; do
    mountpoint -q "$mount" 2>/dev/null && umount -l "$mount"
  done
  $keep || rm -rf "$root"
}
trap cleanup EXIT

rm -rf "$root"
t0=$(date +%s)
say "debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
  || { tail -n 20 "$root.debootstrap.log" >&2; say "error: debootstrap failed"; exit 1; }
say "fresh root ready in $(($(date +%s) - t0)) s: $(chroot "$root" dpkg-query -W -f='${binary:Package}\n' | wc -l) packages"
for tool in cmake cc c++ python3 curl; do
  chroot "$root" sh -c "command -v $tool" >/dev/null && say "warning: the fresh root already has $tool"
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This machine's own network trust (a local CA that its egress presents):
# part of the machine, not of any package, so the fresh root gets it too;
# the ca-certificates package that setup.sh installs then adds it to the bundle.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
mkdir -p "$root/opt/rust" "$root/src"
mount --bind "$toolchain" "$root/opt/rust" && mount -o remount,bind,ro "$root/opt/rust"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
(cd "$repo" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$root/src"

in_root() {
  chroot "$root" env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} ${no_proxy:+no_proxy=$no_proxy} \
    PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /src && $1"
}

say "1/2: ./scripts/setup.sh && cargo run --release -- serve"
t1=$(date +%s)
setsid bash -c "$(declare -f in_root); root=$root; in_root './scripts/setup.sh && cargo run --release -- serve'" \
  >"$root/serve.log" 2>&1 &
serve_pid=$!
answer=""
while kill -0 "$serve_pid" 2>/dev/null; do
  if curl -sf -o /dev/null "http://127.0.0.1:$port/health"; then
    answer=$(curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
      -d '{"messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":24}' || true)
    [ -n "$answer" ] && break
  fi
  sleep 2
done
t2=$(date +%s)
grep '^setup:' "$root/serve.log" >&2 || true
if [ -z "$answer" ]; then
  tail -n 40 "$root/serve.log" >&2
  say "FAILED: serve exited before answering (log above)"
  exit 1
fi
say "first answer $((t2 - t1)) s after the README's first command started: $answer"
kill -- "-$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
serve_pid=""
$serve_only && { say "done (serve only)"; exit 0; }

say "2/2: ./scripts/test.sh"
t3=$(date +%s)
if in_root './scripts/test.sh' >"$root/test.log" 2>&1; then status=passed; else status=FAILED; fi
t4=$(date +%s)
grep -E '^(setup:|test result:)' "$root/test.log" | sort | uniq -c >&2 || true
[ "$status" = passed ] || tail -n 60 "$root/test.log" >&2
say "test suite $status in $((t4 - t3)) s"
say "summary: fresh root $((t1 - t0)) s, first answer $((t2 - t1)) s, tests $((t4 - t3)) s ($status)"
[ "$status" = passed ]

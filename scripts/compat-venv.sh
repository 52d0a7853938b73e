#!/usr/bin/env bash
# Build, or verify, the venv that runs the real ultralytics/hub-sdk clients in the compat tests.
#
#   scripts/compat-venv.sh            # -> .venv-compat (next to this repo's pyproject.toml)
#   COMPAT_VENV=/path scripts/compat-venv.sh
#
# Idempotent: a stamp file records the pinned versions; when it matches, nothing is done. An
# existing venv that already has the pins is only verified and stamped, never rebuilt. Needs no
# stdin (CI=true is fine). Torch is CPU-only in use: the tests pass device=cpu.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COMPAT_VENV:-$ROOT/.venv-compat}"
BASE_PYTHON="${COMPAT_BASE_PYTHON:-python3}"

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
ULTRALYTICS_VERSION=8.3.253
HUB_SDK_VERSION=0.0.25

STAMP="$VENV/.trainhub-stamp"
WANT="torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION ultralytics==$ULTRALYTICS_VERSION hub-sdk==$HUB_SDK_VERSION"

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Importing ultralytics writes a settings file; keep it out of the user's home while verifying.
VERIFY_CONFIG="$(mktemp -d)"
trap 'rm -rf "$VERIFY_CONFIG"' EXIT

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    echo "compat venv up to date: $VENV ($WANT)"
    exit 0
fi

# Exit 0 when the venv imports everything the compat tests use, at the pinned versions.
verify() {
    [[ -x "$VENV/bin/python" ]] || return 1
    YOLO_CONFIG_DIR="$VERIFY_CONFIG" YOLO_OFFLINE=true "$VENV/bin/python" - "$WANT" <<'EOF'
import importlib.metadata as md
import sys

import cv2  # noqa: F401  (ultralytics needs OpenCV at import)
import hub_sdk  # noqa: F401
import torchvision  # noqa: F401
import ultralytics  # noqa: F401

wrong = []
for pin in sys.argv[1].split():
    name, version = pin.split("==")
    found = md.version(name).split("+")[0]
    if found != version:
        wrong.append(f"{name} {found} (want {version})")
if wrong:
    sys.exit("compat venv has " + ", ".join(wrong))
EOF
}

if verify >/dev/null 2>&1; then
    echo "compat venv at $VENV already satisfies the pins; stamping it"
    echo "$WANT" > "$STAMP"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating $VENV with $BASE_PYTHON"
    "$BASE_PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --no-input --quiet)
"${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" "ultralytics==$ULTRALYTICS_VERSION" "hub-sdk==$HUB_SDK_VERSION"

# ultralytics pulls opencv-python, whose cv2 needs libGL; fall back to the headless build of the
# same release on machines without it.
if ! "$VENV/bin/python" -c "import cv2" 2>/dev/null; then
    OPENCV_VERSION="$("$VENV/bin/python" -c \
        'import importlib.metadata as md; print(md.version("opencv-python"))')"
    echo "cv2 does not import (no libGL?): switching to opencv-python-headless==$OPENCV_VERSION"
    "$VENV/bin/python" -m pip uninstall --yes --quiet opencv-python
    "${PIP[@]}" "opencv-python-headless==$OPENCV_VERSION"
fi

verify
echo "$WANT" > "$STAMP"
echo "compat venv ready: $VENV ($WANT)"

#!/usr/bin/env bash
# Build, or verify, the venvs that run trainhub's integrations with the real frameworks.
#
#   scripts/ml-venvs.sh     # after scripts/compat-venv.sh (it runs that first anyway)
#
# - .venv-compat (ultralytics 8.3.253 + hub-sdk, built by compat-venv.sh) gains lightning,
#   transformers (+ accelerate, which its Trainer needs), trainhub's base dependencies and
#   trainhub itself (editable, --no-deps).
#   Every package already in the venv is held at its installed version while doing so, so the
#   compat pins (torch, ultralytics, hub-sdk, numpy, ...) cannot move.
# - .venv-ml84 gets torch + torchvision (the releases on this machine's disk) and
#   ultralytics 8.4.x, which has no HUB support, plus trainhub the same way.
#
# Idempotent: each venv has a stamp file naming what it holds; when it matches, nothing is done.
# Needs no stdin (CI=true is fine). Override the locations with COMPAT_VENV / ML84_VENV.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPAT="${COMPAT_VENV:-$ROOT/.venv-compat}"
ML84="${ML84_VENV:-$ROOT/.venv-ml84}"
BASE_PYTHON="${COMPAT_BASE_PYTHON:-python3}"

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
ULTRALYTICS84_VERSION=8.4.190
LIGHTNING_VERSION=2.6.6
TRANSFORMERS_VERSION=5.23.0
ACCELERATE_VERSION=1.15.0 # transformers.Trainer needs it with torch

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

# trainhub's own runtime dependencies, read from pyproject.toml (no second list to keep in step).
mapfile -t TRAINHUB_DEPS < <("$BASE_PYTHON" - "$ROOT/pyproject.toml" <<'EOF'
import sys
import tomllib

with open(sys.argv[1], "rb") as fh:
    print("\n".join(tomllib.load(fh)["project"]["dependencies"]))
EOF
)
DEPS_TAG="$(printf '%s ' "${TRAINHUB_DEPS[@]}")"

# Exit 0 when `$1`'s python imports the modules `$3...` at the pins `$2` and finds trainhub here.
verify() {
    local venv="$1" pins="$2"
    shift 2
    [[ -x "$venv/bin/python" ]] || return 1
    mkdir -p "$SCRATCH/yolo"
    YOLO_CONFIG_DIR="$SCRATCH/yolo" YOLO_OFFLINE=true HF_HUB_OFFLINE=1 \
        "$venv/bin/python" - "$ROOT" "$pins" "$@" <<'EOF'
import importlib
import importlib.metadata as md
import sys
from pathlib import Path

root, pins, modules = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
for module in ["trainhub", *modules]:
    importlib.import_module(module)
import trainhub

if not Path(trainhub.__file__).resolve().is_relative_to(root / "src"):
    sys.exit(f"trainhub is imported from {trainhub.__file__}, not from {root}/src")
wrong = []
for pin in pins.split():
    name, version = pin.split("==")
    found = md.version(name).split("+")[0]
    if found != version:
        wrong.append(f"{name} {found} (want {version})")
if wrong:
    sys.exit("venv has " + ", ".join(wrong))
EOF
}

# Install trainhub (editable, no dependencies) and its base dependencies into `$1`, holding
# every package already there at its version (constraints from `pip freeze`).
install_trainhub() {
    local venv="$1"
    shift
    local frozen="$SCRATCH/frozen-$(basename "$venv").txt"
    "$venv/bin/python" -m pip freeze --exclude-editable | grep -v -e '^-e' -e ' @ ' >"$frozen" || true
    "$venv/bin/python" -m pip install --no-input --quiet -c "$frozen" "$@" "${TRAINHUB_DEPS[@]}"
    "$venv/bin/python" -m pip install --no-input --quiet --no-deps -e "$ROOT"
}

# --- .venv-compat: lightning + transformers next to ultralytics 8.3 -----------------------------
bash "$ROOT/scripts/compat-venv.sh"
COMPAT_PINS="$(cat "$COMPAT/.trainhub-stamp")"
COMPAT_WANT="$COMPAT_PINS lightning==$LIGHTNING_VERSION transformers==$TRANSFORMERS_VERSION"
COMPAT_WANT+=" accelerate==$ACCELERATE_VERSION"
COMPAT_STAMP="$COMPAT/.trainhub-ml-stamp"
COMPAT_TAG="$COMPAT_WANT | $DEPS_TAG| $ROOT"
if [[ -f "$COMPAT_STAMP" && "$(cat "$COMPAT_STAMP")" == "$COMPAT_TAG" ]]; then
    echo "ml packages in $COMPAT up to date ($COMPAT_WANT)"
elif verify "$COMPAT" "$COMPAT_WANT" ultralytics lightning transformers accelerate >/dev/null 2>&1; then
    echo "$COMPAT already has the ml packages; stamping it"
    echo "$COMPAT_TAG" >"$COMPAT_STAMP"
else
    echo "adding lightning, transformers and trainhub to $COMPAT"
    install_trainhub "$COMPAT" "lightning==$LIGHTNING_VERSION" "transformers==$TRANSFORMERS_VERSION" \
        "accelerate==$ACCELERATE_VERSION"
    verify "$COMPAT" "$COMPAT_WANT" ultralytics lightning transformers accelerate
    echo "$COMPAT_TAG" >"$COMPAT_STAMP"
fi

# --- .venv-ml84: ultralytics 8.4 (no HUB support) ------------------------------------------------
ML84_WANT="torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION ultralytics==$ULTRALYTICS84_VERSION"
ML84_WANT+=" aiohttp==3.14.5" # platform: data=ul:// datasets need aiohttp (installed by install_trainhub below)
ML84_STAMP="$ML84/.trainhub-stamp"
ML84_TAG="$ML84_WANT | $DEPS_TAG| $ROOT"
if [[ -f "$ML84_STAMP" && "$(cat "$ML84_STAMP")" == "$ML84_TAG" ]]; then
    echo "ml84 venv up to date: $ML84 ($ML84_WANT)"
    exit 0
fi
if verify "$ML84" "$ML84_WANT" cv2 ultralytics >/dev/null 2>&1; then
    echo "ml84 venv at $ML84 already satisfies the pins; stamping it"
    echo "$ML84_TAG" >"$ML84_STAMP"
    exit 0
fi
if [[ ! -x "$ML84/bin/python" ]]; then
    echo "creating $ML84 with $BASE_PYTHON"
    "$BASE_PYTHON" -m venv "$ML84"
fi
echo '*' >"$ML84/.gitignore" # git never sees the venv, whatever the repo's .gitignore says
PIP=("$ML84/bin/python" -m pip install --no-input --quiet)
"${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" "ultralytics==$ULTRALYTICS84_VERSION"
# As in compat-venv.sh: cv2 needs libGL; use the headless build of the same release without it.
if ! "$ML84/bin/python" -c "import cv2" 2>/dev/null; then
    OPENCV_VERSION="$("$ML84/bin/python" -c \
        'import importlib.metadata as md; print(md.version("opencv-python"))')"
    echo "cv2 does not import (no libGL?): switching to opencv-python-headless==$OPENCV_VERSION"
    "$ML84/bin/python" -m pip uninstall --yes --quiet opencv-python
    "${PIP[@]}" "opencv-python-headless==$OPENCV_VERSION"
fi
install_trainhub "$ML84" "aiohttp==3.14.5" # platform: data=ul:// datasets need aiohttp
verify "$ML84" "$ML84_WANT" cv2 ultralytics
echo "$ML84_TAG" >"$ML84_STAMP"
echo "ml84 venv ready: $ML84 ($ML84_WANT)"

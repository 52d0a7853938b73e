#!/usr/bin/env bash
# Build, or verify, the venvs that the checks and the tests run in.
#
#   scripts/venvs.sh dev     # the base and .venv (make check, lint, bench)
#   scripts/venvs.sh         # the base, .venv and the framework venvs (make test)
#
# One base venv holds torch and torchvision; every other venv is a thin layer on top of it:
#
#   .venv-torch    torch 2.14.1 + torchvision 0.29.1 (the releases on this machine's disk) and
#                  their dependencies, and what the ultralytics layers share (opencv, polars,
#                  scipy, matplotlib). The torch wheel is the CUDA build: it does not import
#                  without its nvidia-* libraries (3.2 GB), even on a CPU.
#   .venv          + trainhub[dev]: the server, the test tools, torch for `trainhub demo`
#   .venv-compat   + ultralytics 8.3.253, hub-sdk 0.0.25, lightning, transformers, accelerate
#   .venv-ml84     + ultralytics 8.4.190 (no HUB support) and aiohttp (for data=ul:// datasets)
#   .venv-export   + trainhub[export]: the worker of exports and predictions (ultralytics 8.3,
#                  onnx, onnxslim, onnxruntime, huey)
#
# A layer sees the base through a .pth file, after its own site-packages, and holds trainhub
# (editable, from this checkout). Every install into a layer is constrained to the versions in
# the base, so pip takes the base's packages as installed and never puts a second torch (or
# numpy, ...) into a layer; `verify` checks that nothing in a layer shadows the base. Another
# layer is one more `layer` line at the end.
#
# Idempotent: each venv has a stamp file naming what it holds; when it matches, nothing is done.
# A venv that is not a layer yet (say, a framework venv with its own torch) is rebuilt as one.
# Needs no stdin (CI=true is fine). Locations: TORCH_VENV, DEV_VENV, COMPAT_VENV, ML84_VENV,
# EXPORT_VENV.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${TORCH_VENV:-$ROOT/.venv-torch}"
DEV="${DEV_VENV:-$ROOT/.venv}"
COMPAT="${COMPAT_VENV:-$ROOT/.venv-compat}"
ML84="${ML84_VENV:-$ROOT/.venv-ml84}"
EXPORT="${EXPORT_VENV:-$ROOT/.venv-export}"
BASE_PYTHON="${BASE_PYTHON:-python3}"

# The base also holds the heavy dependencies that the three ultralytics layers share (0.7 GB that
# each layer held a copy of); python-dateutil stays below 3, which botocore (in .venv) requires.
BASE_PINS=(torch==2.14.1 torchvision==0.29.1 opencv-python==5.1.0.95 polars==2.1.0 scipy==1.17.1
    matplotlib==3.11.2 python-dateutil==2.9.0.post0)
COMPAT_PINS=(ultralytics==8.3.253 hub-sdk==0.0.25 lightning==2.6.6 transformers==5.23.0
    accelerate==1.15.0) # transformers.Trainer needs accelerate with torch
ML84_PINS=(ultralytics==8.4.190 aiohttp==3.14.5)
EXPORT_PINS=(ultralytics==8.3.253 onnx==1.23.2 onnxslim==0.1.98 onnxruntime==1.32.0)

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
exec 9<"${BASH_SOURCE[0]}" # one build at a time (pytest workers may call this together)
flock 9
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

# verify VENV "MODULES" REQUIREMENT...: exit 0 when VENV imports MODULES, has every `name==version`
# of the requirements, and, in a layer, imports trainhub from this checkout, torch from the base
# and finds every distribution in one place only (the layer or the base).
verify() {
    local venv="$1" modules="$2"
    shift 2
    mkdir -p "$SCRATCH/yolo"
    YOLO_CONFIG_DIR="$SCRATCH/yolo" YOLO_OFFLINE=true HF_HUB_OFFLINE=1 \
        "$venv/bin/python" - "$ROOT" "$BASE" "$venv" "$modules" "$@" <<'EOF'
import importlib
import importlib.metadata as md
import sys
from pathlib import Path

root, base, venv = (Path(arg).resolve() for arg in sys.argv[1:4])
modules, requirements = sys.argv[4].split(), sys.argv[5:]
for module in modules:
    importlib.import_module(module)
wrong = []
for pin in (r for r in requirements if "==" in r):
    name, version = pin.split("==")
    found = md.version(name).split("+")[0]
    if found != version:
        wrong.append(f"{name} {found} (want {version})")
if venv != base:
    import torch
    import trainhub

    if not Path(trainhub.__file__).resolve().is_relative_to(root / "src"):
        wrong.append(f"trainhub from {trainhub.__file__}, not from {root}/src")
    if not Path(torch.__file__).resolve().is_relative_to(base):
        wrong.append(f"torch from {torch.__file__}, not from the base {base}")
    seen: dict[str, str] = {}
    for dist in md.distributions():
        name, where = dist.metadata["Name"].lower().replace("_", "-"), str(dist.locate_file(""))
        if name not in ("pip", "setuptools") and seen.setdefault(name, where) != where:
            wrong.append(f"{name} in both {seen[name]} and {where}")
if wrong:
    sys.exit(f"{venv} has " + ", ".join(wrong))
EOF
}

# ultralytics pulls opencv-python, whose cv2 needs libGL; on machines without it, switch `$1` to
# the headless build of the same release.
headless_opencv_if_needed() {
    local python="$1/bin/python" version
    "$python" -m pip show --quiet opencv-python >/dev/null 2>&1 || return 0
    "$python" -c "import cv2" 2>/dev/null && return 0
    version="$("$python" -c 'import importlib.metadata as md; print(md.version("opencv-python"))')"
    echo "cv2 does not import (no libGL?): switching to opencv-python-headless==$version"
    "$python" -m pip uninstall --yes --quiet opencv-python
    # (the base's own swap comes before its constraints exist; a layer's is already satisfied when
    # the base swapped)
    local constraints=()
    [[ -f "$BASE/constraints.txt" && "$1" != "$BASE" ]] && constraints=(-c "$BASE/constraints.txt")
    "$python" -m pip install --quiet "${constraints[@]}" "opencv-python-headless==$version"
}

site_packages() {
    "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

# --- the base: torch + torchvision ------------------------------------------------------------
BASE_TAG="${BASE_PINS[*]} | $("$BASE_PYTHON" --version)"
if [[ -f "$BASE/.trainhub-stamp" && "$(cat "$BASE/.trainhub-stamp")" == "$BASE_TAG" ]]; then
    echo "torch base up to date: $BASE (${BASE_PINS[*]})"
else
    [[ -x "$BASE/bin/python" ]] || "$BASE_PYTHON" -m venv "$BASE"
    echo '*' >"$BASE/.gitignore" # git never sees a venv, whatever the repo's .gitignore says
    "$BASE/bin/python" -m pip install --quiet "${BASE_PINS[@]}"
    headless_opencv_if_needed "$BASE"
    verify "$BASE" "torch torchvision cv2 polars scipy matplotlib" "${BASE_PINS[@]}"
    # What every layer is held to: the base's exact versions (pip itself is each layer's own).
    "$BASE/bin/python" -m pip freeze --all | grep -v -e '^pip==' -e '^setuptools==' \
        >"$BASE/constraints.txt"
    echo "$BASE_TAG" >"$BASE/.trainhub-stamp"
    echo "torch base ready: $BASE (${BASE_PINS[*]})"
fi

PTH=trainhub-torch-base.pth # in a layer's site-packages: the path of the base's

# layer VENV "MODULES" TRAINHUB REQUIREMENT...: VENV = the base + TRAINHUB (this checkout, as
# `$ROOT` or `$ROOT[extra]`, editable) + REQUIREMENTS; verify that it imports MODULES.
layer() {
    local venv="$1" modules="$2" trainhub="$3"
    shift 3
    local tag
    tag="$trainhub $* | $(sha256sum "$ROOT/pyproject.toml" | cut -c1-16) | $BASE_TAG"
    if [[ -f "$venv/.trainhub-stamp" && "$(cat "$venv/.trainhub-stamp")" == "$tag" ]]; then
        echo "layer up to date: $venv ${*:+($*)}"
        return 0
    fi
    if [[ -d "$venv" ]] && ! compgen -G "$venv/lib/python3*/site-packages/$PTH" >/dev/null; then
        echo "$venv is not a layer on $BASE yet: rebuilding it"
        rm -rf "$venv"
    elif [[ -f "$venv/.trainhub-stamp" && "$(cat "$venv/.trainhub-stamp")" != *"| $BASE_TAG" ]]; then
        # what it holds may now be in the base as well: start again rather than shadow the base
        echo "$venv was built on another base: rebuilding it"
        rm -rf "$venv"
    fi
    [[ -x "$venv/bin/python" ]] || "$BASE_PYTHON" -m venv "$venv"
    echo '*' >"$venv/.gitignore"
    site_packages "$BASE" >"$(site_packages "$venv")/$PTH"
    "$venv/bin/python" -m pip install --quiet -c "$BASE/constraints.txt" -e "$trainhub" "$@"
    headless_opencv_if_needed "$venv"
    verify "$venv" "$modules" "$@"
    echo "$tag" >"$venv/.trainhub-stamp"
    echo "layer ready: $venv ${*:+($*)}"
}

layer "$DEV" "trainhub.server.app playwright moto" "$ROOT[dev]"
if [[ "${1:-}" == "dev" ]]; then
    exit 0
fi
layer "$COMPAT" "cv2 hub_sdk ultralytics lightning transformers accelerate" "$ROOT" "${COMPAT_PINS[@]}"
layer "$ML84" "cv2 ultralytics aiohttp" "$ROOT" "${ML84_PINS[@]}"
layer "$EXPORT" "cv2 ultralytics onnxruntime huey" "$ROOT[export]" "${EXPORT_PINS[@]}"

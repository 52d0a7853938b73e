#!/usr/bin/env bash
# Build, or verify, the venv the worker tests run `trainhub worker` in (the `export` extra).
#
#   scripts/export-venv.sh            # -> .venv-export, a thin layer on .venv-compat
#   EXPORT_VENV=/path BASE_VENV=/path scripts/export-venv.sh
#
# The layer sees the base venv's packages (torch, torchvision, ultralytics, ...) through a .pth
# file after its own site-packages, and adds what the base lacks: onnx, onnxslim, onnxruntime,
# huey and trainhub[export] (editable, from this checkout). Every install is constrained to the
# base's versions, so pip takes the base's packages as installed and never puts a second torch
# (or numpy) into the layer. Idempotent: a stamp file names what the layer holds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${BASE_VENV:-$ROOT/.venv-compat}"
VENV="${EXPORT_VENV:-$ROOT/.venv-export}"
BASE_PYTHON="${BASE_PYTHON:-python3}"
PINS=(onnx==1.23.2 onnxslim==0.1.98 onnxruntime==1.32.0)
PTH=trainhub-torch-base.pth

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
[[ -x "$BASE/bin/python" ]] || "$ROOT/scripts/compat-venv.sh"

site_packages() {
    "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

TAG="${PINS[*]} | $(sha256sum "$ROOT/pyproject.toml" | cut -c1-16) | $(cat "$BASE/.trainhub-stamp" 2>/dev/null)"
if [[ -f "$VENV/.trainhub-stamp" && "$(cat "$VENV/.trainhub-stamp")" == "$TAG" ]]; then
    echo "export venv up to date: $VENV"
    exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$BASE_PYTHON" -m venv "$VENV"
echo '*' >"$VENV/.gitignore" # git never sees a venv, whatever the repo's .gitignore says
site_packages "$BASE" >"$(site_packages "$VENV")/$PTH"

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
# the base's exact versions, less pip, setuptools and trainhub itself (editable, from elsewhere)
"$BASE/bin/python" -m pip freeze --all |
    grep -v -e '^pip==' -e '^setuptools==' -e '^-e ' -e ' @ ' -e '^trainhub==' >"$SCRATCH/constraints.txt"
"$VENV/bin/python" -m pip install --quiet -c "$SCRATCH/constraints.txt" -e "$ROOT[export]" "${PINS[@]}"

mkdir -p "$SCRATCH/yolo"
YOLO_CONFIG_DIR="$SCRATCH/yolo" YOLO_OFFLINE=true "$VENV/bin/python" - "$ROOT" "$BASE" <<'EOF'
import sys
from pathlib import Path

import huey, onnx, onnxruntime, onnxslim, torch, trainhub, ultralytics  # noqa: E401, F401

root, base = (Path(arg).resolve() for arg in sys.argv[1:3])
if not Path(trainhub.__file__).resolve().is_relative_to(root / "src"):
    sys.exit(f"trainhub imported from {trainhub.__file__}, not from {root}/src")
if not Path(torch.__file__).resolve().is_relative_to(base):
    sys.exit(f"torch imported from {torch.__file__}, not from the base {base}")
EOF
echo "$TAG" >"$VENV/.trainhub-stamp"
echo "export venv ready: $VENV (on $BASE)"

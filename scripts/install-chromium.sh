#!/usr/bin/env bash
# Install Debian's chromium for the dashboard's end-to-end tests and the first-paint benchmark.
# Idempotent: does nothing when chromium is already on PATH. Runs non-interactively (CI=true, root).
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium.sh: chromium is missing and this is not root; run: apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
command -v chromium

#!/usr/bin/env bash
# Install what the benchmarks drive the server with: wrk (Debian). Idempotent; non-interactive.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-bench-tools.sh: wrk is missing and this is not root; run: apt-get install wrk" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends wrk
command -v wrk

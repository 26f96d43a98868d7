#!/usr/bin/env bash
# Installs RL Studio into .venv (created if missing), with the test tools. Safe to run again.
#   RL_STUDIO_TORCH: the torch requirement (default: torch==2.13.0, a CPU wheel on the dev machines;
#                    set it to e.g. "torch" on a CUDA workstation to get pip's default build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# Qt needs a few system libraries even offscreen; install them where we can (Debian/Ubuntu as root).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=""
  for pkg in libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    echo "installing system libraries for Qt:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null \
      || echo "warning: could not install$missing; the GUI may not start" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
# setuptools >= 77 reads the SPDX license string; the wheel test builds without isolation.
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77" >/dev/null
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "${RL_STUDIO_TORCH:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[test]"
echo "RL Studio installed in .venv"

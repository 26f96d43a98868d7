#!/usr/bin/env bash
# Lint, type-check and test, exactly as CI does. Run scripts/install.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
# Tests spread over the CPUs (at most 4 workers: each may start an engine process).
# RL_STUDIO_TEST_WORKERS=0 runs them in this one process (pytest's own output, pdb).
.venv/bin/pytest -n "${RL_STUDIO_TEST_WORKERS:-auto}" --maxprocesses 4 "$@"

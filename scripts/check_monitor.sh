#!/usr/bin/env bash
# The monitor's slow checks: the full honest demo (150 steps) on three seeds raises no alert, plus the
# proxy-reward and short honest runs CI runs too. A few minutes on a laptop CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false RL_STUDIO_SLOW_TESTS=1
.venv/bin/pytest tests/engine/test_monitor_runs.py "$@"

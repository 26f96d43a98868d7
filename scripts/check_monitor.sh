#!/usr/bin/env bash
# The monitor on real demo runs: proxy rewards raise their alerts, the honest demo raises none on three
# seeds. Part of the test command too; this runs just these, e.g. after changing a detector's default.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
.venv/bin/pytest tests/engine/test_monitor_runs.py "$@"

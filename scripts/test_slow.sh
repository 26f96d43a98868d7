#!/usr/bin/env bash
# The slow tests (@pytest.mark.slow: minutes each) that the default run (scripts/test.sh) leaves out.
# A later -m replaces pyproject's `-m 'not slow'`. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen TOKENIZERS_PARALLELISM=false
.venv/bin/pytest -m slow "$@"

#!/usr/bin/env bash
# The engine on one CUDA GPU, in under 8 minutes, with nothing downloaded:
#   the demo, then randomly initialised Qwen2.5-0.5B- and 1.5B-shaped models (benchmarks/gpu_models.py:
#   config values written out, demo tokenizer), each in bf16 and, with bitsandbytes installed, in 4 bits.
# For each: seconds per step, completion tokens per second, peak GPU memory (torch.cuda.max_memory_allocated,
# recorded by the engine as memory/peak_gb) and engine / bare-TRL wall time (benchmarks/engine_overhead.py).
#
#   bash benchmarks/gpu_check.sh            # PYTHON=... to choose the interpreter
#   python benchmarks/gpu_models.py --dry-run   # the same Python parts, tiny and on CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
STEPS=${STEPS:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
RESULTS="$TMP/results.jsonl"

"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA GPU is visible to PyTorch')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
if "$PY" -c "import bitsandbytes" 2>/dev/null; then QUANT=1; else QUANT=0; echo "bitsandbytes is not installed: the 4-bit runs are skipped"; fi

bench() {  # LABEL, then engine_overhead.py arguments
    local label=$1
    shift
    echo "== $label" >&2
    local started=$SECONDS
    if timeout 170 "$PY" benchmarks/engine_overhead.py --device cuda --steps "$STEPS" --repeats 1 --json "$@" \
        > "$TMP/out.txt" 2> "$TMP/err.txt"; then
        tail -n 1 "$TMP/out.txt" | "$PY" -c "import json, sys; d = json.loads(sys.stdin.read()); d['label'] = '$label'; print(json.dumps(d))" >> "$RESULTS"
        echo "   done in $((SECONDS - started)) s" >&2
    else
        echo "   FAILED after $((SECONDS - started)) s; the end of its log:" >&2
        tail -n 15 "$TMP/err.txt" >&2
        echo "{\"label\": \"$label\", \"failed\": true}" >> "$RESULTS"
    fi
}

bench "demo" --prompts-per-step 8 --num-generations 8
for shape in qwen2.5-0.5b qwen2.5-1.5b; do
    "$PY" benchmarks/gpu_models.py build "$shape" "$TMP/$shape" > /dev/null
    sized=(--model "$TMP/$shape" --prompts-per-step 8 --num-generations 8 --max-completion-length 96)
    bench "$shape bf16" "${sized[@]}"
    if [ "$QUANT" = 1 ]; then bench "$shape 4-bit" "${sized[@]}" --load-in-4bit; fi
    rm -rf "${TMP:?}/$shape"
done

"$PY" - "$RESULTS" <<'PYEOF'
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"\n{'run':<20} {'s/step':>8} {'tokens/s':>9} {'peak GB':>8} {'estimate GB':>12} {'engine/bare':>12}")
for r in rows:
    if r.get("failed"):
        print(f"{r['label']:<20} {'failed':>8}")
        continue
    print(
        f"{r['label']:<20} {r['engine_s_per_step']:>8.2f} {r['tokens_per_s']:>9.0f} {r['peak_gb']:>8.2f} "
        f"{r['estimate_gb']:>12.2f} "
        f"{r['engine_over_bare']:>12.3f}"
    )
sys.exit(1 if any(r.get("failed") for r in rows) else 0)
PYEOF

#!/usr/bin/env bash
# The GPU run: on a machine with one CUDA GPU and this repository, in under 8 minutes (hard time limits per part):
#   1. installs what is missing (pytest, hypothesis; torch with CUDA only if torch cannot see a GPU; memoria-pytorch
#      1.0.0 into .reference/ for the reference rows),
#   2. runs the CUDA tests (pytest -m cuda),
#   3. times the paper's four settings (benchmarks/settings.py) for memoria-pytorch 1.0.0, ours (default), ours with
#      static_shapes=True, and ours static + torch.compile + CUDA graph (benchmarks/run.py, benchmarks/whole_step.py),
#   4. writes one JSON (OUT, default outputs/benchmarks/gpu.json) and prints its table.
# Usage: bash benchmarks/gpu.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-outputs/benchmarks/gpu.json}"
PYTHON="${PYTHON:-python}"
mkdir -p "$(dirname "$OUT")"
started=$(date +%s)

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "== torch cannot see a CUDA GPU: installing torch from PyPI"
    "$PYTHON" -m pip install -q torch || { echo "could not install torch"; exit 1; }
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA GPU"; exit 1; }
fi
"$PYTHON" -c "import pytest, hypothesis" 2>/dev/null || "$PYTHON" -m pip install -q pytest hypothesis
"$PYTHON" -m tools.oracle 1.0.0 >/dev/null || echo "== memoria-pytorch 1.0.0 could not be installed: its rows will fail"
"$PYTHON" -c "import torch; print('==', torch.__version__, torch.cuda.get_device_name(0))"

echo "== CUDA tests"
TESTS_LOG="$(dirname "$OUT")/gpu-tests.log"
timeout 60 "$PYTHON" -m pytest -m cuda -q -p no:cacheprovider tests/test_memoria.py tests/test_static_shapes.py \
    tests/benchmarks/test_whole_step.py 2>&1 | tee "$TESTS_LOG"
tests_status=${PIPESTATUS[0]}

echo "== benchmarks"
timeout 400 "$PYTHON" -m benchmarks.run --device cuda --settings lm,sorting,enwik8,classification \
    --impl reference,ours,ours-static,ours-static-cudagraph --warmup auto --max-warmup 50 --max-warmup-seconds 30 \
    --steps 20 --max-timed-seconds 10 --timeout 150 --json "$OUT"
run_status=$?

"$PYTHON" - "$OUT" "$TESTS_LOG" "$tests_status" "$run_status" "$started" <<'EOF'
import json, sys, time
from pathlib import Path

out, log, tests_status, run_status, started = sys.argv[1:]
path = Path(out)
report = json.loads(path.read_text()) if path.exists() else {"machine": {}, "results": [], "comparisons": {}}
lines = Path(log).read_text().strip().splitlines() if Path(log).exists() else []
report["cuda_tests"] = {"exit_status": int(tests_status), "summary": lines[-1] if lines else "no output"}
report["benchmark_exit_status"] = int(run_status)
report["script_seconds"] = time.time() - float(started)
path.write_text(json.dumps(report, indent=1))
EOF
echo
"$PYTHON" -m benchmarks.report "$OUT"
echo
echo "CUDA tests: $(tail -n 1 "$TESTS_LOG") (exit $tests_status); benchmarks exit $run_status;" \
    "$(( $(date +%s) - started )) s in all; wrote $OUT"

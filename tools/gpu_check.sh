#!/usr/bin/env bash
# GPU check for logscan, on a GPU machine with no network.
#
# Needs: numpy, numba, numba-cuda, cupy, pytest, hypothesis (already installed);
# runs the checkout in place (PYTHONPATH=<repo root>), installs nothing.
#
#   tools/gpu_check.sh               benchmark table, then the GPU tests
#   tools/gpu_check.sh --quick       the same, benchmark on the three target shapes only
#   tools/gpu_check.sh --sanitize    also every kernel under compute-sanitizer memcheck and racecheck
#   tools/gpu_check.sh --charlm=FILE [--charlm-steps=N]
#                                    also train the charlm task on the GPU (CuPy) on the text FILE
#                                    (tinyshakespeare.txt; the machine has no network, so carry it
#                                    along) for N steps (default 1000: the CPU run overfit after ~1000),
#                                    at most 5 minutes
#   tools/gpu_check.sh --budget=S    stop every stage after S seconds in all (default 420): GPU time is
#                                    lent by the minute, and a stage cut short still leaves its log and
#                                    the stages before it (the benchmark comes first, its rows saved
#                                    shape by shape)
#   --no-bench, --no-tests           leave out those stages (a second call for --charlm, say)
#
# Logs go to ${LOGSCAN_GPU_LOGS:-$TMPDIR/logscan_gpu_check}/. A short summary table is printed last.
# The interpreter is $PYTHON, else python3 (the GPU image's), else python.
# Exit status: 0 when the tests pass (and the sanitizers are clean, when asked) within the budget.

set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a stage cut short by its time limit still shows what it printed
unset NUMBA_ENABLE_CUDASIM
PY=${PYTHON:-$(command -v python3 || command -v python || echo python)}  # the GPU image names its Python python3
LOGS=${LOGSCAN_GPU_LOGS:-${TMPDIR:-/tmp}/logscan_gpu_check}
mkdir -p "$LOGS"
rm -f "$LOGS/bench.json"  # the summary must not show an earlier run's rows

SANITIZE=0
QUICK=()
CHARLM=""
CHARLM_STEPS=1000
BUDGET=420
RUN_BENCH=1
RUN_TESTS=1
for arg in "$@"; do
  case "$arg" in
    --sanitize) SANITIZE=1 ;;
    --quick) QUICK=(--quick) ;;
    --charlm=*) CHARLM=${arg#--charlm=} ;;
    --charlm-steps=*) CHARLM_STEPS=${arg#--charlm-steps=} ;;
    --budget=*) BUDGET=${arg#--budget=} ;;
    --no-bench) RUN_BENCH=0 ;;
    --no-tests) RUN_TESTS=0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $arg" >&2; exit 2 ;;
  esac
done
case "$BUDGET" in
  ''|*[!0-9]*) echo "gpu_check: --budget takes whole seconds, got '$BUDGET'" >&2; exit 2 ;;
esac
DEADLINE=$((SECONDS + BUDGET))

# limited CMD...: CMD under `timeout` with what is left of the budget (rc 124 when cut short)
limited() {
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -le 5 ]; then
    echo "gpu_check: budget spent, not run: $*" >&2
    return 124
  fi
  timeout --signal=INT --kill-after=10 "$left" "$@"
}

echo "== machine"
nvidia-smi -L 2>/dev/null || echo "(nvidia-smi not found)"
"$PY" - <<'EOF' 2>&1 | tee "$LOGS/versions.txt"
import importlib
for name in ("numpy", "numba", "numba_cuda", "cupy", "pytest", "hypothesis"):
    try:
        print(f"{name:12s}", getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as error:
        print(f"{name:12s} MISSING ({type(error).__name__})")
from numba import cuda
print("cuda available:", cuda.is_available())
if cuda.is_available():
    d = cuda.get_current_device()
    print("device:", d.name, "cc", d.compute_capability)
EOF

BENCH_RC="not run"
if [ "$RUN_BENCH" = 1 ]; then
  echo "== benchmark (every GPU backend x method x shape, float32)"
  limited "$PY" tools/gpu_bench.py "${QUICK[@]}" --json "$LOGS/bench.json" 2>&1 | tee "$LOGS/bench.txt"
  BENCH_RC=${PIPESTATUS[0]}
fi

TESTS_RC=0
TESTS_LINE="not run (--no-tests)"
if [ "$RUN_TESTS" = 1 ]; then
  echo "== GPU tests (pytest -m gpu)"
  limited "$PY" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --import-mode=importlib -rs tests/ \
    2>&1 | tee "$LOGS/tests.txt"
  TESTS_RC=${PIPESTATUS[0]}
  TESTS_LINE=$(tail -n 1 "$LOGS/tests.txt")
  [ "$TESTS_RC" = 124 ] && TESTS_LINE="cut short by the budget; last line: $TESTS_LINE"
fi

SANITIZE_SUMMARY=()
SANITIZE_RC=0
if [ "$SANITIZE" = 1 ]; then
  SAN=$(command -v compute-sanitizer || true)
  for candidate in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [ -z "$SAN" ] && [ -x "$candidate" ] && SAN=$candidate
  done
  if [ -z "$SAN" ]; then
    SANITIZE_SUMMARY+=("sanitizer   compute-sanitizer not found: NOT RUN")
    SANITIZE_RC=1
  else
    for tool in memcheck racecheck; do
      echo "== compute-sanitizer --tool $tool"
      # NUMBA_CUDA_DEBUGINFO would give line numbers but changes the code; keep the shipped kernels.
      limited "$SAN" --tool "$tool" --error-exitcode 99 --print-limit 20 \
        "$PY" tools/gpu_bench.py --sanitize-run 2>&1 | tee "$LOGS/sanitize-$tool.txt"
      rc=${PIPESTATUS[0]}
      summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOGS/sanitize-$tool.txt" | tail -n 1)
      SANITIZE_SUMMARY+=("$(printf '%-11s %s (rc %s)' "$tool" "${summary:-no summary line}" "$rc")")
      [ "$rc" = 0 ] || SANITIZE_RC=1
    done
  fi
fi

CHARLM_SUMMARY=()
if [ -n "$CHARLM" ]; then
  echo "== charlm on the GPU ($CHARLM_STEPS steps)"
  # capped at 5 minutes: a device session has little time, and the schedule follows the cap
  limited "$PY" -m logscan train --task charlm --device gpu --text "$CHARLM" --steps "$CHARLM_STEPS" --max-minutes 5 \
    --no-progress 2>&1 | tee "$LOGS/charlm.txt"
  rc=${PIPESTATUS[0]}
  line=$(grep -E "^held-out loss" "$LOGS/charlm.txt" | tail -n 1)
  CHARLM_SUMMARY+=("$(printf '%-11s %s (rc %s; target <= 1.55 nats/char)' "charlm" "${line:-no result}" "$rc")")
fi

echo
echo "================ logscan GPU check: summary ================"
grep -E "^device:" "$LOGS/versions.txt" || echo "device: none"
printf '%-11s %s (rc %s)\n' "tests" "$TESTS_LINE" "$TESTS_RC"
if [ -s "$LOGS/bench.json" ]; then
  "$PY" - "$LOGS/bench.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
print(f"{'backend':<11} {'auto method':<12} {'dir':<8} {'shape':<16} {'frac copy':>9} {'vs cumsum':>9}  target")
for r in rows:
    if not r["auto"] or r["target"] is None:
        continue
    ok = r["frac_copy"] >= r["target"] and not (r["vs_cumsum"] <= 1)
    print(f"{r['backend']:<11} {r['method']:<12} {r['direction']:<8} {'x'.join(map(str, r['shape'])):<16} "
          f"{r['frac_copy']:9.2f} {r['vs_cumsum']:9.2f}  {'PASS' if ok else 'FAIL'} (>= {r['target']:.2f})")
EOF
else
  echo "bench       no results (rc $BENCH_RC)"
fi
[ "$BENCH_RC" = 124 ] && echo "bench       cut short by the budget: the rows above (if any) are the shapes it finished"
for line in "${SANITIZE_SUMMARY[@]}" "${CHARLM_SUMMARY[@]}"; do echo "$line"; done
echo "logs: $LOGS ($SECONDS s of a $BUDGET s budget)"
[ "$TESTS_RC" = 0 ] && [ "$SANITIZE_RC" = 0 ]

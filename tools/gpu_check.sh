#!/usr/bin/env bash
# GPU check for logscan, on a GPU machine with no network.
#
# Needs: numpy, numba, numba-cuda, cupy, pytest, hypothesis (already installed);
# runs the checkout in place (PYTHONPATH=<repo root>), installs nothing.
#
#   tools/gpu_check.sh               benchmark table, then the GPU tests (pytest -m gpu), then the contract
#                                    suite on each GPU backend that runs (LOGSCAN_TEST_BACKENDS=<backend>)
#   tools/gpu_check.sh --quick       the same, benchmark on the three target shapes only
#   tools/gpu_check.sh --no-bench --no-tests --sanitize --budget=S
#                                    every kernel under compute-sanitizer memcheck and racecheck; run it as
#                                    a call of its own: it comes after the other stages, whose budget it shares
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
# Logs go to ${LOGSCAN_GPU_LOGS:-$TMPDIR/logscan_gpu_check}/ (CuPy's kernel cache too). A short summary
# table is printed last.
# The interpreter is $PYTHON, else python3 (the GPU image's), else python.
# Exit status: 0 when the GPU tests and the contract suites pass (and the sanitizers are clean, when
# asked) within the budget;
# without a GPU every stage skips, and the status is 0.

set -u
CALLER_DIR=$PWD  # relative paths given (--charlm, LOGSCAN_GPU_LOGS) are the caller's
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a stage cut short by its time limit still shows what it printed
unset NUMBA_ENABLE_CUDASIM
PY=${PYTHON:-$(command -v python3 || command -v python || echo python)}  # the GPU image names its Python python3

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
    --charlm=*) CHARLM=${arg#--charlm=}; case "$CHARLM" in /*) ;; *) CHARLM="$CALLER_DIR/$CHARLM" ;; esac ;;
    --charlm-steps=*) CHARLM_STEPS=${arg#--charlm-steps=} ;;
    --budget=*) BUDGET=${arg#--budget=} ;;
    --no-bench) RUN_BENCH=0 ;;
    --no-tests) RUN_TESTS=0 ;;
    -h|--help) sed -n '2,/^$/p' "$ROOT/tools/gpu_check.sh"; exit 0 ;;
    *) echo "gpu_check: unknown argument $arg" >&2; exit 2 ;;
  esac
done
case "$BUDGET" in
  ''|*[!0-9]*) echo "gpu_check: --budget takes whole seconds, got '$BUDGET'" >&2; exit 2 ;;
esac
DEADLINE=$((SECONDS + BUDGET))

LOGS=${LOGSCAN_GPU_LOGS:-${TMPDIR:-/tmp}/logscan_gpu_check}
case "$LOGS" in /*) ;; *) LOGS="$CALLER_DIR/$LOGS" ;; esac
mkdir -p "$LOGS" || { echo "gpu_check: cannot create the log folder $LOGS" >&2; exit 2; }
[ -n "${LOGSCAN_GPU_LOGS:-}" ] || echo "gpu_check: LOGSCAN_GPU_LOGS is unset; logs go to $LOGS"
rm -f "$LOGS/bench.json" "$LOGS/bench.json.partial"  # the summary must not show an earlier run's rows
export CUPY_CACHE_DIR="$LOGS/cupy_cache"  # not ~/.cupy: the home folder may not be writable, or kept

# limited CMD...: CMD under `timeout` with what is left of the budget (rc 124 when cut short)
limited() {
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -le 5 ]; then
    echo "gpu_check: budget spent, not run: $*" >&2
    return 124
  fi
  timeout --signal=INT --kill-after=10 "$left" "$@"
}

# pytest_line LOG RC: the last line of a pytest run (its passed/failed counts), saying when it was cut short
pytest_line() {
  local line
  line=$(tail -n 1 "$1")
  [ "$2" = 124 ] && line="cut short by the budget; last line: $line"
  echo "${line:-no output}"
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
HAVE_GPU=0
grep -q "^cuda available: True" "$LOGS/versions.txt" && HAVE_GPU=1

BENCH_RC="not run"
if [ "$RUN_BENCH" = 1 ]; then
  echo "== benchmark (every GPU backend x method x shape, float32)"
  # ${A[@]+"${A[@]}"}: an empty array under set -u is an error in bash < 4.4
  limited "$PY" tools/gpu_bench.py ${QUICK[@]+"${QUICK[@]}"} --json "$LOGS/bench.json" 2>&1 | tee "$LOGS/bench.txt"
  BENCH_RC=${PIPESTATUS[0]}
fi

TESTS_RC=0
TESTS_LINE="not run (--no-tests)"
if [ "$RUN_TESTS" = 1 ]; then
  echo "== GPU tests (pytest -m gpu)"
  limited "$PY" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --import-mode=importlib -rs tests/ \
    2>&1 | tee "$LOGS/tests.txt"
  TESTS_RC=${PIPESTATUS[0]}
  TESTS_LINE=$(pytest_line "$LOGS/tests.txt" "$TESTS_RC")
fi

# the contract suite on NumPy arrays copied to each GPU backend and back (tests/conftest.py)
CONTRACT_SUMMARY=()
CONTRACT_RC=0
if [ "$RUN_TESTS" = 1 ]; then
  for backend in cupy numba_cuda; do  # cupy first: the default GPU backend, and the issue asks it of cupy
    limited "$PY" -c 'import sys, logscan; sys.exit(sys.argv[1] not in logscan.available_backends())' "$backend"
    rc=$?
    if [ "$rc" = 124 ]; then
      CONTRACT_SUMMARY+=("$(printf '%-11s %s: not run, budget spent (rc 124)' "contract" "$backend")")
      CONTRACT_RC=1
      continue
    elif [ "$rc" != 0 ]; then
      CONTRACT_SUMMARY+=("$(printf '%-11s %s: not run (it cannot run here)' "contract" "$backend")")
      continue
    fi
    echo "== contract suite on $backend"
    limited env LOGSCAN_TEST_BACKENDS="$backend" "$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
      --import-mode=importlib tests/test_contract.py tests/test_special_values.py tests/test_backward_out.py \
      2>&1 | tee "$LOGS/contract-$backend.txt"
    rc=${PIPESTATUS[0]}
    CONTRACT_SUMMARY+=("$(printf '%-11s %s: %s (rc %s)' "contract" "$backend" \
      "$(pytest_line "$LOGS/contract-$backend.txt" "$rc")" "$rc")")
    [ "$rc" = 0 ] || CONTRACT_RC=1
  done
fi

SANITIZE_SUMMARY=()
SANITIZE_RC=0
if [ "$SANITIZE" = 1 ] && [ "$HAVE_GPU" = 0 ]; then
  SANITIZE_SUMMARY+=("sanitizer   no GPU here: not run")
elif [ "$SANITIZE" = 1 ]; then
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
for line in ${CONTRACT_SUMMARY[@]+"${CONTRACT_SUMMARY[@]}"}; do echo "$line"; done
if [ "$RUN_BENCH" = 0 ]; then
  echo "bench       not run (--no-bench)"
elif [ -s "$LOGS/bench.json" ]; then
  # the verdicts of tools/gpu_bench.py itself (forward: copy fraction, cumsum, two-pass; backward: copy fraction)
  "$PY" tools/gpu_bench.py --summary "$LOGS/bench.json" || echo "bench       summary failed: see $LOGS/bench.txt"
else
  echo "bench       no results (rc $BENCH_RC)"
fi
[ "$BENCH_RC" = 124 ] && echo "bench       cut short by the budget: the rows above (if any) are the shapes it finished"
for line in ${SANITIZE_SUMMARY[@]+"${SANITIZE_SUMMARY[@]}"} ${CHARLM_SUMMARY[@]+"${CHARLM_SUMMARY[@]}"}; do
  echo "$line"
done
echo "logs: $LOGS ($SECONDS s of a $BUDGET s budget)"
[ "$TESTS_RC" = 0 ] && [ "$CONTRACT_RC" = 0 ] && [ "$SANITIZE_RC" = 0 ]

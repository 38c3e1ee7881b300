#!/usr/bin/env bash
# CI smoke test of the asv suites: `asv check`, then every suite once on tiny shapes
# (LOGSCAN_ASV_QUICK=1) against the working tree, saving nothing. Fails when a suite
# cannot be imported or a benchmark errors (skips -- NotImplementedError in setup -- are fine).
# About a minute on 2 cores. Needs asv (pip install 'logscan[bench]').
#
#   tools/asv_smoke.sh            # all suites
#   tools/asv_smoke.sh -b LogScan # extra arguments go to `asv run`
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

command -v asv >/dev/null || { echo "asv_smoke: asv is not installed (pip install 'logscan[bench]')" >&2; exit 1; }

# asv drops PYTHONPATH in the processes it starts; ASV_PYTHONPATH is passed on instead.
export ASV_PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export LOGSCAN_ASV_QUICK=1
# asv refuses to run without a machine description; record this one once (in ~/.asv-machine.json).
[ -f "${HOME}/.asv-machine.json" ] || asv machine --yes >/dev/null

asv check --python=same
# --strict is not in asv 0.6's `run`; it exits 2 by itself when a benchmark fails.
asv run --python=same --quick --dry-run --show-stderr "$@"
echo "asv_smoke: suites imported and ran on tiny shapes"

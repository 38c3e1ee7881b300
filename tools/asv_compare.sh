#!/usr/bin/env bash
# Compare two commits with asv before merging performance work:
#
#   tools/asv_compare.sh BASE HEAD [--factor F] [asv continuous arguments, e.g. -b LogScan]
#   tools/asv_compare.sh main asv --factor 1.25 -b "LogScan.time_forward"
#
# Builds both commits in virtualenvs (.asv/env), runs the suites on each, prints the
# benchmarks that changed by more than the factor (default 1.2: this 2-core machine is
# noisy), and exits 1 when any got slower (or failed) beyond it, 0 otherwise.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ $# -lt 2 ]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi
base="$1"; head="$2"; shift 2
factor="${ASV_FACTOR:-1.2}"
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --factor|-f) factor="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

command -v asv >/dev/null || { echo "asv_compare: asv is not installed (pip install 'logscan[bench]')" >&2; exit 1; }
[ -f "${HOME}/.asv-machine.json" ] || asv machine --yes >/dev/null
base_hash="$(git rev-parse --verify "$base^{commit}")"
head_hash="$(git rev-parse --verify "$head^{commit}")"

unset PYTHONPATH ASV_PYTHONPATH
# `asv continuous` returns non-zero when a benchmark got slower by more than the factor.
if asv continuous --factor "$factor" --show-stderr "${args[@]}" "$base_hash" "$head_hash"; then
    echo "asv_compare: no regression beyond a factor of $factor ($base -> $head)"
else
    status=$?
    echo "asv_compare: REGRESSION beyond a factor of $factor, or a failed run ($base -> $head)" >&2
    exit "$status"
fi

#!/usr/bin/env bash
# Benchmark history: run the asv suites over the last N commits of main (or a range),
# each commit built and installed in its own virtualenv under .asv/env, then publish
# the HTML report to .asv/html (`asv preview` serves it on localhost).
#
#   tools/asv_history.sh                  # last 10 commits of main
#   tools/asv_history.sh -n 30            # last 30 commits of main
#   tools/asv_history.sh v0.1..main       # a git range (anything `git rev-list` takes)
#   tools/asv_history.sh -n 5 -- -b LogScan --quick   # after --: extra arguments for `asv run`
#
# Commits already measured on this machine are skipped (--skip-existing-commits),
# so re-running after new merges only measures the new ones. The suites come from
# the working tree's benchmarks/, the code from each commit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

count=10
range=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n) count="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        --) shift; break ;;
        *) range="$1"; shift ;;
    esac
done

command -v asv >/dev/null || { echo "asv_history: asv is not installed (pip install 'logscan[bench]')" >&2; exit 1; }
[ -f "${HOME}/.asv-machine.json" ] || asv machine --yes >/dev/null

hashes="$(mktemp)"
trap 'rm -f "$hashes"' EXIT
if [ -n "$range" ]; then
    git rev-list "$range" > "$hashes"
else
    git rev-list --max-count="$count" main > "$hashes"
fi
echo "asv_history: $(wc -l < "$hashes") commit(s) to measure"

# Built environments must import the installed commit, never this checkout.
unset PYTHONPATH ASV_PYTHONPATH
status=0
asv run --skip-existing-commits --show-stderr "HASHFILE:$hashes" "$@" || status=$?
asv publish
echo "asv_history: report in $root/.asv/html/index.html (serve it with: asv preview)"
exit "$status"

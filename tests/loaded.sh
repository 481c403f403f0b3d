#!/usr/bin/env bash
# Runs a built test suite while every CPU is kept busy: one `yes >/dev/null` per CPU
# (LOAD_HOGS overrides the count) at normal priority, and the tests, with the daemons
# they start, at nice 10 (LOAD_NICE overrides it: 0 competes as an equal, 19 starves
# the tests), so that whatever they do with the CPU takes several times as long as on
# a quiet machine. A test that waits a fixed time for something to happen, or asserts
# how long something took, fails here; one that waits on the daemon's observable state
# only gets slower.
#   bash tests/loaded.sh BUILD_DIR [ctest arguments, e.g. -j2 -L integration]
# The hogs are killed (by pid) however the run ends. Exit status: ctest's.
set -euo pipefail
build=${1:?usage: bash tests/loaded.sh BUILD_DIR [ctest arguments]}
shift
hogs=()
stop_hogs() {
  local pid
  for pid in "${hogs[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${hogs[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_hogs EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
n=${LOAD_HOGS:-$(nproc)}
niceness=${LOAD_NICE:-10}
for ((i = 0; i < n; i++)); do
  yes >/dev/null &
  hogs+=("$!")
done
echo "== $n CPU hogs (pids ${hogs[*]}); nice -n $niceness ctest --test-dir $build $*"
start=$SECONDS
rc=0
nice -n "$niceness" ctest --test-dir "$build" --output-on-failure "$@" || rc=$?
echo "== under load: ctest exit status $rc after $((SECONDS - start)) s"
exit "$rc"

#!/usr/bin/env bash
# Runs a built test suite while every CPU is kept busy: one `yes >/dev/null` per CPU
# (LOAD_HOGS overrides the count) at normal priority, and the tests, with the daemons
# they start, at nice 19 (LOAD_NICE overrides it; 0 competes as an equal), so that
# they get a CPU only when the hogs leave it. At equal priority Linux's scheduler
# favours a task that wakes from sleep, which hides most timing assumptions; at nice
# 19 a test that waits a fixed time for something to happen, or asserts how long
# something took, fails, while one that waits on the daemon's observable state only
# gets slower (about 2x for the release build, 6x under ASan).
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
niceness=${LOAD_NICE:-19}
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

#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for SECONDS (default
# 60) from the seed corpus, with the dictionaries. Any crash, leak, sanitizer report or
# broken invariant fails the run. Prints executions and coverage per target.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
CC=clang cmake -S . -B build/fuzz -DPF_FUZZ=ON -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/fuzz -j"$(nproc)" --target fuzz_http fuzz_conn fuzz_config >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in http conn config; do
  dict=tests/fuzz/http.dict
  [ "$t" = config ] && dict=tests/fuzz/config.dict
  mkdir -p "$work/$t"
  cp tests/fuzz/corpus/$t/* "$work/$t/"
  log="$work/$t.log"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      build/fuzz/tests/fuzz/fuzz_$t "$work/$t" -dict="$dict" -max_total_time="$secs" \
      -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/" >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz_$t: FAILED"
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'cov: [0-9]*' | awk '{print $2}')
  ft=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'ft: [0-9]*' | awk '{print $2}')
  echo "fuzz_$t: ${secs}s, ${execs:-?} executions, coverage ${cov:-?} edges, ${ft:-?} features, corpus $(ls "$work/$t" | wc -l) inputs, no crash"
done

#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang in build-fuzz/ and runs
# each for a given time, one after another:
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default 60 s, all targets
# Seeds come from tests/fuzz/corpus/<target>/; the corpus a run grows is kept in
# build-fuzz/fuzz-work/<target>/corpus (never written into the repository).
# Prints per target its executions and coverage; exits non-zero when a target
# crashes, printing the path of the crash file (copy it into tests/fuzz/crashes/
# and add a regression test to tests/fuzz_regressions_test.cc).
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (build, default 2),
# FUZZ_ARGS (extra libFuzzer flags). One process per target, one at a time
# (in-process libFuzzer, no -jobs). Run it niced on a shared machine.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
seconds=60
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
if [[ $# -gt 0 && ( "$1" == -h || "$1" == --help ) ]]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-2}

all_targets=()
for f in tests/fuzz/fuzz_*.cc; do
  all_targets+=("$(basename "$f" .cc)")
done
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
  if [[ ! -f "tests/fuzz/$t.cc" ]]; then
    echo "fuzz.sh: unknown target '$t' (have: ${all_targets[*]})" >&2
    exit 2
  fi
done

scripts/deps.sh clang libclang-rt-14-dev llvm
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev llvm)" >&2
  exit 1
fi

CC=clang CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRANGLER_FUZZ=ON >/dev/null
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"

work="$root/$build_dir/fuzz-work"
mkdir -p "$work"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

failed=()
summary=()
for t in "${targets[@]}"; do
  dir="$work/$t"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [[ -d "tests/fuzz/corpus/$t" ]]; then
    cp -n "tests/fuzz/corpus/$t"/* "$dir/corpus/" 2>/dev/null || true
  fi
  dict=()
  if [[ -f "tests/fuzz/$t.dict" ]]; then
    dict=(-dict="tests/fuzz/$t.dict")
  fi
  log="$dir/fuzz.log"
  echo "fuzz.sh: $t for ${seconds}s (log $log)"
  start=$(date +%s)
  rc=0
  # shellcheck disable=SC2086
  "$root/$build_dir/$t" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -max_len=8192 "${dict[@]}" \
    -artifact_prefix="$dir/artifacts/" ${FUZZ_ARGS:-} "$dir/corpus" >"$log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - start))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  cov=$(grep -oE '(#[0-9]+|DONE)[[:space:]]+[A-Z ]*cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 |
        grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
  initcov=$(grep -E 'INITED' "$log" | grep -oE 'cov: [0-9]+' | head -1 || true)
  newunits=$(grep -o 'stat::new_units_added: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  line="$t: ${elapsed}s, execs ${execs:-?}, ${cov:-cov ?} (seeds ${initcov:-?}), new units ${newunits:-?}"
  if [[ $rc -ne 0 ]]; then
    crash=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //' || true)
    line="$line, CRASH (exit $rc) ${crash:-see $log}"
    failed+=("$t")
    grep -m1 -E 'ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error' "$log" >&2 || true
    grep -m8 -E '^ +#[0-9]+ ' "$log" >&2 || true
    [[ -n "$crash" ]] && echo "fuzz.sh: crash input: $crash" >&2
  fi
  echo "fuzz.sh: $line"
  summary+=("$line")
done

echo "fuzz.sh: summary"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi

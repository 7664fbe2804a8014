#!/usr/bin/env bash
# Coverage-guided fuzzing of the firmware with libFuzzer (clang, AddressSanitizer + UBSan).
#   bash scripts/fuzz.sh [--seconds N] [--jobs J] [--corpus DIR] [--coverage] [target...]
# Targets (firmware/fuzz/fuzz_<target>.c): link (frame receive path), model (parser + one
# inference), stream (StreamStart + EventBatch path); default: all three.
#   --seconds N   fuzz each target for N seconds (default 60)
#   --jobs J      run J targets at once (default 1)
#   --corpus DIR  corpora live in DIR/<target> and grow from run to run (default
#                 build/fuzz/corpus); seeds are regenerated from protocol/vectors each run
#   --coverage    then replay each corpus through a source-coverage build and print the
#                 line coverage of the firmware files it reaches (llvm-cov)
# Prints one line per target (executions, exec/s, edges covered, corpus size); exits 1 if a
# target crashed, with the input saved under build/fuzz/crashes/ and the command to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
seconds=60 jobs=1 coverage=0 corpus="$repo/build/fuzz/corpus" targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --corpus) corpus=$(realpath -m "$2"); shift 2 ;;
    --coverage) coverage=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    link|model|stream) targets+=("$1"); shift ;;
    *) echo "fuzz.sh: unknown argument $1 (targets: link model stream)" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(link model stream)
if ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang not found: apt-get install clang libclang-rt-14-dev (scripts/setup.sh does)" >&2
  exit 2
fi

out="$repo/build/fuzz"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
build_tree() {  # build_tree DIR [cmake args...]
  local dir=$1; shift
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    CC=clang cmake -S firmware/fuzz -B "$dir" "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  fi
  cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
}
build_tree "$out"
PYTHONPATH="$repo/host_sdk" python3 firmware/fuzz/gen_seeds.py --out "$out/seeds" >/dev/null
mkdir -p "$out/crashes" "$out/logs"

export ASAN_OPTIONS="detect_stack_use_after_return=1:detect_leaks=0:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
run_one() {  # run_one TARGET: fuzz it, write its log
  local t=$1
  mkdir -p "$corpus/$t"
  "$out/fuzz_$t" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/crashes/$t-" "$corpus/$t" "$out/seeds/$t" \
    >"$out/logs/$t.log" 2>&1
}
pids=() status=0
for t in "${targets[@]}"; do
  run_one "$t" & pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || true; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || true; done

printf '%-7s %8s %12s %9s %7s %9s  %s\n' target seconds executions exec/s edges corpus result
for t in "${targets[@]}"; do
  l="$out/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$l" | tail -1)
  last=$(grep -E '^#[0-9]+' "$l" | tail -1 || true)
  edges=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$l" | tail -1)
  if [ -n "$crash" ] || ! grep -q '^stat::number_of_executed_units' "$l"; then
    result="FAILED: see $l"
    [ -n "$crash" ] && result="CRASH: $crash (replay: $out/fuzz_$t $crash)"
    status=1
  else
    result=ok
  fi
  printf '%-7s %8s %12s %9s %7s %9s  %s\n' "$t" "$seconds" "${execs:-0}" "${rate:-0}" \
    "${edges:-0}" "${corp:-0}" "$result"
done
if [ "$status" != 0 ]; then
  for t in "${targets[@]}"; do grep -A30 -E '^==[0-9]+==ERROR|runtime error|fuzz harness|fuzz_model:' \
    "$out/logs/$t.log" | head -40 >&2 || true; done
  exit "$status"
fi

if [ "$coverage" = 1 ]; then
  for tool in llvm-profdata llvm-cov; do
    command -v "$tool" >/dev/null || { echo "fuzz.sh: --coverage needs $tool: apt-get install llvm" >&2; exit 2; }
  done
  cov="$repo/build/fuzz-cov"
  build_tree "$cov" -DES_FUZZ_COVERAGE=ON
  profiles=()
  for t in "${targets[@]}"; do
    LLVM_PROFILE_FILE="$cov/$t.profraw" "$cov/fuzz_$t" -runs=0 "$corpus/$t" "$out/seeds/$t" \
      >"$cov/$t.replay.log" 2>&1
    profiles+=("$cov/$t.profraw")
  done
  llvm-profdata merge -o "$cov/all.profdata" "${profiles[@]}"
  objects=()
  for t in "${targets[@]}"; do objects+=(-object "$cov/fuzz_$t"); done
  echo "line coverage of the firmware by these corpora (llvm-cov; regions, lines):"
  llvm-cov report -instr-profile="$cov/all.profdata" "${objects[@]:1}" firmware/core firmware/link |
    awk '$1 ~ /\.c$|^TOTAL/ { printf "  %-28s %8s %8s\n", $1, $4, $10 }'
fi

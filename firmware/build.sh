#!/usr/bin/env bash
# Build the firmware trees: build/host (host gcc), build/mps2-an386 and build/stm32f4
# (arm-none-eabi; stm32f4 runs under QEMU netduinoplus2 and on real STM32F4 boards),
# build/mps2-an386-m0 (the runner built for the Cortex-M0, for the M0 cycle model), and the
# es_blocktrace QEMU plugin into build/qemu-plugin (cycle estimates; optional: when Debian's qemu
# source package cannot be fetched, build/qemu-plugin/UNAVAILABLE says why and the build goes on).
# Idempotent and incremental; quiet unless something fails, then loud (full output, exit 1).
#   bash firmware/build.sh            configure if needed, build every tree
#   bash firmware/build.sh --test     ... then run ctest in the trees that have tests
#   bash firmware/build.sh --clean    remove the trees (keeps build/_deps) first
# EDGESPIKE_BUILD overrides the build folder (default: <repo>/build), as the SDK's paths.py.
# The host library is built for this machine's CPU (-march=native: it is used where it is
# built); EDGESPIKE_PORTABLE=1 builds it for any x86-64 / target CPU (a library to ship).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${EDGESPIKE_BUILD:-$repo/build}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
run_tests=0
for arg in "$@"; do
  case "$arg" in
    --test) run_tests=1 ;;
    --clean) rm -rf "$build/host" "$build/mps2-an386" "$build/stm32f4" "$build/mps2-an386-m0" ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() {  # step "what" command...: run quietly, show everything on failure
  local what=$1; shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "build.sh: FAILED: $what" >&2
    exit 1
  fi
}

mkdir -p "$build/_deps"
for board in host mps2-an386 stm32f4; do
  tree="$build/$board"
  args=(-S "$here" -B "$tree" -DES_BOARD="$board" -DNANOPB_DIR="$build/_deps/nanopb")
  configure=0
  [ -f "$tree/CMakeCache.txt" ] || configure=1
  if [ "$board" != host ]; then
    args+=(-DCMAKE_TOOLCHAIN_FILE="$here/cmake/arm-none-eabi.cmake")
  else
    native=ON
    [ "${EDGESPIKE_PORTABLE:-0}" = 1 ] && native=OFF
    args+=(-DES_HOST_NATIVE="$native")
    grep -q "^ES_HOST_NATIVE:BOOL=$native\$" "$tree/CMakeCache.txt" 2>/dev/null || configure=1
  fi
  if [ "$configure" = 1 ]; then
    step "configure $board" cmake "${args[@]}" -DCMAKE_BUILD_TYPE=Release
  fi
  step "build $board" cmake --build "$tree" -j "$jobs"
done
# The runner built for the Cortex-M0 (ARMv6-M) on the same board, for the M0 cycle model.
tree="$build/mps2-an386-m0"
if [ ! -f "$tree/CMakeCache.txt" ]; then
  step "configure mps2-an386-m0" cmake -S "$here" -B "$tree" -DES_BOARD=mps2-an386 \
    -DES_M0_RUNNER=ON "-DES_CPU_FLAGS=-mcpu=cortex-m0 -mthumb -mfloat-abi=soft" \
    -DNANOPB_DIR="$build/_deps/nanopb" -DCMAKE_TOOLCHAIN_FILE="$here/cmake/arm-none-eabi.cmake" \
    -DCMAKE_BUILD_TYPE=Release
fi
step "build mps2-an386-m0" cmake --build "$tree" -j "$jobs" --target edgespike-runner-mps2-an386-m0
bash "$here/qemu-plugin/build.sh" "$build/qemu-plugin"

if [ "$run_tests" = 1 ]; then
  # stm32f4 has no ctest: the same core and link tests run on the same Cortex-M4F in
  # mps2-an386; the stm32f4 image itself is tested through QEMU netduinoplus2 by pytest.
  for board in host mps2-an386; do
    step "tests $board" ctest --test-dir "$build/$board" --output-on-failure -j "$jobs"
  done
fi
plugin="qemu plugin"
[ -f "$build/qemu-plugin/UNAVAILABLE" ] && plugin="no qemu plugin: $(cat "$build/qemu-plugin/UNAVAILABLE")"
echo "firmware built in $build (host, mps2-an386, stm32f4, the M0 runner; $plugin)"

#!/usr/bin/env bash
# Build the es_blocktrace QEMU plugin into DEST (default <repo>/build/qemu-plugin).
#
# Debian's qemu-system-arm accepts -plugin but ships no qemu-plugin.h; the header is in Debian's
# qemu source package. Like the nanopb runtime (firmware/cmake/fetch_nanopb.sh), it is fetched
# at build time with a private deb-src list (the machine's apt configuration is left as it is),
# only include/qemu/qemu-plugin.h is extracted, and it is never copied into the repository.
# QEMU_SOURCE_TARBALL=/path/qemu_*.orig.tar.xz takes the header from a local tarball instead
# (an offline machine).
#
# Never fails the build: when the header or a C compiler is missing, DEST/UNAVAILABLE says why,
# and the SDK reports "no cycle estimate" with that reason (instruction counts still work).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$(dirname "$here")")
DEST=${1:-${EDGESPIKE_BUILD:-$repo/build}/qemu-plugin}
mkdir -p "$DEST"
lib="$DEST/libes_blocktrace.so"
hdr_dir="$DEST/include"
hdr="$hdr_dir/qemu-plugin.h"

unavailable() {
  echo "$*" > "$DEST/UNAVAILABLE"
  echo "qemu-plugin: cycle estimates unavailable: $*" >&2
  exit 0
}

fetch_header() {
  local work tarball
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  if [ -n "${QEMU_SOURCE_TARBALL:-}" ]; then
    tarball=$QEMU_SOURCE_TARBALL
  else
    command -v apt-get >/dev/null || { echo "apt-get not found"; return 1; }
    mkdir -p "$work/sources" "$work/lists/partial"
    local src=/etc/apt/sources.list.d/debian.sources
    if [ -f "$src" ]; then
      sed 's/^Types: deb$/Types: deb-src/' "$src" > "$work/sources/src.sources"
    elif [ -f /etc/apt/sources.list ]; then
      grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$work/sources/src.list"
    else
      echo "no Debian apt sources to derive a deb-src list from"; return 1
    fi
    local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources"
                -o "Dir::State::Lists=$work/lists" -o "Debug::NoLocking=1"
                -o "APT::Sandbox::User=root")
    apt-get "${opts[@]}" -qq update >/dev/null 2>&1 || { echo "apt-get update (deb-src) failed"; return 1; }
    # The source version of the installed emulator, so the header matches its plugin API.
    local ver
    ver=$(dpkg-query -W -f='${source:Version}' qemu-system-arm 2>/dev/null || true)
    (cd "$work" && { [ -n "$ver" ] && apt-get "${opts[@]}" -qq source --download-only "qemu=${ver#*:}" \
                       >/dev/null 2>&1; } \
       || apt-get "${opts[@]}" -qq source --download-only qemu >/dev/null 2>&1) \
      || { echo "apt-get source --download-only qemu failed"; return 1; }
    tarball=$(ls "$work"/qemu_*.orig.tar.* 2>/dev/null | head -n1 || true)
    [ -n "$tarball" ] || { echo "Debian's qemu source package has no orig tarball"; return 1; }
  fi
  tar -xf "$tarball" -C "$work" --wildcards '*/include/qemu/qemu-plugin.h' 2>/dev/null \
    || { echo "no include/qemu/qemu-plugin.h in $(basename "$tarball")"; return 1; }
  mkdir -p "$hdr_dir"
  cp "$(find "$work" -path '*/include/qemu/qemu-plugin.h' | head -n1)" "$hdr"
}

if [ ! -f "$hdr" ]; then
  if ! why=$(fetch_header); then
    unavailable "qemu-plugin.h could not be fetched from Debian's qemu source package ($why)"
  fi
fi
cc=${CC:-gcc}
command -v "$cc" >/dev/null || unavailable "no host C compiler ($cc) to build the plugin"
if [ ! -f "$lib" ] || [ "$here/es_blocktrace.c" -nt "$lib" ] || [ "$hdr" -nt "$lib" ]; then
  "$cc" -O2 -std=c11 -Wall -Wextra -Werror -shared -fPIC -I"$hdr_dir" \
    -o "$lib.tmp" "$here/es_blocktrace.c" 2>"$DEST/build.log" \
    || unavailable "the plugin did not compile (see $DEST/build.log)"
  mv "$lib.tmp" "$lib"
fi
rm -f "$DEST/UNAVAILABLE"

#!/usr/bin/env bash
# Fetch the nanopb C runtime (pb_encode.c, pb_decode.c, pb_common.c and headers) from Debian's
# nanopb source package, into DEST. It is never copied into the repository: the version must
# match the PyPI generator (nanopb==0.4.7). Uses a private deb-src list, so the machine's apt
# configuration is left as it is.
set -euo pipefail
DEST=${1:?usage: fetch_nanopb.sh DEST}
VERSION=${NANOPB_VERSION:-0.4.7}
if [ -f "$DEST/pb_decode.c" ]; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources" "$work/lists/partial"
src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ]; then
  sed 's/^Types: deb$/Types: deb-src/' "$src" > "$work/sources/src.sources"
else
  grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$work/sources/src.list"
fi
opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources"
      -o "Dir::State::Lists=$work/lists" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${opts[@]}" -qq update
(cd "$work" && apt-get "${opts[@]}" -qq source --download-only "nanopb=${VERSION}*" >/dev/null 2>&1 \
   || apt-get "${opts[@]}" -qq source --download-only nanopb >/dev/null)
tarball=$(ls "$work"/nanopb_"${VERSION}"*.orig.tar.* 2>/dev/null | head -n1 || true)
if [ -z "$tarball" ]; then
  echo "fetch_nanopb: Debian offers no nanopb ${VERSION} source; found: $(ls "$work")" >&2
  exit 1
fi
mkdir -p "$DEST"
tar -xf "$tarball" -C "$work"
dir=$(find "$work" -maxdepth 1 -type d -name 'nanopb*' | head -n1)
cp "$dir"/pb_*.c "$dir"/pb*.h "$DEST"/
cp "$dir"/LICENSE.txt "$DEST"/ 2>/dev/null || true
echo "fetch_nanopb: nanopb ${VERSION} runtime in $DEST"

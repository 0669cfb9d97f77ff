#!/usr/bin/env bash
# Puts the prebuilt DuckDB 1.4.4 shared library that lb-dfaas links against
# into .libduckdb/1.4.4/libduckdb.so of this repository (build.rs looks
# there; DUCKDB_LIB_DIR overrides). The library is the one DuckDB's Node.js
# bindings ship in the npm registry (@duckdb/node-bindings-linux-<arch>),
# fetched with `npm pack` (no Node.js module is installed) and checked
# against its SHA-256. Compiling DuckDB from source instead takes ~19 min
# on two cores; see README "Building".
#
# Idempotent: does nothing when the right library is already there.
# Usage: bash scripts/libduckdb.sh [--print-dir]
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.4.4
NPM_VERSION=1.4.4-r.1
case "$(uname -m)" in
  x86_64 | amd64)
    arch=x64
    sha256=1ef33048e12235115ac0d277a0aaccbb560e33248144f488b5ac005cd9ba81b5 ;;
  aarch64 | arm64)
    arch=arm64
    sha256=c8e20af1e0064bdb7bf79af4d16f17ee8be16803bc98a4df58588bed1301c042 ;;
  *)
    echo "libduckdb: no prebuilt DuckDB $VERSION for $(uname -m)" >&2
    exit 1 ;;
esac
dir=$PWD/.libduckdb/$VERSION
lib=$dir/libduckdb.so

if [ "${1:-}" = "--print-dir" ]; then
  echo "$dir"
  exit 0
fi

if [ -f "$lib" ] && echo "$sha256  $lib" | sha256sum --check --status; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "libduckdb: apt-get install npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
package="@duckdb/node-bindings-linux-$arch@$NPM_VERSION"
echo "libduckdb: npm pack $package" >&2
(cd "$tmp" && npm pack --silent "$package" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/libduckdb.so
if ! echo "$sha256  $tmp/package/libduckdb.so" | sha256sum --check --status; then
  echo "libduckdb: $package's libduckdb.so does not have the expected SHA-256 $sha256" >&2
  exit 1
fi
mkdir -p "$dir"
install -m 0755 "$tmp/package/libduckdb.so" "$lib.partial"
mv -f "$lib.partial" "$lib"
echo "libduckdb: DuckDB $VERSION in $dir" >&2

#!/bin/bash
# scripts/test-install.sh - install ovl into a temporary prefix and prove the
# installed tree is usable: the files and SONAME links are there, a CMake
# project (find_package(ovl CONFIG) -> ovl::ovl) and a plain Makefile
# (pkg-config ovl) build against it and run, the exported symbols equal
# dll/ovl.map, and nothing links liburing.
#
#   scripts/test-install.sh [--build-dir DIR] [--keep]
#
# --build-dir DIR  install from an existing, configured build tree (it is
#                  built first, library only); default: configure and build
#                  a fresh one in the temp dir.
# --keep           keep the temp dir (printed) for inspection.
# The last line is always "install: N passed, M failed"; exit 1 if M > 0.
set -u

src=$(cd "$(dirname "$0")/.." && pwd)
build=
keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "test-install: unknown argument $1" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ovl-install.XXXXXX")
if [ $keep = 0 ]; then trap 'rm -rf "$tmp"' EXIT; else echo "test-install: keeping $tmp"; fi
prefix=$tmp/prefix
log=$tmp/log
passed=0 failed=0

pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && sed 's/^/       /' "$2" | tail -20; }
# check NAME COMMAND...: run it with output to the log, pass/fail on status.
check() {
  local name=$1; shift
  if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name" "$log"; fi
}
finish() {
  echo "install: $passed passed, $failed failed"
  [ $failed = 0 ]
  exit $?
}

jobs=${OVL_JOBS:-2}

# ---- build and install ----------------------------------------------------
if [ -z "$build" ]; then
  build=$tmp/build
  check "configure the library" cmake -S "$src" -B "$build" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOVL_BUILD_TESTS=OFF -DOVL_BUILD_EXAMPLES=OFF
fi
check "build the library" cmake --build "$build" --target ovl -j "$jobs"
check "cmake --install --prefix" cmake --install "$build" --prefix "$prefix"
if [ $failed != 0 ]; then finish; fi

# ---- the installed files ----------------------------------------------------
ver() { sed -n "s/^#define OVL_VERSION_$1 \([0-9]*\).*/\1/p" "$src/include/ovl.h"; }
major=$(ver MAJOR) minor=$(ver MINOR) patch=$(ver PATCH)
version=$major.$minor.$patch
libdir=$(cd "$prefix" && ls -d lib lib64 lib/*-linux-gnu 2>/dev/null | while read -r d; do
  [ -e "$prefix/$d/libovl.so" ] && echo "$d"; done | head -1)
libdir=${libdir:-lib}
lib=$prefix/$libdir/libovl.so.$version

check "header installed and identical" cmp "$src/include/ovl.h" "$prefix/include/ovl.h"
check "libovl.so.$version is a regular file" test -f "$lib" -a ! -L "$lib"
check "libovl.so.$major.$minor -> libovl.so.$version (SONAME link)" \
  test "$(readlink "$prefix/$libdir/libovl.so.$major.$minor")" = "libovl.so.$version"
check "libovl.so -> libovl.so.$major.$minor (development link)" \
  test "$(readlink "$prefix/$libdir/libovl.so")" = "libovl.so.$major.$minor"
soname() { readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
check "SONAME is libovl.so.$major.$minor" test "$(soname)" = "libovl.so.$major.$minor"
for f in ovlConfig.cmake ovlConfigVersion.cmake ovlTargets.cmake; do
  check "$libdir/cmake/ovl/$f installed" test -f "$prefix/$libdir/cmake/ovl/$f"
done
check "$libdir/pkgconfig/ovl.pc installed" test -f "$prefix/$libdir/pkgconfig/ovl.pc"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
check "pkg-config --modversion ovl = $version (the header's)" \
  test "$(pkg-config --modversion ovl)" = "$version"
check "pkg-config --cflags points into the prefix" \
  test -f "$(pkg-config --variable=includedir ovl)/ovl.h"

# ---- consumers ----------------------------------------------------------------
check "CMake consumer: configure (find_package(ovl 0.1 CONFIG))" \
  cmake -S "$src/tests/install/cmake" -B "$tmp/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix"
check "CMake consumer: build (ovl::ovl)" cmake --build "$tmp/consumer-cmake"
check "CMake consumer: runs against the installed library" \
  "$tmp/consumer-cmake/consumer_cmake" cmake
sed 's/^/       /' "$log"
# The dynamic loader finds the installed copy (rpath), not some other one.
loaded() { ldd "$1" | awk '$1 ~ /^libovl\.so/ {print $3}' | xargs -r readlink -f; }
check "CMake consumer: loads libovl from the prefix" \
  test "$(loaded "$tmp/consumer-cmake/consumer_cmake")" = "$(readlink -f "$lib")"
# 0.x: the SONAME is libovl.so.MAJOR.MINOR, so another minor must not match.
refuse() { ! cmake -S "$src/tests/install/cmake" -B "$tmp/consumer-$1" \
  -DCMAKE_PREFIX_PATH="$prefix" -DOVL_WANT_VERSION="$1"; }
check "CMake consumer: find_package(ovl $major.$((minor + 1))) is refused" refuse "$major.$((minor + 1))"

mkdir -p "$tmp/consumer-pc"
check "pkg-config consumer: make" \
  make -f "$src/tests/install/pkgconfig/Makefile" OUT="$tmp/consumer-pc"
check "pkg-config consumer: runs against the installed library" \
  "$tmp/consumer-pc/consumer_pc" pkg-config
sed 's/^/       /' "$log"
check "pkg-config consumer: loads libovl from the prefix" \
  test "$(loaded "$tmp/consumer-pc/consumer_pc")" = "$(readlink -f "$lib")"

# ---- ABI: the export list ---------------------------------------------------
map=$src/dll/ovl.map
want=$(sed -n 's/^ *\(ovl_[A-Za-z_0-9]*\);.*/\1/p' "$map" | sort)
have=$(nm -D --defined-only "$lib" | awk 'NF >= 3 && $2 ~ /^[TDBRVWi]$/ {print $3}' |
  sed 's/@.*//' | grep -v '^OVL_[0-9]' | sort)
extra=$(comm -13 <(echo "$want") <(echo "$have"))
missing=$(comm -23 <(echo "$want") <(echo "$have"))
if [ -z "$extra" ]; then pass "no exported symbol missing from dll/ovl.map"; else
  echo "$extra" >"$log"; fail "exported but not in dll/ovl.map:" "$log"; fi
if [ -z "$missing" ]; then pass "every symbol in dll/ovl.map is exported ($(echo "$want" | wc -l))"; else
  echo "$missing" >"$log"; fail "in dll/ovl.map but not exported:" "$log"; fi
# The map and the header's OVL_API declarations list the same functions.
decl=$(sed -n 's/^OVL_API .*[ *]\(ovl_[a-z_0-9]*\)(.*/\1/p' "$src/include/ovl.h" | sort)
if [ "$decl" = "$want" ]; then pass "dll/ovl.map lists exactly the OVL_API functions of ovl.h"; else
  diff <(echo "$decl") <(echo "$want") >"$log"; fail "ovl.h (<) and dll/ovl.map (>) differ" "$log"; fi
check "nm -D lists only ovl_ symbols" bash -c "! nm -D --defined-only '$lib' | grep -v ' ovl_'"
check "ldd shows no liburing" bash -c "! ldd '$lib' | grep uring >/dev/null"
check "no liburing in DT_NEEDED" bash -c "! readelf -d '$lib' | grep NEEDED | grep uring >/dev/null"

finish

#!/usr/bin/env bash
# test-windows.sh - cross-build ovl.dll with mingw-w64, check its exports and
# imports, and run the C suite (tests/windows + the shared tests/*.c) under
# wine. Ends with a line "windows: N passed, M failed".
#
#   scripts/test-windows.sh            # everything
#   OVL_WIN_FILTER=win:: scripts/test-windows.sh   # only matching tests
#
# Installs what is missing (Debian 12, as root: gcc-mingw-w64-x86-64, wine,
# wine64, cmake, ninja-build). Builds in build-win/, with its own wine
# prefix in build-win/wineprefix (never ~/.wine). Wine facts this follows
# (issue 6): the wine server is started first, detached from our output
# (under ctest or a pipe it would otherwise inherit the pipe and every run
# would wait for it), one warm-up program runs before the suite, WINEDEBUG=-all,
# a timeout on every wine run, and `wineserver -k` at the end.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-win"
cd "$root"

say() { printf '== %s\n' "$*"; }

# ---- tools ------------------------------------------------------------------
need=()
command -v x86_64-w64-mingw32-gcc-win32 >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || need+=(wine)
[ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null 2>&1 || need+=(wine64)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${need[@]}" >"$root/.apt-win.log" 2>&1; then
        apt-get update >/dev/null 2>&1 || true
        apt-get install -y --no-install-recommends "${need[@]}" >"$root/.apt-win.log" 2>&1 || {
            tail -20 "$root/.apt-win.log"; echo "windows: 0 passed, 1 failed"; exit 1; }
    fi
    rm -f "$root/.apt-win.log"
fi

# ---- build ------------------------------------------------------------------
say "configure + build ($build)"
cmake -S "$root" -B "$build" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DOVL_BUILD_TESTS=OFF -DOVL_BUILD_EXAMPLES=OFF >"$build.cmake.log" 2>&1 \
    || { cat "$build.cmake.log"; echo "windows: 0 passed, 1 failed"; exit 1; }
rm -f "$build.cmake.log"
cmake --build "$build" -j 2 -- ovl ovl_tests_win \
    || { echo "windows: 0 passed, 1 failed"; exit 1; }

# ---- exports and imports ------------------------------------------------------
objdump=x86_64-w64-mingw32-objdump
dll="$build/ovl.dll"
fail_static=0
exports=$($objdump -p "$dll" | awk '/\[Ordinal\/Name Pointer\] Table/{t=1;next} t&&NF==0{t=0} t{print $NF}' | sort)
def=$(awk '/^EXPORTS/{e=1;next} e&&NF&&$1!~/^;/{print $1}' dll/ovl.def | sort)
map=$(sed -n 's/^[[:space:]]*\(ovl_[a-z_0-9]*\);.*/\1/p' dll/ovl.map | sort)
say "ovl.dll exports ($(echo "$exports" | wc -l)):"
echo "$exports" | sed 's/^/   /'
if [ "$exports" != "$def" ]; then
    echo "FAIL: ovl.dll exports differ from dll/ovl.def:"; diff <(echo "$def") <(echo "$exports") || true
    fail_static=1
fi
if [ "$def" != "$map" ]; then
    echo "FAIL: dll/ovl.def and dll/ovl.map list different symbols:"; diff <(echo "$map") <(echo "$def") || true
    fail_static=1
fi
if echo "$exports" | grep -qv '^ovl_'; then
    echo "FAIL: a non-ovl_ export"; fail_static=1
fi
imports=$($objdump -p "$dll" | sed -n 's/^[[:space:]]*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u)
say "ovl.dll imports: $(echo $imports)"
for i in $imports; do
    case "$i" in
    kernel32.dll|ntdll.dll|msvcrt.dll|ws2_32.dll|advapi32.dll|api-ms-win-*) ;;
    *) echo "FAIL: ovl.dll imports a non-system DLL: $i"; fail_static=1 ;;
    esac
done

# ---- wine ---------------------------------------------------------------------
export WINEPREFIX="$build/wineprefix" WINEARCH=win64 WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml=" # no Mono/Gecko install prompts
stop_wine() { timeout 30 wineserver -k >/dev/null 2>&1 || true; }
trap stop_wine EXIT
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    say "creating the wine prefix (once)"
    timeout 300 wineboot -i </dev/null >/dev/null 2>&1 || true
fi
# The persistent server, detached from our stdout/stderr.
(wineserver -p </dev/null >/dev/null 2>&1 &)
# Warm-up: the first program in a prefix pays for wine's start-up.
timeout 120 wine "$build/ovl_tests_win.exe" --list </dev/null >/dev/null 2>&1 || true

say "C suite under wine"
log="$build/windows-tests.log"
args=()
[ -n "${OVL_WIN_FILTER:-}" ] && args=(--filter "$OVL_WIN_FILTER")
set +e
timeout 1200 wine "$build/ovl_tests_win.exe" "${args[@]}" </dev/null 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
syn=$(grep -a 'Synthesis:' "$log" | tail -1 || true)
num() { echo "$syn" | sed -n "s/.*$1: \([0-9]*\).*/\1/p"; }
passed=$(num Passing); failing=$(num Failing); crashing=$(num Crashing); skipped=$(num Skipped)
if [ -z "$syn" ]; then
    echo "the suite did not finish (exit $rc)"
    passed=${passed:-0}; failing=1; crashing=0; skipped=0
fi
failed=$((failing + crashing + fail_static))
[ "${skipped:-0}" -gt 0 ] && echo "(${skipped} skipped)"
echo "windows: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]

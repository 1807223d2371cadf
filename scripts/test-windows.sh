#!/usr/bin/env bash
# test-windows.sh - cross-build ovl.dll with mingw-w64, check its exports and
# imports, and run the C suite (tests/windows + the shared tests/*.c) under
# wine, then examples/ovl_echo -t (the TCP echo, 256 clients). Ends with a
# line "windows: N passed, M failed".
#
#   scripts/test-windows.sh            # everything
#   OVL_WIN_FILTER=win:: scripts/test-windows.sh   # only matching tests
#
# Installs what is missing (Debian 12, as root: gcc-mingw-w64-x86-64, wine,
# wine64, cmake, ninja-build). Builds in build-win/, with its own wine
# prefix in build-win/wineprefix (never ~/.wine). Wine facts this follows
# (issue 6, in scripts/lib-wine.sh): the wine server is started first,
# detached from our output (under ctest or a pipe it would otherwise inherit
# the pipe and every run would wait for it), one warm-up program runs before
# the suite, WINEDEBUG=-all, a timeout on every wine run, and
# `wineserver -k` at the end.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib-wine.sh" # say, win_install, win_build, wine_* ($build)
cd "$root"

# ---- tools ------------------------------------------------------------------
need=($(win_base_packages))
win_install "$root/.apt-win.log" "${need[@]}" || { echo "windows: 0 passed, 1 failed"; exit 1; }

# ---- build ------------------------------------------------------------------
win_build ovl ovl_tests_win ovl_echo ovl_local_echo || { echo "windows: 0 passed, 1 failed"; exit 1; }

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
wine_start "$build/wineprefix"
wine_warm "$build/ovl_tests_win.exe" --list

say "C suite under wine"
log="$build/windows-tests.log"
args=()
[ -n "${OVL_WIN_FILTER:-}" ] && args=(--filter "$OVL_WIN_FILTER")
set +e
wine_run 1200 "$build/ovl_tests_win.exe" "${args[@]}" | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# The example: a local echo service and 64 clients over \\.\pipe\NAME.
example_failed=0
example_passed=0
if [ -z "${OVL_WIN_FILTER:-}" ] || [[ "ovl_local_echo" == *"${OVL_WIN_FILTER}"* ]]; then
    say "examples under wine"
    set +e
    wine_run 300 "$build/ovl_local_echo.exe" | tee "$build/windows-example.log"
    erc=${PIPESTATUS[0]}
    set -e
    if [ "$erc" -ne 0 ]; then echo "FAIL: ovl_local_echo.exe (exit $erc)"; example_failed=1
    else echo "[PASS] example::ovl_local_echo"; example_passed=1; fi
fi
syn=$(grep -a 'Synthesis:' "$log" | tail -1 || true)
num() { echo "$syn" | sed -n "s/.*$1: \([0-9]*\).*/\1/p"; }
passed=$(num Passing); failing=$(num Failing); crashing=$(num Crashing); skipped=$(num Skipped)
if [ -z "$syn" ]; then
    echo "the suite did not finish (exit $rc)"
    passed=${passed:-0}; failing=1; crashing=0; skipped=0
fi

# The TCP echo example: 256 clients at once, accept, connect, shutdown and
# I/O on the port, every byte checked. One more pass/fail line; it runs when
# OVL_WIN_FILTER is unset or a substring of "example::ovl_echo".
if [[ "example::ovl_echo" == *"${OVL_WIN_FILTER:-}"* ]]; then
    say "examples/ovl_echo -t under wine (256 clients)"
    set +e
    echo_out=$(wine_run 300 "$build/ovl_echo.exe" -t -c 256)
    echo_rc=$?
    set -e
    echo "$echo_out"
    if [ "$echo_rc" -eq 0 ] && echo "$echo_out" | tr -d '\r' | grep -x 'ovl_echo: OK' >/dev/null; then
        passed=$((passed + 1))
    else
        echo "FAIL: ovl_echo -t (exit $echo_rc)"; fail_static=$((fail_static + 1))
    fi
fi

failed=$((failing + crashing + fail_static + example_failed))
passed=$((passed + example_passed))
[ "${skipped:-0}" -gt 0 ] && echo "(${skipped} skipped)"
echo "windows: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]

#!/usr/bin/env bash
# test-windows-go.sh - the Go binding's tests for Windows, run under wine:
# cross-compile the test binary with cgo against build-win/ovl.dll (made by
# scripts/test-windows.sh) and run it with the DLL beside it. Go >= 1.24
# needs ProcessPrng from bcryptprimitives.dll, which wine 8.0 lacks: a
# stand-in (tests/windows/bcryptprimitives.c) goes into the private prefix.
# Ends with "windows-go: N passed, M failed" (top-level tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-win"
[ -f "$build/ovl.dll" ] || { echo "run scripts/test-windows.sh first"; echo "windows-go: 0 passed, 1 failed"; exit 1; }
export WINEPREFIX="$build/wineprefix" WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
cc=x86_64-w64-mingw32-gcc-win32
out="$build/go-win"
mkdir -p "$out"
$cc -shared -O2 -o "$out/bcryptprimitives.dll" "$root/tests/windows/bcryptprimitives.c" \
    "$root/tests/windows/bcryptprimitives.def" -ladvapi32 -static-libgcc
trap 'timeout 30 wineserver -k >/dev/null 2>&1 || true' EXIT
[ -f "$WINEPREFIX/system.reg" ] || timeout 300 wineboot -i </dev/null >/dev/null 2>&1 || true
cp "$out/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
(wineserver -p </dev/null >/dev/null 2>&1 &)
cp "$build/ovl.dll" "$out/"
(cd "$root/bindings/go" && GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=$cc \
    CGO_LDFLAGS="-L$build" go test -c -o "$out/ovl_go.test.exe" .)
timeout 120 wine "$out/ovl_go.test.exe" -test.list . </dev/null >/dev/null 2>&1 || true
set +e
(cd "$out" && timeout 600 wine ./ovl_go.test.exe -test.v -test.timeout 500s </dev/null 2>&1) | tee "$out/go.log"
set -e
p=$(grep -c '^--- PASS' "$out/go.log" || true)
f=$(grep -c '^--- FAIL' "$out/go.log" || true)
grep -q '^panic' "$out/go.log" && f=$((f + 1))
echo "windows-go: ${p} passed, ${f} failed"
[ "$f" -eq 0 ]

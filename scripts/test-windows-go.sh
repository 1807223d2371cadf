#!/usr/bin/env bash
# test-windows-go.sh - the Go binding's tests for Windows, run under wine:
# cross-compile the test binary with cgo against build-win/ovl.dll (built
# here as scripts/test-windows.sh builds it) and run it with the DLL beside
# it. Go >= 1.24 needs ProcessPrng from bcryptprimitives.dll, which wine 8.0
# lacks: a stand-in (tests/windows/bcryptprimitives.c) goes into the private
# prefix. Wine rules: scripts/lib-wine.sh.
# Ends with "windows-go: N passed, M failed" (top-level tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib-wine.sh" # say, win_install, win_build, wine_* ($build)
need=($(win_base_packages))
win_install "$root/.apt-win-go.log" "${need[@]}" || { echo "windows-go: 0 passed, 1 failed"; exit 1; }
win_build ovl || { echo "windows-go: 0 passed, 1 failed"; exit 1; }
cc=x86_64-w64-mingw32-gcc-win32
out="$build/go-win"
mkdir -p "$out"
$cc -shared -O2 -o "$out/bcryptprimitives.dll" "$root/tests/windows/bcryptprimitives.c" \
    "$root/tests/windows/bcryptprimitives.def" -ladvapi32 -static-libgcc
wine_start "$build/wineprefix"
cp "$out/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
cp "$build/ovl.dll" "$out/"
(cd "$root/bindings/go" && GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=$cc \
    CGO_LDFLAGS="-L$build" go test -c -o "$out/ovl_go.test.exe" .)
wine_warm "$out/ovl_go.test.exe" -test.list .
set +e
(cd "$out" && wine_run 600 ./ovl_go.test.exe -test.v -test.timeout 500s) | tee "$out/go.log"
set -e
p=$(grep -c '^--- PASS' "$out/go.log" || true)
f=$(grep -c '^--- FAIL' "$out/go.log" || true)
grep -q '^panic' "$out/go.log" && f=$((f + 1))
echo "windows-go: ${p} passed, ${f} failed"
[ "$f" -eq 0 ]

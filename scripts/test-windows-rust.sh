#!/usr/bin/env bash
# test-windows-rust.sh - the Rust binding's tests (ovl-sys and ovl) for
# Windows, run under wine: Debian's rustc 1.63 with libstd-rust-dev-windows
# cross-builds the test executables for x86_64-pc-windows-gnu against
# build-win/ovl.dll, which is copied beside them; each runs under wine with a
# timeout. Ends with "windows-rust: N passed, M failed" (libtest's counts; a
# test binary that crashes or times out counts as one more failure).
#
#   scripts/test-windows-rust.sh
#   OVL_WIN_RUST_FILTER=stream scripts/test-windows-rust.sh   # libtest filter
#
# Installs what is missing (Debian 12, as root): the mingw-w64 compiler,
# wine, cmake, ninja, and rustc, cargo, libstd-rust-dev-windows. Debian's
# cargo is used on purpose (/usr/bin/cargo with RUSTC=/usr/bin/rustc):
# rustup's newer cargo cannot drive rustc 1.63. The workspace has no
# external dependency, so the build is --offline.
#
# What differs from the Linux run (scripts/test-rust.sh):
#  * layout.rs compiles a C probe with `cc` and runs it. Inside wine there is
#    no C compiler to call, so this script compiles the same probe
#    (bindings/rust/ovl-sys/tests/layout_probe.c) with the mingw-w64
#    compiler and hands it to the test as OVL_LAYOUT_PROBE: the Windows
#    compiler's layout of ovl.h is compared with ovl-sys as Rust lays it
#    out for x86_64-pc-windows-gnu — the comparison that matters for the DLL.
#  * RUST_BACKTRACE=0: with backtraces on, a panicking test makes Rust 1.63's
#    std symbolize through wine's dbghelp, which crashes on its DWARF (page
#    fault) and takes the whole test binary down instead of reporting one
#    failed test.
#  * doctests are not run (rustdoc cannot run cross-compiled doctests with
#    Rust 1.63), nor ovl-tokio-tests / ovl-bench (they need crates.io).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib-wine.sh"
rs="$root/bindings/rust"
target=x86_64-pc-windows-gnu
tdir="$rs/target/windows" # cargo's target dir for this script only
out="$build/rust-win"
mkdir -p "$out"

fail() { echo "$*"; echo "windows-rust: 0 passed, 1 failed"; exit 1; }

# ---- tools ------------------------------------------------------------------
need=($(win_base_packages))
[ -x /usr/bin/rustc ] || need+=(rustc)
[ -x /usr/bin/cargo ] || need+=(cargo)
[ -d /usr/lib/rustlib/$target/lib ] || need+=(libstd-rust-dev-windows)
win_install "$root/.apt-win-rust.log" "${need[@]}" || fail "cannot install ${need[*]}"
/usr/bin/rustc --version

# ---- ovl.dll ------------------------------------------------------------------
win_build ovl || fail "building ovl.dll failed"

# ---- test executables -------------------------------------------------------
say "cargo test --no-run --target $target (Debian's cargo and rustc)"
json="$out/cargo.json"
(cd "$rs" && RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc OVL_LIB_DIR="$build" \
    CARGO_TARGET_DIR="$tdir" /usr/bin/cargo test --offline -j 2 --target $target \
    --workspace --no-run --message-format=json >"$json") || fail "the cross build failed"
# "package-dir exe" for every test executable (libtest harness), from
# cargo's compiler-artifact messages.
tests=$(grep '"reason":"compiler-artifact"' "$json" | grep '"test":true' \
    | sed -n 's/.*"manifest_path":"\([^"]*\)\/Cargo.toml".*"executable":"\([^"]*\)".*/\1 \2/p')
[ -n "$tests" ] || fail "cargo listed no test executable"

# ovl.dll beside every executable (Windows finds DLLs in the program's dir).
for d in $(echo "$tests" | awk '{print $2}' | xargs -n1 dirname | sort -u); do
    cp "$build/ovl.dll" "$d/"
done

# The layout probe, built by the Windows compiler (see the header comment).
probe="$out/layout_probe.exe"
x86_64-w64-mingw32-gcc-win32 -std=c11 -Wall -Wextra -Werror -I "$root/include" \
    -o "$probe" "$rs/ovl-sys/tests/layout_probe.c" || fail "compiling the layout probe failed"
# Wine maps Z: to /.
export OVL_LAYOUT_PROBE="Z:$(echo "$probe" | tr / '\\')"
export RUST_BACKTRACE=0

# ---- run ----------------------------------------------------------------------
wine_start "$build/wineprefix-rust"
wine_warm "$probe"

log="$out/rust.log"
: >"$log"
crashed=0
filter=()
[ -n "${OVL_WIN_RUST_FILTER:-}" ] && filter=("$OVL_WIN_RUST_FILTER")
while read -r dir exe; do
    name=$(basename "$exe" .exe)
    say "${dir#$rs/}: ${name%-*}"
    one="$out/${name%-*}.log"
    set +e
    # Run from the package directory, as cargo test does.
    (cd "$dir" && wine_run 600 "$exe" "${filter[@]}") >"$one"
    rc=$?
    set -e
    grep -av '^test .* \.\.\. ok$' "$one" | sed '/^$/d' || true
    cat "$one" >>"$log"
    if [ "$rc" -ne 0 ] && ! grep -aq '^test result: FAILED' "$one"; then
        # No failed test reported, yet a non-zero exit: a crash, an abort or
        # the timeout (124).
        echo "!! ${name%-*} exited with status $rc without a failed-test report"
        crashed=$((crashed + 1))
    fi
done <<<"$tests"

read -r passed failed ignored < <(awk '/^test result:/ {
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^passed;?$/) p += $(i - 1)
            if ($i ~ /^failed;?$/) f += $(i - 1)
            if ($i ~ /^ignored;?$/) g += $(i - 1)
        }
    } END { print p + 0, f + 0, g + 0 }' "$log")
[ "$ignored" -gt 0 ] && echo "(${ignored} ignored)"
failed=$((failed + crashed))
echo "windows-rust: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]

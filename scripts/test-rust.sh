#!/usr/bin/env bash
# Builds libovl if needed, then runs the Rust binding's tests (bindings/rust)
# once per backend the host has (OVL_BACKEND=uring, =threads; one the host
# lacks is skipped, not failed) and its read_concurrent example, then
# cargo fmt --check and clippy if present, then a build of the library workspace with Debian's rustc 1.63
# and cargo (installed if missing: the MSRV the Windows cross build uses).
#
#   scripts/test-rust.sh            # everything
#   OVL_LIB_DIR=/opt/ovl/lib scripts/test-rust.sh   # test against another libovl
#
# Ends with one line "rust: N passed, M failed, K skipped" (K = backends).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rs="$root/bindings/rust"
build="$root/build"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$rs/target}"
jobs="${CARGO_BUILD_JOBS:-2}"

if [ -z "${OVL_LIB_DIR:-}" ]; then
    # The in-tree build is what ovl-sys links by default. cmake --build is
    # incremental: a no-op when the library is up to date.
    if [ ! -f "$build/CMakeCache.txt" ]; then
        # Ninja, as scripts/build.sh configures build/ (one generator per tree).
        "$root/scripts/deps.sh" cmake ninja-build
        cmake -S "$root" -B "$build" -G Ninja -DOVL_BUILD_TESTS=OFF >/dev/null
    fi
    cmake --build "$build" --target ovl -j "$jobs" >/dev/null
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
skipped=0
ran=0

run() { # run a command, keep its output for the pass/fail count
    echo "+ $*"
    if ! "$@" 2>&1 | tee -a "$log"; then failed_steps=$((failed_steps + 1)); fi
}
failed_steps=0

cd "$rs"
for backend in uring threads; do
    rc=0
    probe=$(OVL_BACKEND=$backend cargo run -q -j "$jobs" -p ovl --example backend 2>&1) || rc=$?
    if [ "$rc" = 3 ]; then
        echo "== backend $backend: skipped ($probe)"
        skipped=$((skipped + 1))
        continue
    elif [ "$rc" != 0 ]; then
        echo "== backend $backend: probe failed: $probe"
        failed_steps=$((failed_steps + 1))
        continue
    fi
    echo "== backend $backend: $probe"
    ran=$((ran + 1))
    export OVL_BACKEND=$backend
    run cargo test -j "$jobs" --workspace
    run cargo test -j "$jobs" --manifest-path ovl-tokio-tests/Cargo.toml
    # The example users start from: async reads, contents verified.
    run cargo run -q -j "$jobs" -p ovl --example read_concurrent
    unset OVL_BACKEND
done

# Formatting, as gofmt -l is for Go: rustfmt's default style, checked.
if cargo fmt --version >/dev/null 2>&1; then
    run cargo fmt --all -- --check
    run cargo fmt --all --manifest-path ovl-tokio-tests/Cargo.toml -- --check
    run cargo fmt --all --manifest-path ovl-bench/Cargo.toml -- --check
else
    echo "== rustfmt not installed: format check skipped"
fi

if cargo clippy --version >/dev/null 2>&1; then
    run cargo clippy -j "$jobs" --workspace --all-targets -- -D warnings
    run cargo clippy -j "$jobs" --manifest-path ovl-tokio-tests/Cargo.toml --all-targets -- -D warnings
    run cargo clippy -j "$jobs" --manifest-path ovl-bench/Cargo.toml --all-targets -- -D warnings
else
    echo "== clippy not installed: skipped"
fi

# Debian's Rust 1.63 (the MSRV, and what builds the Windows target): install
# it beside rustup's toolchain, which stays first on PATH.
"$root/scripts/deps.sh" rustc cargo || true
if [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && /usr/bin/rustc --version | grep -q '^rustc 1\.63\.'; then
    # Debian's toolchain: proves the library crates and their tests still
    # build with Rust 1.63. --offline works because this workspace has no
    # external dependency.
    echo "+ Debian rustc 1.63: cargo build --workspace --all-targets"
    if ! RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_TARGET_DIR="$CARGO_TARGET_DIR/rust-1.63" \
        /usr/bin/cargo build --offline -q -j "$jobs" --workspace --all-targets; then
        failed_steps=$((failed_steps + 1))
    fi
else
    echo "== Debian rustc 1.63 not installed (apt-get install rustc cargo): MSRV build skipped"
fi

read -r passed failed < <(awk '/^test result:/ {
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^passed;?$/) p += $(i - 1)
            if ($i ~ /^failed;?$/) f += $(i - 1)
        }
    } END { print p + 0, f + 0 }' "$log")
if [ "$ran" = 0 ]; then
    echo "no backend available: nothing was tested"
    failed_steps=$((failed_steps + 1))
fi
echo "rust: ${passed} passed, $((failed + failed_steps)) failed, ${skipped} skipped"
[ "$failed" = 0 ] && [ "$failed_steps" = 0 ]

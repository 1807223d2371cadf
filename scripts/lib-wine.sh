# lib-wine.sh - sourced by scripts/test-windows*.sh: install the cross tools,
# build ovl.dll in build-win/, and run Windows programs under wine the way
# issue 6 found that wine 8.0 needs (each rule is there for a reason):
#
#  * a private prefix inside the build directory, never ~/.wine;
#  * the wine server started first with `wineserver -p`, detached from our
#    stdout/stderr: started by the first `wine` instead, it inherits the
#    output pipe and whoever reads that pipe (ctest, tee, $(...)) waits for
#    the server to exit — seconds per test, or for ever;
#  * one warm-up program before the suite (the first run in a prefix pays
#    for wine's start-up);
#  * WINEDEBUG=-all, and a timeout on every wine run;
#  * `wineserver -k` at the end (an EXIT trap).
#
# Expects $root (the repository) to be set. Defines $build (build-win/).

build="$root/build-win"

say() { printf '== %s\n' "$*"; }

# win_install LOG PACKAGE... - apt-get install the packages (Debian 12, as
# root); `apt-get update` only if the first attempt fails. Returns non-zero
# (after printing the log's tail) if they cannot be installed.
win_install() {
    local log=$1
    shift
    [ $# -gt 0 ] || return 0
    say "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@" >"$log" 2>&1; then
        apt-get update >/dev/null 2>&1 || true
        apt-get install -y --no-install-recommends "$@" >"$log" 2>&1 || {
            tail -20 "$log"; return 1; }
    fi
    rm -f "$log"
}

# win_base_packages - the Debian packages missing for the cross build and
# wine (printed, one per line).
win_base_packages() {
    command -v x86_64-w64-mingw32-gcc-win32 >/dev/null 2>&1 || echo gcc-mingw-w64-x86-64
    command -v wine >/dev/null 2>&1 || echo wine
    [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null 2>&1 || echo wine64
    command -v cmake >/dev/null 2>&1 || echo cmake
    command -v ninja >/dev/null 2>&1 || echo ninja-build
}

# win_build TARGET... - configure build-win/ with the mingw-w64 toolchain
# and build the targets (both incremental). The examples are configured
# (not built unless named: test-windows.sh runs ovl_echo).
win_build() {
    say "configure + build $* ($build)"
    cmake -S "$root" -B "$build" -G Ninja \
        -DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DOVL_BUILD_TESTS=OFF -DOVL_BUILD_EXAMPLES=ON >"$build.cmake.log" 2>&1 \
        || { cat "$build.cmake.log"; return 1; }
    rm -f "$build.cmake.log"
    cmake --build "$build" -j 2 -- "$@"
}

wine_stop() { timeout 30 wineserver -k >/dev/null 2>&1 || true; }

# wine_start PREFIX - use (and create once) the wine prefix PREFIX, start its
# server detached, and stop it when the script exits. Scripts that may run
# at the same time use different prefixes: `wineserver -k` ends every
# program of its prefix.
wine_start() {
    export WINEPREFIX="$1" WINEARCH=win64 WINEDEBUG=-all
    export WINEDLLOVERRIDES="mscoree,mshtml=" # no Mono/Gecko install prompts
    trap wine_stop EXIT
    if [ ! -f "$WINEPREFIX/system.reg" ]; then
        say "creating the wine prefix $WINEPREFIX (once)"
        timeout 300 wineboot -i </dev/null >/dev/null 2>&1 || true
    fi
    (wineserver -p </dev/null >/dev/null 2>&1 &)
}

# wine_warm EXE [ARG...] - the warm-up run; its result does not matter.
wine_warm() {
    timeout 120 wine "$@" </dev/null >/dev/null 2>&1 || true
}

# wine_run SECS EXE [ARG...] - run a program under wine with a timeout,
# stdin from /dev/null, stderr merged into stdout. Returns its status
# (124 on timeout).
wine_run() {
    local secs=$1
    shift
    timeout "$secs" wine "$@" </dev/null 2>&1
}

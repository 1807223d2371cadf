#!/usr/bin/env bash
# test-cross.sh - what can be checked of macOS (x86_64, arm64) and FreeBSD
# (x86_64) without such a host: everything is cross-built with zig's C
# compiler (PyPI's ziglang, installed into build-cross/venv) and nothing
# built is run. Per target:
#   - libovl, the static archive and the C examples, -Wall -Wextra -Werror,
#     through cmake/zig-cross.cmake (CMAKE_SYSTEM_NAME Darwin / FreeBSD),
#     and for FreeBSD the C test suite on tests/shim as well;
#   - the link line: Apple's flags only on macOS (-exported_symbols_list
#     from dll/ovl.map, no --version-script or --no-undefined, which zig's
#     Mach-O linker would accept silently), the version script on FreeBSD;
#   - the exports (tests/check_exports.sh), the install name, the Apple
#     timed wait and the threads backend's poll() readiness in the objects.
#     zig's Mach-O linker takes -exported_symbols_list but does not apply
#     it, so there the exports come from the symbols' visibility alone;
#     Apple's ld applies the list as well;
#   - the Rust layout probe's C side: layout_probe.c compiles, and every
#     size, offset and constant the host's probe prints holds for the target
#     (static assertions; ovl-sys has no per-OS types, so the host's
#     cargo test covers the Rust side);
#   - the Go package: go vet ./..., go build ./... and go test -c with cgo
#     and zig cc, the test binary linked against the cross-built libovl.
# And once: ovl-sys's build.rs finds libovl.dylib for macOS and libovl.so
# for FreeBSD, and the Go package exports the same identifiers on Linux,
# Windows, macOS and FreeBSD.
#
# Installs what is missing (Debian 12, as root): build-essential (the
# host's probe, readelf), python3-venv, cmake, ninja-build, llvm (llvm-nm
# and llvm-objdump read Mach-O), and ziglang (OVL_ZIGLANG, default the
# version tested here) into the venv. Logs in build-cross/logs/. Ends with
# "cross: N passed, M failed".
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build-cross"
logs="$out/logs"
targets=(x86_64-macos aarch64-macos x86_64-freebsd)
ziglang=${OVL_ZIGLANG:-0.17.1}
mkdir -p "$logs"
passed=0
failed=0
failures=()

check() { # check NAME COMMAND... : one counted check, its output in a log
    local name=$1 log="$logs/$(echo "$1" | tr -c 'A-Za-z0-9.\n-' '_').log" t0=$SECONDS
    shift
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name ($((SECONDS - t0))s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL $name ($((SECONDS - t0))s), log: $log"
        tail -25 "$log" | sed 's/^/     /'
    fi
}
finish() {
    for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
    echo "cross: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# ---- tools ------------------------------------------------------------------
setup() {
    "$root/scripts/deps.sh" build-essential python3-venv cmake ninja-build llvm || return 1
    local venv="$out/venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || return 1
    if [ "$("$venv/bin/python" -m ziglang version 2>/dev/null)" != "$ziglang" ]; then
        "$venv/bin/pip" install -q --disable-pip-version-check "ziglang==$ziglang" || return 1
    fi
    "$venv/bin/python" -m ziglang version
}
check "tools (zig $ziglang, llvm)" setup
# The zig executable itself, so that CC needs no python in between.
zig=$("$out/venv/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))' 2>/dev/null)
[ -x "$zig" ] || finish
nm=llvm-nm
objdump=llvm-objdump

# ---- C library ----------------------------------------------------------------
build_lib() { # build_lib TARGET
    local b="$out/$1"
    cmake -S "$root" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_TOOLCHAIN_FILE="$root/cmake/zig-cross.cmake" \
        -DOVL_ZIG_TARGET="$1" -DOVL_ZIG="$zig" -DCMAKE_C_FLAGS=-Werror \
        -DOVL_BUILD_TESTS=OFF -DOVL_BUILD_EXAMPLES=ON -DOVL_INSTALL=OFF &&
        cmake --build "$b" -j2
}

# The C suite on tests/shim (Criterion is not there to link against), as it
# would build on a FreeBSD host, and the C++ header check. Not for macOS:
# tests/test_threads_backend.c uses unnamed POSIX semaphores (sem_init),
# which macOS does not implement (deprecated at compile time, ENOSYS at run
# time). The reliability suite is Linux's (io_uring fault injection).
build_suite() { # build_suite TARGET
    local b="$out/$1-tests"
    cmake -S "$root" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_TOOLCHAIN_FILE="$root/cmake/zig-cross.cmake" \
        -DOVL_ZIG_TARGET="$1" -DOVL_ZIG="$zig" -DCMAKE_C_FLAGS=-Werror \
        -DOVL_BUILD_TESTS=ON -DOVL_TEST_SHIM=ON -DOVL_BUILD_RELIABILITY=OFF \
        -DOVL_BUILD_EXAMPLES=OFF -DOVL_INSTALL=OFF &&
        cmake --build "$b" -j2 &&
        grep -q "zig.* c++ --target=$1" "$b/CMakeFiles/rules.ninja"
}

# The link command of the shared library as the generator wrote it.
link_line() { grep -A12 '^build libovl\.[0-9.]*\(dylib\|so\)[^:]*:' "$out/$1/build.ninja"; }

link_flags() { # link_flags TARGET
    local line
    line=$(link_line "$1") || { echo "no link statement for libovl in build.ninja"; return 1; }
    echo "$line" | grep -E 'LINK_FLAGS|SONAME'
    case $1 in
    *-macos)
        if echo "$line" | grep -E -e '--version-script|--no-undefined'; then
            echo "GNU-only linker flag on a Darwin link line"; return 1
        fi
        echo "$line" | grep -q -e '-exported_symbols_list' || { echo "no -exported_symbols_list"; return 1; }
        # The generated list is ovl.map's, with Mach-O's underscore.
        diff <(sed -n 's/^ *\(ovl_[a-z_0-9]*\);$/_\1/p' "$root/dll/ovl.map" | sort) \
            <(sort "$out/$1/ovl.exported_symbols") || { echo "list differs from dll/ovl.map"; return 1; }
        ;;
    *)
        echo "$line" | grep -q -e "--version-script=$root/dll/ovl.map" || { echo "no version script"; return 1; }
        ;;
    esac
}

lib_checks() { # lib_checks TARGET
    local b="$out/$1" lib
    case $1 in
    *-macos)
        lib="$b/libovl.dylib"
        # As a native build: found through the executable's rpath.
        "$objdump" --macho --dylib-id "$lib" | tee /dev/stderr | grep -x '@rpath/libovl\.[0-9]*\.[0-9]*\.dylib' >/dev/null ||
            { echo "install name is not @rpath/..."; return 1; }
        # The relative timed wait (platform.h): the absolute one always
        # times out at once on Apple's CLOCK_REALTIME condvars.
        "$nm" -u "$b/CMakeFiles/ovl_objects.dir/dll/threads.c.o" | grep '_pthread_cond_timedwait_relative_np$' >/dev/null ||
            { echo "threads.c does not use pthread_cond_timedwait_relative_np"; return 1; }
        if "$nm" -u "$b/CMakeFiles/ovl_objects.dir/dll/threads.c.o" | grep '_pthread_cond_timedwait$' >/dev/null; then
            echo "threads.c still calls pthread_cond_timedwait"; return 1
        fi
        ;;
    *) lib="$b/libovl.so" ;;
    esac
    NM="$nm" OBJDUMP="$objdump" "$root/tests/check_exports.sh" "$lib" "$root/dll/ovl.map" || return 1
    # The threads backend is the poll() variant there (threads.c calls it
    # through sys.c's table), and the reason auto gives names the OS.
    local o="$b/CMakeFiles/ovl_objects.dir/dll"
    "$nm" -u "$o/sys.c.o" | awk '{print $NF}' | grep -x '_\?poll' >/dev/null || { echo "sys.c does not call poll()"; return 1; }
    if "$nm" -u "$o/threads.c.o" | grep 'epoll' >/dev/null; then echo "threads.c calls epoll"; return 1; fi
    grep -q 'no completion API on this OS' "$lib" || { echo "no backend reason for this OS"; return 1; }
}

# ---- Rust layout probe --------------------------------------------------------
# The host's probe output, as C static assertions for the target.
layout_asserts() {
    local probe="$out/layout-host"
    cc -std=c11 -Wall -Wextra -Werror -I "$root/include" -o "$probe" \
        "$root/bindings/rust/ovl-sys/tests/layout_probe.c" || return 1
    {
        echo '#include <ovl.h>'
        echo '#include <stddef.h>'
        "$probe" | sed -E \
            -e 's/^sizeof (.*) (-?[0-9]+)$/_Static_assert(sizeof(\1) == \2, "sizeof \1");/' \
            -e 's/^alignof (.*) (-?[0-9]+)$/_Static_assert(_Alignof(\1) == \2, "alignof \1");/' \
            -e 's/^offsetof ([a-z_]+)\.([a-z_]+) (-?[0-9]+)$/_Static_assert(offsetof(\1, \2) == \3, "offsetof \1.\2");/' \
            -e 's/^const ([A-Za-z_0-9]+) (-?[0-9]+)$/_Static_assert((long long)(\1) == \2LL, "\1");/'
    } >"$out/layout_asserts.c"
    ! grep -v -e '^_Static_assert' -e '^#include' "$out/layout_asserts.c" || { echo "unparsed probe lines"; return 1; }
    echo "$(grep -c _Static_assert "$out/layout_asserts.c") assertions"
}

layout_target() { # layout_target TARGET
    # As tests/layout.rs compiles it, and linked.
    "$zig" cc -target "$1" -std=c11 -Wall -Wextra -Werror -I "$root/include" \
        -o "$out/$1/layout_probe" "$root/bindings/rust/ovl-sys/tests/layout_probe.c" &&
        "$zig" cc -target "$1" -std=c11 -Wall -Wextra -Werror -I "$root/include" \
            -c -o "$out/$1/layout_asserts.o" "$out/layout_asserts.c"
}

# ---- Rust: ovl-sys's build.rs ---------------------------------------------
# Run on the host as cargo would for a macOS or FreeBSD target, against a
# tree whose build/ holds the cross-built library (and, for the negative
# case, only the other OS's library name).
buildrs() {
    local exe="$out/ovl-sys-build-rs" fake="$out/buildrs"
    rustc --edition 2021 -o "$exe" "$root/bindings/rust/ovl-sys/build.rs" || return 1
    run_buildrs() { # run_buildrs TARGET_OS TRIPLE LIBDIR
        rm -rf "$fake" && mkdir -p "$fake/bindings/rust/ovl-sys" && ln -s "$3" "$fake/build"
        env -u OVL_LIB_DIR PKG_CONFIG=false CARGO_MANIFEST_DIR="$fake/bindings/rust/ovl-sys" \
            CARGO_CFG_TARGET_OS="$1" TARGET="$2" HOST=x86_64-unknown-linux-gnu "$exe"
    }
    local o
    o=$(run_buildrs macos aarch64-apple-darwin "$out/aarch64-macos") || return 1
    echo "$o"
    echo "$o" | grep -qx 'cargo:how=in-tree build' || { echo "macOS: libovl.dylib not found"; return 1; }
    echo "$o" | grep -qx "cargo:rustc-link-search=native=$out/aarch64-macos" || return 1
    o=$(run_buildrs freebsd x86_64-unknown-freebsd "$out/x86_64-freebsd") || return 1
    echo "$o"
    echo "$o" | grep -qx 'cargo:how=in-tree build' || { echo "FreeBSD: libovl.so not found"; return 1; }
    # A tree with only the FreeBSD .so must not pass for a macOS one.
    o=$(run_buildrs macos x86_64-apple-darwin "$out/x86_64-freebsd") || return 1
    if echo "$o" | grep -qx 'cargo:how=in-tree build'; then echo "macOS took a libovl.so"; return 1; fi
    rm -rf "$fake"
}

# ---- Go -------------------------------------------------------------------
# zig ships the stubs of libSystem only. Go's external link on macOS also
# asks for -lresolv (internal/syscall/unix) and, on arm64, the CoreFoundation
# framework (runtime/cgo); Go binds their symbols itself, so stubs that only
# name the libraries give the load commands a Mac's link gives.
darwin_stubs() {
    local s="$out/darwin-stubs"
    mkdir -p "$s/CoreFoundation.framework"
    stub() { printf -- '--- !tapi-tbd\ntbd-version: 4\ntargets: [ x86_64-macos, arm64-macos ]\ninstall-name: '"'%s'"'\n...\n' "$1"; }
    stub /usr/lib/libresolv.9.dylib >"$s/libresolv.tbd"
    stub /System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation \
        >"$s/CoreFoundation.framework/CoreFoundation.tbd"
}

goenv() { # goenv TARGET COMMAND... : run with the Go cross environment
    local t=$1 goos goarch ld
    shift
    case $t in
    x86_64-*) goarch=amd64 ;;
    aarch64-*) goarch=arm64 ;;
    esac
    ld="-L$out/$t" # before cgo.go's -L ../../build: the target's library first
    case $t in
    *-macos) goos=darwin; ld="$ld -L$out/darwin-stubs -F$out/darwin-stubs" ;;
    *-freebsd) goos=freebsd ;;
    esac
    (cd "$root/bindings/go" && env CGO_ENABLED=1 GOOS=$goos GOARCH=$goarch \
        CC="$zig cc -target $t" CGO_LDFLAGS="$ld" "$@")
}

go_ldflags() { # macOS: no DWARF, whose merging runs the host's dsymutil and strip
    case $1 in *-macos) echo "-ldflags=-w" ;; esac
}

go_build() { goenv "$1" go build $(go_ldflags "$1") ./...; }

go_test_c() { # go_test_c TARGET : link the test binary; check what it loads
    local exe="$out/$1/ovl-go.test"
    rm -f "$exe"
    goenv "$1" go test -c $(go_ldflags "$1") -o "$exe" . || return 1
    case $1 in
    *-macos)
        "$objdump" --macho --dylibs-used "$exe" | tee /dev/stderr | grep '@rpath/libovl\.[0-9.]*dylib' >/dev/null ;;
    *)
        readelf -d "$exe" | tee /dev/stderr | grep 'NEEDED.*libovl\.so' >/dev/null ;;
    esac
}

# Every exported identifier of the package on every OS (a missing one is a
# compile error for whoever uses it there).
go_api() {
    local os ref="" api
    for os in linux windows darwin freebsd; do
        api=$(cd "$root/bindings/go" && CGO_ENABLED=1 GOOS=$os go doc -all . |
            grep -E '^(func|type|const|var) |^(    |\t)[A-Z][A-Za-z0-9_]* ') || return 1
        echo "$os: $(echo "$api" | wc -l) declarations"
        if [ -z "$ref" ]; then
            ref=$api
        elif [ "$api" != "$ref" ]; then
            echo "the API on $os differs from Linux's:"; diff <(echo "$ref") <(echo "$api")
            return 1
        fi
    done
}

# ---- run ------------------------------------------------------------------
check "layout probe on the host" layout_asserts
darwin_stubs
for t in "${targets[@]}"; do
    if check "$t: libovl + examples (-Werror)" build_lib "$t"; then
        check "$t: link flags" link_flags "$t"
        check "$t: exports, install name, threads backend" lib_checks "$t"
    fi
    case $t in *-freebsd) check "$t: C suite on the shim (-Werror)" build_suite "$t" ;; esac
    check "$t: layout probe (C side)" layout_target "$t"
    check "$t: go vet ./..." goenv "$t" go vet ./...
    check "$t: go build ./..." go_build "$t"
    [ -f "$out/$t/build.ninja" ] && check "$t: go test -c" go_test_c "$t"
done
[ -f "$out/aarch64-macos/build.ninja" ] && check "ovl-sys build.rs (macOS, FreeBSD)" buildrs
check "Go API the same on every OS" go_api
finish

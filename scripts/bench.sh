#!/bin/sh
# bench.sh - run ovl's benchmarks and write docs/BENCHMARKS.md.
#
#   scripts/bench.sh            # C benchmark, plus Go/Rust ones if present
#   OVLBENCH_ARGS="--reps 7" scripts/bench.sh
#   OVLBENCH_SKIP_BINDINGS=1 scripts/bench.sh   # C only
#
# Installs what is missing (Debian: liburing-dev libuv1-dev pkg-config, as
# root), builds in build-bench/ with Release flags, runs the C benchmark
# (a 1 GiB file in build-bench/, kept in the page cache; about 5 minutes),
# then the Go and Rust binding benchmarks when their toolchains and bench
# code exist, and writes docs/BENCHMARKS.md. The data file is build output:
# it stays in build-bench/ and is never committed.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build="$root/build-bench"
out="$root/docs/BENCHMARKS.md"
args=${OVLBENCH_ARGS:-}

# ---- dependencies ---------------------------------------------------------
need_pkgs=""
command -v pkg-config >/dev/null 2>&1 || need_pkgs="$need_pkgs pkg-config"
if command -v pkg-config >/dev/null 2>&1; then
    pkg-config --exists liburing || need_pkgs="$need_pkgs liburing-dev"
    pkg-config --exists libuv || need_pkgs="$need_pkgs libuv1-dev"
else
    need_pkgs="$need_pkgs liburing-dev libuv1-dev"
fi
if [ -n "$need_pkgs" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench.sh: installing$need_pkgs" >&2
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_pkgs
    else
        echo "bench.sh: missing$need_pkgs; install them (Debian: apt-get install$need_pkgs)" >&2
        exit 1
    fi
fi

# ---- build ----------------------------------------------------------------
gen=""
command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
if [ ! -f "$build/CMakeCache.txt" ]; then
    # shellcheck disable=SC2086
    cmake -S "$root" -B "$build" $gen -DCMAKE_BUILD_TYPE=Release \
        -DOVL_BUILD_BENCH=ON -DOVL_BUILD_TESTS=OFF -DOVL_BUILD_EXAMPLES=OFF >/dev/null
fi
if ! cmake --build "$build" --target ovlbench >"$build/build.log" 2>&1; then
    cat "$build/build.log" >&2
    echo "bench.sh: build failed" >&2
    exit 1
fi

# ---- run ------------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Whole-machine CPU time (all processes) over the C run, to show how much
# of it other work took: busy and total jiffies from /proc/stat.
cpu_busy() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
stat_before=$(cpu_busy)
self_before=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.go" "$tmp.rs" "$tmp.direct" "$tmp.write"' EXIT
echo "bench.sh: C benchmark (progress below, about 2-3 minutes)" >&2
# shellcheck disable=SC2086
"$build/ovlbench" --file "$build/ovlbench.dat" $args >"$tmp"
# Slow I/O (O_DIRECT reads: the device) and buffered writes, where every
# delivery mode must keep up with liburing (writes: also with fio's ring
# flags). Depth 1 and 32, the modes only.
modes="pread,libuv,ovl-uring-cb,ovl-uring-ext,ovl-uring-ext-sap,ovl-uring-ext-sapw,ovl-uring-manual,ovl-uring-sap"
modes="$modes,ovl-threads-cb,ovl-threads-ext,ovl-threads-manual,liburing-coop"
# (the write workload also runs each of fio's flags alone: liburing-coop1,
# liburing-defer; ovlbench leaves them out of the read workloads)
modes="$modes,liburing-coop1,liburing-defer"
for w in direct write; do
    echo "bench.sh: C benchmark, workload $w" >&2
    # shellcheck disable=SC2086
    "$build/ovlbench" --file "$build/ovlbench.dat" --workload $w --depths 1,32 --only "$modes" $args \
        >"$tmp.$w"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stat_after=$(cpu_busy)
# The benchmark's own CPU: children of this shell (times of waited-for
# children are in cutime/cstime of our own /proc entry).
self_after=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
busy_line=$(echo "$stat_before $stat_after $self_before $self_after" | awk -v n="$(nproc)" '{
    busy = $3 - $1; tot = $4 - $2; own = $6 - $5;
    if (tot <= 0) { print "n/a"; exit }
    printf "%.0f%% of %d vCPU busy during the C run, of which the benchmark itself %.0f%%, other processes %.0f%%",
        100 * busy / tot, n, 100 * own / tot, (busy > own ? 100 * (busy - own) / tot : 0) }')

# Optional: the bindings' own benchmarks, when present.
go_done=0
rs_done=0
if [ -z "${OVLBENCH_SKIP_BINDINGS:-}" ]; then
    if command -v go >/dev/null 2>&1 &&
        grep -qs '^func BenchmarkReadAt' bindings/go/*_test.go; then
        echo "bench.sh: Go benchmarks (bindings/go, BenchmarkReadAt)" >&2
        cmake --build "$build" --target ovl >/dev/null
        # cgo puts CGO_LDFLAGS before the package's own flags, so the Release
        # libovl of build-bench/ is found first (the package's default is
        # ../../build, see bindings/go/cgo.go).
        if (cd bindings/go &&
            CGO_LDFLAGS="-L$build -Wl,-rpath,$build" timeout 900 \
                go test -run '^$' -bench ReadAt -benchtime 20000x -count 3 .) \
            >"$tmp.go" 2>&1; then
            go_done=1
        else
            echo "bench.sh: Go benchmarks failed (output in the report)" >&2
            go_done=2
        fi
    fi
    rs_manifest=bindings/rust/ovl-bench/Cargo.toml
    if [ -f "$rs_manifest" ] && command -v cargo >/dev/null 2>&1; then
        echo "bench.sh: Rust benchmarks (bindings/rust/ovl-bench)" >&2
        cmake --build "$build" --target ovl >/dev/null
        if OVL_LIB_DIR="$build" timeout 900 \
            cargo run -q --release --manifest-path "$rs_manifest" >"$tmp.rs" 2>&1; then
            rs_done=1
        else
            echo "bench.sh: Rust benchmarks failed (output in the report)" >&2
            rs_done=2
        fi
    fi
fi

# ---- report ---------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
[ -n "$(git status --porcelain -- dll include 2>/dev/null)" ] && dirty=" (with uncommitted changes in dll/ or include/)"
{
    echo "# ovl benchmarks"
    echo
    echo "Written by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$dirty."
    echo "Re-run it to refresh every figure here; the notes at the end come from \`bench/notes.md\`."
    echo
    echo "## Machine"
    echo
    echo "- $(nproc) vCPU ($cpu), $mem RAM, Linux $(uname -r)"
    echo "- load average (1/5/15 min) before the run: $load_before; after: $load_after;"
    echo "  $busy_line."
    echo "  A load near or above the vCPU count means other work shared the machine and"
    echo "  absolute figures are low and noisy; the ratios are measured within each"
    echo "  repetition and move much less."
    echo "- C benchmark: \`build-bench/ovlbench --file build-bench/ovlbench.dat${args:+ $args}\`"
    echo "  (Release build, ovl linked as the shared library; liburing $(pkg-config --modversion liburing),"
    echo "  libuv $(pkg-config --modversion libuv))"
    echo
    echo "## C: ovl against liburing, pread and libuv"
    cat "$tmp"
    echo
    echo "## C: O_DIRECT reads (\`--workload direct --depths 1,32\`)"
    cat "$tmp.direct"
    echo
    echo "## C: buffered writes (\`--workload write --depths 1,32\`)"
    cat "$tmp.write"
    if [ "$go_done" != 0 ]; then
        echo
        echo "## Go binding (\`go test -bench ReadAt -benchtime 20000x -count 3\` in bindings/go)"
        echo
        [ "$go_done" = 2 ] && echo "**The Go benchmarks failed; output below.**" && echo
        echo '```'
        cat "$tmp.go"
        echo '```'
    fi
    if [ "$rs_done" != 0 ]; then
        echo
        echo "## Rust binding (\`cargo run --release\` of bindings/rust/ovl-bench)"
        echo
        [ "$rs_done" = 2 ] && echo "**The Rust benchmarks failed; output below.**" && echo
        echo '```'
        cat "$tmp.rs"
        echo '```'
    fi
    # The notes: how the figures are made and what earlier rounds learnt
    # (the bindings' too: measurements live here, not in their READMEs).
    for notes in bench/notes.md bench/notes-go.md bench/notes-rust.md; do
        if [ -f "$notes" ]; then
            echo
            cat "$notes"
        fi
    done
} >"$out"
cat "$tmp"
echo "bench.sh: wrote $out" >&2

#!/usr/bin/env bash
# run.sh - build the libFuzzer harness with clang (+ASan/UBSan) and run it
# for a bounded time on every backend the host has.
#   tests/reliability/fuzz/run.sh [SECONDS_TOTAL] [BUILD_DIR]
# SECONDS_TOTAL (default 60) is split between the backends. The in-tree
# corpus seeds a scratch copy, so a run never rewrites the tree; new inputs
# that crash are left in BUILD_DIR as crash-* and fail the run.
# Prints one line per backend: "fuzz: backend=B execs=N seconds=S result=ok".
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
total=${1:-60}
out=${2:-$root/build-fuzz}
mkdir -p "$out"
CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null; then
    echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)"; exit 2
fi
bin=$out/ovl_fuzz_api
# The library's own sources with the harness: coverage reaches into dll/.
if ! "$CC" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -DOVL_STATIC \
        -I"$root/include" -I"$root/dll" "$root"/dll/*.c "$here/fuzz_api.c" \
        -lpthread -o "$bin" 2> "$out/build.log"; then
    cat "$out/build.log"; echo "fuzz: build failed"; exit 1
fi
backends=(uring threads)
per=$(( total / ${#backends[@]} )); [ "$per" -lt 1 ] && per=1
rc=0
for b in "${backends[@]}"; do
    work=$out/corpus-$b
    rm -rf "$work"; mkdir -p "$work"
    cp "$here"/corpus/* "$work"/
    log=$out/fuzz-$b.log
    ( cd "$out" && OVL_BACKEND=$b ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        "$bin" -error_exitcode=99 -max_total_time="$per" -max_len=1024 -timeout=20 \
        -rss_limit_mb=4096 -print_final_stats=1 "$work" > "$log" 2>&1 )
    r=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$r" -eq 77 ]; then
        echo "fuzz: backend=$b unavailable: skipped"; continue
    fi
    if [ "$r" -ne 0 ]; then
        echo "fuzz: backend=$b execs=${execs:-?} seconds=$per result=FAILED (exit $r, see $log)"
        grep -E "ERROR|check failed|SUMMARY" "$log" | head -20
        rc=1
    else
        echo "fuzz: backend=$b execs=${execs:-?} seconds=$per result=ok"
    fi
done
exit $rc

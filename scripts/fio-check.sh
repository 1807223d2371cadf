#!/usr/bin/env bash
# fio-check.sh - an independent check of ovl's speed: fio drives ovl
# through an external I/O engine (bench/fio/ovl_engine.c) and the same
# workloads run on fio's own io_uring (and libaio) engines in the same run.
#
#   scripts/fio-check.sh                     # defaults: --runtime 3 --reps 3
#   scripts/fio-check.sh --runtime 5 --reps 5
#
# Installs what is missing (Debian, as root): fio via apt-get, and the
# source of the installed fio version via a private deb-src list (fio's
# headers are not packaged; the engine must be built against the headers of
# the same version as the binary). Everything else lives in build-fio/:
# ovl (Release, target ovl), the fio source (cache), the engine, a 1 GiB
# test file. Steps:
#   1. a write-then-verify (verify=crc32c) job through the ovl engine for
#      each backend/mode, plus two O_DIRECT ones; the script fails if any fails;
#   2. the timed jobs (4 KiB random reads from the page cache at iodepth 1,
#      16, 64; O_DIRECT at 1 and 32; buffered random writes at 16), each
#      --reps times, repetitions interleaved, median IOPS kept;
#   3. a Markdown table of median IOPS and the ratio to fio's io_uring
#      engine, then the spread (min-max) of the repetitions.
# With the defaults the whole run takes about 8-9 minutes (2 vCPUs).
set -euo pipefail

runtime=3
reps=3
while [ $# -gt 0 ]; do
    case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "fio-check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build="$root/build-fio"
cache="$build/fio-src"
mkdir -p "$build" "$cache"

say() { echo "fio-check: $*" >&2; }

as_root() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "need root and apt-get to install $1; install it yourself"
        exit 1
    fi
}

# ---- fio binary -------------------------------------------------------------
if ! command -v fio >/dev/null 2>&1; then
    as_root fio
    say "installing fio"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio
fi
fio_ver=$(fio --version | sed 's/^fio-//')            # e.g. 3.33
deb_ver=$(dpkg-query -W -f='${Version}' fio 2>/dev/null || true) # e.g. 3.33-3

# ---- fio source of the same version (for the engine's headers) --------------
tarball=$(ls "$cache"/fio_"$fio_ver".orig.tar.* 2>/dev/null | head -n1 || true)
if [ -z "$tarball" ]; then
    as_root "the fio $fio_ver source"
    say "downloading the fio $deb_ver source (deb-src)"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        >"$cache/src.sources"
    mkdir -p "$cache/lists/partial"
    aptopts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$cache"
             -o "Dir::State::Lists=$cache/lists")
    apt-get "${aptopts[@]}" update -qq
    (cd "$cache" && apt-get "${aptopts[@]}" source --download-only "fio${deb_ver:+=$deb_ver}")
    tarball=$(ls "$cache"/fio_"$fio_ver".orig.tar.* | head -n1)
fi
fiosrc="$cache/fio-$fio_ver"
if [ ! -f "$fiosrc/config-host.h" ]; then
    say "unpacking and configuring the fio $fio_ver source"
    rm -rf "$fiosrc"
    tar -C "$cache" -xf "$tarball"
    # Debian's own configure line, minus the GUI and libnbd (no effect on
    # the structs an engine sees).
    (cd "$fiosrc" && ./configure --disable-native --prefix=/usr >"$cache/configure.log" 2>&1)
fi
hdr_ver=$(sed -n 's/^#define FIO_IOOPS_VERSION[[:space:]]*//p' "$fiosrc/ioengines.h")
say "fio $fio_ver, engine ABI FIO_IOOPS_VERSION $hdr_ver"

# ---- ovl and the engine -----------------------------------------------------
command -v cmake >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1 ||
    { say "need cmake and ninja (scripts/deps.sh)"; exit 1; }
if [ ! -f "$build/build.ninja" ]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$build/cmake.log"
fi
# What is measured is the tree as built now (others may commit meanwhile).
ovl_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$root" status --porcelain -- dll include CMakeLists.txt 2>/dev/null)" ] ||
    ovl_rev="$ovl_rev+uncommitted changes"
ninja -C "$build" ovl >"$build/ninja.log"
engine="$build/ovl_engine.so"
${CC:-cc} -O2 -g -Wall -Wextra -fPIC -shared -D_GNU_SOURCE \
    -include "$fiosrc/config-host.h" -isystem "$fiosrc" -I"$root/include" \
    -o "$engine" "$root/bench/fio/ovl_engine.c" \
    -L"$build" -lovl -Wl,-rpath,"$build"

ovl_rows=("ovl-uring thread:uring:thread" "ovl-uring manual:uring:manual"
          "ovl-uring sap:uring:sap" "ovl-threads thread:threads:thread")
common=(--thread=1 --numjobs=1 --bs=4k --invalidate=0)

# ---- 1. correctness: write, then read back and verify, through ovl -----------
vfile="$build/verify.dat"
verify_one() { # backend mode extra-fio-args...
    local b=$1 m=$2
    shift 2
    if ! OVL_BACKEND=$b fio --name=verify --filename="$vfile" --size=64M "${common[@]}" \
        --ioengine=external:"$engine" --mode="$m" --rw=randwrite --iodepth=16 \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 "$@" >"$build/verify.log" 2>&1 ||
        ! grep -q "err= 0" "$build/verify.log"; then
        say "VERIFY FAILED: backend=$b mode=$m $*"
        cat "$build/verify.log" >&2
        exit 1
    fi
    say "verify ok: backend=$b mode=$m $*"
}
for row in "${ovl_rows[@]}"; do
    IFS=: read -r _ b m <<<"$row"
    verify_one "$b" "$m"
done
verify_one threads manual
verify_one threads sap
verify_one uring thread --direct=1
verify_one uring sap --direct=1 --iodepth=1
rm -f "$vfile"

# ---- 2. the timed runs ------------------------------------------------------
file="$build/fio-1g.dat"
if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" != 1073741824 ]; then
    say "creating $file (1 GiB, fsynced)"
    dd if=/dev/urandom of="$file" bs=1M count=1024 conv=fsync status=none
fi

# workload id : label : fio args
workloads=(
    "c1:rand read 4k, page cache, QD1:--rw=randread --iodepth=1"
    "c16:rand read 4k, page cache, QD16:--rw=randread --iodepth=16"
    "c64:rand read 4k, page cache, QD64:--rw=randread --iodepth=64"
    "d1:rand read 4k, O_DIRECT, QD1:--rw=randread --direct=1 --iodepth=1"
    "d32:rand read 4k, O_DIRECT, QD32:--rw=randread --direct=1 --iodepth=32"
    "w16:rand write 4k, buffered, QD16:--rw=randwrite --iodepth=16"
)
# row label : engine : OVL_BACKEND : mode
rows=("fio io_uring:io_uring::" "fio libaio:libaio::")
for row in "${ovl_rows[@]}"; do
    IFS=: read -r l b m <<<"$row"
    rows+=("$l:ovl:$b:$m")
done

results="$build/results.txt"
: >"$results"
: >"$build/load.txt"
load_before=$(uptime)
kernel=$(uname -r)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
say "load before: $load_before"

run_job() { # wid fio-args-string rowspec -> prints IOPS
    local wid=$1 args=$2 spec=$3 label eng b m out iops
    IFS=: read -r label eng b m <<<"$spec"
    local eargs=()
    if [ "$eng" = ovl ]; then
        eargs=(--ioengine=external:"$engine" --mode="$m")
    else
        eargs=(--ioengine="$eng")
    fi
    # shellcheck disable=SC2086
    out=$(OVL_BACKEND=${b:-auto} fio --name="$wid" --filename="$file" --size=1G "${common[@]}" \
        --time_based=1 --runtime="$runtime" --ramp_time=1 --minimal "${eargs[@]}" $args) || {
        say "fio failed: $label $wid"; echo 0; return; }
    # terse v3: field 5 error, 8 read IOPS, 49 write IOPS
    iops=$(printf '%s\n' "$out" | tail -n1 |
        awk -F';' '{ if ($5 != 0) print 0; else print ($8 > 0 ? $8 : $49) }')
    echo "$iops"
}

for ((r = 1; r <= reps; r++)); do
    for w in "${workloads[@]}"; do
        IFS=: read -r wid _ args <<<"$w"
        case $wid in c*) cat "$file" >/dev/null ;; esac # fully cached first
        for spec in "${rows[@]}"; do
            IFS=: read -r label eng _ _ <<<"$spec"
            # libaio on buffered files is synchronous inside io_submit: O_DIRECT only
            if [ "$eng" = libaio ] && [ "${wid#d}" = "$wid" ]; then continue; fi
            iops=$(run_job "$wid" "$args" "$spec")
            echo "$wid|$label|$iops" >>"$results"
            say "rep $r/$reps $wid $label: $iops IOPS"
            case $wid in w*) sync ;; esac
        done
        cut -d' ' -f1 /proc/loadavg >>"$build/load.txt" # 1-min load, per workload
    done
done
load_after=$(uptime)

# ---- 3. the table -------------------------------------------------------------
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
get() { { grep -F "$1|$2|" "$results" || true; } | cut -d"|" -f3 | median; }
fmt() { awk -v v="$1" 'BEGIN { if (v >= 1000) printf "%.1fk", v / 1000; else printf "%d", v }'; }

echo
echo "fio $fio_ver, ovl $(sed -n 's/^#define OVL_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' include/ovl.h | paste -sd.)" \
    "($ovl_rev), kernel $kernel, $(nproc) CPUs, $started;" \
    "runtime ${runtime}s + 1s ramp, median of $reps"
echo "load before: ${load_before#*load }"
echo "load after:  ${load_after#*load }"
echo "1-min load average sampled after each workload: $(sort -n "$build/load.txt" |
    awk 'NR == 1 { lo = $1 } { hi = $1; s += $1 } END { printf "min %s, mean %.2f, max %s", lo, s / NR, hi }')"
echo
hdr="| engine |"
sep="|---|"
for w in "${workloads[@]}"; do
    IFS=: read -r _ lab _ <<<"$w"
    hdr="$hdr $lab |"
    sep="$sep---:|"
done
echo "$hdr"
echo "$sep"
for spec in "${rows[@]}"; do
    IFS=: read -r label _ _ _ <<<"$spec"
    line="| $label |"
    for w in "${workloads[@]}"; do
        IFS=: read -r wid _ _ <<<"$w"
        v=$(get "$wid" "$label")
        base=$(get "$wid" "fio io_uring")
        if [ -z "$v" ]; then
            line="$line n/a |"
        elif [ "$label" = "fio io_uring" ] || [ -z "$base" ] || [ "$base" = 0 ]; then
            line="$line $(fmt "$v") |"
        else
            line="$line $(fmt "$v") ($(awk -v a="$v" -v b="$base" 'BEGIN { printf "%.2f", a / b }')×) |"
        fi
    done
    echo "$line"
done

# The spread behind each median (min-max of the repetitions), in thousands.
echo
echo "Spread (min-max IOPS, thousands, of the $reps repetitions):"
echo
echo "$hdr"
echo "$sep"
for spec in "${rows[@]}"; do
    IFS=: read -r label _ _ _ <<<"$spec"
    line="| $label |"
    for w in "${workloads[@]}"; do
        IFS=: read -r wid _ _ <<<"$w"
        mm=$({ grep -F "$wid|$label|" "$results" || true; } | cut -d"|" -f3 | sort -n |
            awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.0f-%.0f", lo / 1000, hi / 1000; else printf "n/a" }')
        line="$line $mm |"
    done
    echo "$line"
done

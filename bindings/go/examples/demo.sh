#!/usr/bin/env bash
# The Go part of scripts/demo.sh: cmd/ovldemo reads a generated file with
# ReadAt from many goroutines (contents verified), lets a read deadline
# expire on an idle pipe, and prints the version, backend and throughput.
# Links the libovl that demo.sh built (OVL_BUILD_DIR, default build/);
# arguments go to ovldemo (-size, -goroutines, -block).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
lib=${OVL_BUILD_DIR:-build}
case $lib in /*) ;; *) lib="$root/$lib" ;; esac
lib=$(cd "$lib" && pwd)
cd "$here"
# cgo.go links ../../build with an rpath; another build directory goes
# first on the link line and on the loader's path.
export CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib ${CGO_LDFLAGS:-}"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin="$lib/ovldemo-go"
go build -o "$bin" ./cmd/ovldemo
exec "$bin" "$@"

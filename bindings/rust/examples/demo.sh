#!/usr/bin/env bash
# The Rust part of scripts/demo.sh: many 4 KiB reads in flight under ovl's
# own executor, contents verified, backend and throughput printed.
# Links the libovl that demo.sh built (OVL_BUILD_DIR, default build/).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
export OVL_LIB_DIR="${OVL_LIB_DIR:-$root/${OVL_BUILD_DIR:-build}}"
cd "$here"
cargo run -q --release -j 2 -p ovl --example read_concurrent -- "$@"

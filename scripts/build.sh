#!/usr/bin/env bash
# build.sh [DIR] [cmake args...] - configure and build libovl, its tests and
# examples (default DIR: build/, the directory the Go and Rust bindings link
# against). Installs the build dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
scripts/deps.sh build-essential cmake ninja-build pkg-config libcriterion-dev g++
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j2

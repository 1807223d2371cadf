#!/usr/bin/env bash
# format.sh - the C sources in the project's style (.clang-format).
#
#   scripts/format.sh           # rewrite the files in place
#   scripts/format.sh --check   # change nothing; list what differs, exit 1
#
# Installs clang-format if missing (Debian: apt-get install clang-format, as
# root). Go is checked by gofmt (test-go.sh), Rust by cargo fmt
# (test-rust.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v clang-format >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-format >/dev/null
    else
        echo "format.sh: clang-format missing (Debian: apt-get install clang-format)" >&2
        exit 1
    fi
fi
mapfile -t files < <(git ls-files 'dll/*.[ch]' 'include/*.h' 'tests/*.[ch]' 'tests/**/*.[ch]' \
    'examples/*.[ch]' 'bench/*.c' 'bindings/go/*.[ch]' | sort -u)
if [ "${1:-}" = --check ]; then
    bad=0
    for f in "${files[@]}"; do
        if ! clang-format "$f" | diff -q "$f" - >/dev/null; then
            echo "not formatted: $f"
            bad=1
        fi
    done
    [ "$bad" = 0 ] && echo "format: ${#files[@]} C files formatted"
    [ "$bad" = 0 ] || echo "format: run scripts/format.sh to fix"
    exit "$bad"
fi
clang-format -i "${files[@]}"

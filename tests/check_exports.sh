#!/bin/bash
# The library exports exactly the symbols listed in dll/ovl.map, all ovl_*,
# and does not link liburing. Usage: check_exports.sh LIB MAPFILE
# ELF (Linux, FreeBSD): nm -D and the NEEDED entries. Mach-O (macOS): the
# defined external symbols less the leading underscore, and the dylibs it
# loads. NM and OBJDUMP name other tools (scripts/test-cross.sh checks the
# cross-built libraries with llvm-nm and llvm-objdump).
set -eu
lib=$1 map=$2
want=$(sed -n 's/^ *\(ovl_[a-z_0-9]*\);$/\1/p' "$map" | sort)
if [ "$(od -An -tx1 -N4 "$lib" | tr -d ' \n')" = cffaedfe ]; then # 64-bit Mach-O
  if command -v otool >/dev/null; then # a Mac
    syms=$("${NM:-nm}" -gU "$lib")
    deps=$("${OBJDUMP:-otool}" -L "$lib")
  else # GNU binutils cannot read Mach-O
    syms=$("${NM:-llvm-nm}" -gU "$lib")
    deps=$("${OBJDUMP:-llvm-objdump}" --macho --dylibs-used "$lib")
  fi
  # zig's linker (the cross build) also exports the two symbols every
  # image defines, whatever the export list says; Apple's ld does not.
  have=$(echo "$syms" | awk '{print $NF}' |
    grep -vx -e '__mh_dylib_header' -e '___dso_handle' | sed 's/^_//' | sort)
else
  syms=$("${NM:-nm}" -D --defined-only "$lib")
  have=$(echo "$syms" | awk '{print $NF}' | sort)
  # The direct dependencies (ldd would need the target's own loader).
  deps=$(LC_ALL=C readelf -d "$lib" | grep NEEDED || true)
fi
if [ "$want" != "$have" ]; then
  echo "export list differs from $map:"; diff <(echo "$want") <(echo "$have") || true
  exit 1
fi
if echo "$deps" | grep -q uring; then echo "libovl links liburing"; exit 1; fi
echo "exports ok: $(echo "$have" | wc -l) ovl_ symbols, no liburing"

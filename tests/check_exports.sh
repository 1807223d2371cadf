#!/bin/bash
# The library exports exactly the symbols listed in dll/ovl.map, all ovl_*,
# and does not link liburing. Usage: check_exports.sh LIB MAPFILE
set -eu
lib=$1 map=$2
want=$(sed -n 's/^ *\(ovl_[a-z_0-9]*\);$/\1/p' "$map" | sort)
have=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sort)
if [ "$want" != "$have" ]; then
  echo "export list differs from $map:"; diff <(echo "$want") <(echo "$have") || true
  exit 1
fi
if ldd "$lib" | grep -q uring; then echo "libovl links liburing"; exit 1; fi
echo "exports ok: $(echo "$have" | wc -l) ovl_ symbols, no liburing"

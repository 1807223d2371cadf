#!/usr/bin/env bash
# deps.sh PKG... - install the Debian packages that are missing (as root, or
# through sudo). Go and Rust come with the machine; never install Debian's
# older golang-go over them. Safe to run repeatedly: does nothing when all
# packages are present.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "deps: installing ${missing[*]}"
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/ovl-apt.log 2>&1; then
  # Package lists may be missing or stale on a fresh machine.
  $SUDO apt-get update -q >>/tmp/ovl-apt.log 2>&1
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/ovl-apt.log 2>&1 || {
    tail -20 /tmp/ovl-apt.log; echo "deps: apt-get install failed"; exit 1; }
fi

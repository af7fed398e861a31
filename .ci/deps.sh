#!/usr/bin/env bash
# System packages the build needs beyond the Rust toolchain and gcc/make.
#
# The `emulate` feature: the `unicorn-engine` crate builds the Unicorn C
# library with CMake and generates its bindings with bindgen, which loads
# libclang at build time and needs clang's own headers (stddef.h, ...).
# The debug-information tests (tests/tools.rs) run the real `gdb` and
# `perf` (Debian's package for perf is linux-perf).
#
# Idempotent: installs nothing when every package is already present, so it
# is cheap to call at the start of every CI run.
set -euo pipefail

packages=(cmake libclang1-14 libclang-common-14-dev gdb linux-perf)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all present (${packages[*]})"
    exit 0
fi

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
else
    sudo=
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${missing[@]}"

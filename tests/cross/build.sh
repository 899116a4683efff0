#!/usr/bin/env bash
# Cross test set-up: configures and builds the Raspberry Pi worker with the CMake preset
# rpi-ARCH (into build-rpi-ARCH/ at the repository root, sysroot from scripts/sysroot.sh) and
# checks that the binary is for the target: `file` must say ARM aarch64 (arm64) or
# ARM, EABI5 (armhf).
#
# Usage: build.sh arm64|armhf
set -euo pipefail
arch="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
case "$arch" in
  arm64) expect="ELF 64-bit LSB .*ARM aarch64" ;;
  armhf) expect="ELF 32-bit LSB .*ARM, EABI5" ;;
  *) echo "build: usage: build.sh arm64|armhf" >&2; exit 2 ;;
esac
start=$(date +%s)
cmake --preset "rpi-$arch"
cmake --build --preset "rpi-$arch"
bin="build-rpi-$arch/edge-worker/marina-worker"
description="$(file -b "$bin")"
echo "build: $bin: $description"
[[ "$description" =~ $expect ]] || { echo "build: $bin is not an $arch binary" >&2; exit 1; }
# Worker-only: nothing but the worker (and its key tool) and the libraries they link.
extra="$(find "build-rpi-$arch" -type f -perm -u+x -name 'marina-*' ! -path '*/CMakeFiles/*' ! -name marina-worker ! -name marina-keygen)"
[[ -z "$extra" ]] || { echo "build: the worker-only build made more: $extra" >&2; exit 1; }
echo "build: rpi-$arch built in $(($(date +%s) - start)) s"

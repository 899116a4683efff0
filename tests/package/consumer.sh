#!/usr/bin/env bash
# Package test of the worker library (component dev, Debian package libmarina-dev): installs
# BUILD_DIR's component dev into an empty prefix and checks it as a device program sees it:
#  - the tree: the three public headers, libmarina-worker.a (for ARCH), the CMake package marina
#    and marina-worker.pc, nothing else, and no path of this machine in the CMake and .pc files;
#  - each public header compiles alone against the prefix (no Eigen, FlatBuffers, cppzmq);
#  - tests/package/consumer (find_package(marina), a quadratic marina::Model, a marina::Worker
#    whose coordinator does not answer) configures and builds against the prefix ONLY, and runs
#    (arm64/armhf: under qemu-user with build-sysroot/ARCH): it must stop on marina::WorkerError;
#  - natively, the same main.cc built with g++ and `pkg-config --cflags --libs marina-worker`.
#
# Usage: consumer.sh BUILD_DIR ARCH        ARCH: native | arm64 | armhf
#   e.g. consumer.sh build native;  consumer.sh build-rpi-arm64 arm64
# MARINA_PACKAGE_KEEP=DIR keeps the prefix and the consumer builds in DIR.
#
# Sourced (`source consumer.sh` with BUILD_DIR and ARCH set as variables `build`, `arch`), it only
# defines the functions, for other projects against the same prefix:
#   marina_setup; marina_install; marina_project DIR NAME [cmake args...]; marina_run BIN [args...]
set -euo pipefail

marina_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
marina_fail() { echo "consumer: $*" >&2; exit 1; }

# Sets the work folder, the prefix and, for ARCH, the toolchain, sysroot and emulator.
marina_setup() {
  build="$(cd "$build" && pwd)"
  work="${MARINA_PACKAGE_KEEP:-$(mktemp -d)}"
  mkdir -p "$work"
  [[ -n "${MARINA_PACKAGE_KEEP:-}" ]] || trap 'rm -rf "$work"' EXIT
  prefix="$work/prefix"
  rm -rf "$prefix"
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cross=()
  emulator=()
  case "$arch" in
    native)
      machine="$(uname -m)"
      case "$machine" in x86_64) elf_machine="X86-64" ;; aarch64) elf_machine="AArch64" ;;
                         armv7l) elf_machine="ARM" ;; *) elf_machine="" ;; esac ;;
    arm64|armhf)
      if [[ "$arch" == arm64 ]]; then
        triplet=aarch64-linux-gnu qemu=qemu-aarch64 elf_machine="AArch64"
      else
        triplet=arm-linux-gnueabihf qemu=qemu-arm elf_machine="ARM"
      fi
      sysroot="$marina_repo/build-sysroot/$arch"
      [[ -f "$sysroot/.marina-sysroot" ]] || marina_fail "$sysroot missing (scripts/sysroot.sh $arch)"
      command -v "$qemu" >/dev/null || marina_fail "$qemu missing (scripts/deps.sh installs qemu-user)"
      # The toolchain re-roots CMAKE_PREFIX_PATH into the sysroot; a staging prefix is searched
      # as it is.
      cross=(-DCMAKE_TOOLCHAIN_FILE="$marina_repo/toolchains/$triplet.cmake"
             -DCMAKE_STAGING_PREFIX="$prefix")
      emulator=("$qemu" -L "/usr/$triplet"
                -E "LD_LIBRARY_PATH=$sysroot/usr/lib/$triplet:$sysroot/lib/$triplet") ;;
    *) echo "consumer: usage: consumer.sh BUILD_DIR native|arm64|armhf" >&2; exit 2 ;;
  esac
}

# cmake --install of component dev into $prefix, then the checks of the installed tree.
marina_install() {
  [[ -f "$build/CMakeCache.txt" ]] || marina_fail "$build is not a configured build tree"
  cmake --install "$build" --prefix "$prefix" --component dev
  local want got
  want="$(printf '%s\n' include/marina/linear_model.h include/marina/model.h \
    include/marina/worker.h lib/cmake/marina/marinaConfig.cmake \
    lib/cmake/marina/marinaConfigVersion.cmake lib/cmake/marina/marinaLibzmq.cmake \
    lib/cmake/marina/marinaTargets.cmake lib/libmarina-worker.a lib/pkgconfig/marina-worker.pc)"
  got="$(cd "$prefix" && find . -type f ! -name 'marinaTargets-*.cmake' | sed 's|^\./||' | sort)"
  [[ "$got" == "$want" ]] || marina_fail "installed files differ:$(diff <(echo "$want") <(echo "$got"))"
  ls "$prefix"/lib/cmake/marina/marinaTargets-*.cmake >/dev/null ||
    marina_fail "no per-configuration marinaTargets-*.cmake"
  find "$prefix" | sed "s|^$prefix|PREFIX|" | sort

  # Relocatable: no folder of this machine (the prefix itself included) in the package files.
  local paths
  paths="$(grep -rnF -e "$marina_repo" -e "$build" -e "$work" -e /work/ -e /tmp/ -e /home/ \
           -e /root/ "$prefix/lib/cmake" "$prefix/lib/pkgconfig" || true)"
  [[ -z "$paths" ]] || marina_fail "machine paths in the installed package files:"$'\n'"$paths"
  # Eigen, FlatBuffers and cppzmq are private: not in the exported link interface.
  local leaked
  leaked="$(grep -nE 'Eigen|flatbuffers|cppzmq|marina_(core|wire|net)' \
            "$prefix"/lib/cmake/marina/marinaTargets*.cmake || true)"
  [[ -z "$leaked" ]] || marina_fail "internal dependencies exported:"$'\n'"$leaked"

  # The archive is for ARCH (readelf reads any architecture).
  if [[ -n "$elf_machine" ]]; then
    local machines
    machines="$(readelf -h "$prefix/lib/libmarina-worker.a" | sed -n 's/^ *Machine: *//p' | sort -u)"
    [[ "$machines" == *"$elf_machine"* && "$(wc -l <<<"$machines")" == 1 ]] ||
      marina_fail "libmarina-worker.a is not all $elf_machine: $machines"
  fi
  echo "consumer: libmarina-worker.a: $(stat -c %s "$prefix/lib/libmarina-worker.a") bytes," \
       "$(ar t "$prefix/lib/libmarina-worker.a" | wc -l) objects"

  # Each public header alone, with the prefix as the only include folder.
  local cxx=c++ h
  [[ "$arch" == native ]] || cxx="$triplet-g++"
  for h in "$prefix"/include/marina/*.h; do
    echo "#include \"marina/$(basename "$h")\"" |
      "$cxx" -std=c++20 -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" -x c++ - ||
      marina_fail "marina/$(basename "$h") does not compile alone against the prefix"
  done
}

# Configures and builds the CMake project DIR into $work/NAME against $prefix only (plus, for a
# cross build, the sysroot); checks that find_package(marina) took the prefix.
marina_project() {
  local dir="$1" name="$2"; shift 2
  local out="$work/$name"
  rm -rf "$out"
  # Nothing from the environment or the package registry may stand in for the prefix.
  env -u CMAKE_PREFIX_PATH -u marina_DIR -u PKG_CONFIG_PATH \
    cmake -S "$dir" -B "$out" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "${cross[@]}" "$@"
  local found
  found="$(sed -n 's/^marina_DIR:PATH=//p' "$out/CMakeCache.txt")"
  [[ "$found" == "$prefix/lib/cmake/marina" ]] ||
    marina_fail "$name: find_package(marina) took '$found', not $prefix/lib/cmake/marina"
  cmake --build "$out" -j 2
}

# Runs a program built for ARCH (qemu-user and the sysroot's libraries for arm64/armhf).
marina_run() {
  timeout 120 "${emulator[@]}" "$@"
}

[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

[[ $# -eq 2 ]] || { echo "consumer: usage: consumer.sh BUILD_DIR native|arm64|armhf" >&2; exit 2; }
build="$1"; arch="$2"
marina_setup
marina_install

# Expects the consumer's exit 0 and its WorkerError line.
check_consumer() {
  local what="$1"; shift
  local out rc=0
  out="$(marina_run "$@" 2>&1)" || rc=$?
  echo "$out"
  [[ $rc -eq 0 && "$out" == *"consumer: WorkerError"* ]] ||
    marina_fail "$what: exit $rc, expected 0 and a marina::WorkerError"
}

consumer="$marina_repo/tests/package/consumer"
marina_project "$consumer" consumer
bin="$work/consumer/marina-consumer"
description="$(file -b "$bin")"
echo "consumer: $bin: $description"
check_consumer "CMake consumer ($arch)" "$bin"

if [[ "$arch" == native ]]; then
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
  [[ "$(pkg-config --modversion marina-worker)" == "$(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/marina-worker.pc")" ]] ||
    marina_fail "pkg-config does not read the prefix's marina-worker.pc"
  read -r -a flags <<<"$(pkg-config --cflags --libs marina-worker)"
  echo "consumer: pkg-config --cflags --libs marina-worker: ${flags[*]}"
  c++ -std=c++20 -O2 "$consumer/main.cc" "${flags[@]}" -o "$work/consumer-pkg-config"
  check_consumer "pkg-config consumer" "$work/consumer-pkg-config"
fi
echo "consumer: libmarina-dev ($arch, from $build) checked"

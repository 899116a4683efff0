#!/usr/bin/env bash
# Package test: runs cpack in BUILD_DIR and checks the .deb files it writes with dpkg-deb:
# Package, Architecture and Depends (libc6, libgcc-s1, libstdc++6, libzmq5 with versions), the
# files (binaries stripped and for ARCH; marina-worker@.service, whose Type matches whether the
# worker links libsystemd, and the example conf in the worker package) and the maintainer scripts.
# libmarina-dev: Depends libzmq3-dev; exactly the public headers, libmarina-worker.a (for ARCH,
# without debug information), the CMake package and marina-worker.pc, with no path of this
# machine in them (tests/package/consumer.sh builds programs against them).
#
# Usage: package.sh BUILD_DIR ARCH PACKAGE...     e.g. package.sh build-rpi-arm64 arm64 marina-worker
set -euo pipefail
build="$(cd "$1" && pwd)"; arch="$2"; shift 2
case "$arch" in
  amd64) elf="ELF 64-bit LSB .*x86-64" machine="Advanced Micro Devices X86-64" ;;
  arm64) elf="ELF 64-bit LSB .*ARM aarch64" machine="AArch64" ;;
  armhf) elf="ELF 32-bit LSB .*ARM, EABI5" machine="ARM" ;;
  *) echo "package: unknown architecture $arch" >&2; exit 2 ;;
esac
fail() { echo "package: $*" >&2; exit 1; }

rm -rf "$build/packages"
(cd "$build" && cpack -G DEB)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for pkg in "$@"; do
  deb="$(ls "$build"/packages/"${pkg}"_*_"$arch".deb 2>/dev/null | head -n1)"
  [[ -n "$deb" ]] || fail "no ${pkg}_*_$arch.deb in $build/packages: $(ls "$build/packages")"
  echo "== $deb"
  dpkg-deb -I "$deb"
  dpkg-deb -c "$deb"
  [[ "$(dpkg-deb -f "$deb" Package)" == "$pkg" ]] || fail "$deb: wrong Package"
  [[ "$(dpkg-deb -f "$deb" Architecture)" == "$arch" ]] || fail "$deb: Architecture is not $arch"
  depends="$(dpkg-deb -f "$deb" Depends)"
  if [[ "$pkg" == libmarina-dev ]]; then
    wants=('libzmq3-dev')
  else
    wants=('libc6 (>= 2.' 'libgcc-s1 (>= ' 'libstdc++6 (>= ' 'libzmq5 (>= 4.')
  fi
  for want in "${wants[@]}"; do
    [[ "$depends" == *"$want"* ]] || fail "$deb: Depends '$depends' lacks '$want…'"
  done
  rm -rf "$work/x" && dpkg-deb -x "$deb" "$work/x"
  case "$pkg" in
    libmarina-dev) bins=()
      files="$(cd "$work/x" && find . -type f ! -name 'marinaTargets-*.cmake' | sed 's|^\./||' | sort)"
      want_files="$(printf '%s\n' usr/include/marina/linear_model.h usr/include/marina/model.h \
        usr/include/marina/worker.h usr/lib/cmake/marina/marinaConfig.cmake \
        usr/lib/cmake/marina/marinaConfigVersion.cmake usr/lib/cmake/marina/marinaLibzmq.cmake \
        usr/lib/cmake/marina/marinaTargets.cmake usr/lib/libmarina-worker.a \
        usr/lib/pkgconfig/marina-worker.pc)"
      [[ "$files" == "$want_files" ]] ||
        fail "$deb: files differ:$(diff <(echo "$want_files") <(echo "$files"))"
      [[ "$(dpkg-deb -f "$deb" Section)" == libdevel ]] || fail "$deb: Section is not libdevel"
      lib="$work/x/usr/lib/libmarina-worker.a"
      machines="$(readelf -h "$lib" | sed -n 's/^ *Machine: *//p' | sort -u)"
      [[ "$machines" == "$machine" ]] || fail "$deb: libmarina-worker.a is not all $machine: $machines"
      sections="$(readelf -S "$lib")"
      [[ "$sections" != *.debug_info* ]] || fail "$deb: libmarina-worker.a has debug information"
      paths="$(grep -rnF -e "$build" -e "$(cd "$(dirname "$0")/../.." && pwd)" -e /work/ -e /tmp/ \
               -e /home/ "$work/x/usr/lib/cmake" "$work/x/usr/lib/pkgconfig" || true)"
      [[ -z "$paths" ]] || fail "$deb: machine paths in the package files: $paths"
      echo "package: /usr/lib/libmarina-worker.a: $(stat -c %s "$lib") bytes, $machine" ;;
    marina-worker) bins=(usr/bin/marina-worker usr/bin/marina-keygen)
      for f in usr/lib/systemd/system/marina-worker@.service \
               usr/share/doc/marina-worker/examples/worker-0.conf; do
        [[ -f "$work/x/$f" ]] || fail "$deb: /$f missing"
      done
      unit="$work/x/usr/lib/systemd/system/marina-worker@.service"
      grep -q '^EnvironmentFile=/etc/marina/worker-%i.conf$' "$unit" || fail "unit: no EnvironmentFile"
      # Type=notify only for a worker that can notify (linked with libsystemd, MARINA_WITH_SYSTEMD):
      # otherwise systemd would wait for a READY=1 that never comes.
      if readelf -d "$work/x/usr/bin/marina-worker" | grep -q 'NEEDED.*libsystemd\.so'; then
        grep -q '^Type=notify$' "$unit" && grep -q '^WatchdogSec=' "$unit" ||
          fail "unit: the worker links libsystemd but the unit is not Type=notify with a watchdog"
      else
        grep -q '^Type=exec$' "$unit" || fail "unit: the worker cannot notify but the unit is not Type=exec"
      fi
      if command -v systemd-analyze >/dev/null; then
        # Offline check of the unit (syntax, keys, specifiers); the binary is not installed here.
        cp "$work/x/usr/lib/systemd/system/marina-worker@.service" "$work/marina-worker@0.service"
        notes="$(systemd-analyze verify "$work/marina-worker@0.service" 2>&1 |
                 grep -v 'Command /usr/bin/marina-worker is not executable' || true)"
        [[ -z "$notes" ]] || fail "systemd-analyze verify marina-worker@.service: $notes"
      fi
      rm -rf "$work/c" && dpkg-deb -e "$deb" "$work/c"
      for s in postinst prerm postrm; do
        [[ -x "$work/c/$s" ]] || fail "$deb: maintainer script $s missing"
        sh -n "$work/c/$s" || fail "$deb: $s is not valid sh"
      done ;;
    marina-coordinator) bins=(usr/bin/marina-coordinator usr/bin/marina-sim) ;;
    *) bins=() ;;
  esac
  for b in "${bins[@]}"; do
    description="$(file -b "$work/x/$b")"
    [[ "$description" =~ $elf ]] || fail "$deb: /$b is not an $arch binary: $description"
    [[ "$description" == *", stripped"* ]] || fail "$deb: /$b is not stripped: $description"
    echo "package: /$b: $(stat -c %s "$work/x/$b") bytes, $description"
  done
done
echo "package: $* ($arch) checked"

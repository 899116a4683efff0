#!/usr/bin/env bash
# Installs, idempotently, every Debian package that the build, the tests and the demo need.
# Packages already installed are left alone; only the missing ones are fetched.
#
# Usage: scripts/deps.sh            (as root, or with sudo available)

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/cli.sh"
cli_args deps.sh 0 "$@"

packages=(
  build-essential cmake pkg-config python3
  libeigen3-dev doctest-dev libcli11-dev
  libzmq3-dev cppzmq-dev
  libflatbuffers-dev flatbuffers-compiler
  # bench/ (micro-benchmarks) and tools/marina-plot (figures; its ctest runs it).
  libbenchmark-dev python3-matplotlib
  # bench/*.py: /usr/bin/time -v (peak RSS) and ip/tc for the slow-link namespaces.
  time iproute2
  # Fuzzing (tests/fuzz/run.sh): clang 14 and its runtimes (libFuzzer, ASan, UBSan).
  clang libclang-rt-14-dev
  # Raspberry Pi workers (docs/RASPBERRY_PI.md): cross compilers for arm64 and armhf (ARMv7),
  # qemu-user to run their binaries in the cross tests (called explicitly; no binfmt needed),
  # file and dpkg-dev (dpkg-shlibdeps) for the build checks and the .deb packages.
  g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user file dpkg-dev
  # The coordinator's HTTP view (--http, docs/OBSERVE.md) and the worker's systemd notifications
  # (MARINA_WITH_SYSTEMD); its tests parse /metrics with prometheus_client and drive the
  # dashboard in headless Chromium through Selenium and chromedriver.
  libcpp-httplib-dev libsystemd-dev
  python3-prometheus-client python3-selenium chromium chromium-driver
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

echo "deps: installing ${missing[*]}"
# A foreign-architecture index that lags behind its mirror makes 'apt-get update' fail
# although the native lists are fine: report it, do not stop on it.
"${sudo[@]}" apt-get update -q || echo "deps: warning: 'apt-get update' reported errors; continuing" >&2
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

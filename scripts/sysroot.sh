#!/usr/bin/env bash
# Builds a cross-compilation sysroot for the Raspberry Pi worker from the target's Debian .deb
# files: the libraries and headers that marina-worker links against (libzmq and its runtime
# dependencies, cppzmq, FlatBuffers headers, Eigen, CLI11). The C library, libstdc++ and
# libgcc come from Debian's cross compilers (g++-aarch64-linux-gnu, g++-arm-linux-gnueabihf,
# installed by scripts/deps.sh), not from here.
#
# Nothing is installed into the host system and the host's dpkg/apt configuration is not
# changed: apt runs with a private state folder (its own package lists for the target
# architecture, from the host's apt sources and keys), `apt-get download` fetches the .deb
# files (signature-checked as usual) and `dpkg-deb -x` unpacks them into the sysroot. Needs no
# root. A foreign-architecture index that fails to update is reported, not fatal, as long as
# the packages can still be downloaded (multiarch `apt-get install` of libzmq3-dev:arm64 can
# fail when the foreign-architecture indices lag the native ones: hence .deb files, not installs).
#
# Idempotent: a finished sysroot (stamp file .marina-sysroot whose content matches the
# package list below) is left alone; an unfinished one is rebuilt. The toolchain files
# (toolchains/*.cmake) run this script when their sysroot is missing, so
# `cmake --preset rpi-arm64` works on its own.
#
# Usage: scripts/sysroot.sh arm64|armhf [DIR]
#        DIR defaults to build-sysroot/ARCH at the repository root.
# Environment: MARINA_SYSROOT_SOURCES=FILE  an apt sources file (one-line or deb822 format) to
#        use instead of the host's, e.g. for an Ubuntu host (arm64/armhf live on
#        ports.ubuntu.com there) or to pin Debian 12 for a Raspberry Pi OS bookworm target.

set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "sysroot: error: $*" >&2; exit 1; }
source "$repo/scripts/lib/cli.sh"
cli_args sysroot.sh 2 "$@"

arch="${1:-}"
case "$arch" in
  arm64) triplet=aarch64-linux-gnu ;;
  armhf) triplet=arm-linux-gnueabihf ;;
  *) die "usage: scripts/sysroot.sh arm64|armhf [DIR]" ;;
esac
dir="${2:-$repo/build-sysroot/$arch}"

# Target-architecture packages. The runtime closure of libzmq5 is listed explicitly (what
# Debian 12's libzmq5 needs, minus libc6/libgcc-s1/libstdc++6, which the cross toolchain
# provides); the check at the end fails loudly if a library is missing.
packages=(
  libzmq3-dev libzmq5 cppzmq-dev
  libsodium23 libpgm-5.3-0 libnorm1 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2
  libkrb5support0 libkeyutils1 libssl3 libbsd0 libmd0
  libflatbuffers-dev libflatbuffers2
)
# Architecture-independent headers (Multi-Arch: foreign, "all").
packages_all=(libeigen3-dev libcli11-dev)
# For dpkg-shlibdeps only (the Depends of the .deb packages, see packaging/): the target's
# packages of every library the worker needs, unpacked with their control files into
# DIR/.shlibs/PACKAGE, outside the library and include folders the build searches.
packages_shlibs=(libc6 libgcc-s1 libstdc++6 libzmq5)

for tool in apt-get dpkg-deb readelf flock; do
  command -v "$tool" >/dev/null || die "'$tool' not found (this script needs Debian's apt, dpkg and binutils)"
done

mkdir -p "$(dirname "$dir")"
dir="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")"
stamp_content="marina sysroot v1 $arch: ${packages[*]} ${packages_all[*]} shlibs: ${packages_shlibs[*]} ${MARINA_SYSROOT_SOURCES:-}"

# One builder at a time per sysroot (two configure steps, or ctest running the arm64 and
# armhf builds, may ask at once).
exec 9>"$dir.lock"
flock 9

if [[ -f "$dir/.marina-sysroot" ]] && [[ "$(head -n1 "$dir/.marina-sysroot")" == "$stamp_content" ]]; then
  echo "sysroot: $dir is up to date"
  exit 0
fi

work="$dir.work"           # apt state and downloaded .deb files (kept: a rebuild re-uses them)
state="$work/apt"
debs="$work/debs"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$debs"
: >"$state/status"

apt_opts=(
  -o "Dir::State=$state"
  -o "Dir::State::Lists=$state/lists"
  -o "Dir::State::status=$state/status"
  -o "Dir::Cache=$state/cache"
  -o "Dir::Cache::archives=$state/cache/archives"
  -o "APT::Architecture=$arch"
  -o "APT::Architectures::=$arch"
  -o "Acquire::Languages=none"
  -o "Debug::NoLocking=1"
)
if [[ $(id -u) -eq 0 ]]; then
  # apt would drop to the _apt user, which cannot write into this (root-owned) folder.
  apt_opts+=(-o "APT::Sandbox::User=root")
fi
if [[ -n "${MARINA_SYSROOT_SOURCES:-}" ]]; then
  src="$(cd "$(dirname "$MARINA_SYSROOT_SOURCES")" && pwd)/$(basename "$MARINA_SYSROOT_SOURCES")"
  [[ -f "$src" ]] || die "MARINA_SYSROOT_SOURCES=$MARINA_SYSROOT_SOURCES: no such file"
  mkdir -p "$state/sources.list.d"
  rm -f "$state/sources.list.d"/*
  case "$src" in
    *.sources) cp "$src" "$state/sources.list.d/marina.sources" ;;
    *) cp "$src" "$state/sources.list.d/marina.list" ;;
  esac
  apt_opts+=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$state/sources.list.d")
fi

echo "sysroot: building the $arch sysroot in $dir"
log="$work/apt.log"
if ! apt-get "${apt_opts[@]}" update >"$log" 2>&1; then
  echo "sysroot: warning: 'apt-get update' for $arch reported errors (continuing; see $log):" >&2
  grep -E '^(E|W):' "$log" | sed 's/^/  /' >&2 || true
fi

# Downloads the packages not yet in $debs (apt-get download names them NAME_VERSION_ARCH.deb).
fetch() {
  local want=() p
  for p in "$@"; do
    compgen -G "$debs/${p}_*.deb" >/dev/null || want+=("$p")
  done
  ((${#want[@]})) || return 0
  if ! (cd "$debs" && apt-get "${apt_opts[@]}" download "${want[@]}") >>"$log" 2>&1; then
    echo "sysroot: error: cannot download ${want[*]} for $arch:" >&2
    tail -n 15 "$log" | sed 's/^/  /' >&2
    die "the $arch package index is needed (see $log); MARINA_SYSROOT_SOURCES can name other apt sources"
  fi
}
fetch "${packages[@]}"
fetch "${packages_all[@]}"
fetch "${packages_shlibs[@]}"

# Unpack into a fresh folder, then swap it in: a half-built sysroot is never taken as done.
rm -rf "$dir.new"
mkdir -p "$dir.new"
for p in "${packages[@]}" "${packages_all[@]}"; do
  deb="$(ls "$debs/${p}"_*.deb | sort -V | tail -n1)"
  dpkg-deb -x "$deb" "$dir.new"
  echo "$(basename "$deb")" >>"$dir.new/.packages"
done
mkdir -p "$dir.new/.shlibs"
for p in "${packages_shlibs[@]}"; do
  deb="$(ls "$debs/${p}"_*.deb | sort -V | tail -n1)"
  dpkg-deb -R "$deb" "$dir.new/.shlibs/$p"
done
# Debian 12 packages still ship libraries in /lib/TRIPLET; the Raspberry Pi's merged /usr does
# not matter here. Absolute symlinks (none expected) would point into the host: refuse them.
if bad="$(find "$dir.new" -path "$dir.new/.shlibs" -prune -o -type l -lname '/*' -print -quit)" && [[ -n "$bad" ]]; then
  die "absolute symlink in the sysroot: $bad -> $(readlink "$bad")"
fi

# Check: every library that libzmq.so.5 needs (transitively) is in the sysroot or comes with
# the cross toolchain (/usr/TRIPLET/lib).
libdirs=("$dir.new/usr/lib/$triplet" "$dir.new/lib/$triplet" "/usr/$triplet/lib")
[[ -d "/usr/$triplet/lib" ]] || die "/usr/$triplet/lib missing: install the cross compiler (scripts/deps.sh)"
find_lib() {
  local d
  for d in "${libdirs[@]}"; do [[ -e "$d/$1" ]] && { echo "$d/$1"; return 0; }; done
  return 1
}
declare -A seen=()
queue=(libzmq.so.5)
while ((${#queue[@]})); do
  name="${queue[0]}"; queue=("${queue[@]:1}")
  [[ -n "${seen[$name]:-}" ]] && continue
  seen[$name]=1
  path="$(find_lib "$name")" || die "$name (needed by libzmq.so.5) is not in the $arch sysroot; add its package to scripts/sysroot.sh"
  while read -r needed; do queue+=("$needed"); done < <(readelf -d "$path" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done

printf '%s\n' "$stamp_content" >"$dir.new/.marina-sysroot"
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "sysroot: $dir ready ($(wc -l <"$dir/.packages") packages, $(du -sh "$dir" | cut -f1))"

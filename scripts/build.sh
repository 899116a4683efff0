#!/usr/bin/env bash
# Configures and builds the native tree in build/ (CMake preset "default").
#
# Usage: scripts/build.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/lib/cli.sh"
cli_args build.sh 0 "$@"
cd "$repo"
cmake --preset default >/dev/null
cmake --build --preset default

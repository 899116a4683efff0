#!/usr/bin/env bash
# Configures and builds the native tree in build/ (CMake preset "default").
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cmake --preset default >/dev/null
cmake --build --preset default

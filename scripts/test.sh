#!/usr/bin/env bash
# The test command: installs dependencies, builds, fetches the real datasets the tests use,
# and runs every test with ctest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/deps.sh
scripts/fetch-data.sh
scripts/build.sh
ctest --preset default "$@"

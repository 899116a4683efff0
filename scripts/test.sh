#!/usr/bin/env bash
# The test command: installs dependencies, builds, fetches the real datasets the tests use,
# and runs every test with ctest (fuzz.all among them: tests/fuzz/run.sh). Then it builds the
# tree again with ASan + UBSan (CMake preset sanitize, build-sanitize/) and runs the unit and
# loopback tests on that build; MARINA_SANITIZE=0 skips this second part.
#
# Usage: scripts/test.sh [CTEST_ARGS...]   (passed to the first ctest, e.g. -E fuzz.all or
#                                           -R '^loopback\.')
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/lib/cli.sh"
cli_args test.sh any "$@"
cd "$repo"
scripts/deps.sh
scripts/fetch-data.sh
scripts/build.sh
started="$(mktemp)"
trap 'rm -f "$started"' EXIT
ctest --preset default "$@"
# ctest shows no output of a test that passed: the fuzzers' executions and coverage.
summary=build-fuzz/fuzz-summary.txt
if [[ -f "$summary" && "$summary" -nt "$started" ]]; then cat "$summary"; fi

if [[ "${MARINA_SANITIZE:-1}" != 0 ]]; then
  echo "== sanitize: unit and loopback tests built with -fsanitize=address,undefined"
  cmake --preset sanitize >/dev/null
  cmake --build --preset sanitize
  ctest --preset sanitize -LE .               # the unit tests: the only tests without a label
  ctest --preset sanitize -R '^loopback\.'
fi

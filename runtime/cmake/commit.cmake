# Script mode (cmake -P): writes OUT, a header defining MARINA_COMMIT as the commit the sources
# come from ("834c0e9", "834c0e9-dirty" with uncommitted changes, "unknown" outside a git
# checkout or without git). OUT is rewritten only when that changes, so a build at the same
# commit recompiles nothing. Inputs: SOURCE_DIR, OUT, GIT (may be empty).
set(commit unknown)
if(GIT AND EXISTS "${SOURCE_DIR}/.git")
  execute_process(COMMAND "${GIT}" -C "${SOURCE_DIR}" describe --always --dirty --abbrev=7
                  OUTPUT_VARIABLE described RESULT_VARIABLE failed ERROR_QUIET
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT failed AND described MATCHES "^[0-9A-Za-z._-]+$")
    set(commit "${described}")
  endif()
endif()
set(text "#pragma once\n#define MARINA_COMMIT \"${commit}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()

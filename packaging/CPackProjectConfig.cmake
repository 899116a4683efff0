# Run by cpack before it packages: sets the Depends of each package from dpkg-shlibdeps on the
# package's binaries. For a cross build the target's library packages (unpacked by
# scripts/sysroot.sh into SYSROOT/.shlibs) are given with -S, and DEB_HOST_ARCH names the target.
if(NOT CPACK_GENERATOR STREQUAL "DEB")
  return()
endif()
include("${CPACK_MARINA_BINARY_DIR}/marina-package-binaries.cmake")

set(_marina_work "${CPACK_MARINA_BINARY_DIR}/shlibdeps")
file(MAKE_DIRECTORY "${_marina_work}/debian")
file(WRITE "${_marina_work}/debian/control"
     "Source: marina-edge\n\nPackage: marina-worker\nArchitecture: any\n")
set(_marina_search)
if(CPACK_MARINA_SHLIBS_DIR)
  file(GLOB _marina_pkgs LIST_DIRECTORIES true "${CPACK_MARINA_SHLIBS_DIR}/*")
  if(NOT _marina_pkgs)
    message(FATAL_ERROR "packaging: ${CPACK_MARINA_SHLIBS_DIR} is empty; run scripts/sysroot.sh")
  endif()
  foreach(p IN LISTS _marina_pkgs)
    list(APPEND _marina_search "-S${p}")
  endforeach()
endif()

foreach(component worker coordinator)
  set(_marina_files)
  foreach(entry IN LISTS MARINA_PACKAGE_BINARIES)
    if(entry MATCHES "^${component}=(.*)$")
      list(APPEND _marina_files "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  if(NOT _marina_files)
    continue()
  endif()
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env DEB_HOST_ARCH=${CPACK_MARINA_DEB_ARCH}
            dpkg-shlibdeps -O ${_marina_search} ${_marina_files}
    WORKING_DIRECTORY "${_marina_work}"
    OUTPUT_VARIABLE _marina_out ERROR_VARIABLE _marina_err RESULT_VARIABLE _marina_rc)
  if(NOT _marina_rc EQUAL 0 OR NOT _marina_out MATCHES "shlibs:Depends=([^\n]*)")
    message(FATAL_ERROR "packaging: dpkg-shlibdeps failed for ${component} (${_marina_rc}):\n"
                        "${_marina_err}")
  endif()
  string(TOUPPER "${component}" _marina_upper)
  set(CPACK_DEBIAN_${_marina_upper}_PACKAGE_DEPENDS "${CMAKE_MATCH_1}")
  message(STATUS "packaging: marina-${component} (${CPACK_MARINA_DEB_ARCH}) Depends: ${CMAKE_MATCH_1}")
endforeach()

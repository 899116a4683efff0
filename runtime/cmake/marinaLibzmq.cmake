# Defines the imported target marina::libzmq: libzmq, the one library that libmarina-worker.a
# needs at link time besides the C++ runtime and Threads. The library alone: the public headers
# do not include zmq.h. Used by the build (runtime/CMakeLists.txt) and by the installed
# marinaConfig.cmake, so both link the same way.
#
# find_library() searches CMAKE_PREFIX_PATH and the system's (multiarch) folders; in a cross
# build its toolchain file's CMAKE_FIND_ROOT_PATH (the sysroot) applies. Neither pkg-config nor
# cppzmq is needed. MARINA_LIBZMQ_LIBRARY (cache) may name the library explicitly.
if(NOT TARGET marina::libzmq)
  find_library(MARINA_LIBZMQ_LIBRARY NAMES zmq
               DOC "libzmq linked by marina::worker (Debian: libzmq3-dev)")
  mark_as_advanced(MARINA_LIBZMQ_LIBRARY)
  if(MARINA_LIBZMQ_LIBRARY)
    add_library(marina::libzmq UNKNOWN IMPORTED)
    set_target_properties(marina::libzmq PROPERTIES IMPORTED_LOCATION "${MARINA_LIBZMQ_LIBRARY}")
  endif()
endif()

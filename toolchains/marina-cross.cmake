# Shared part of the cross toolchain files (aarch64-linux-gnu.cmake, arm-linux-gnueabihf.cmake).
# The including file sets MARINA_CROSS_ARCH (Debian architecture), MARINA_CROSS_TRIPLET and
# CMAKE_SYSTEM_PROCESSOR, then includes this file.
#
# Compilers: Debian's cross g++ (scripts/deps.sh installs them). C library, libstdc++ and libgcc
# come with them (/usr/TRIPLET). Everything else the worker links against (libzmq and its
# dependencies, cppzmq, FlatBuffers headers, Eigen, CLI11) comes from a sysroot unpacked from
# the target's Debian .deb files by scripts/sysroot.sh, which this file runs when the sysroot
# is missing, so `cmake --preset rpi-arm64` needs nothing else.
# Programs (flatc) are the host's: flatc 2.0.8 from flatbuffers-compiler, the same release as
# the sysroot's libflatbuffers-dev headers (the generated header checks that it is).

set(CMAKE_SYSTEM_NAME Linux)

set(MARINA_CROSS_REPO "${CMAKE_CURRENT_LIST_DIR}/..")
cmake_path(NORMAL_PATH MARINA_CROSS_REPO)
string(REGEX REPLACE "/$" "" MARINA_CROSS_REPO "${MARINA_CROSS_REPO}")

# The toolchain file is read again for every try_compile() project: pass the settings on.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES MARINA_SYSROOT)

if(NOT MARINA_SYSROOT)
  if(DEFINED ENV{MARINA_SYSROOT})
    set(MARINA_SYSROOT "$ENV{MARINA_SYSROOT}")
  else()
    set(MARINA_SYSROOT "${MARINA_CROSS_REPO}/build-sysroot/${MARINA_CROSS_ARCH}")
  endif()
endif()
set(MARINA_SYSROOT "${MARINA_SYSROOT}" CACHE PATH
    "Sysroot with the target's libraries (made by scripts/sysroot.sh ${MARINA_CROSS_ARCH})")

# Make (or check) the sysroot once per configure, not in try_compile() sub-projects.
get_property(_marina_in_try_compile GLOBAL PROPERTY IN_TRY_COMPILE)
get_property(_marina_sysroot_checked GLOBAL PROPERTY MARINA_SYSROOT_CHECKED)
if(NOT _marina_in_try_compile AND NOT _marina_sysroot_checked)
  set_property(GLOBAL PROPERTY MARINA_SYSROOT_CHECKED TRUE)
  execute_process(
    COMMAND "${MARINA_CROSS_REPO}/scripts/sysroot.sh" "${MARINA_CROSS_ARCH}" "${MARINA_SYSROOT}"
    RESULT_VARIABLE _marina_sysroot_rc)
  if(NOT _marina_sysroot_rc EQUAL 0)
    message(FATAL_ERROR "scripts/sysroot.sh ${MARINA_CROSS_ARCH} failed (exit ${_marina_sysroot_rc}); "
                        "it needs Debian's apt and network access to the Debian mirror")
  endif()
endif()

find_program(MARINA_CROSS_CXX ${MARINA_CROSS_TRIPLET}-g++)
find_program(MARINA_CROSS_CC ${MARINA_CROSS_TRIPLET}-gcc)
if(NOT MARINA_CROSS_CXX OR NOT MARINA_CROSS_CC)
  message(FATAL_ERROR "${MARINA_CROSS_TRIPLET}-g++ not found: run scripts/deps.sh "
                      "(Debian package g++-${MARINA_CROSS_TRIPLET})")
endif()
set(CMAKE_C_COMPILER "${MARINA_CROSS_CC}")
set(CMAKE_CXX_COMPILER "${MARINA_CROSS_CXX}")
set(CMAKE_LIBRARY_ARCHITECTURE ${MARINA_CROSS_TRIPLET})

# Libraries, headers and CMake packages only from the sysroot and the cross toolchain's own
# folder; programs (flatc) only from the host.
set(CMAKE_FIND_ROOT_PATH "${MARINA_SYSROOT}" "/usr/${MARINA_CROSS_TRIPLET}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# cppzmq finds libzmq through pkg-config: the target's .pc files only, paths into the sysroot.
set(ENV{PKG_CONFIG_LIBDIR}
    "${MARINA_SYSROOT}/usr/lib/${MARINA_CROSS_TRIPLET}/pkgconfig:${MARINA_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${MARINA_SYSROOT}")
unset(ENV{PKG_CONFIG_PATH})

# libzmq.so's own dependencies (libsodium, libpgm, libnorm, krb5, libbsd …) are resolved at
# link time from the sysroot; the cross linker does not search multiarch folders by itself.
set(_marina_rpath_link
    "-Wl,-rpath-link,${MARINA_SYSROOT}/usr/lib/${MARINA_CROSS_TRIPLET} -Wl,-rpath-link,${MARINA_SYSROOT}/lib/${MARINA_CROSS_TRIPLET}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_marina_rpath_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${_marina_rpath_link}")

# Running target binaries on the host (try_run, tests): qemu-user with the cross toolchain's
# loader and the sysroot's libraries.
find_program(MARINA_QEMU ${MARINA_CROSS_QEMU})
if(MARINA_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${MARINA_QEMU};-L;/usr/${MARINA_CROSS_TRIPLET};-E;LD_LIBRARY_PATH=${MARINA_SYSROOT}/usr/lib/${MARINA_CROSS_TRIPLET}:${MARINA_SYSROOT}/lib/${MARINA_CROSS_TRIPLET}")
endif()

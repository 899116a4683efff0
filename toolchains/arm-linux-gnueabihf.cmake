# Cross toolchain: 32-bit Raspberry Pi OS / Debian armhf, i.e. ARMv7-A hard-float (Thumb-2,
# VFPv3-D16): Raspberry Pi 2, 3, 4, 5 and Zero 2 W running a 32-bit OS. Debian 12 (bookworm)
# userland: glibc >= 2.34, libstdc++ of GCC 12.
#
# ARMv6 boards (Raspberry Pi 1, Zero, Zero W) are NOT supported: Debian's armhf, and so this
# compiler's crt files, libgcc and libstdc++, are ARMv7 code that an ARM1176 cannot run.
#
# No -mfpu=neon: the Debian default FPU (vfpv3-d16) runs on every ARMv7 Pi, and ARMv7 NEON has
# no double-precision lanes, so it would not change the (double) arithmetic of the worker.
#   cmake --preset rpi-armhf && cmake --build --preset rpi-armhf
set(CMAKE_SYSTEM_PROCESSOR armv7l)
# GCC notes on every std::span argument that its passing changed in GCC 7.1: irrelevant here,
# everything is compiled by GCC 12 (Raspberry Pi OS bookworm's own libraries included).
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
set(MARINA_CROSS_ARCH armhf)
set(MARINA_CROSS_TRIPLET arm-linux-gnueabihf)
set(MARINA_CROSS_QEMU qemu-arm)
include("${CMAKE_CURRENT_LIST_DIR}/marina-cross.cmake")

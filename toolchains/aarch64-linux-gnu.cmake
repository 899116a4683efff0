# Cross toolchain: 64-bit Raspberry Pi OS / Debian arm64 (Raspberry Pi 3, 4, 5, Zero 2 W with a
# 64-bit OS). Debian 12 (bookworm) userland: the binary needs glibc >= 2.34 and libstdc++ of
# GCC 12, as on Raspberry Pi OS bookworm.
#   cmake --preset rpi-arm64 && cmake --build --preset rpi-arm64
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(MARINA_CROSS_ARCH arm64)
set(MARINA_CROSS_TRIPLET aarch64-linux-gnu)
set(MARINA_CROSS_QEMU qemu-aarch64)
include("${CMAKE_CURRENT_LIST_DIR}/marina-cross.cmake")

#pragma once
// The release a program was built as and the wire protocol it speaks: what every program prints
// for --version, so that the two ends of a refused handshake ("the peer runs another marina
// release") can be compared.

#include <string>
#include <string_view>

namespace marina::wire {

// The project's release, e.g. "0.1.0".
[[nodiscard]] std::string_view release();
// The commit the sources came from: "834c0e9", "834c0e9-dirty" (uncommitted changes), or
// "unknown" (built outside a git checkout).
[[nodiscard]] std::string_view commit();
// The instruction set the program was compiled for: "x86_64", "aarch64", "armv7" or "armv6"
// (the ARM architecture version), else "unknown".
[[nodiscard]] std::string_view build_arch();
// "PROGRAM 0.1.0 (834c0e9, wire protocol 4, aarch64)".
[[nodiscard]] std::string version_line(std::string_view program);

}  // namespace marina::wire

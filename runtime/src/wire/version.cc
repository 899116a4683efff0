#include "marina/wire/version.h"

#include "marina/wire/codec.h"
#include "marina_commit.h"  // generated at every build: MARINA_COMMIT

#ifndef MARINA_RELEASE
#error "MARINA_RELEASE (the project's version) is set by runtime/CMakeLists.txt"
#endif

namespace marina::wire {

std::string_view release() {
  return MARINA_RELEASE;
}

std::string_view commit() {
  return MARINA_COMMIT;
}

std::string_view build_arch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7
  return "armv7";
#elif defined(__arm__)
  return "armv6";
#else
  return "unknown";
#endif
}

std::string version_line(std::string_view program) {
  return std::string(program) + " " + std::string(release()) + " (" + std::string(commit()) +
         ", wire protocol " + std::to_string(kProtocolVersion) + ", " + std::string(build_arch()) +
         ")";
}

}  // namespace marina::wire

#pragma once
// Shared by the libFuzzer harnesses. A harness that sees the runtime break one of its promises
// calls bug(): libFuzzer reports a trap as a crash and keeps the input that caused it, whereas
// an exception or a message alone would be lost among the rejected inputs.

#include <cstdio>
#include <string>

namespace marina::fuzz {

[[noreturn]] inline void bug(const char* harness, const std::string& what) {
  std::fprintf(stderr, "%s: BUG: %s\n", harness, what.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

}  // namespace marina::fuzz

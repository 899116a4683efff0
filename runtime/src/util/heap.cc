#include "marina/util/heap.h"

#include <algorithm>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace marina::util {

bool keep_message_blocks_in_heap(std::size_t message_bytes) {
#if defined(__GLIBC__)
  constexpr std::size_t kDefaultThreshold = 128 * 1024;
  // glibc's DEFAULT_MMAP_THRESHOLD_MAX: mallopt refuses more.
  constexpr std::size_t kMaxThreshold = 4 * 1024 * 1024 * sizeof(long);
  constexpr std::size_t kSlack = 64 * 1024;  // message framing, allocator headers
  if (message_bytes < kDefaultThreshold) return false;
  const std::size_t threshold = std::min(message_bytes + kSlack, kMaxThreshold);
  static std::mutex mutex;
  static std::size_t applied = 0;
  const std::lock_guard lock(mutex);
  if (threshold <= applied) return false;
  const bool ok =
      mallopt(M_MMAP_THRESHOLD, static_cast<int>(threshold)) == 1 &&
      mallopt(M_TRIM_THRESHOLD,
              static_cast<int>(std::min<std::size_t>(4 * threshold, std::size_t{1} << 30))) == 1;
  if (ok) applied = threshold;
  return ok;
#else
  (void)message_bytes;
  return false;
#endif
}

}  // namespace marina::util

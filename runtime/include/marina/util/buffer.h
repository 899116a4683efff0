#pragma once
// util::Buffer<T>: a std::vector whose resize(n) leaves new elements of a trivial type
// uninitialised, as `new T[n]` does, instead of zero-filling them.
//
// For vectors that are sized to an upper bound, written in full and then cut back, round after
// round: the server's delta is sized to every entry that may be nonzero (d, when the sum is
// dense), filled by a compaction pass and cut to its nonzeros. A std::vector zero-fills the
// entries between last round's count and this round's bound every time; at d = 1e6 that was
// a memset of some 4 MB a round, a tenth of a round's time. Anything that reads an element it
// did not write after resize() is wrong with a Buffer (use assign(n, value) for zeros).

#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace marina::util {

template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  using std::allocator<T>::allocator;
  // Default-initialisation: nothing for trivial types, the default constructor otherwise.
  template <typename U>
  void construct(U* p) noexcept(noexcept(U())) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T>
using Buffer = std::vector<T, DefaultInitAllocator<T>>;

}  // namespace marina::util

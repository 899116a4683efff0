// A steady-state round must not touch the heap: small devices run for days, and allocation is
// where latency spikes and fragmentation come from.
//
// Counted at the bottom: this test binary defines malloc, calloc, realloc, aligned_alloc,
// posix_memalign and memalign itself (forwarding to glibc's __libc_* entry points), so every
// allocation of the process goes through them — operator new (libstdc++ calls malloc), Eigen's
// vectors (Eigen calls malloc directly), FlatBuffers, std::string. Counting is per thread and
// only inside allocations_in(), so doctest's own bookkeeping and other threads are not seen.
//
// Under AddressSanitizer (the sanitize preset) the sanitizer owns malloc; the interposition is
// compiled out there and the counting cases are skipped.

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <malloc.h>

#include <doctest/doctest.h>
#include <Eigen/Core>

#include "marina/methods/method.h"
#include "marina/util/heap.h"
#include "marina/wire/codec.h"
#include "test_support.h"

#if defined(__SANITIZE_ADDRESS__)
#define MARINA_ALLOC_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MARINA_ALLOC_COUNTING 0
#endif
#endif
#ifndef MARINA_ALLOC_COUNTING
#define MARINA_ALLOC_COUNTING 1
#endif

namespace {
// Trivial thread_locals of the executable: initial-exec TLS, usable before anything else runs
// and never allocating themselves.
thread_local bool t_counting = false;
thread_local uint64_t t_allocations = 0;

inline void note_allocation() {
  if (t_counting) ++t_allocations;
}

// Heap allocations (malloc, calloc, realloc, aligned forms) made by `f` on this thread.
template <class F>
uint64_t allocations_in(F&& f) {
  t_allocations = 0;
  t_counting = true;
  f();
  t_counting = false;
  return t_allocations;
}
}  // namespace

#if MARINA_ALLOC_COUNTING
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t size) {
  note_allocation();
  return __libc_calloc(count, size);
}
void* realloc(void* p, std::size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void free(void* p) {
  __libc_free(p);
}
void* memalign(std::size_t alignment, std::size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  note_allocation();
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
}  // extern "C"
#endif

using namespace marina;

namespace {

// The run every case below steps: n = 4 workers on a synthetic problem, d = 40.
constexpr uint32_t kWorkers = 4;
constexpr uint64_t kDim = 40;
constexpr int kRounds = 60;
constexpr int kWarmup = 20;  // rounds before measuring: buffers grow to the run's sizes

methods::MethodConfig config_for(methods::Method m, const std::string& q) {
  methods::MethodConfig c;
  c.method = m;
  c.compressor = q;
  c.workers = kWorkers;
  c.dim = kDim;
  c.seed = 5;
  c.gamma = 0.1;
  c.p = 0.2;
  c.alpha = 0.2;
  c.batch = 5;
  c.clients = 2;
  return c;
}

const std::vector<std::pair<methods::Method, std::string>>& every_method() {
  static const std::vector<std::pair<methods::Method, std::string>> all = {
      {methods::Method::kGd, "identity"},
      {methods::Method::kMarina, "randk:3"},
      {methods::Method::kVrMarina, "permk"},
      {methods::Method::kPpMarina, "qsgd:4"},
      {methods::Method::kDiana, "randk:3"},
      {methods::Method::kVrDiana, "natural"},
      // Replies whose buffers the server takes in exchange for its own (accept_and_recycle).
      {methods::Method::kMarina, "randk:3:indexed"},
      {methods::Method::kDiana, "permk:indexed"},
      // Blocks the server views as runs of 0, 1, …, d − 1 (and some that wrap past d − 1).
      {methods::Method::kPpMarina, "randblock:3"}};
  return all;
}

// Allocations of one round, split by who makes them.
struct RoundAllocations {
  uint64_t worker = 0;        // worker 0: decode broadcast, method step, encode reply
  uint64_t server_half = 0;   // begin_round + prepare + accept (every reply) + end_round
  uint64_t server_codec = 0;  // encode the broadcast, receive and decode every reply
  uint64_t replies = 0;       // replies the server accepted this round
};

// Runs kRounds rounds of `c` through the codec in one thread, counting each part separately.
std::vector<RoundAllocations> run_counted(const methods::MethodConfig& c) {
  auto shards = test::shards_of(test::synthetic(200, kDim, 0.3, 31), kWorkers);
  auto server = methods::make_server(c);
  std::vector<std::unique_ptr<methods::WorkerHalf>> workers;
  for (uint32_t i = 0; i < kWorkers; ++i) workers.push_back(methods::make_worker(c, i, shards[i]));
  wire::Encoder server_enc(7), worker_enc(7);
  const wire::Limits limits{wire::max_message_bytes(kDim, kWorkers), kDim, kWorkers};
  wire::Decoder worker_dec(limits), server_dec(limits);
  wire::Inbox worker_inbox, server_inbox;
  methods::Reply reply;
  // Receive buffers as the transports keep them: grown once, reused.
  std::vector<uint8_t> wire_bytes, reply_bytes;
  wire_bytes.reserve(1 << 16);
  reply_bytes.reserve(1 << 16);

  std::vector<RoundAllocations> out;
  for (int k = 0; k < kRounds; ++k) {
    RoundAllocations a;
    const methods::Broadcast* b = nullptr;
    a.server_half += allocations_in([&] { b = &server->begin_round(); });
    // As the coordinator does after its broadcast (every other round, so that the derivation
    // in accept is counted too): the seeded indices derived ahead, some workers skipped.
    if (k % 2 == 0) {
      a.server_half += allocations_in([&] {
        (void)server->prepare(std::chrono::hours(1), [k](uint32_t w) { return w == k % 4u; });
      });
    }
    std::span<const uint8_t> encoded;
    a.server_codec += allocations_in([&] { encoded = server_enc.encode(*b); });
    for (auto& w : workers) {
      bool replies = false;
      std::span<const uint8_t> sent;
      // The receive is counted too: with decode_taking, the buffer received into circulates
      // (a dense update's message stays in the Inbox, which gives back its previous one).
      const uint64_t n = allocations_in([&] {
        wire_bytes.assign(encoded.begin(), encoded.end());
        (void)worker_dec.decode_taking(wire_bytes, worker_inbox);
        replies = w->on_broadcast(worker_inbox.broadcast, reply);
        if (replies) sent = worker_enc.encode(reply);
      });
      if (w->id() == 0) a.worker = n;
      if (!replies) continue;
      // Received into a buffer that circulates (decode_taking hands the message to the server
      // half, which gives back the one it kept): the receive is counted too.
      a.server_codec += allocations_in([&] {
        reply_bytes.assign(sent.begin(), sent.end());
        (void)server_dec.decode_taking(reply_bytes, server_inbox);
      });
      a.server_half += allocations_in([&] { server->accept_and_recycle(server_inbox.reply); });
      ++a.replies;
    }
    a.server_half += allocations_in([&] { server->end_round(); });
    out.push_back(a);
  }
  return out;
}

}  // namespace

TEST_CASE("alloc: the counter sees operator new, Eigen, malloc, calloc and realloc") {
  if (!MARINA_ALLOC_COUNTING) {
    MESSAGE("AddressSanitizer owns malloc: allocation counting skipped");
    return;
  }
  CHECK(allocations_in([] { auto v = std::make_unique<std::vector<int>>(100); }) == 2);
  CHECK(allocations_in([] {
          Eigen::VectorXd v = Eigen::VectorXd::Zero(1000);
          (void)v;
        }) == 1);
  CHECK(allocations_in([] {
          std::string s(100, 'x');
          (void)s;
        }) == 1);
  CHECK(allocations_in([] {
          void* p = std::malloc(10);
          void* q = std::calloc(3, 8);
          p = std::realloc(p, 4096);
          std::free(p);
          std::free(q);
        }) == 3);
  CHECK(allocations_in([] {}) == 0);
}

TEST_CASE("alloc: a worker's steady-state round does not allocate") {
  if (!MARINA_ALLOC_COUNTING) return;
  for (const auto& [m, q] : every_method()) {
    CAPTURE(methods::to_string(m));
    const auto rounds = run_counted(config_for(m, q));
    uint64_t worker = 0;
    for (int k = kWarmup; k < kRounds; ++k) worker += rounds[k].worker;
    CHECK(worker == 0);
  }
}

TEST_CASE("alloc: the coordinator's codec does not allocate in steady state") {
  if (!MARINA_ALLOC_COUNTING) return;
  for (const auto& [m, q] : every_method()) {
    CAPTURE(methods::to_string(m));
    const auto rounds = run_counted(config_for(m, q));
    uint64_t codec = 0;
    for (int k = kWarmup; k < kRounds; ++k) codec += rounds[k].server_codec;
    CHECK(codec == 0);
  }
}

// The server half's round (begin_round, accept for every reply, end_round) makes no
// allocation once the run's buffers have grown: ServerHalf::accept builds its error context
// only on the way to an error.
constexpr uint64_t kPerReply = 0;

TEST_CASE("alloc: the server half's round allocates at most once per reply, not more over time") {
  if (!MARINA_ALLOC_COUNTING) return;
  for (const auto& [m, q] : every_method()) {
    CAPTURE(methods::to_string(m));
    const auto rounds = run_counted(config_for(m, q));
    uint64_t early = 0, late = 0, early_replies = 0, late_replies = 0;
    for (int k = kWarmup; k < kRounds; ++k) {
      CAPTURE(k);
      CHECK(rounds[k].server_half == 0);  // the coordinator's round does not touch the heap
      (k < (kWarmup + kRounds) / 2 ? early : late) += rounds[k].server_half;
      (k < (kWarmup + kRounds) / 2 ? early_replies : late_replies) += rounds[k].replies;
    }
    // Per reply, the later half of the run allocates no more than the earlier half.
    CHECK(late * early_replies <= early * late_replies + (early_replies == 0 ? late : 0));
    MESSAGE(methods::to_string(m) << ": server half, rounds " << kWarmup << ".." << kRounds - 1
                                  << ": " << early + late << " allocations for "
                                  << early_replies + late_replies << " replies");
  }
}

TEST_CASE("alloc: blocks of a run's message size stay in the heap once the driver asks") {
  // The drivers call keep_message_blocks_in_heap with the run's largest message (util/heap.h):
  // a block that size must then come from the heap, not from mmap (mallinfo2().hblks counts
  // the mapped blocks). 20 MiB is more than any block this binary frees before, which is what
  // would raise glibc's own threshold that far.
  if (!MARINA_ALLOC_COUNTING) {
    MESSAGE("AddressSanitizer owns malloc: glibc's settings do not apply");
    return;
  }
  CHECK_FALSE(util::keep_message_blocks_in_heap(64 * 1024));  // small: left to glibc
  constexpr std::size_t kMessage = 20u << 20;
  REQUIRE(util::keep_message_blocks_in_heap(kMessage + 4096));
  CHECK_FALSE(util::keep_message_blocks_in_heap(kMessage));  // never lowered
  const auto mapped_before = mallinfo2().hblks;
  void* block = std::malloc(kMessage);
  REQUIRE(block != nullptr);
  std::memset(block, 1, kMessage);
  CHECK(mallinfo2().hblks == mapped_before);
  std::free(block);
}

// A worker's steady-state round (decode the broadcast, step the method, encode the reply)
// must not touch the heap: small devices run for days, and allocation is where latency
// spikes and fragmentation come from. Counted with a replaced global operator new.

#include <atomic>
#include <cstdlib>
#include <new>

#include <doctest/doctest.h>

#include "marina/methods/method.h"
#include "marina/wire/codec.h"
#include "test_support.h"

namespace {
std::atomic<uint64_t> g_allocations{0};
}

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// The standard's nothrow form calls the one above, but AddressSanitizer replaces it with its
// own, whose memory the free() below would then release (std::stable_sort's buffer does this).
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
// GCC cannot see that these pair with the operator new above.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace marina;

TEST_CASE("alloc: the counter sees allocations") {
  const uint64_t before = g_allocations.load();
  auto v = std::make_unique<std::vector<int>>(100);
  CHECK(g_allocations.load() - before == 2);
}

TEST_CASE("alloc: a worker's steady-state round does not allocate") {
  const auto shards = test::shards_of(test::synthetic(200, 40, 0.3, 31), 4);
  for (const auto& [m, q] : std::vector<std::pair<methods::Method, std::string>>{
           {methods::Method::kMarina, "randk:3"},
           {methods::Method::kVrMarina, "permk"},
           {methods::Method::kPpMarina, "qsgd:4"},
           {methods::Method::kDiana, "randk:3"},
           {methods::Method::kVrDiana, "natural"}}) {
    CAPTURE(methods::to_string(m));
    methods::MethodConfig c;
    c.method = m;
    c.compressor = q;
    c.workers = 4;
    c.dim = 40;
    c.seed = 5;
    c.gamma = 0.1;
    c.p = 0.2;
    c.alpha = 0.2;
    c.batch = 5;
    c.clients = 2;
    auto server = methods::make_server(c);
    std::vector<std::unique_ptr<methods::WorkerHalf>> workers;
    for (uint32_t i = 0; i < 4; ++i) workers.push_back(methods::make_worker(c, i, shards[i]));
    wire::Encoder server_enc(7), worker_enc(7);
    wire::Decoder worker_dec(wire::Limits{wire::max_message_bytes(40, 4), 40, 4});
    wire::Decoder server_dec(wire::Limits{wire::max_message_bytes(40, 4), 40, 4});
    wire::Inbox worker_inbox, server_inbox;
    methods::Reply reply;
    std::vector<uint8_t> wire_bytes, reply_bytes;
    wire_bytes.reserve(1 << 16);
    reply_bytes.reserve(1 << 16);
    uint64_t worker_allocations = 0;
    for (int k = 0; k < 60; ++k) {
      const auto b = server_enc.encode(server->begin_round());
      wire_bytes.assign(b.begin(), b.end());
      for (auto& w : workers) {
        // Worker 0's path is measured: receive buffer → decode → method → encode.
        const uint64_t before = g_allocations.load();
        (void)worker_dec.decode(wire_bytes, worker_inbox);
        const bool replies = w->on_broadcast(worker_inbox.broadcast, reply);
        std::span<const uint8_t> out;
        if (replies) out = worker_enc.encode(reply);
        if (k >= 20 && w->id() == 0) worker_allocations += g_allocations.load() - before;
        if (replies) {
          reply_bytes.assign(out.begin(), out.end());
          (void)server_dec.decode(reply_bytes, server_inbox);
          server->accept(server_inbox.reply);
        }
      }
      server->end_round();
    }
    CHECK(worker_allocations == 0);
  }
}

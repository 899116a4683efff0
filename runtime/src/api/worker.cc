// marina::Worker: the public face of drivers::run_worker over a ZeroMQ link.

#include "marina/worker.h"

#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <mutex>

#include "marina/drivers/worker.h"
#include "marina/security/keys.h"
#include "marina/transport/zmq_transport.h"
#include "marina/wire/codec.h"

namespace marina {
namespace {

// A routing id of its own per process and run: a restarted worker is a new peer, and the
// coordinator decides from liveness (not from a guessable id) when it may take its id over.
std::string routing_id(uint32_t worker) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
    r = static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ULL;
  char buf[48];
  std::snprintf(buf, sizeof buf, "worker-%u-%016llx", worker, static_cast<unsigned long long>(r));
  return buf;
}

}  // namespace

struct Worker::Impl {
  Impl(Model& m, WorkerOptions o) : model(m), options(std::move(o)) {}
  Model& model;
  WorkerOptions options;
  transport::Endpoint endpoint;
  std::optional<transport::CurveClient> curve;
  std::atomic<bool> stop{false};
  std::atomic<bool> ran{false};
  mutable std::mutex mu;
  WorkerStatus status;
};

Worker::Worker(Model& model, WorkerOptions options)
    : impl_(std::make_unique<Impl>(model, std::move(options))) {
  const WorkerOptions& o = impl_->options;
  try {
    impl_->endpoint = transport::parse_endpoint(o.coordinator);
  } catch (const std::exception& e) {
    throw WorkerError(std::string("WorkerOptions::coordinator: ") + e.what());
  }
  if (impl_->endpoint.port == 0)
    throw WorkerError("WorkerOptions::coordinator '" + o.coordinator +
                      "': port 0 is not an address");
  if (o.shard_count && (*o.shard_count == 0 || o.id >= *o.shard_count))
    throw WorkerError("WorkerOptions: id " + std::to_string(o.id) + " is not below shard_count " +
                      std::to_string(*o.shard_count));
  for (const auto& [what, ms] :
       {std::pair{"connect_timeout", o.connect_timeout}, std::pair{"liveness", o.liveness},
        std::pair{"idle_timeout", o.idle_timeout}})
    if (ms.count() <= 0) throw WorkerError(std::string("WorkerOptions::") + what + " must be > 0");
  if (o.curve_secret_file.empty() != o.server_key.empty())
    throw WorkerError("WorkerOptions: curve_secret_file and server_key go together");
  // Payloads carry d as a 32-bit number.
  if (model.dim() == 0 || model.dim() > std::numeric_limits<uint32_t>::max())
    throw WorkerError("the model has d = " + std::to_string(model.dim()) +
                      "; 1 to 2^32 - 1 parameters cross the wire");
  if (model.samples() == 0) throw WorkerError("the model has no samples");
  if (!o.curve_secret_file.empty()) {
    try {
      const auto own = security::read_secret_key(o.curve_secret_file);
      const std::string server =
          security::is_z85_key(o.server_key) && !std::filesystem::exists(o.server_key)
              ? o.server_key
              : security::read_public_key(o.server_key);
      impl_->curve = transport::CurveClient{own.public_key, own.secret_key, server};
    } catch (const std::exception& e) {
      throw WorkerError(e.what());
    }
  }
}

Worker::~Worker() = default;

WorkerSummary Worker::run() {
  Impl& m = *impl_;
  if (m.ran.exchange(true)) throw WorkerError("Worker::run() runs once per Worker");
  drivers::WorkerSettings s;
  s.id = m.options.id;
  s.shard_count = m.options.shard_count;
  s.model = &m.model;
  s.connect_timeout = m.options.connect_timeout;
  s.liveness = m.options.liveness;
  s.idle_timeout = m.options.idle_timeout;
  s.stop = &m.stop;
  s.on_info = m.options.on_message;
  s.on_progress = [&m](const drivers::WorkerProgress& p) {
    const WorkerStatus now{p.joined, p.round, p.replies, p.rejoins};
    {
      std::lock_guard lock(m.mu);
      m.status = now;
    }
    if (m.options.on_status) m.options.on_status(now);
  };
  drivers::WorkerOutcome out;
  try {
    if (const auto why = transport::unreachable(m.endpoint); why && s.on_info)
      s.on_info(*why + "; trying until it does, or until the connect timeout");
    transport::ZmqOptions zopt;
    zopt.curve_client = m.curve;
    transport::ZmqLink link(m.endpoint, routing_id(s.id),
                            wire::max_message_bytes(m.model.dim(), 1u << 16), zopt);
    out = drivers::run_worker(link, std::move(s));
  } catch (const WorkerError&) {
    throw;
  } catch (const std::exception& e) {
    throw WorkerError("worker " + std::to_string(m.options.id) + ": " + e.what());
  }
  WorkerSummary r;
  r.rounds = out.rounds;
  r.replies = out.replies;
  r.resyncs = out.resyncs;
  r.rejoins = out.rejoins;
  r.rejected = out.rejected;
  r.resent = out.resent;
  r.stopped = out.left;
  r.bye_reason = std::move(out.bye_reason);
  r.x = std::move(out.x);
  return r;
}

void Worker::stop() noexcept {
  impl_->stop.store(true);
}

WorkerStatus Worker::status() const {
  std::lock_guard lock(impl_->mu);
  return impl_->status;
}

}  // namespace marina

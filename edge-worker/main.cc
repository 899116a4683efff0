// marina-worker: an edge worker training the built-in linear model on its shard of a LibSVM
// file. A thin program on the public API (marina/worker.h, marina/linear_model.h): it holds
// only its shard, joins the coordinator (retrying with backoff until it answers), replies to
// each round, leaves on bye or a signal and reports its peak RSS.

#include <signal.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>

#include <charconv>
#include <filesystem>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#if MARINA_WITH_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "marina/linear_model.h"
#include "marina/wire/version.h"
#include "marina/worker.h"

namespace {

std::atomic<marina::Worker*> g_worker{nullptr};

extern "C" void on_signal(int) {
  if (marina::Worker* w = g_worker.load()) w->stop();
}

// "I/N" with 0 ≤ I < N.
std::pair<uint32_t, uint32_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  uint32_t i = 0, n = 0;
  const char* b = text.data();
  const char* e = text.data() + text.size();
  if (slash == std::string::npos || std::from_chars(b, b + slash, i).ptr != b + slash ||
      std::from_chars(b + slash + 1, e, n).ptr != e || n == 0 || i >= n)
    throw std::invalid_argument("--shard '" + text + "': expected I/N with 0 <= I < N");
  return {i, n};
}

#if MARINA_WITH_SYSTEMD
// Under systemd (marina-worker@.service, Type=notify): "started" means welcomed into a run, the
// status line shows the round, and the watchdog is fed from the worker loop itself, so a loop
// that hangs gets the service restarted. Outside systemd NOTIFY_SOCKET is unset and this is off.
std::function<void(const marina::WorkerStatus&)> systemd_notifier() {
  if (std::getenv("NOTIFY_SOCKET") == nullptr) return {};
  struct State {
    bool ready = false;
    std::optional<bool> joined;  // as last told in STATUS
    std::chrono::steady_clock::time_point last_status{};
  };
  auto state = std::make_shared<State>();
  return [state](const marina::WorkerStatus& p) {
    if (p.joined && !state->ready) {
      state->ready = true;
      sd_notify(0, "READY=1");
    }
    const auto now = std::chrono::steady_clock::now();
    if (state->joined != p.joined || now - state->last_status >= std::chrono::seconds(1)) {
      state->joined = p.joined;
      state->last_status = now;
      if (p.joined)
        sd_notifyf(0, "STATUS=round %llu, %llu replies, %llu rejoins",
                   static_cast<unsigned long long>(p.round),
                   static_cast<unsigned long long>(p.replies),
                   static_cast<unsigned long long>(p.rejoins));
      else
        sd_notify(0, "STATUS=joining the coordinator");
    }
    sd_notify(0, "WATCHDOG=1");
  };
}
#endif

}  // namespace

int main(int argc, char** argv) {
  using namespace marina;
  CLI::App app{"marina-worker: an edge worker of the MARINA runtime"};
  app.set_version_flag("--version", marina::wire::version_line("marina-worker"));
  std::string connect, data_file, shard_text;
  std::optional<uint32_t> id;
  std::optional<uint64_t> shuffle_seed;
  bool bias = false, quiet = false;
  std::string loss = "nonconvex";
  double l2 = 0.0;
  std::string curve_secret, server_key;
  int64_t connect_timeout_ms = 60000, idle_timeout_ms = 120000, liveness_ms = 5000;
  app.add_option("--connect", connect, "coordinator tcp://HOST:PORT (PUB port; PORT+1 too)")
      ->required();
  app.add_option("--data", data_file, "LibSVM file; only this worker's shard is kept")->required();
  app.add_option("--shard", shard_text, "I/N: this worker's contiguous shard")->required();
  app.add_option("--id", id, "worker id (default: I of --shard)");
  app.add_option("--shuffle-seed", shuffle_seed, "must match the coordinator's");
  app.add_flag("--bias", bias, "append a constant feature (must match the coordinator)");
  app.add_option("--loss", loss, "nonconvex|logistic (the coordinator refuses a mismatch)")
      ->capture_default_str();
  app.add_option("--l2", l2, "lambda of the (lambda/2)||x||^2 regulariser")->capture_default_str();
  app.add_option("--connect-timeout-ms", connect_timeout_ms, "give up joining after this long")
      ->capture_default_str();
  app.add_option("--liveness-ms", liveness_ms,
                 "coordinator silent this long: it is lost; join it again with backoff")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", idle_timeout_ms,
                 "give up (exit 1) after trying this long to reach a lost coordinator")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--quiet", quiet, "only errors and the exit summary");
  app.add_option("--curve-secret", curve_secret,
                 "this worker's secret key file (marina-keygen NAME writes NAME.key): encrypt "
                 "and authenticate with CurveZMQ; needs --server-key");
  app.add_option("--server-key", server_key,
                 "the coordinator's public key: a NAME.pub file, or the 40-character Z85 key");
  CLI11_PARSE(app, argc, argv);

  const std::string tag = "marina-worker";
  try {
    const auto [index, count] = parse_shard(shard_text);
    LinearModelOptions mo;
    mo.data = data_file;
    mo.shard = index;
    mo.shards = count;
    mo.shuffle_seed = shuffle_seed;
    mo.bias = bias;
    mo.loss = loss;
    mo.l2 = l2;
    const std::unique_ptr<Model> model = load_linear_model(mo);

    WorkerOptions o;
    o.coordinator = connect;
    o.id = id.value_or(index);
    o.shard_count = count;
    o.curve_secret_file = curve_secret;
    o.server_key = server_key;
    o.connect_timeout = std::chrono::milliseconds(connect_timeout_ms);
    o.idle_timeout = std::chrono::milliseconds(idle_timeout_ms);
    o.liveness = std::chrono::milliseconds(liveness_ms);
    const std::string me = tag + " " + std::to_string(o.id);
    if (!quiet)
      o.on_message = [me](const std::string& line) { std::cerr << (me + ": " + line + "\n"); };
#if MARINA_WITH_SYSTEMD
    o.on_status = systemd_notifier();
    const bool notify = static_cast<bool>(o.on_status);
#endif
    Worker worker(*model, std::move(o));
    g_worker.store(&worker);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    const WorkerSummary out = worker.run();
    g_worker.store(nullptr);
#if MARINA_WITH_SYSTEMD
    if (notify) sd_notify(0, "STOPPING=1");
#endif
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    // One write per line, so lines of workers sharing a terminal do not interleave.
    const std::string why = out.stopped ? std::string("left on a signal") : out.bye_reason;
    const std::string line =
        me + ": done (" + why + "): " + std::to_string(out.rounds) + " rounds, " +
        std::to_string(out.replies) + " replies (" + std::to_string(out.resent) + " sent again), " +
        std::to_string(out.resyncs) + " resyncs, " + std::to_string(out.rejoins) + " rejoins, " +
        std::to_string(out.rejected) + " rejected messages, peak RSS " +
        std::to_string(ru.ru_maxrss) + " KiB\n";
    std::cerr << line << std::flush;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << (tag + ": error: " + e.what() + "\n");
    return 1;
  }
}

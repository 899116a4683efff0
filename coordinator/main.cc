// marina-coordinator: publishes each round over ZeroMQ and aggregates the workers' replies.
// PUB on --listen PORT, ROUTER on PORT+1. --spawn-local starts the workers on loopback.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "marina/cli/flags.h"
#include "marina/drivers/coordinator.h"
#include "marina/transport/zmq_transport.h"
#include "marina/wire/codec.h"

extern char** environ;

namespace {

using namespace marina;

struct Children {
  std::vector<pid_t> pids;
  // Waits for every child; kills those still running after `grace`.
  int reap(std::chrono::milliseconds grace) {
    int failures = 0;
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (pid_t pid : pids) {
      int status = 0;
      for (;;) {
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0) break;
        if (std::chrono::steady_clock::now() > deadline) {
          kill(pid, SIGTERM);
          waitpid(pid, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
    }
    pids.clear();
    return failures;
  }
  ~Children() { reap(std::chrono::milliseconds(2000)); }
};

std::filesystem::path default_worker_binary() {
  const auto self = std::filesystem::read_symlink("/proc/self/exe");
  for (const auto& candidate : {self.parent_path() / "marina-worker",
                                self.parent_path().parent_path() / "edge-worker" / "marina-worker"})
    if (std::filesystem::exists(candidate)) return candidate;
  return "marina-worker";
}

pid_t spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"marina-coordinator: publish MARINA-family rounds to edge workers over ZeroMQ"};
  std::string listen = "tcp://127.0.0.1:0", data_file, log_file, worker_binary;
  cli::AlgorithmFlags flags;
  int64_t round_timeout_ms = 10000, join_timeout_ms = 60000;
  bool spawn_local = false, quiet = false;
  app.add_option("--listen", listen,
                 "tcp://HOST:PORT: PUB on PORT, ROUTER on PORT+1 (PORT 0: pick free ports)")
      ->capture_default_str();
  cli::add_algorithm_flags(app, flags);
  app.add_option("--data", data_file,
                 "LibSVM file: exact loss and ||grad f||^2 in the log (and the workers' data "
                 "with --spawn-local)");
  app.add_option("--log", log_file, "CSV log, one row per round (round 0 included)");
  app.add_option("--round-timeout-ms", round_timeout_ms,
                 "repair a round's broadcast to workers silent this long (3 repairs, then stop)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--join-timeout-ms", join_timeout_ms, "wait this long for the workers to join")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag(
      "--spawn-local", spawn_local,
      "start --workers local marina-worker processes on loopback and stop them at the end");
  app.add_option("--worker-binary", worker_binary, "marina-worker to start with --spawn-local");
  app.add_flag("--quiet", quiet, "no start-up messages");
  CLI11_PARSE(app, argc, argv);

  try {
    transport::Endpoint ep = transport::parse_endpoint(listen);
    if (spawn_local && data_file.empty())
      throw std::invalid_argument("--spawn-local needs --data (the workers' shards come from it)");

    std::vector<problem::Objective> shards;
    if (!data_file.empty()) {
      std::string note;
      shards = cli::load_shards(data_file, flags, &note);
      if (!note.empty()) std::cerr << "note: " << note << '\n';
    }

    auto s = cli::coordinator_settings(flags, shards.empty() ? 1 : shards.front().dim());
    s.session = (std::random_device{}() * 0x100000001ULL) | 1;
    s.round_timeout = std::chrono::milliseconds(round_timeout_ms);
    s.join_timeout = std::chrono::milliseconds(join_timeout_ms);
    if (!shards.empty()) s.evaluation = &shards;
    if (!quiet) s.on_info = [](const std::string& line) { std::cerr << line << '\n'; };

    transport::ZmqHub hub(ep, wire::max_message_bytes(1u << 24, flags.workers));
    std::cerr << "listening: PUB " << hub.endpoint().pub() << ", ROUTER " << hub.endpoint().router()
              << '\n';

    Children children;
    if (spawn_local) {
      const std::string bin =
          worker_binary.empty() ? default_worker_binary().string() : worker_binary;
      const std::string connect = "tcp://127.0.0.1:" + std::to_string(hub.endpoint().port);
      for (uint32_t i = 0; i < flags.workers; ++i) {
        std::vector<std::string> args = {bin,
                                         "--connect",
                                         connect,
                                         "--data",
                                         data_file,
                                         "--shard",
                                         std::to_string(i) + "/" + std::to_string(flags.workers)};
        if (flags.bias) args.push_back("--bias");
        if (flags.shuffle_seed) {
          args.push_back("--shuffle-seed");
          args.push_back(std::to_string(*flags.shuffle_seed));
        }
        if (quiet) args.push_back("--quiet");
        children.pids.push_back(spawn(args));
      }
    }

    std::unique_ptr<run::CsvLog> log;
    if (!log_file.empty()) log = std::make_unique<run::CsvLog>(log_file);
    cli::Progress progress(flags.rounds);
    const std::string present = " workers " + std::to_string(flags.workers);
    s.on_row = [&](const run::LogRow& row) {
      if (log) log->write(row);
      progress.update(row, present + "  up " + std::to_string(row.wire_bytes_up) + " B  down " +
                               std::to_string(row.wire_bytes_down) + " B");
    };
    const auto out = drivers::run_coordinator(hub, s);
    progress.finish();
    const auto& r = out.last;
    std::printf(
        "%s/%s: %llu rounds in %.3f s (%.1f rounds/s), loss %s, ||grad f||^2 %s, "
        "bits/worker %s, wire up %llu B, down %llu B, repairs %llu, resyncs %llu\n",
        std::string(methods::to_string(out.config.method)).c_str(), out.config.compressor.c_str(),
        static_cast<unsigned long long>(r.round), r.wall_s,
        r.wall_s > 0 ? static_cast<double>(r.round) / r.wall_s : 0.0,
        r.loss ? run::exact(*r.loss).c_str() : "?",
        r.grad_norm_sq ? run::exact(*r.grad_norm_sq).c_str() : "?",
        run::exact(r.bits_per_worker).c_str(), static_cast<unsigned long long>(r.wire_bytes_up),
        static_cast<unsigned long long>(r.wire_bytes_down),
        static_cast<unsigned long long>(out.repairs), static_cast<unsigned long long>(out.resyncs));
    if (children.reap(std::chrono::milliseconds(5000)) > 0) {
      std::cerr << "marina-coordinator: error: a local worker failed\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "marina-coordinator: error: " << e.what() << '\n';
    return 1;
  }
}

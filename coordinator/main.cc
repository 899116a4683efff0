// marina-coordinator: publishes each round over ZeroMQ and aggregates the workers' replies.
// PUB on --listen PORT, ROUTER on PORT+1. --spawn-local starts the workers on loopback.

#include <signal.h>
#include <spawn.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "marina/cli/flags.h"
#include "marina/drivers/checkpoint.h"
#include "marina/drivers/coordinator.h"
#include "marina/observe/http_server.h"
#include "marina/observe/store.h"
#include "marina/run/events.h"
#include "marina/security/keys.h"
#include "marina/transport/zmq_transport.h"
#include "marina/wire/codec.h"
#include "marina/wire/version.h"

extern char** environ;

namespace {

using namespace marina;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

extern "C" void on_hangup(int) {
  g_reload.store(true);
}

// The allowlist as the ZAP thread and the round loop see it: replaced whole on SIGHUP.
class Keyring {
 public:
  Keyring(std::filesystem::path file, uint32_t workers) : file_(std::move(file)), n_(workers) {
    list_ = std::make_shared<const security::Allowlist>(security::Allowlist::read(file_, n_));
  }
  // The User-Id that a key is admitted under: "<worker id> <public key>".
  std::optional<std::string> admit(const std::string& key) const {
    const auto id = current()->worker_of(key);
    if (!id) return std::nullopt;
    return std::to_string(*id) + " " + key;
  }
  // The worker a User-Id speaks for, while its key is still bound to that id.
  std::optional<uint32_t> identify(const std::string& user) const {
    const auto space = user.find(' ');
    if (space == std::string::npos) return std::nullopt;
    const auto id = current()->worker_of(user.substr(space + 1));
    if (!id || std::to_string(*id) != user.substr(0, space)) return std::nullopt;
    return id;
  }
  // Re-reads the file; a broken file keeps the previous list (and says why).
  bool reload() {
    try {
      auto fresh =
          std::make_shared<const security::Allowlist>(security::Allowlist::read(file_, n_));
      std::lock_guard lock(mu_);
      list_ = std::move(fresh);
    } catch (const std::exception& e) {
      std::cerr << "marina-coordinator: SIGHUP: keeping the previous allowlist: " << e.what()
                << '\n';
      return false;
    }
    std::cerr << "marina-coordinator: SIGHUP: reloaded " << file_.string() << '\n';
    return true;
  }
  void refused(const std::string& key, const std::string& address) {
    std::lock_guard lock(mu_);
    if (refused_.size() < 1000)  // a flood of handshakes must not grow memory without bound
      refused_.push_back("key " + (key.empty() ? std::string("(none)") : key) + " (" +
                         (key.empty() ? std::string("-") : security::fingerprint(key)) + ") from " +
                         address);
  }
  std::vector<std::string> take_refused() {
    std::lock_guard lock(mu_);
    return std::exchange(refused_, {});
  }

 private:
  std::shared_ptr<const security::Allowlist> current() const {
    std::lock_guard lock(mu_);
    return list_;
  }
  std::filesystem::path file_;
  uint32_t n_;
  mutable std::mutex mu_;
  std::shared_ptr<const security::Allowlist> list_;
  std::vector<std::string> refused_;
};

extern "C" void on_signal(int) {
  g_stop.store(true);
}

// Local workers started by --spawn-local. They are always reaped: after the grace period a
// child still running gets SIGTERM (it leaves cleanly), and SIGKILL one more grace later.
struct Children {
  std::vector<pid_t> pids;
  std::vector<std::optional<int>> status;  // per child once it has exited (waitpid's status)

  // Collects the children that have exited; true when none is left running.
  bool poll() {
    status.resize(pids.size());
    bool all = true;
    for (std::size_t i = 0; i < pids.size(); ++i) {
      if (status[i]) continue;
      int st = 0;
      const pid_t r = waitpid(pids[i], &st, WNOHANG);
      if (r == 0) {
        all = false;
        continue;
      }
      status[i] = r < 0 ? -1 : st;
    }
    return all;
  }
  // "all N local workers exited (0: exit status 1; 1: killed by signal 9)", once every child
  // has exited; checked at most every 100 ms.
  std::optional<std::string> all_exited() {
    if (pids.empty()) return std::nullopt;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_poll_) return std::nullopt;
    next_poll_ = now + std::chrono::milliseconds(100);
    if (!poll()) return std::nullopt;
    std::string detail;
    for (std::size_t i = 0; i < pids.size(); ++i)
      detail += (i ? "; " : "") + std::to_string(i) + ": " + describe(*status[i]);
    return "all " + std::to_string(pids.size()) + " local workers exited (" + detail + ")";
  }
  int reap(std::chrono::milliseconds grace) {
    auto deadline = std::chrono::steady_clock::now() + grace;
    bool termed = false;
    while (!poll()) {
      if (std::chrono::steady_clock::now() > deadline) {
        for (std::size_t i = 0; i < pids.size(); ++i)
          if (!status[i]) kill(pids[i], termed ? SIGKILL : SIGTERM);
        deadline = std::chrono::steady_clock::now() + grace;
        termed = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    int failures = 0;
    for (const auto& st : status)
      if (*st < 0 || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0) ++failures;
    pids.clear();
    status.clear();
    return failures;
  }
  ~Children() { reap(std::chrono::milliseconds(2000)); }

 private:
  static std::string describe(int st) {
    if (st < 0) return "not a child";
    if (WIFEXITED(st)) return "exit status " + std::to_string(WEXITSTATUS(st));
    if (WIFSIGNALED(st)) return "killed by signal " + std::to_string(WTERMSIG(st));
    return "stopped";
  }
  std::chrono::steady_clock::time_point next_poll_{};
};

// 64 bits from the OS: a session id nobody can guess from the time or a PID.
uint64_t random_session() {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
    std::random_device rd;
    v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  return v | 1;
}

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
  app.set_version_flag("--version", marina::wire::version_line("marina-coordinator"));
  std::string listen = "tcp://127.0.0.1:0", data_file, log_file, worker_binary;
  cli::AlgorithmFlags flags;
  int64_t round_timeout_ms = 2000, sync_timeout_ms = 0, join_timeout_ms = 60000,
          quorum_timeout_ms = 60000;
  uint32_t min_workers = 0, miss_limit = 3;
  uint64_t checkpoint_every = 0;
  std::string checkpoint_dir, resume_dir, events_file, curve_secret, allow_keys;
  uint64_t max_dim = uint64_t{1} << 22;
  bool spawn_local = false, quiet = false, log_local_norms = false;
  std::string http_text;
  bool http_allow_remote = false;
  double http_linger_s = 0.0;
  app.add_option("--listen", listen,
                 "tcp://HOST:PORT: PUB on PORT, ROUTER on PORT+1 (PORT 0: pick free ports)")
      ->capture_default_str();
  cli::add_algorithm_flags(app, flags);
  app.add_option("--data", data_file,
                 "LibSVM file: exact loss and ||grad f||^2 in the log (and the workers' data "
                 "with --spawn-local)");
  auto* log_opt =
      app.add_option("--log", log_file, "CSV log, one row per round (round 0 included)");
  app.add_flag("--log-local-norms", log_local_norms,
               "add the column local_grad_norm_sq = (1/n) sum_i ||grad f_i(x^k)||^2 (what the "
               "paper's code plots; needs --data)")
      ->needs(log_opt);
  app.add_option("--round-timeout-ms", round_timeout_ms,
                 "deadline of a compressed round: it closes over the replies in by then (the "
                 "broadcast is repaired to silent workers half-way)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--sync-timeout-ms", sync_timeout_ms,
                 "deadline of a full-sync round (default 3 x --round-timeout-ms)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--join-timeout-ms", join_timeout_ms,
                 "wait this long for all workers to join, then start with those present (at "
                 "least --min-workers)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--min-workers", min_workers,
                 "run while at least this many workers are live (default: ceil(n/2))");
  app.add_option("--quorum-timeout-ms", quorum_timeout_ms,
                 "below --min-workers, wait this long for workers to return, then stop")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--miss-limit", miss_limit,
                 "a worker missing this many deadlines in a row is marked gone")
      ->check(CLI::Range(1u, 1000000u))
      ->capture_default_str();
  app.add_option("--checkpoint", checkpoint_dir,
                 "directory for checkpoints (written atomically; the two newest are kept)");
  app.add_option("--checkpoint-every", checkpoint_every,
                 "rounds between checkpoints (0: only when the run ends or stops)")
      ->capture_default_str();
  app.add_option("--resume", resume_dir,
                 "continue from the newest valid checkpoint in this directory (same flags); "
                 "--log and --events are truncated to the checkpoint and appended to");
  app.add_option("--events", events_file, "events, one JSON object a line (JSONL)");
  app.add_flag(
      "--spawn-local", spawn_local,
      "start --workers local marina-worker processes on loopback and stop them at the end");
  app.add_option("--worker-binary", worker_binary, "marina-worker to start with --spawn-local");
  app.add_flag("--quiet", quiet, "no start-up messages");
  app.add_option("--curve-secret", curve_secret,
                 "this coordinator's secret key file (marina-keygen): encrypt both sockets and "
                 "admit only the keys of --allow-keys");
  app.add_option("--allow-keys", allow_keys,
                 "allowlist: lines 'WORKER-ID PUBLIC-KEY'; re-read on SIGHUP (revoked keys leave "
                 "the run at once)");
  app.add_option("--max-dim", max_dim,
                 "refuse workers declaring more features than this (without --data)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32))
      ->capture_default_str();
  app.add_option("--http", http_text,
                 "HOST:PORT: serve a live dashboard (/), Prometheus metrics (/metrics) and JSON "
                 "(/api/status, /api/log, /api/events); loopback only unless "
                 "--http-allow-remote; PORT 0 picks a free port (docs/OBSERVE.md)");
  app.add_flag("--http-allow-remote", http_allow_remote,
               "let --http listen on a non-loopback address (no authentication: anyone who can "
               "reach it reads the run)");
  app.add_option("--http-linger-s", http_linger_s,
                 "keep serving --http this many seconds after the run ends (a signal ends it "
                 "early)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    transport::Endpoint ep = transport::parse_endpoint(listen);
    std::optional<observe::HttpAddress> http_address;
    if (!http_text.empty()) {
      http_address = observe::parse_http_address(http_text);
      observe::require_allowed(*http_address, http_allow_remote);
    } else if (http_allow_remote || http_linger_s > 0) {
      throw std::invalid_argument("--http-allow-remote and --http-linger-s need --http HOST:PORT");
    }
    if (spawn_local && data_file.empty())
      throw std::invalid_argument("--spawn-local needs --data (the workers' shards come from it)");
    if (log_local_norms && data_file.empty())
      throw std::invalid_argument("--log-local-norms needs --data (the shards to evaluate)");

    std::vector<problem::Objective> shards;
    if (!data_file.empty()) {
      std::string note;
      shards = cli::load_shards(data_file, flags, &note);
      if (!note.empty()) std::cerr << "note: " << note << '\n';
    }

    auto s = cli::coordinator_settings(flags, shards.empty() ? 1 : shards.front().dim());
    s.session = random_session();
    s.round_timeout = std::chrono::milliseconds(round_timeout_ms);
    s.sync_timeout = std::chrono::milliseconds(sync_timeout_ms);
    s.join_timeout = std::chrono::milliseconds(join_timeout_ms);
    s.quorum_timeout = std::chrono::milliseconds(quorum_timeout_ms);
    s.min_workers = min_workers;
    s.miss_limit = miss_limit;
    s.stop = &g_stop;
    if (!shards.empty()) {
      s.evaluation = &shards;
      s.model = cli::model_description(flags);
    }
    // --quiet silences progress, not errors (e.g. a log row that could not be written on the
    // way out after another error).
    s.on_info = [quiet](const std::string& line) {
      if (!quiet || line.rfind("error: ", 0) == 0) std::cerr << line << '\n';
    };
    if (min_workers > flags.workers)
      throw std::invalid_argument("--min-workers " + std::to_string(min_workers) +
                                  " exceeds --workers " + std::to_string(flags.workers));

    std::optional<drivers::LoadedCheckpoint> resumed;
    if (!resume_dir.empty()) {
      resumed = drivers::read_latest_checkpoint(resume_dir);
      if (!resumed) throw std::runtime_error("--resume " + resume_dir + ": no checkpoint there");
      for (const auto& r : resumed->refused) std::cerr << "refused checkpoint: " << r << '\n';
      std::cerr << "resuming from " << resumed->file.string() << '\n';
      s.resume = &resumed->checkpoint;
      if (checkpoint_dir.empty()) checkpoint_dir = resume_dir;
      // Before anything is written, listened on or started: opening the log to resume it
      // would already cut the rows after the checkpoint.
      drivers::check_resume(s);
    }
    s.checkpoint_dir = checkpoint_dir;
    s.checkpoint_every = checkpoint_every;
    if (checkpoint_every > 0 && checkpoint_dir.empty())
      throw std::invalid_argument("--checkpoint-every needs --checkpoint DIR");

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    if (curve_secret.empty() != allow_keys.empty())
      throw std::invalid_argument("--curve-secret and --allow-keys go together");
    s.max_dim = max_dim;
    transport::ZmqOptions zopt;
    std::unique_ptr<Keyring> keyring;
    if (!curve_secret.empty()) {
      const auto own = security::read_secret_key(curve_secret);
      keyring = std::make_unique<Keyring>(allow_keys, flags.workers);
      transport::CurveServer cs;
      cs.secret_key = own.secret_key;
      cs.admit = [k = keyring.get()](const std::string& key) { return k->admit(key); };
      cs.refused = [k = keyring.get()](const std::string& key, const std::string& address) {
        k->refused(key, address);
      };
      zopt.curve_server = cs;
      s.identify = [k = keyring.get()](const std::string& user) { return k->identify(user); };
      s.keys_changed = [k = keyring.get()] { return g_reload.exchange(false) && k->reload(); };
      s.refused_keys = [k = keyring.get()] { return k->take_refused(); };
      struct sigaction hup {};
      hup.sa_handler = on_hangup;
      sigemptyset(&hup.sa_mask);
      sigaction(SIGHUP, &hup, nullptr);
      std::cerr << "CurveZMQ: coordinator key " << security::fingerprint(own.public_key) << ", "
                << allow_keys << " allows workers by key\n";
    }
    // Nothing longer than the largest valid message of this run gets in (ZMQ_MAXMSGSIZE).
    const uint64_t dim_bound = shards.empty() ? max_dim : shards.front().dim();
    transport::ZmqHub hub(ep, wire::max_message_bytes(dim_bound, flags.workers), zopt);
    std::cerr << "listening: PUB " << hub.endpoint().pub() << ", ROUTER " << hub.endpoint().router()
              << '\n';
    if (!keyring && ep.host != "127.0.0.1" && ep.host != "localhost" && ep.host != "::1")
      std::cerr << "warning: listening on " << ep.host
                << " without authentication: anyone who can reach the ports can join\n";

    // The HTTP view: the round loop's callbacks copy into `store`, the server's threads read it.
    std::unique_ptr<observe::Store> store;
    std::unique_ptr<observe::HttpServer> http;
    if (http_address) {
      observe::RunInfo info;
      info.config = s.base;
      info.rounds = s.rounds;
      info.listen = hub.endpoint().pub();
      info.data = data_file;
      info.min_workers = min_workers;
      info.round_timeout_ms = round_timeout_ms;
      info.sync_timeout_ms = sync_timeout_ms > 0 ? sync_timeout_ms : 3 * round_timeout_ms;
      info.miss_limit = miss_limit;
      store = std::make_unique<observe::Store>(std::move(info));
      http = std::make_unique<observe::HttpServer>(*store, *http_address, http_allow_remote);
      std::cerr << "http: dashboard " << http->url() << ", metrics " << http->url() << "metrics\n";
      if (!observe::is_loopback(http_address->host))
        std::cerr << "warning: --http-allow-remote: the dashboard, /metrics and /api on "
                  << http_address->host
                  << " have no authentication or encryption; anyone who can reach port "
                  << http->port() << " reads the run\n";
      s.on_status = [&store](const drivers::FleetStatus& f) { store->set_status(f); };
    }
    // After the run, the view stays up --http-linger-s for a person to look; a signal (the first
    // one, or another if the run itself was stopped by one) ends it early.
    const auto linger = [&](const std::string& outcome) {
      if (!http) return;
      store->finish(outcome);
      if (http_linger_s > 0) {
        std::cerr << "http: run over (" << outcome << "); serving " << http->url() << " for "
                  << http_linger_s << " s more (Ctrl-C ends it)\n";
        g_stop.store(false);
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(http_linger_s));
        while (!g_stop.load() && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      http->stop();
    };

    // The logs first: a resume whose files do not fit the checkpoint (or a CSV started with
    // other columns) is refused before any worker is started.
    std::unique_ptr<run::CsvLog> log;
    std::unique_ptr<run::EventLog> events;
    const auto& cp = s.resume;
    if (!log_file.empty())
      log = std::make_unique<run::CsvLog>(
          log_file, cp ? std::optional<uint64_t>(cp->log_bytes) : std::nullopt,
          run::CsvColumns{.local_grad_norm_sq = log_local_norms});
    if (!events_file.empty())
      events = std::make_unique<run::EventLog>(
          events_file,
          cp && cp->events_bytes > 0 ? std::optional<uint64_t>(cp->events_bytes) : std::nullopt);

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
        // The model is the worker's business: it gets the same loss and λ as --data here.
        args.insert(args.end(), {"--loss", flags.loss, "--l2", run::exact(flags.l2)});
        if (flags.bias) args.push_back("--bias");
        if (flags.shuffle_seed) {
          args.push_back("--shuffle-seed");
          args.push_back(std::to_string(*flags.shuffle_seed));
        }
        if (quiet) args.push_back("--quiet");
        children.pids.push_back(spawn(args));
      }
    }

    // Spawned workers that have all exited cannot join or return: no reason to wait them out.
    if (spawn_local) s.workers_exited = [&children] { return children.all_exited(); };

    s.log_position = [&] {
      drivers::LogPosition p;
      if (log) {
        log->flush();
        p.rows = log->rows();
        p.bytes = log->bytes();
      }
      if (events) p.events_bytes = events->bytes();
      return p;
    };
    if (events || store) {
      s.on_event = [&](const run::Event& e) {
        if (events) events->write(e);
        if (store) store->add_event(e);
      };
    }
    cli::Progress progress(flags.rounds);
    s.on_row = [&](const run::LogRow& row) {
      if (log) log->write(row);  // first: a row the view shows is already in the CSV
      if (store) store->add_row(row);
      if (progress.due(row))
        progress.update(row, " workers " + std::to_string(row.participants) + "  up " +
                                 std::to_string(row.wire_bytes_up) + " B  down " +
                                 std::to_string(row.wire_bytes_down) + " B");
    };
    // The CSV's last rows may still be buffered: however the run ended, they are written out,
    // and failing to is an error, not a silent loss.
    const auto close_log = [&log]() -> bool {
      try {
        if (log) log->flush();
        return true;
      } catch (const std::exception& e) {
        std::cerr << "marina-coordinator: error: " << e.what() << '\n';
        return false;
      }
    };
    drivers::CoordinatorOutcome out;
    try {
      out = drivers::run_coordinator(hub, s);
    } catch (const std::exception& e) {
      progress.finish();
      (void)close_log();
      std::cerr << "marina-coordinator: error: " << e.what() << '\n';
      children.reap(std::chrono::milliseconds(3000));
      linger(std::string("error: ") + e.what());
      return 1;
    }
    progress.finish();
    const bool log_closed = close_log();
    if (out.interrupted) {
      std::cerr << "marina-coordinator: stopped by a signal; events: " << out.events.summary()
                << '\n';
      children.reap(std::chrono::milliseconds(3000));
      linger("stopped by a signal");
      return log_closed ? 0 : 1;
    }
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
    std::printf("events: %s\n", out.events.summary().c_str());
    if (!out.rejected_by.empty()) {
      std::string by;
      for (const auto& [why, count] : out.rejected_by)
        by += (by.empty() ? "" : ", ") + why + " " + std::to_string(count);
      std::printf("rejected messages by reason: %s\n", by.c_str());
    }
    // The run does not depend on every device, and neither does its exit status: a local
    // worker that failed (or was killed) is reported, the run's result stands.
    std::fflush(stdout);
    if (const int failed = children.reap(std::chrono::milliseconds(5000)); failed > 0)
      std::cerr << "marina-coordinator: warning: " << failed
                << " local worker(s) exited with an error (see their messages above)\n";
    linger("run complete");
    return log_closed ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "marina-coordinator: error: " << e.what() << '\n';
    return 1;
  }
}

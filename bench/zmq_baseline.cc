// The raw exchange a round needs, with nothing of the runtime in it: one process publishes a
// message of --down bytes on PUB, n worker processes receive it on SUB and answer with --up
// bytes on DEALER, and the publisher's ROUTER collects the n answers. Per-round wall times are
// the floor that marina-coordinator + marina-worker rounds are compared with
// (bench/loopback.py latency runs both with the same n and message sizes).
//
//   marina_zmq_baseline --workers N --rounds R --down BYTES --up BYTES [--warmup W]
//                       [--step-dim D]
// prints one line "zmq_baseline n=... p50_us=... p99_us=... mean_us=... hub_cpu_us=..." (the
// publishing process's own CPU per timed round) and, with --times FILE, every round's time in
// seconds, one a line.
//
// --step-dim D adds the arithmetic every MARINA round needs whatever its implementation: the
// step x^{k+1} = x^k − γ g^k over D doubles (x^{k−1} kept: three streams of D doubles), once
// in each worker between receiving and answering and once in the publisher after the last
// answer. With it the floor is the network plus that pass, not the network alone, which is
// what a round at large d should be held against.
//
// Workers are this same binary started with --worker ENDPOINT (posix_spawn, not fork: a ZeroMQ
// context must not cross a fork).

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include <zmq.hpp>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kBye = UINT64_MAX;

uint64_t round_of(const zmq::message_t& m) {
  uint64_t r = 0;
  if (m.size() >= sizeof r) std::memcpy(&r, m.data(), sizeof r);
  return r;
}

void put_round(std::vector<uint8_t>& buf, uint64_t r) {
  std::memcpy(buf.data(), &r, sizeof r);
}

// The step's vectors and the pass itself (--step-dim).
class Step {
 public:
  explicit Step(std::size_t d) : x_(d, 1.0), x_prev_(d, 1.0), g_(d, 0.5) {}
  void run() {
    if (x_.empty()) return;
    x_.swap(x_prev_);
    double* __restrict x = x_.data();
    const double* __restrict p = x_prev_.data();
    const double* __restrict g = g_.data();
    for (std::size_t j = 0; j < x_.size(); ++j) x[j] = p[j] - 1e-12 * g[j];
    sink_ = x[x_.size() / 2];  // the pass has an observable result
  }

 private:
  std::vector<double> x_, x_prev_, g_;
  volatile double sink_ = 0.0;
};

int worker(const std::string& pub, const std::string& router, std::size_t up,
           std::size_t step_dim) {
  Step step(step_dim);
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub), dealer(ctx, zmq::socket_type::dealer);
  sub.set(zmq::sockopt::subscribe, "");
  dealer.set(zmq::sockopt::linger, 1000);
  sub.connect(pub);
  dealer.connect(router);
  std::vector<uint8_t> reply(std::max<std::size_t>(up, 8), 0xab);
  for (;;) {
    zmq::message_t m;
    if (!sub.recv(m, zmq::recv_flags::none)) continue;
    const uint64_t r = round_of(m);
    if (r == kBye) return 0;
    step.run();
    put_round(reply, r);
    dealer.send(zmq::buffer(reply.data(), reply.size()), zmq::send_flags::none);
  }
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 1, rounds = 1000, warmup = 50, down = 128, up = 96, step_dim = 0;
  std::string worker_pub, worker_router, times_file;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "zmq_baseline: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto count = [&]() -> std::size_t {
      const std::string v = next();
      std::size_t used = 0;
      unsigned long x = 0;
      try {
        x = std::stoul(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != v.size() || v[0] == '-') {
        std::fprintf(stderr, "zmq_baseline: %s needs a non-negative integer, got '%s'\n", a.c_str(),
                     v.c_str());
        std::exit(2);
      }
      return x;
    };
    if (a == "-h" || a == "--help") {
      std::printf(
          "usage: marina_zmq_baseline --workers N --rounds R --down BYTES --up BYTES\n"
          "                           [--warmup W] [--times FILE] [--step-dim D]\n"
          "The raw ZeroMQ exchange of a round (PUB -> N SUB processes, N DEALER -> ROUTER), the\n"
          "floor bench/loopback.py latency compares marina rounds with. Prints p50/p99/mean per\n"
          "round; --times writes every round's seconds, one a line. --step-dim D: each side also\n"
          "makes one pass of the step x = x_prev - gamma g over D doubles per round.\n");
      return 0;
    }
    if (a == "--workers")
      n = count();
    else if (a == "--rounds")
      rounds = count();
    else if (a == "--warmup")
      warmup = count();
    else if (a == "--down")
      down = count();
    else if (a == "--up")
      up = count();
    else if (a == "--step-dim")
      step_dim = count();
    else if (a == "--times")
      times_file = next();
    else if (a == "--worker") {
      worker_pub = next();
      worker_router = next();
    } else {
      std::fprintf(stderr, "zmq_baseline: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (!worker_pub.empty()) return worker(worker_pub, worker_router, up, step_dim);
  Step step(step_dim);

  zmq::context_t ctx;
  zmq::socket_t pub(ctx, zmq::socket_type::pub), router(ctx, zmq::socket_type::router);
  pub.set(zmq::sockopt::sndhwm, 10000);
  pub.set(zmq::sockopt::linger, 200);
  pub.bind("tcp://127.0.0.1:*");
  router.bind("tcp://127.0.0.1:*");
  const std::string pub_ep = pub.get(zmq::sockopt::last_endpoint);
  const std::string router_ep = router.get(zmq::sockopt::last_endpoint);

  std::vector<pid_t> pids;
  const std::string self = "/proc/self/exe", up_text = std::to_string(up);
  for (std::size_t w = 0; w < n; ++w) {
    std::vector<std::string> args = {argv[0], "--worker", pub_ep,       router_ep,
                                     "--up",  up_text,    "--step-dim", std::to_string(step_dim)};
    std::vector<char*> cargs;
    for (auto& s : args) cargs.push_back(s.data());
    cargs.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, cargs.data(), environ) != 0) {
      std::perror("zmq_baseline: posix_spawn");
      return 1;
    }
    pids.push_back(pid);
  }

  std::vector<uint8_t> msg(std::max<std::size_t>(down, 8), 0xcd);
  zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0}};
  // Collects n answers to round r; returns false if none came within `patience`.
  auto collect = [&](uint64_t r, std::chrono::milliseconds patience) {
    std::size_t got = 0;
    const auto deadline = Clock::now() + patience;
    while (got < n) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || zmq::poll(items, 1, left) == 0) return false;
      zmq::message_t id, body;
      (void)router.recv(id, zmq::recv_flags::none);
      (void)router.recv(body, zmq::recv_flags::none);
      if (round_of(body) == r) ++got;
    }
    return true;
  };

  // Slow joiners: publish round 1 until every worker has answered it (subscriptions travel
  // asynchronously), then warm up.
  uint64_t r = 1;
  for (;;) {
    put_round(msg, r);
    pub.send(zmq::buffer(msg.data(), msg.size()), zmq::send_flags::none);
    if (collect(r, std::chrono::milliseconds(200))) break;
    ++r;
  }
  std::vector<double> times;
  times.reserve(rounds);
  // This process's CPU (all its threads, ZeroMQ's I/O thread included; not the workers') over
  // the timed rounds: what a coordinator's own CPU per round compares with.
  const auto cpu_us = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return 1e6 * static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  double cpu_start = 0, cpu_end = 0;
  for (std::size_t k = 0; k < warmup + rounds; ++k) {
    if (k == warmup) cpu_start = cpu_us();
    ++r;
    const auto t0 = Clock::now();
    put_round(msg, r);
    pub.send(zmq::buffer(msg.data(), msg.size()), zmq::send_flags::none);
    if (!collect(r, std::chrono::milliseconds(10000))) {
      std::fprintf(stderr, "zmq_baseline: round %llu incomplete after 10 s\n",
                   static_cast<unsigned long long>(r));
      break;
    }
    step.run();
    if (k >= warmup) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  cpu_end = cpu_us();
  put_round(msg, kBye);
  for (int i = 0; i < 3; ++i) pub.send(zmq::buffer(msg.data(), msg.size()), zmq::send_flags::none);
  for (pid_t pid : pids) {
    int status = 0;
    for (int t = 0; t < 300 && waitpid(pid, &status, WNOHANG) == 0; ++t) {
      if (t == 100) kill(pid, SIGTERM);
      usleep(10000);
    }
  }
  if (times.empty()) return 1;
  double sum = 0;
  for (double t : times) sum += t;
  std::printf(
      "zmq_baseline n=%zu rounds=%zu down=%zu up=%zu p50_us=%.1f p99_us=%.1f mean_us=%.1f "
      "hub_cpu_us=%.1f\n",
      n, times.size(), down, up, percentile(times, 0.5) * 1e6, percentile(times, 0.99) * 1e6,
      sum / static_cast<double>(times.size()) * 1e6,
      (cpu_end - cpu_start) / static_cast<double>(times.size()));
  if (!times_file.empty()) {
    std::ofstream out(times_file);
    for (double t : times) out << t << '\n';
  }
  return 0;
}

// mlp-device: one worker of a MARINA run that trains a small neural network on handwritten
// digits. It reads the digits CSV, keeps its training shard and the shared test split, hands
// the model to marina::Worker, which does everything about the method and the network, and
// at the end prints how the final point does on the test split, as one line on stdout:
//
//   mlp-device I: rounds R replies P train_loss T test_loss L test_accuracy A
//
// Flags are parsed by hand so that the example needs nothing but marina and Eigen.

#include <atomic>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <marina/worker.h>

#include "digits.h"
#include "mlp.h"

namespace {

constexpr const char* kUsage =
    R"(Usage: mlp-device --connect tcp://HOST:PORT --shard I/N --data FILE [options]

Trains a 64-H-10 tanh network on 8x8 handwritten digits as worker I of a MARINA run: the
coordinator (marina-coordinator) chooses the method, the stepsize and the rounds. Start it with
--init-scale 0.1 (a network cannot leave x = 0) and --gamma (see the README).

Required:
  --connect tcp://HOST:PORT  the coordinator's --listen address
  --shard I/N                keep training shard I of N, 0 <= I < N (N = the run's --workers)
  --data FILE                the digits CSV (scripts/fetch-data.sh writes data/digits.csv)
Options:
  --id ID                    this worker's id in the run (default: I)
  --hidden H                 hidden units (default 32)
  --l2 L                     weight of (1/2)||x||^2 (default 1e-4)
  --test-fraction F          share of the rows held out for testing, 0 < F < 1 (default 0.2)
  --split-seed S             seed of the row shuffle before the split (default 1)
  --curve-secret FILE        CurveZMQ: this worker's secret key file (needs --server-key)
  --server-key KEY           CurveZMQ: the coordinator's public key, a .pub file or Z85 text
  --quiet                    no progress messages on stderr
  --help                     this text

Every worker of a run needs the same --data, --hidden, --l2, --test-fraction and
--split-seed: the coordinator refuses one that differs. At the end one line goes to stdout:
  mlp-device I: rounds R replies P train_loss T test_loss L test_accuracy A
(losses: mean cross-entropy + (l2/2)||x||^2 on shard I and on the test split; A a fraction).
)";

// A command-line mistake; main() prints it with a pointer to --help.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Flags {
  std::string connect, data, curve_secret, server_key;
  std::optional<std::pair<uint32_t, uint32_t>> shard;  // I, N
  std::optional<uint32_t> id;
  std::size_t hidden = 32;
  double l2 = 1e-4;
  double test_fraction = 0.2;
  uint64_t split_seed = 1;
  bool quiet = false;
  bool help = false;
};

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

template <typename T>
T integer_flag(std::string_view flag, std::string_view text, T least) {
  const auto v = parse_number<T>(text);
  if (!v || *v < least)
    throw UsageError(std::string(flag) + ": expected an integer >= " + std::to_string(least) +
                     ", got '" + std::string(text) + "'");
  return *v;
}

double number_flag(std::string_view flag, std::string_view text) {
  const auto v = parse_number<double>(text);
  if (!v || !std::isfinite(*v))
    throw UsageError(std::string(flag) + ": expected a number, got '" + std::string(text) + "'");
  return *v;
}

std::pair<uint32_t, uint32_t> shard_flag(std::string_view text) {
  const std::size_t slash = text.find('/');
  const auto i = parse_number<uint32_t>(text.substr(0, slash));
  const auto n = slash == std::string_view::npos ? std::nullopt
                                                 : parse_number<uint32_t>(text.substr(slash + 1));
  if (!i || !n || *n == 0 || *i >= *n)
    throw UsageError("--shard: expected I/N with 0 <= I < N, got '" + std::string(text) + "'");
  return {*i, *n};
}

Flags parse_flags(int argc, char** argv) {
  Flags f;
  for (int k = 1; k < argc; ++k) {
    std::string_view arg = argv[k];
    std::optional<std::string_view> inline_value;  // --flag=value
    if (const std::size_t eq = arg.find('='); arg.starts_with("--") && eq != arg.npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "--help" || arg == "-h" || arg == "--quiet") {
      if (inline_value) throw UsageError(std::string(arg) + " takes no value");
      (arg == "--quiet" ? f.quiet : f.help) = true;
      continue;
    }
    const auto value = [&]() -> std::string_view {
      if (inline_value) return *inline_value;
      if (k + 1 >= argc) throw UsageError(std::string(arg) + ": missing value");
      return argv[++k];
    };
    if (arg == "--connect") {
      f.connect = value();
    } else if (arg == "--shard") {
      f.shard = shard_flag(value());
    } else if (arg == "--id") {
      f.id = integer_flag<uint32_t>("--id", value(), 0);
    } else if (arg == "--data") {
      f.data = value();
    } else if (arg == "--hidden") {
      f.hidden = integer_flag<std::size_t>("--hidden", value(), 1);
    } else if (arg == "--l2") {
      f.l2 = number_flag("--l2", value());
      if (f.l2 < 0.0) throw UsageError("--l2: must be >= 0");
    } else if (arg == "--test-fraction") {
      f.test_fraction = number_flag("--test-fraction", value());
      if (!(f.test_fraction > 0.0 && f.test_fraction < 1.0))
        throw UsageError("--test-fraction: must be between 0 and 1 (exclusive)");
    } else if (arg == "--split-seed") {
      f.split_seed = integer_flag<uint64_t>("--split-seed", value(), 0);
    } else if (arg == "--curve-secret") {
      f.curve_secret = value();
    } else if (arg == "--server-key") {
      f.server_key = value();
    } else {
      throw UsageError("unknown argument '" + std::string(argv[k]) + "'");
    }
  }
  if (f.help) return f;
  if (f.connect.empty()) throw UsageError("missing --connect tcp://HOST:PORT");
  if (!f.shard) throw UsageError("missing --shard I/N");
  if (f.data.empty()) throw UsageError("missing --data FILE");
  if (f.curve_secret.empty() != f.server_key.empty())
    throw UsageError("--curve-secret and --server-key go together");
  return f;
}

// Shortest text that reads back as the same double, so that equal flags give equal
// descriptions on every worker.
std::string shortest(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return ec == std::errc{} ? std::string(buf, end) : std::to_string(v);
}

// The running worker, for the signal handler; a lock-free atomic is safe to read there.
std::atomic<marina::Worker*> g_worker{nullptr};
static_assert(std::atomic<marina::Worker*>::is_always_lock_free);

extern "C" void on_signal(int) {
  if (marina::Worker* w = g_worker.load()) w->stop();
}

// SIGINT and SIGTERM stop the worker while it lives: the pointer is set before the handlers
// are installed and cleared after they are removed, so no signal sees a destroyed Worker.
class StopOnSignals {
 public:
  explicit StopOnSignals(marina::Worker& worker) {
    g_worker.store(&worker);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopOnSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_worker.store(nullptr);
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

int run(const Flags& flags, const std::string& name) {
  const auto [shard, shards] = *flags.shard;
  std::size_t rows = 0;
  mlp_device::Split split = [&] {  // the whole file is not needed after the split
    const mlp_device::Digits all = mlp_device::read_digits(flags.data);
    rows = all.size();
    return mlp_device::split_digits(all, {.test_fraction = flags.test_fraction,
                                          .seed = flags.split_seed,
                                          .shard = shard,
                                          .shards = shards});
  }();
  const std::size_t train_rows = split.train.size();
  mlp_device::Mlp model(
      std::move(split.train),
      {.hidden = flags.hidden,
       .l2 = flags.l2,
       .data = "rows=" + std::to_string(rows) + " split-seed=" + std::to_string(flags.split_seed) +
               " test-fraction=" + shortest(flags.test_fraction)});
  if (!flags.quiet)
    std::cerr << name << ": shard " << shard << "/" << shards << " of " << flags.data << ": "
              << train_rows << " training and " << split.test.size()
              << " test samples, d = " << model.dim() << ", L = " << model.smoothness().L
              << " (estimated); joining " << flags.connect << "\n";

  marina::WorkerOptions options;
  options.coordinator = flags.connect;
  options.id = flags.id.value_or(shard);
  options.shard_count = shards;
  options.curve_secret_file = flags.curve_secret;
  options.server_key = flags.server_key;
  if (!flags.quiet)
    options.on_message = [&name](const std::string& news) {
      std::cerr << name << ": " << news << "\n";
    };

  marina::Worker worker(model, std::move(options));
  marina::WorkerSummary summary;
  {
    StopOnSignals guard(worker);
    summary = worker.run();
  }
  if (!flags.quiet) {
    if (summary.stopped)
      std::cerr << name << ": stopped\n";
    else if (!summary.bye_reason.empty())
      std::cerr << name << ": the coordinator ended the run: " << summary.bye_reason << "\n";
  }
  if (summary.x.size() != model.dim()) {
    std::cerr << name << ": error: took part in no round, so there is no point to evaluate\n";
    return 1;
  }
  const double train_loss = model.loss(summary.x, model.train());
  const double test_loss = model.loss(summary.x, split.test);
  const double test_accuracy = model.accuracy(summary.x, split.test);
  std::printf("%s: rounds %llu replies %llu train_loss %.6g test_loss %.6g test_accuracy %.4f\n",
              name.c_str(), static_cast<unsigned long long>(summary.rounds),
              static_cast<unsigned long long>(summary.replies), train_loss, test_loss,
              test_accuracy);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  try {
    flags = parse_flags(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "mlp-device: " << e.what() << " (see --help)\n";
    return 1;
  }
  if (flags.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string name = "mlp-device " + std::to_string(flags.shard->first);
  try {
    return run(flags, name);
  } catch (const marina::WorkerError& e) {
    std::cerr << name << ": error: " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << e.what() << "\n";
  }
  return 1;
}

#include "marina/cli/flags.h"

#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include <CLI/CLI.hpp>

#include "marina/compress/compressor.h"
#include "marina/data/dataset.h"

namespace marina::cli {
namespace {

std::optional<double> auto_or_number(const std::string& flag, const std::string& text) {
  if (text == "auto") return std::nullopt;
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + ": expected 'auto' or a number, got '" + text + "'");
}

}  // namespace

void add_algorithm_flags(CLI::App& app, AlgorithmFlags& f) {
  app.add_option("--workers,-n", f.workers, "number of workers n")
      ->check(CLI::Range(1u, 1u << 20))
      ->capture_default_str();
  app.add_option("--method", f.method, "gd|marina|vr-marina|pp-marina|diana|vr-diana")
      ->capture_default_str();
  app.add_option("--compressor", f.compressor,
                 "identity|randk:K|randblock:K|permk|qsgd:S|natural|topk:K; randk:K:indexed, "
                 "permk:indexed send the indices (no derivation on the coordinator); randblock:K "
                 "is RandK's omega with K consecutive coordinates (one draw, no index set)")
      ->capture_default_str();
  app.add_option("--rounds", f.rounds, "number of rounds R")->capture_default_str();
  app.add_option("--seed", f.seed, "seed of all randomness")->capture_default_str();
  app.add_option("--gamma", f.gamma, "stepsize: auto (theory) or a number")->capture_default_str();
  app.add_option("--p", f.p, "probability of a full-sync round: auto (theory) or a number")
      ->capture_default_str();
  app.add_option("--smoothness", f.smoothness,
                 "constants behind auto gamma and p: spectral (measured, tightest) or row-max "
                 "(L = c max_j ||a_j||^2 + lambda for every constant, as the paper's code)")
      ->capture_default_str();
  app.add_option("--batch", f.batch, "b': minibatch of compressed rounds (vr-marina, vr-diana)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--online-batch", f.online_batch,
                 "b: vr-marina online case, minibatch of full-sync rounds (0 = full gradient)")
      ->capture_default_str();
  app.add_option("--batch-sampling", f.batch_sampling,
                 "how minibatch rows are drawn from a worker's m rows: with-replacement, or "
                 "without-replacement (distinct rows, as the paper's code; needs b', b <= m)")
      ->check(CLI::IsMember({"with-replacement", "without-replacement"}))
      ->capture_default_str();
  app.add_option("--clients", f.clients,
                 "r: pp-marina clients per compressed round (default ⌈n/2⌉)");
  app.add_option("--loss", f.loss, "nonconvex|logistic")->capture_default_str();
  app.add_option("--init-scale", f.init_scale,
                 "x0: 0 (the zero vector) or entries uniform in [-S, S] from --seed (neural "
                 "networks need S > 0)")
      ->capture_default_str();
  app.add_option("--l2", f.l2, "lambda of the (lambda/2)||x||^2 regulariser")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--shuffle-seed", f.shuffle_seed, "shuffle rows with this seed before sharding");
  app.add_flag("--bias", f.bias, "append a constant feature (bias term)");
  app.add_option("--stop-at", f.stop_at,
                 "stop once ||grad f||^2 <= this fraction of its initial value");
}

methods::MethodConfig base_config(const AlgorithmFlags& f, uint64_t dim) {
  methods::MethodConfig c;
  c.method = methods::parse_method(f.method);
  c.compressor = f.compressor;
  c.workers = f.workers;
  c.dim = dim;
  c.seed = f.seed;
  c.batch = f.batch;
  c.online_batch = f.online_batch;
  c.batch_sampling = methods::parse_batch_sampling(f.batch_sampling);
  c.clients = f.clients;
  if (!(f.init_scale >= 0.0) || !std::isfinite(f.init_scale))
    throw std::invalid_argument("--init-scale must be a finite number >= 0");
  c.init_scale = f.init_scale;
  (void)compress::make_compressor(f.compressor);  // validates the spec early
  return c;
}

methods::Choices choices(const AlgorithmFlags& f) {
  return methods::Choices{auto_or_number("--gamma", f.gamma), auto_or_number("--p", f.p),
                          methods::parse_smoothness(f.smoothness)};
}

drivers::CoordinatorSettings coordinator_settings(const AlgorithmFlags& f, uint64_t dim) {
  drivers::CoordinatorSettings s;
  s.base = base_config(f, dim);
  s.choices = choices(f);
  s.rounds = f.rounds;
  s.stop_at = f.stop_at;
  return s;
}

std::string model_description(const AlgorithmFlags& f) {
  return problem::describe(problem::parse_loss(f.loss), f.l2, f.bias, f.shuffle_seed);
}

std::vector<problem::Objective> load_shards(const std::string& file, const AlgorithmFlags& f,
                                            std::string* note) {
  const problem::Loss loss = problem::parse_loss(f.loss);
  std::vector<problem::Objective> shards;
  shards.reserve(f.workers);
  data::ShardInfo info;
  for (uint32_t i = 0; i < f.workers; ++i) {
    data::Dataset d = data::read_libsvm_shard(file, {i, f.workers, f.shuffle_seed}, &info);
    if (f.bias) data::append_bias(d);
    shards.emplace_back(std::move(d), loss, f.l2, model_description(f));
  }
  if (note) {
    note->clear();
    if (info.dropped > 0)
      *note = file + ": " + std::to_string(info.file_rows) + " rows, " +
              std::to_string(info.rows_per_shard) + " per worker; the last " +
              std::to_string(info.dropped) + " rows are dropped (equal shards, as in the paper)";
  }
  return shards;
}

Progress::Progress(uint64_t total_rounds)
    : tty_(isatty(STDERR_FILENO) != 0),
      total_(total_rounds),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

bool Progress::due(const run::LogRow& row) const {
  return tty_ && (row.round == total_ ||
                  std::chrono::steady_clock::now() - last_ >= std::chrono::milliseconds(200));
}

void Progress::update(const run::LogRow& row, const std::string& extra) {
  if (!due(row)) return;
  const auto now = std::chrono::steady_clock::now();
  last_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r\033[Kround %llu/%llu  ||grad||^2 %s  bits/worker %.4g  %.0f rounds/s%s",
               static_cast<unsigned long long>(row.round), static_cast<unsigned long long>(total_),
               row.grad_norm_sq ? run::exact(*row.grad_norm_sq).c_str() : "?", row.bits_per_worker,
               secs > 0 ? static_cast<double>(row.round) / secs : 0.0, extra.c_str());
  shown_ = true;
}

void Progress::finish() {
  if (tty_ && shown_) std::fputc('\n', stderr);
}

}  // namespace marina::cli

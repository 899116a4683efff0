// marina-sim: runs a method in one process on a LibSVM file, the server half and n worker
// halves stepped in worker order, and logs what the paper plots.

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "marina/cli/flags.h"
#include "marina/data/dataset.h"
#include "marina/methods/theory.h"
#include "marina/run/log.h"
#include "marina/run/simulation.h"

namespace {

int run(const std::string& data_file, const std::string& log_file,
        const marina::cli::AlgorithmFlags& flags) {
  using namespace marina;
  std::string note;
  const auto shards = cli::load_shards(data_file, flags, &note);
  if (!note.empty()) std::cerr << "note: " << note << '\n';

  std::string why;
  const methods::MethodConfig config =
      methods::resolve(cli::base_config(flags, shards.front().dim()), cli::choices(flags),
                       methods::measure(shards), &why);
  std::cerr << methods::to_string(config.method) << " with " << config.compressor << " on "
            << data_file << ": n = " << config.workers << ", m = " << shards.front().rows()
            << ", d = " << config.dim << "\n" << why << '\n';

  std::unique_ptr<run::CsvLog> log;
  if (!log_file.empty()) log = std::make_unique<run::CsvLog>(log_file);

  run::Simulation sim(config, shards);
  const auto start = std::chrono::steady_clock::now();
  cli::Progress progress(flags.rounds);
  run::LogRow row = sim.initial_row();
  const double initial = *row.grad_norm_sq;
  if (log) log->write(row);
  while (row.round < flags.rounds) {
    row = sim.step();
    row.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (log) log->write(row);
    progress.update(row);
    if (flags.stop_at && *row.grad_norm_sq <= *flags.stop_at * initial) break;
  }
  progress.finish();
  std::printf(
      "%s/%s: %llu rounds in %.3f s, loss %s, ||grad f||^2 %s (%.3g of initial), "
      "bits/worker %s, oracle calls/worker %s\n",
      std::string(methods::to_string(config.method)).c_str(), config.compressor.c_str(),
      static_cast<unsigned long long>(row.round), row.wall_s, run::exact(*row.loss).c_str(),
      run::exact(*row.grad_norm_sq).c_str(), initial > 0 ? *row.grad_norm_sq / initial : 0.0,
      run::exact(row.bits_per_worker).c_str(), run::exact(row.oracle_calls).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"marina-sim: run MARINA-family methods in one process on LibSVM data"};
  std::string data_file, log_file;
  marina::cli::AlgorithmFlags flags;
  app.add_option("--data", data_file, "LibSVM file (labels ±1, 0/1 or 1/2)")->required();
  marina::cli::add_algorithm_flags(app, flags);
  app.add_option("--log", log_file, "CSV log, one row per round (round 0 included)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(data_file, log_file, flags);
  } catch (const std::exception& e) {
    std::cerr << "marina-sim: error: " << e.what() << '\n';
    return 1;
  }
}

// marina-sim: runs a method in one process. The coordinator and the n workers are the same
// drivers as in the networked runtime, connected by the in-process transport, so every
// message goes through the wire codec and the log equals a networked run's.

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "marina/cli/flags.h"
#include "marina/drivers/coordinator.h"
#include "marina/drivers/worker.h"
#include "marina/run/faults.h"
#include "marina/run/log.h"
#include "marina/transport/inproc_transport.h"
#include "marina/util/random.h"
#include "marina/wire/version.h"

namespace {

struct LogFlags {
  std::string file;
  bool local_norms = false;
};

struct FaultFlags {
  double dropout = 0.0;
  std::string faults_file;
};

int run(const std::string& data_file, const LogFlags& log_flags,
        const marina::cli::AlgorithmFlags& flags, const FaultFlags& fault_flags, bool verbose) {
  using namespace marina;
  std::vector<run::Fault> schedule;
  if (!fault_flags.faults_file.empty())
    schedule = run::read_faults(fault_flags.faults_file, flags.workers);
  const run::FaultPlan plan(flags.workers, flags.seed, fault_flags.dropout, std::move(schedule));
  std::string note;
  auto shards = cli::load_shards(data_file, flags, &note);
  if (!note.empty()) std::cerr << "note: " << note << '\n';

  auto s = cli::coordinator_settings(flags, shards.front().dim());
  s.session = util::derive(flags.seed, {0x5e55}) | 1;
  s.round_timeout = std::chrono::milliseconds(60000);
  s.evaluation = &shards;
  s.model = cli::model_description(flags);
  // Absences come from the plan, never from the clock: the run is deterministic.
  s.min_workers = 1;
  if (!plan.empty())
    s.absent = [&plan](uint64_t round, uint32_t w) { return plan.absent(round, w); };
  s.on_info = [&](const std::string& line) {
    if (verbose || line.find("gamma") != std::string::npos) std::cerr << line << '\n';
  };

  std::unique_ptr<run::CsvLog> log;
  if (!log_flags.file.empty())
    log = std::make_unique<run::CsvLog>(
        log_flags.file, std::nullopt, run::CsvColumns{.local_grad_norm_sq = log_flags.local_norms});
  cli::Progress progress(flags.rounds);
  s.on_row = [&](const run::LogRow& row) {
    if (log) log->write(row);
    progress.update(row);
  };

  transport::InProcNetwork net(flags.workers);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(flags.workers);
  for (uint32_t i = 0; i < flags.workers; ++i) {
    drivers::WorkerSettings w;
    w.id = i;
    w.model = &shards[i];  // the Objective's functions are safe beside the evaluation's
    if (!plan.empty()) w.absent = [&plan, i](uint64_t round) { return plan.absent(round, i); };
    threads.emplace_back([&net, &errors, i, w = std::move(w)]() mutable {
      try {
        (void)drivers::run_worker(net.link(i), std::move(w));
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  drivers::CoordinatorOutcome out;
  try {
    out = drivers::run_coordinator(net.hub(), s);
  } catch (...) {
    for (auto& t : threads) t.join();
    throw;
  }
  for (auto& t : threads) t.join();
  progress.finish();
  if (log) log->flush();  // the last rows may still be buffered
  for (uint32_t i = 0; i < flags.workers; ++i)
    if (!errors[i].empty())
      throw std::runtime_error("worker " + std::to_string(i) + ": " + errors[i]);

  const auto& row = out.last;
  const double initial = out.initial_grad_norm_sq.value_or(0.0);
  std::printf(
      "%s/%s: %llu rounds in %.3f s, loss %s, ||grad f||^2 %s (%.3g of initial), "
      "bits/worker %s, oracle calls/worker %s\n",
      std::string(methods::to_string(out.config.method)).c_str(), out.config.compressor.c_str(),
      static_cast<unsigned long long>(row.round), row.wall_s, run::exact(*row.loss).c_str(),
      run::exact(*row.grad_norm_sq).c_str(), initial > 0 ? *row.grad_norm_sq / initial : 0.0,
      run::exact(row.bits_per_worker).c_str(), run::exact(row.oracle_calls).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"marina-sim: run MARINA-family methods in one process on LibSVM data"};
  app.set_version_flag("--version", marina::wire::version_line("marina-sim"));
  std::string data_file;
  LogFlags log_flags;
  bool verbose = false;
  marina::cli::AlgorithmFlags flags;
  app.add_option("--data", data_file, "LibSVM file (labels ±1, 0/1 or 1/2)")->required();
  marina::cli::add_algorithm_flags(app, flags);
  auto* log_opt =
      app.add_option("--log", log_flags.file, "CSV log, one row per round (round 0 included)");
  app.add_flag("--log-local-norms", log_flags.local_norms,
               "add the column local_grad_norm_sq = (1/n) sum_i ||grad f_i(x^k)||^2 (what the "
               "paper's code plots)")
      ->needs(log_opt);
  app.add_flag("--verbose", verbose, "print the start-up protocol messages");
  FaultFlags faults;
  app.add_option("--dropout", faults.dropout,
                 "each worker is absent from each round with this probability (from --seed)")
      ->check(CLI::Range(0.0, 0.999999));
  app.add_option("--faults", faults.faults_file,
                 "fault schedule: lines 'ROUND WORKER down|up' (absent from ROUND until up)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(data_file, log_flags, flags, faults, verbose);
  } catch (const std::exception& e) {
    std::cerr << "marina-sim: error: " << e.what() << '\n';
    return 1;
  }
}

#pragma once
// Helpers shared by the micro-benchmarks: a baseline timed in the same process, and counters
// that put the measured time beside it.

#include <benchmark/benchmark.h>

#include <time.h>

#include <cstdint>

namespace marina::bench {

// This thread's CPU time in seconds. The development machine is shared (load averages of 6 to
// 14 were seen): CPU time leaves out the time other processes hold the core, which wall time
// would add to the baseline and the measured loop in different amounts.
inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU nanoseconds per call of `f`, timed over batches until at least `min_seconds` have passed.
// Run inside the benchmark function, right before its own loop, so that the baseline sees the
// same machine state (frequency, neighbours) as the code it is compared with.
template <class F>
double ns_per_call(F&& f, double min_seconds = 0.05) {
  f();  // warm caches and page in the buffers
  uint64_t calls = 0;
  uint64_t batch = 1;
  const double start = thread_cpu_seconds();
  double elapsed = 0.0;
  while (elapsed < min_seconds) {
    for (uint64_t i = 0; i < batch; ++i) f();
    calls += batch;
    batch *= 2;
    elapsed = thread_cpu_seconds() - start;
  }
  return elapsed * 1e9 / static_cast<double>(calls);
}

// Times the benchmark loop itself with the same clock as the baseline (this thread's CPU time),
// so that the ratio compares like with like.
class LoopTimer {
 public:
  LoopTimer() : start_(thread_cpu_seconds()) {}
  [[nodiscard]] double ns_per_iteration(const benchmark::State& state) const {
    return (thread_cpu_seconds() - start_) * 1e9 / static_cast<double>(state.iterations());
  }

 private:
  double start_;
};

// Adds "cpu_ns" (per iteration), "baseline_ns" and "ratio" (measured / baseline) to the
// benchmark's counters.
inline void report_ratio(benchmark::State& state, double measured_ns, double baseline_ns) {
  state.counters["cpu_ns"] = measured_ns;
  state.counters["baseline_ns"] = baseline_ns;
  state.counters["ratio"] = measured_ns / baseline_ns;
}

}  // namespace marina::bench

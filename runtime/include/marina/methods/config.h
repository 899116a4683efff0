#pragma once
// The settings of a run that the server and every worker must agree on. The coordinator
// sends them to each worker when it joins, so workers need no algorithm flags.

#include <cstdint>
#include <string>
#include <string_view>

namespace marina::methods {

enum class Method : uint8_t { kGd, kMarina, kVrMarina, kPpMarina, kDiana, kVrDiana };

[[nodiscard]] std::string_view to_string(Method m);
// Parses "gd", "marina", "vr-marina", "pp-marina", "diana", "vr-diana";
// throws std::invalid_argument listing the accepted names.
[[nodiscard]] Method parse_method(std::string_view name);

// How the rows of a minibatch (VR-MARINA's b′ and b, VR-DIANA's b′) are drawn from a worker's
// m rows: i.i.d. uniform (a row may repeat), or b distinct rows, every b-subset equally likely
// (util::sample_sorted; as the paper's experiment code draws them, and b ≤ m then).
enum class BatchSampling : uint8_t { kWithReplacement, kWithoutReplacement };

[[nodiscard]] std::string_view to_string(BatchSampling s);
// Parses "with-replacement", "without-replacement"; throws std::invalid_argument otherwise.
[[nodiscard]] BatchSampling parse_batch_sampling(std::string_view name);

// Whether the method draws minibatches (and so reads batch, online_batch and batch_sampling).
[[nodiscard]] bool draws_minibatches(Method m);

struct MethodConfig;

// Throws std::invalid_argument, naming the flags, when `c` draws minibatches without
// replacement larger than a worker's `rows` (b′ or b > m); otherwise does nothing.
void check_batches_fit(const MethodConfig& c, uint64_t rows);

struct MethodConfig {
  Method method = Method::kMarina;
  std::string compressor = "identity";  // spec for compress::make_compressor
  uint32_t workers = 1;                 // n
  uint64_t dim = 0;                     // d
  uint64_t seed = 0;
  double gamma = 0.0;         // stepsize γ (resolved: never "auto" here)
  double p = 1.0;             // MARINA family: P(c_k = 1); VR-DIANA: reference-update probability
  double alpha = 0.0;         // DIANA / VR-DIANA shift stepsize
  uint64_t batch = 1;         // b′: minibatch of compressed rounds (VR-MARINA, VR-DIANA)
  uint64_t online_batch = 0;  // b: VR-MARINA online case; 0 = finite sum (full local gradient)
  BatchSampling batch_sampling = BatchSampling::kWithReplacement;
  uint32_t clients = 0;  // r: PP-MARINA clients drawn per compressed round
  // x⁰: 0 for the zero vector, else entries uniform in [−init_scale, init_scale] drawn from
  // `seed` (initial_point(), the same on every worker and architecture). Models with a saddle
  // at 0, such as neural networks, need it.
  double init_scale = 0.0;

  bool operator==(const MethodConfig&) const = default;
};

}  // namespace marina::methods

#include <stdexcept>
#include <string>

#include "marina/methods/diana.h"
#include "marina/methods/gd.h"
#include "marina/methods/pp_marina.h"
#include "marina/methods/vr_marina.h"

namespace marina::methods {

std::string_view to_string(Method m) {
  switch (m) {
    case Method::kGd:
      return "gd";
    case Method::kMarina:
      return "marina";
    case Method::kVrMarina:
      return "vr-marina";
    case Method::kPpMarina:
      return "pp-marina";
    case Method::kDiana:
      return "diana";
    case Method::kVrDiana:
      return "vr-diana";
  }
  return "?";
}

Method parse_method(std::string_view name) {
  for (Method m : {Method::kGd, Method::kMarina, Method::kVrMarina, Method::kPpMarina,
                   Method::kDiana, Method::kVrDiana})
    if (to_string(m) == name) return m;
  throw std::invalid_argument("unknown method '" + std::string(name) +
                              "' (expected gd, marina, vr-marina, pp-marina, diana, vr-diana)");
}

std::string_view to_string(BatchSampling s) {
  return s == BatchSampling::kWithoutReplacement ? "without-replacement" : "with-replacement";
}

BatchSampling parse_batch_sampling(std::string_view name) {
  for (BatchSampling s : {BatchSampling::kWithReplacement, BatchSampling::kWithoutReplacement})
    if (to_string(s) == name) return s;
  throw std::invalid_argument("unknown batch sampling '" + std::string(name) +
                              "' (expected with-replacement, without-replacement)");
}

bool draws_minibatches(Method m) {
  return m == Method::kVrMarina || m == Method::kVrDiana;
}

void check_batches_fit(const MethodConfig& c, uint64_t rows) {
  if (!draws_minibatches(c.method) || c.batch_sampling != BatchSampling::kWithoutReplacement)
    return;
  const auto refuse = [&](const char* flag, const char* name, uint64_t size) {
    throw std::invalid_argument("--batch-sampling without-replacement needs " + std::string(flag) +
                                " " + name + " = " + std::to_string(size) +
                                " <= m = " + std::to_string(rows) + " rows per worker");
  };
  if (c.batch > rows) refuse("--batch", "b'", c.batch);
  if (c.method == Method::kVrMarina && c.online_batch > rows)
    refuse("--online-batch", "b", c.online_batch);
}

std::unique_ptr<ServerHalf> make_server(const MethodConfig& c) {
  switch (c.method) {
    case Method::kGd:
      return std::make_unique<GdServer>(c);
    case Method::kMarina:
    case Method::kVrMarina:
      return std::make_unique<MarinaServer>(c);
    case Method::kPpMarina:
      return std::make_unique<PpMarinaServer>(c);
    case Method::kDiana:
    case Method::kVrDiana:
      return std::make_unique<DianaServer>(c);
  }
  throw std::invalid_argument("make_server: unknown method");
}

std::unique_ptr<WorkerHalf> make_worker(const MethodConfig& c, uint32_t id, Model& f) {
  switch (c.method) {
    case Method::kGd:
      return std::make_unique<GdWorker>(c, id, f);
    case Method::kMarina:
      return std::make_unique<MarinaWorker>(c, id, f);
    case Method::kVrMarina:
      return std::make_unique<VrMarinaWorker>(c, id, f);
    case Method::kPpMarina:
      return std::make_unique<PpMarinaWorker>(c, id, f);
    case Method::kDiana:
      return std::make_unique<DianaWorker>(c, id, f);
    case Method::kVrDiana:
      return std::make_unique<VrDianaWorker>(c, id, f);
  }
  throw std::invalid_argument("make_worker: unknown method");
}

}  // namespace marina::methods

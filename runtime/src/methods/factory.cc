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

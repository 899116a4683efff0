#pragma once
// VR-MARINA (Algorithms 2 and 3 of the paper). The server is MARINA's; the worker replaces
// the full local gradient difference with a minibatch one.

#include <vector>

#include "marina/methods/marina.h"

namespace marina::methods {

class VrMarinaWorker : public MarinaWorker {
 public:
  using MarinaWorker::MarinaWorker;

 protected:
  void respond(const Broadcast& b, Reply& reply) override;

 private:
  std::vector<uint32_t> batch_;
};

}  // namespace marina::methods

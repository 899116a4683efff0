#pragma once
// Gradient descent, the uncompressed baseline.

#include "marina/methods/marina.h"

namespace marina::methods {

class GdServer : public MarinaServer {
 public:
  using MarinaServer::MarinaServer;

 protected:
  void plan(Broadcast& b) override;
};

// A GD worker is a MARINA worker that only ever sees full-sync rounds.
using GdWorker = MarinaWorker;

}  // namespace marina::methods

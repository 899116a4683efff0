#pragma once
// PP-MARINA (Algorithm 4 of the paper): partial participation. The worker is MARINA's.

#include "marina/methods/marina.h"

namespace marina::methods {

class PpMarinaServer : public MarinaServer {
 public:
  using MarinaServer::MarinaServer;

 protected:
  void plan(Broadcast& b) override;
};

using PpMarinaWorker = MarinaWorker;

}  // namespace marina::methods

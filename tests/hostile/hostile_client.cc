// marina-hostile: a peer that attacks a running coordinator, for the hostile-traffic tests.
// It listens to the broadcasts (learning the session and the round, as anyone on the network
// could in plaintext) and sends, for --duration-ms: garbage and oversized frames, multi-frame
// messages, truncated and bit-flipped real messages, forged joins claiming a running worker's
// id, a join declaring d = 2^31, replies under other workers' ids for the current, old and
// future rounds with NaN, Inf, huge and wrongly sized payloads, forged resync requests and
// byes. Nothing it sends may change the run. Optionally it speaks CurveZMQ with a key of its
// own (unknown to the coordinator, or another worker's).

#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <random>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include "marina/security/keys.h"
#include "marina/transport/zmq_transport.h"
#include "marina/wire/codec.h"

using namespace marina;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"marina-hostile: attack a coordinator (tests only)"};
  std::string connect, curve_secret, server_key;
  uint32_t workers = 3, claim = 0;
  uint64_t dim = 13;
  int64_t duration_ms = 2000;
  app.add_option("--connect", connect, "coordinator tcp://HOST:PORT")->required();
  app.add_option("--workers", workers, "n of the run")->required();
  app.add_option("--dim", dim, "d of the run")->required();
  app.add_option("--claim", claim, "the running worker id forged joins claim");
  app.add_option("--duration-ms", duration_ms, "how long to attack");
  app.add_option("--curve-secret", curve_secret, "speak CurveZMQ with this key");
  app.add_option("--server-key", server_key, "the coordinator's public key file");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto ep = transport::parse_endpoint(connect);
    zmq::context_t ctx;
    zmq::socket_t sub(ctx, zmq::socket_type::sub), dealer(ctx, zmq::socket_type::dealer);
    for (zmq::socket_t* s : {&sub, &dealer}) {
      s->set(zmq::sockopt::linger, 0);
      if (!curve_secret.empty()) {
        const auto own = security::read_secret_key(curve_secret);
        s->set(zmq::sockopt::curve_serverkey, security::read_public_key(server_key));
        s->set(zmq::sockopt::curve_publickey, own.public_key);
        s->set(zmq::sockopt::curve_secretkey, own.secret_key);
      }
    }
    sub.set(zmq::sockopt::subscribe, "");
    dealer.set(zmq::sockopt::routing_id, "hostile");
    sub.connect(ep.pub());
    dealer.connect(ep.router());

    std::mt19937_64 rng(12345);
    const auto pick = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
    wire::Decoder dec(wire::Limits{wire::max_message_bytes(dim, workers), dim, workers});
    wire::Inbox in;
    uint64_t session = 1, round = 0, sent = 0;
    std::vector<uint8_t> bytes;
    const auto send = [&](std::span<const uint8_t> m) {
      if (dealer.send(zmq::buffer(m.data(), m.size()), zmq::send_flags::dontwait)) ++sent;
    };
    const auto deadline = Clock::now() + std::chrono::milliseconds(duration_ms);
    while (Clock::now() < deadline) {
      // Learn the session and the round from whatever the coordinator publishes.
      zmq::message_t msg;
      while (sub.recv(msg, zmq::recv_flags::dontwait)) {
        try {
          const auto* p = static_cast<const uint8_t*>(msg.data());
          const auto kind = dec.decode({p, msg.size()}, in);
          session = in.session;
          if (kind == wire::MessageKind::kBroadcast) round = in.broadcast.round;
        } catch (const wire::DecodeError&) {
        }
      }
      wire::Encoder enc(session);
      methods::Reply r;
      r.worker = static_cast<uint32_t>(pick(workers));
      r.round = round + pick(3) - 1;
      r.payload.kind = compress::PayloadKind::kDense64;
      r.payload.dim = static_cast<uint32_t>(dim);
      r.payload.dense.assign(dim, 1e30);
      // An oversized frame gets the connection closed (ZMQ_MAXMSGSIZE), and what follows is
      // lost until it reconnects: send one rarely, so that the rest gets through.
      const uint64_t what = sent % 500 == 499 ? 1 : (pick(11) == 0 ? 0 : 2 + pick(10));
      switch (what) {
        case 0: {  // garbage
          bytes.resize(pick(300));
          for (auto& b : bytes) b = static_cast<uint8_t>(rng());
          send(bytes);
          break;
        }
        case 1: {  // oversized: the coordinator's ZMQ_MAXMSGSIZE disconnects us
          bytes.assign(wire::max_message_bytes(dim, workers) + 4096, 0x5a);
          send(bytes);
          break;
        }
        case 2: {  // multi-frame
          const std::string a = "frame one", b = "frame two";
          dealer.send(zmq::buffer(a), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
          dealer.send(zmq::buffer(b), zmq::send_flags::dontwait);
          break;
        }
        case 3: {  // a forged join for a running worker's id
          wire::Join j;
          j.worker_id = claim;
          j.dim = dim;
          j.shard_rows = 90;
          j.smoothness = {1.0, 1.0, 1.0};
          j.arch = "forged";
          send(enc.encode(j));
          break;
        }
        case 4: {  // a join declaring d = 2^31 for a fresh id
          wire::Join j;
          j.worker_id = workers - 1;
          j.dim = uint64_t{1} << 31;
          j.shard_rows = 1;
          j.smoothness = {1.0, 1.0, 1.0};
          send(enc.encode(j));
          break;
        }
        case 5:  // NaN and Inf
          r.payload.dense[pick(dim)] = pick(2) ? std::nan("") : INFINITY;
          send(enc.encode(r));
          break;
        case 6:  // wrong dimension
          r.payload.dense.resize(dim + 1, 1.0);
          r.payload.dim = static_cast<uint32_t>(dim + 1);
          send(enc.encode(r));
          break;
        case 7:  // huge but finite, claiming another worker's id, current round
          r.round = round;
          send(enc.encode(r));
          break;
        case 8: {  // truncated and bit-flipped real messages
          const auto m = enc.encode(r);
          bytes.assign(m.begin(), m.end());
          if (pick(2))
            bytes.resize(pick(bytes.size()));
          else
            bytes[pick(bytes.size())] ^= static_cast<uint8_t>(1u << pick(8));
          send(bytes);
          break;
        }
        case 9:
          send(enc.encode(wire::ResyncRequest{static_cast<uint32_t>(pick(workers)), 0, round}));
          break;
        case 10:
          send(enc.encode(wire::Bye{static_cast<uint32_t>(pick(workers)), "forged bye"}));
          break;
        default:
          send(enc.encode(wire::Heartbeat{static_cast<uint32_t>(pick(workers)), round}));
          break;
      }
      if (sent % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::cout << "marina-hostile: sent " << sent << " messages, saw round " << round << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "marina-hostile: error: " << e.what() << '\n';
    return 1;
  }
}

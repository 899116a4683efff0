// Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/HARNESS/) from real runs:
//
//   fuzz_decode      every message kind as the drivers encode it, for d = 13 and n = 5: the
//                    broadcasts and replies of short MARINA, DIANA, PP-MARINA runs on the shards
//                    of heart_scale (one reply per payload kind), a real Join and Welcome, a
//                    resync request and response, a heartbeat and a bye
//   fuzz_libsvm      the first 20 lines of heart_scale and small files in each accepted form
//   fuzz_checkpoint  checkpoints written by write_checkpoint after those runs, and the
//                    serialised states inside them (the harness also reads its input as a state)
//   fuzz_allowlist   allowlists of freshly generated CurveZMQ keys
//
// Usage: fuzz_seeds CORPUS_DIR HEART_SCALE
// The committed corpora were made with it; run it again after a schema or protocol change.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint_generated.h"
#include "marina/data/dataset.h"
#include "marina/drivers/checkpoint.h"
#include "marina/methods/method.h"
#include "marina/problem/objective.h"
#include "marina/security/keys.h"
#include "marina/wire/codec.h"

namespace fs = std::filesystem;
using namespace marina;

namespace {

constexpr uint32_t kWorkers = 5;  // heart_scale: 270 rows, 54 a shard, d = 13
constexpr uint64_t kSession = 0x5EED'0000'0000'0042ULL;

void write(const fs::path& file, std::span<const uint8_t> bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error(file.string() + ": cannot write");
}

void write(const fs::path& file, const std::string& text) {
  write(file, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

std::vector<uint8_t> read(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string payload_name(compress::PayloadKind kind) {
  switch (kind) {
    case compress::PayloadKind::kDense64:
      return "dense64";
    case compress::PayloadKind::kDense32:
      return "dense32";
    case compress::PayloadKind::kSparse:
      return "sparse";
    case compress::PayloadKind::kSeeded:
      return "seeded";
    case compress::PayloadKind::kQuantized:
      return "quantized";
  }
  return "unknown";
}

std::string update_name(methods::UpdateKind kind) {
  switch (kind) {
    case methods::UpdateKind::kNone:
      return "none";
    case methods::UpdateKind::kDense:
      return "dense";
    case methods::UpdateKind::kDelta:
      return "delta";
  }
  return "unknown";
}

struct Shards {
  std::vector<problem::Objective> objectives;
};

Shards load_shards(const fs::path& heart) {
  Shards s;
  for (uint32_t i = 0; i < kWorkers; ++i) {
    data::Dataset shard = data::read_libsvm_shard(heart, data::ShardSpec{i, kWorkers, {}});
    s.objectives.emplace_back(std::move(shard), problem::Loss::kNonConvex, 0.0);
  }
  return s;
}

// Runs `rounds` rounds of a method with every worker in process, keeping the first encoded
// broadcast of each update kind and the first reply of each payload kind, and returns the
// server's state for a checkpoint.
struct Run {
  methods::MethodConfig config;
  methods::ServerState state;
  run::LogRow row;
};

Run simulate(const methods::MethodConfig& config, int rounds, Shards& shards,
             std::map<std::string, std::vector<uint8_t>>& messages) {
  wire::Encoder enc(kSession);
  auto server = methods::make_server(config);
  std::vector<std::unique_ptr<methods::WorkerHalf>> workers;
  for (uint32_t i = 0; i < kWorkers; ++i) {
    workers.push_back(methods::make_worker(config, i, shards.objectives[i]));
  }
  Run r;
  r.config = config;
  methods::Reply reply;
  for (int k = 0; k < rounds; ++k) {
    const methods::Broadcast b = server->begin_round();
    const auto bytes = enc.encode(b);
    messages.try_emplace(
        "broadcast-" + update_name(b.update.kind) + (b.participants.empty() ? "" : "-participants"),
        bytes.begin(), bytes.end());
    uint32_t participants = 0;
    for (auto& w : workers) {
      if (!w->on_broadcast(b, reply)) continue;
      const auto up = enc.encode(reply);
      messages.try_emplace("reply-" + payload_name(reply.payload.kind), up.begin(), up.end());
      server->accept(reply);
      ++participants;
    }
    server->end_round();
    r.row.round = server->round();
    r.row.participants = participants;
    r.row.bits_per_worker += 32.0 * config.dim;
    r.row.wire_bytes_down += bytes.size() * kWorkers;
    r.row.oracle_calls += 54.0;
    r.row.wall_s += 0.01;
  }
  r.state = server->save();
  const methods::Snapshot snapshot = server->snapshot(1);
  const auto resync = enc.encode(snapshot);
  messages.try_emplace("resync-response-" + std::string(methods::to_string(config.method)),
                       resync.begin(), resync.end());
  return r;
}

methods::MethodConfig config_of(methods::Method method, const std::string& compressor) {
  methods::MethodConfig c;
  c.method = method;
  c.compressor = compressor;
  c.workers = kWorkers;
  c.dim = 13;
  c.seed = 3;
  c.gamma = 0.5;
  c.p = 0.25;
  c.alpha = 0.2;
  c.clients = 2;
  return c;
}

void write_checkpoints(const fs::path& out, const std::string& name, const Run& run) {
  drivers::Checkpoint c;
  c.config = run.config;
  c.settings = "loss=nonconvex\nl2=0\nbias=0\nrounds=100\n";
  c.server = run.state;
  c.tally.values = run.row.bits_per_worker / 32.0 * kWorkers;
  c.tally.oracle = run.row.oracle_calls * kWorkers;
  c.tally.row = run.row;
  c.tally.row.loss = 0.25;
  c.held = run.row;  // a coordinator without --data holds the row until the losses arrive
  c.initial_grad_norm_sq = 0.125;
  c.log_rows = run.row.round;
  c.log_bytes = 80 * run.row.round;
  c.wall_s = run.row.wall_s;
  c.members = {0, 1, 2, 3, 4};

  const fs::path dir =
      fs::temp_directory_path() / ("marina-fuzz-seeds-" + std::to_string(getpid()));
  const fs::path file = drivers::write_checkpoint(dir, c);
  const std::vector<uint8_t> bytes = read(file);
  fs::remove_all(dir);
  if (drivers::parse_checkpoint(bytes, file.string()) != c) {
    throw std::runtime_error("a written checkpoint does not read back");
  }
  write(out / (name + ".mrck"), bytes);
  const auto* state = checkpoint::fb::GetCheckpointFile(bytes.data())->state();
  write(out / (name + ".state"), std::span<const uint8_t>(state->Data(), state->size()));
}

void libsvm_seeds(const fs::path& out, const fs::path& heart) {
  std::ifstream in(heart);
  std::string line;
  std::string head;
  for (int i = 0; i < 20 && std::getline(in, line); ++i) head += line + "\n";
  if (head.empty()) throw std::runtime_error(heart.string() + ": empty");
  write(out / "heart_scale-20.libsvm", head);
  write(out / "labels01-comments.libsvm",
        "# 0/1 labels, comments, blank lines, a row without features\n"
        "1 1:0.5 3:-2 # trailing comment\n\n0 2:1e-3 4:+7\n1\n0\t1:.5\t4:5.\n");
  write(out / "labels12-crlf-bom.libsvm",
        "\xEF\xBB\xBF"
        "2 1:1 2:2\r\n1 3:3\r\n2 2:-1.5E2\r\n");
  write(out / "declared-dim.libsvm", "-1 2:1 216:0\n+1 1:1 100:-0.25\n-1 7:1e-320\n");
}

void allowlist_seeds(const fs::path& out) {
  std::string all = "# worker id, CurveZMQ public key (Z85)\n";
  for (uint32_t i = 0; i < kWorkers; ++i) {
    all += std::to_string(i) + " " + security::generate_keypair().public_key + "\n";
  }
  write(out / "five-workers.txt", all);
  write(out / "comments-gaps.txt",
        "\n  # spare ids left out\n3\t" + security::generate_keypair().public_key +
            "   # pi-kitchen\r\n0 " + security::generate_keypair().public_key);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: fuzz_seeds CORPUS_DIR HEART_SCALE\n";
    return 2;
  }
  try {
    const fs::path corpus = argv[1];
    const fs::path heart = argv[2];
    Shards shards = load_shards(heart);

    std::map<std::string, std::vector<uint8_t>> messages;
    const Run marina =
        simulate(config_of(methods::Method::kMarina, "randk:2"), 6, shards, messages);
    const Run diana = simulate(config_of(methods::Method::kDiana, "qsgd:4"), 4, shards, messages);
    simulate(config_of(methods::Method::kPpMarina, "natural"), 4, shards, messages);
    simulate(config_of(methods::Method::kMarina, "topk:3"), 3, shards, messages);

    wire::Encoder enc(kSession);
    const auto keep = [&](const std::string& name, std::span<const uint8_t> bytes) {
      messages.try_emplace(name, bytes.begin(), bytes.end());
    };
    keep("join", enc.encode(wire::Join{1, 54, 13, 0, "aarch64", shards.objectives[1].smoothness(),
                                       shards.objectives[1].description(), kWorkers}));
    keep("welcome", enc.encode(wire::Welcome{1, marina.config}));
    methods::MethodConfig vr = marina.config;  // every optional field present
    vr.method = methods::Method::kVrMarina;
    vr.batch = 3;
    vr.online_batch = 9;
    vr.clients = 2;
    vr.init_scale = 0.5;
    vr.batch_sampling = methods::BatchSampling::kWithoutReplacement;
    keep("welcome-vr", enc.encode(wire::Welcome{2, vr}));
    keep("resync-request", enc.encode(wire::ResyncRequest{1, 3, 6}));
    keep("heartbeat", enc.encode(wire::Heartbeat{wire::kCoordinatorId, 6}));
    keep("bye", enc.encode(wire::Bye{2, "worker stopping (SIGTERM)"}));

    wire::Decoder decoder(wire::Limits{wire::max_message_bytes(13, kWorkers), 13, kWorkers});
    for (const auto& [name, bytes] : messages) {
      wire::Inbox in;
      (void)decoder.decode(bytes, in);  // a seed that the Decoder refuses would be no seed
      write(corpus / "fuzz_decode" / (name + ".bin"), bytes);
    }

    write_checkpoints(corpus / "fuzz_checkpoint", "marina-randk", marina);
    write_checkpoints(corpus / "fuzz_checkpoint", "diana-qsgd", diana);
    libsvm_seeds(corpus / "fuzz_libsvm", heart);
    allowlist_seeds(corpus / "fuzz_allowlist");
    std::cout << "fuzz_seeds: " << messages.size() << " messages, 2 checkpoints, 4 LibSVM files, "
              << "2 allowlists in " << corpus.string() << '\n';
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

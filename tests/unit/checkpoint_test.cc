// Tests of checkpoint files: exact round trips, refusal of truncated, altered and inconsistent
// files with the file named, and the choice of the newest checkpoint that verifies.

#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "checkpoint_generated.h"
#include "marina/drivers/checkpoint.h"
#include "marina/drivers/coordinator.h"
#include "marina/transport/inproc_transport.h"
#include "test_support.h"

namespace fs = std::filesystem;
namespace fb = marina::checkpoint::fb;
using marina::drivers::Checkpoint;
using marina::drivers::CheckpointError;
using marina::drivers::frame_checkpoint;
using marina::drivers::read_checkpoint;
using marina::drivers::read_latest_checkpoint;
using marina::drivers::write_checkpoint;
using marina::methods::Method;
using marina::methods::UpdateKind;

namespace {

using marina::test::TempDir;

using Bytes = std::vector<uint8_t>;

Bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const Bytes& b, std::size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(size));
}

void write_bytes(const fs::path& p, const Bytes& b) {
  write_bytes(p, b, b.size());
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

std::string name_of(uint64_t round) {
  std::string digits = std::to_string(round);
  return "checkpoint-" + std::string(20 - digits.size(), '0') + digits + ".mrck";
}

// The message of the CheckpointError that reading `file` throws ("" when it does not throw).
std::string refusal(const fs::path& file) {
  try {
    (void)read_checkpoint(file);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

bool same_bits(std::span<const double> a, std::span<const double> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// A DIANA-like state between rounds 11 and 12: d = 7, n = 3, shifts per worker, a sparse
// pending update, a held row with a loss but no gradient norm.
Checkpoint sample(uint64_t round = 12) {
  constexpr double kTiny = std::numeric_limits<double>::denorm_min();
  constexpr uint32_t n = 3;
  constexpr uint64_t d = 7;
  Checkpoint c;
  c.config.method = Method::kDiana;
  c.config.compressor = "randk:2";
  c.config.workers = n;
  c.config.dim = d;
  c.config.seed = 0xFEEDFACECAFEBEEFULL;
  c.config.gamma = 0.012345678901234567;
  c.config.p = 0.0;  // unused by DIANA; 0 differs from the schema default 1
  c.config.alpha = 1.0 / 3.0;
  c.config.batch = 1;
  c.config.online_batch = 0;
  c.config.clients = 0;
  c.config.init_scale = 0.25;
  c.config.batch_sampling = marina::methods::BatchSampling::kWithoutReplacement;
  c.settings = "loss=nonconvex\nl2=0.001\nbias=1\nrounds=500\n";

  c.server.round = round;
  c.server.x = {0.5, -0.0, kTiny, -kTiny, 1e300, -2.5e-310, 3.0};
  c.server.x_prev = {0.25, 0.0, -0.0, 1.0 / 7.0, -1e-300, 2.0, 4.0};
  c.server.aux = {-0.0, 0.125, 7.0, kTiny, 0.0, -1.0, 2.0 / 3.0};
  for (uint32_t i = 0; i < n; ++i) {
    for (uint64_t j = 0; j < d; ++j) c.server.worker_aux.push_back(0.1 * i - 0.01 * j);
  }
  c.server.worker_aux[4] = -0.0;
  c.server.pending.kind = UpdateKind::kDelta;
  c.server.pending.indices = {1, 4, 6};
  c.server.pending.values = {-0.0, kTiny, -3.75};
  c.server.dropped = {2};

  c.tally.values = 96.0;
  c.tally.oracle = 1234.5;
  c.tally.row.round = round;
  c.tally.row.loss = 0.6931471805599453;
  c.tally.row.grad_norm_sq = -0.0;
  c.tally.row.local_grad_norm_sq = 0.30000000000000004;
  c.tally.row.full_sync = true;
  c.tally.row.participants = 2;
  c.tally.row.bits_per_worker = 1024.0;
  c.tally.row.wire_bytes_up = 4242;
  c.tally.row.wire_bytes_down = 777;
  c.tally.row.oracle_calls = 411.5;
  c.tally.row.wall_s = 0.75;

  marina::run::LogRow held = c.tally.row;
  held.round = round - 1;
  held.loss = 0.7;
  held.grad_norm_sq.reset();
  held.full_sync = false;
  c.held = held;
  c.initial_grad_norm_sq = 2.0000000000000004;
  c.log_rows = round;
  c.log_bytes = 1536;
  c.events_bytes = 321;
  c.wall_s = 0.8125;
  c.members = {2, 0, 1};
  return c;
}

// A checkpoint's state written with the generated builder directly, so tests can store what
// write_checkpoint() never would. Fields not set here are absent.
struct RawState {
  uint32_t workers = 3;
  uint64_t dim = 7;
  uint64_t round = 1;
  std::vector<double> x = std::vector<double>(7, 0.5);
  std::vector<double> x_prev = std::vector<double>(7, 0.25);
  std::vector<double> aux = std::vector<double>(7, 0.0);
  std::vector<double> worker_aux;
  fb::UpdateKind kind = fb::UpdateKind::None;
  std::vector<double> dense;
  std::vector<uint32_t> indices;
  std::vector<double> values;
  std::vector<uint32_t> dropped;
  std::vector<uint32_t> members = {0, 1, 2};
  double gamma = 0.1;
  double init_scale = 0.0;
  fb::BatchSampling sampling = fb::BatchSampling::WithReplacement;

  [[nodiscard]] Bytes encode() const {
    flatbuffers::FlatBufferBuilder fbb;
    const auto config =
        fb::CreateMethodConfigDirect(fbb, fb::Method::Marina, "identity", workers, dim, 1, gamma,
                                     1.0, 0.0, 1, 0, 0, init_scale, sampling);
    const auto server = fb::CreateServerStateDirect(fbb, round, &x, &x_prev, &aux, &worker_aux,
                                                    kind, &dense, &indices, &values, &dropped);
    const auto tally = fb::CreateTallyState(fbb, 0.0, 0.0, fb::CreateLogRow(fbb, round));
    fbb.Finish(fb::CreateStateDirect(fbb, config, nullptr, server, tally, 0, flatbuffers::nullopt,
                                     0, 0, 0, 0.0, &members));
    return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
  }
};

}  // namespace

TEST_CASE("checkpoint: crc32 is the IEEE / zlib CRC-32") {
  const std::string check = "123456789";
  CHECK(marina::drivers::crc32({reinterpret_cast<const uint8_t*>(check.data()), check.size()}) ==
        0xCBF43926u);
  CHECK(marina::drivers::crc32({}) == 0u);
}

TEST_CASE("checkpoint: round trip is exact, bits of every double included") {
  TempDir tmp("roundtrip");
  const Checkpoint written = sample();
  const fs::path file = write_checkpoint(tmp.path() / "sub" / "dir", written);
  CHECK(file == tmp.path() / "sub" / "dir" / name_of(12));
  CHECK(names_in(file.parent_path()) == std::set<std::string>{name_of(12)});

  const Checkpoint read = read_checkpoint(file);
  CHECK(read == written);
  CHECK(same_bits(read.server.x, written.server.x));
  CHECK(same_bits(read.server.x_prev, written.server.x_prev));
  CHECK(same_bits(read.server.aux, written.server.aux));
  CHECK(same_bits(read.server.worker_aux, written.server.worker_aux));
  CHECK(same_bits(read.server.pending.values, written.server.pending.values));
  REQUIRE(read.tally.row.grad_norm_sq.has_value());
  CHECK(same_bits(*read.tally.row.grad_norm_sq, -0.0));
  REQUIRE(read.tally.row.local_grad_norm_sq.has_value());
  CHECK(same_bits(*read.tally.row.local_grad_norm_sq, 0.30000000000000004));
  REQUIRE(read.held.has_value());
  CHECK(read.held->loss == 0.7);
  CHECK_FALSE(read.held->grad_norm_sq.has_value());
  CHECK(read.config.p == 0.0);
  CHECK(read.config.init_scale == 0.25);
  CHECK(read.config.batch_sampling == marina::methods::BatchSampling::kWithoutReplacement);

  SUBCASE("absent optionals stay absent") {
    Checkpoint c = sample();
    c.held.reset();
    c.initial_grad_norm_sq.reset();
    c.tally.row.loss.reset();
    c.tally.row.local_grad_norm_sq.reset();
    c.server.x_prev.clear();
    c.server.round = 0;
    c.server.worker_aux.clear();
    c.server.pending = {};
    c.server.dropped.clear();
    c.members.clear();
    c.settings.clear();
    const Checkpoint back = read_checkpoint(write_checkpoint(tmp.path(), c));
    CHECK(back == c);
    CHECK_FALSE(back.held.has_value());
    CHECK_FALSE(back.initial_grad_norm_sq.has_value());
    CHECK_FALSE(back.tally.row.loss.has_value());
    CHECK_FALSE(back.tally.row.local_grad_norm_sq.has_value());
  }
  SUBCASE("a dense pending update") {
    Checkpoint c = sample();
    c.server.pending.kind = UpdateKind::kDense;
    c.server.pending.indices.clear();
    c.server.pending.values.clear();
    c.server.pending.dense = {1, 2, 3, 4, 5, 6, -0.0};
    CHECK(read_checkpoint(write_checkpoint(tmp.path(), c)) == c);
  }
}

TEST_CASE("checkpoint: every truncation and every single-byte change is refused, naming the file") {
  TempDir tmp("damage");
  Checkpoint c = sample();
  const Bytes good = read_bytes(write_checkpoint(tmp.path(), c));
  REQUIRE(good.size() > 100);
  const fs::path file = tmp.path() / "checkpoint-damaged.mrck";

  for (std::size_t size = 0; size < good.size(); ++size) {
    write_bytes(file, good, size);
    const std::string why = refusal(file);
    INFO("prefix of ", size, " bytes: ", why);
    CHECK(why.find(file.string() + ": ") == 0);
  }
  for (std::size_t offset = 0; offset < good.size(); ++offset) {
    for (const uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}}) {
      Bytes bad = good;
      bad[offset] ^= flip;
      write_bytes(file, bad);
      const std::string why = refusal(file);
      INFO("byte ", offset, " ^ ", int{flip}, ": ", why);
      CHECK(why.find(file.string() + ": ") == 0);
    }
  }
  Bytes longer = good;
  longer.push_back(0);
  write_bytes(file, longer);
  CHECK(refusal(file).find("extra bytes") != std::string::npos);

  CHECK(refusal(tmp.path() / "missing.mrck").find("cannot open") != std::string::npos);
}

TEST_CASE("checkpoint: a file of another format version is refused as such") {
  TempDir tmp("version");
  const Bytes state = RawState{}.encode();
  flatbuffers::FlatBufferBuilder fbb;
  fbb.ForceVectorAlignment(state.size(), 1, 8);
  const auto bytes = fbb.CreateVector(state);
  fb::FinishCheckpointFileBuffer(
      fbb, fb::CreateCheckpointFile(fbb, marina::drivers::kCheckpointFormatVersion + 1,
                                    marina::drivers::crc32(state), bytes));
  const fs::path file = tmp.path() / name_of(1);
  write_bytes(file, Bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()));
  CHECK(refusal(file) == file.string() + ": format version 2, this build reads version 1");

  // The same state in the current framing is accepted: only the version was wrong.
  write_bytes(file, frame_checkpoint(state));
  CHECK(refusal(file) == "");
}

TEST_CASE("checkpoint: inconsistent contents with a valid CRC are refused with the reason") {
  TempDir tmp("consistency");
  const fs::path file = tmp.path() / name_of(1);
  const auto reason = [&](const std::function<void(RawState&)>& change) {
    RawState s;
    change(s);
    write_bytes(file, frame_checkpoint(s.encode()));
    const std::string why = refusal(file);
    if (why.empty()) return why;
    REQUIRE(why.find(file.string() + ": ") == 0);
    return why.substr(file.string().size() + 2);
  };

  CHECK(reason([](RawState&) {}) == "");  // the baseline is consistent
  CHECK(reason([](RawState& s) { s.x.pop_back(); }) == "x of 6 values for d = 7");
  CHECK(reason([](RawState& s) { s.x_prev.clear(); }) == "x_prev of 0 values for d = 7 at round 1");
  CHECK(reason([](RawState& s) {
          s.x_prev.clear();
          s.round = 0;
        }) == "");
  CHECK(reason([](RawState& s) { s.aux.push_back(1.0); }) == "aux of 8 values for d = 7");
  CHECK(reason([](RawState& s) { s.worker_aux.assign(14, 0.0); }) ==
        "worker_aux of 14 values for n = 3, d = 7 (expected none or n·d)");
  CHECK(reason([](RawState& s) { s.x[3] = std::nan(""); }).find("x[3] is") == 0);
  CHECK(reason([](RawState& s) {
          s.kind = fb::UpdateKind::Delta;
          s.indices = {1, 5, 5};
          s.values = {1, 2, 3};
        }) == "pending update: indices not strictly increasing");
  CHECK(reason([](RawState& s) {
          s.kind = fb::UpdateKind::Delta;
          s.indices = {1, 7};
          s.values = {1, 2};
        }) == "pending update: index 7 out of range for d = 7");
  CHECK(reason([](RawState& s) {
          s.kind = fb::UpdateKind::Delta;
          s.indices = {1, 2};
          s.values = {1};
        }) == "pending update: indices and values differ in length");
  CHECK(reason([](RawState& s) {
          s.kind = fb::UpdateKind::Dense;
          s.dense = {1, 2, 3};
        }) == "pending update: 3 values for d = 7");
  CHECK(reason([](RawState& s) { s.kind = static_cast<fb::UpdateKind>(9); }) ==
        "unknown pending update kind 9");
  CHECK(reason([](RawState& s) { s.dropped = {0, 3}; }) == "dropped[1] = 3 >= n = 3");
  CHECK(reason([](RawState& s) { s.members = {0, 5}; }) == "members[1] = 5 >= n = 3");
  CHECK(reason([](RawState& s) { s.members = {1, 0, 1}; }) == "member 1 listed twice");
  CHECK(reason([](RawState& s) { s.workers = 0; }) == "n = 0 workers");
  CHECK(reason([](RawState& s) { s.gamma = -1.0; }) == "gamma = -1");
  CHECK(reason([](RawState& s) { s.sampling = static_cast<fb::BatchSampling>(7); }) ==
        "unknown batch sampling 7");
  CHECK(reason([](RawState& s) { s.init_scale = -1.0; }) ==
        "init_scale -1 is not a finite number >= 0");

  // A state that is not a FlatBuffer at all still has a valid CRC and framing.
  write_bytes(file, frame_checkpoint(Bytes(64, 0xAB)));
  CHECK(refusal(file) == file.string() + ": malformed state: FlatBuffers verification failed");
}

TEST_CASE("checkpoint: the two newest are kept; the newest that verifies is loaded") {
  TempDir tmp("latest");
  const fs::path dir = tmp.path() / "ckpt";

  CHECK_FALSE(read_latest_checkpoint(dir).has_value());  // no directory yet
  fs::create_directories(dir);
  CHECK_FALSE(read_latest_checkpoint(dir).has_value());  // empty

  for (uint64_t round : {5, 9, 12}) (void)write_checkpoint(dir, sample(round));
  CHECK(names_in(dir) == std::set<std::string>{name_of(9), name_of(12)});

  // Neither temporary files nor foreign names count as checkpoints.
  write_bytes(dir / ".checkpoint-a1b2c3", Bytes(10, 0));
  write_bytes(dir / "checkpoint-latest.mrck", Bytes(10, 0));

  auto loaded = read_latest_checkpoint(dir);
  REQUIRE(loaded.has_value());
  CHECK(loaded->file == dir / name_of(12));
  CHECK(loaded->checkpoint == sample(12));
  CHECK(loaded->refused.empty());

  Bytes bytes = read_bytes(dir / name_of(12));
  bytes[bytes.size() / 2] ^= 0x10;
  write_bytes(dir / name_of(12), bytes);
  loaded = read_latest_checkpoint(dir);
  REQUIRE(loaded.has_value());
  CHECK(loaded->file == dir / name_of(9));
  CHECK(loaded->checkpoint == sample(9));
  REQUIRE(loaded->refused.size() == 1);
  CHECK(loaded->refused[0].find((dir / name_of(12)).string() + ": ") == 0);

  SUBCASE("a resumed run replaces the checkpoints after its own") {
    (void)write_checkpoint(dir, sample(10));
    CHECK(names_in(dir) == std::set<std::string>{name_of(9), name_of(10), ".checkpoint-a1b2c3",
                                                 "checkpoint-latest.mrck"});
    CHECK(read_latest_checkpoint(dir)->file == dir / name_of(10));
  }
  SUBCASE("none verifies") {
    write_bytes(dir / name_of(9), Bytes(7, 0));
    try {
      (void)read_latest_checkpoint(dir);
      FAIL("expected a CheckpointError");
    } catch (const CheckpointError& e) {
      const std::string what = e.what();
      CHECK(what.find(dir.string() + ": no checkpoint verifies") == 0);
      CHECK(what.find(name_of(12)) != std::string::npos);
      CHECK(what.find(name_of(9)) != std::string::npos);
    }
  }
}

TEST_CASE("checkpoint: an unwritable directory is reported with its path") {
  TempDir tmp("unwritable");
  const fs::path blocker = tmp.path() / "file";
  write_bytes(blocker, Bytes(1, 0));
  try {
    (void)write_checkpoint(blocker / "dir", sample());
    FAIL("expected a CheckpointError");
  } catch (const CheckpointError& e) {
    CHECK(std::string(e.what()).find((blocker / "dir").string()) == 0);
  }
}

TEST_CASE("checkpoint: a resume with other flags names each difference, a missing one too") {
  marina::drivers::CoordinatorSettings then;
  then.base.compressor = "randk:1";
  then.choices.smoothness = marina::methods::SmoothnessBound::kRowMax;
  Checkpoint c = sample();
  c.settings = marina::drivers::resume_settings(then);
  marina::drivers::CoordinatorSettings now = then;
  now.resume = &c;
  now.choices.smoothness = marina::methods::SmoothnessBound::kSpectral;
  now.choices.gamma = 0.5;
  marina::transport::InProcNetwork net(1);
  try {
    (void)marina::drivers::run_coordinator(net.hub(), now);
    FAIL("expected the resume to be refused");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) ==
          "--resume: the flags differ from the checkpointed run's: gamma=0.5 (checkpoint: "
          "gamma=auto), smoothness=(default) (checkpoint: smoothness=row-max)");
  }
  // The default is not written, so checkpoints of runs without the flag resume as before.
  now.choices = then.choices;
  now.choices.smoothness = marina::methods::SmoothnessBound::kSpectral;
  CHECK(marina::drivers::resume_settings(now).find("smoothness") == std::string::npos);
}

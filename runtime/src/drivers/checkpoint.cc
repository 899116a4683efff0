// Checkpoint files: encoding (schemas/checkpoint.fbs), atomic writing, verification on reading.

#include "marina/drivers/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <utility>

#include <flatbuffers/flatbuffer_builder.h>
#include <flatbuffers/verifier.h>

#include "checkpoint_generated.h"
#include "marina/methods/method.h"
#include "marina/methods/mirror.h"

namespace marina::drivers {

namespace fb = marina::checkpoint::fb;
namespace fs = std::filesystem;

// Vectors are copied with memcpy, a decode only on little-endian hosts (as in the wire codec).
static_assert(FLATBUFFERS_LITTLEENDIAN, "checkpoints assume a little-endian host");

static_assert(static_cast<uint8_t>(fb::Method::Gd) == static_cast<uint8_t>(methods::Method::kGd));
static_assert(static_cast<uint8_t>(fb::Method::VrDiana) ==
              static_cast<uint8_t>(methods::Method::kVrDiana));
static_assert(static_cast<uint8_t>(fb::Method::MAX) ==
              static_cast<uint8_t>(methods::Method::kVrDiana));
static_assert(static_cast<uint8_t>(fb::BatchSampling::MAX) ==
              static_cast<uint8_t>(methods::BatchSampling::kWithoutReplacement));
static_assert(static_cast<uint8_t>(fb::UpdateKind::Delta) ==
              static_cast<uint8_t>(methods::UpdateKind::kDelta));
static_assert(static_cast<uint8_t>(fb::UpdateKind::MAX) ==
              static_cast<uint8_t>(methods::UpdateKind::kDelta));

namespace {

constexpr std::string_view kPrefix = "checkpoint-";
constexpr std::string_view kSuffix = ".mrck";
constexpr std::string_view kTempPrefix = ".checkpoint-";

// A FlatBuffer cannot exceed this, so a larger file is not worth reading into memory.
constexpr uint64_t kMaxFileBytes = FLATBUFFERS_MAX_BUFFER_SIZE - 1;

// ---- CRC-32 -----------------------------------------------------------------------------------

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

// ---- encoding ---------------------------------------------------------------------------------

template <typename T, typename A>
flatbuffers::Offset<flatbuffers::Vector<T>> vec(flatbuffers::FlatBufferBuilder& fbb,
                                                const std::vector<T, A>& v) {
  return fbb.CreateVector(v.data(), v.size());
}

flatbuffers::Offset<fb::LogRow> encode_row(flatbuffers::FlatBufferBuilder& fbb,
                                           const run::LogRow& r) {
  return fb::CreateLogRow(
      fbb, r.round, r.loss ? flatbuffers::Optional<double>(*r.loss) : flatbuffers::nullopt,
      r.grad_norm_sq ? flatbuffers::Optional<double>(*r.grad_norm_sq) : flatbuffers::nullopt,
      r.full_sync, r.participants, r.bits_per_worker, r.wire_bytes_up, r.wire_bytes_down,
      r.oracle_calls, r.wall_s,
      r.local_grad_norm_sq ? flatbuffers::Optional<double>(*r.local_grad_norm_sq)
                           : flatbuffers::nullopt);
}

std::vector<uint8_t> encode_state(const Checkpoint& c) {
  flatbuffers::FlatBufferBuilder fbb(4096);
  // Every scalar is written, even when it equals its default: the builder compares with ==, which
  // would drop -0.0 where the default is 0.0.
  fbb.ForceDefaults(true);

  const methods::MethodConfig& k = c.config;
  const auto config = fb::CreateMethodConfig(
      fbb, static_cast<fb::Method>(k.method), fbb.CreateString(k.compressor), k.workers, k.dim,
      k.seed, k.gamma, k.p, k.alpha, k.batch, k.online_batch, k.clients, k.init_scale,
      static_cast<fb::BatchSampling>(k.batch_sampling));

  const methods::ServerState& s = c.server;
  const auto server = fb::CreateServerState(
      fbb, s.round, vec(fbb, s.x), vec(fbb, s.x_prev), vec(fbb, s.aux), vec(fbb, s.worker_aux),
      static_cast<fb::UpdateKind>(s.pending.kind), vec(fbb, s.pending.dense),
      vec(fbb, s.pending.indices), vec(fbb, s.pending.values), vec(fbb, s.dropped));

  const auto tally =
      fb::CreateTallyState(fbb, c.tally.values, c.tally.oracle, encode_row(fbb, c.tally.row));
  const auto held = c.held ? encode_row(fbb, *c.held) : flatbuffers::Offset<fb::LogRow>();
  const auto settings = fbb.CreateString(c.settings);
  const auto members = vec(fbb, c.members);

  const auto state = fb::CreateState(fbb, config, settings, server, tally, held,
                                     c.initial_grad_norm_sq
                                         ? flatbuffers::Optional<double>(*c.initial_grad_norm_sq)
                                         : flatbuffers::nullopt,
                                     c.log_rows, c.log_bytes, c.events_bytes, c.wall_s, members);
  fbb.Finish(state);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

// ---- decoding ---------------------------------------------------------------------------------

[[noreturn]] void refuse(const fs::path& file, const std::string& reason) {
  throw CheckpointError(file.string() + ": " + reason);
}

template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  out.precision(17);
  (out << ... << args);
  return out.str();
}

template <typename Out = void, typename T>
auto copy(const flatbuffers::Vector<T>* v) {
  using V = std::conditional_t<std::is_void_v<Out>, std::vector<T>, Out>;
  if (v == nullptr) return V{};
  V out(v->size());
  if (!out.empty()) std::memcpy(out.data(), v->Data(), out.size() * sizeof(T));
  return out;
}

std::string copy(const flatbuffers::String* s) {
  return s == nullptr ? std::string() : std::string(s->data(), s->size());
}

run::LogRow decode_row(const fb::LogRow& r) {
  run::LogRow out;
  out.round = r.round();
  if (const auto loss = r.loss(); loss.has_value()) out.loss = *loss;
  if (const auto g = r.grad_norm_sq(); g.has_value()) out.grad_norm_sq = *g;
  out.full_sync = r.full_sync();
  out.participants = r.participants();
  out.bits_per_worker = r.bits_per_worker();
  out.wire_bytes_up = r.wire_bytes_up();
  out.wire_bytes_down = r.wire_bytes_down();
  out.oracle_calls = r.oracle_calls();
  out.wall_s = r.wall_s();
  if (const auto g = r.local_grad_norm_sq(); g.has_value()) out.local_grad_norm_sq = *g;
  return out;
}

// Enum ranges are checked here because the cast to the C++ enums would hide them.
Checkpoint decode_state(const fs::path& file, const fb::State& st) {
  if (st.config() == nullptr) refuse(file, "no method configuration");
  if (st.server() == nullptr) refuse(file, "no server state");
  if (st.tally() == nullptr) refuse(file, "no tally");
  if (st.tally()->row() == nullptr) refuse(file, "tally without its row");

  Checkpoint c;
  const fb::MethodConfig& k = *st.config();
  if (k.method() > fb::Method::MAX) {
    refuse(file, str("unknown method ", static_cast<unsigned>(k.method())));
  }
  c.config.method = static_cast<methods::Method>(k.method());
  c.config.compressor = copy(k.compressor());
  c.config.workers = k.workers();
  c.config.dim = k.dim();
  c.config.seed = k.seed();
  c.config.gamma = k.gamma();
  c.config.p = k.p();
  c.config.alpha = k.alpha();
  c.config.batch = k.batch();
  c.config.online_batch = k.online_batch();
  c.config.clients = k.clients();
  if (k.batch_sampling() > fb::BatchSampling::MAX) {
    refuse(file, str("unknown batch sampling ", static_cast<unsigned>(k.batch_sampling())));
  }
  c.config.batch_sampling = static_cast<methods::BatchSampling>(k.batch_sampling());
  if (!std::isfinite(k.init_scale()) || k.init_scale() < 0.0) {
    refuse(file, str("init_scale ", k.init_scale(), " is not a finite number >= 0"));
  }
  c.config.init_scale = k.init_scale();

  c.settings = copy(st.settings());

  const fb::ServerState& s = *st.server();
  if (s.pending_kind() > fb::UpdateKind::MAX) {
    refuse(file, str("unknown pending update kind ", static_cast<unsigned>(s.pending_kind())));
  }
  c.server.round = s.round();
  c.server.x = copy(s.x());
  c.server.x_prev = copy(s.x_prev());
  c.server.aux = copy(s.aux());
  c.server.worker_aux = copy(s.worker_aux());
  c.server.pending.kind = static_cast<methods::UpdateKind>(s.pending_kind());
  c.server.pending.dense = copy(s.pending_dense());
  c.server.pending.indices = copy<util::Buffer<uint32_t>>(s.pending_indices());
  c.server.pending.values = copy<util::Buffer<double>>(s.pending_values());
  c.server.dropped = copy(s.dropped());

  c.tally.values = st.tally()->values();
  c.tally.oracle = st.tally()->oracle();
  c.tally.row = decode_row(*st.tally()->row());
  if (st.held() != nullptr) c.held = decode_row(*st.held());
  if (const auto g = st.initial_grad_norm_sq(); g.has_value()) c.initial_grad_norm_sq = *g;
  c.log_rows = st.log_rows();
  c.log_bytes = st.log_bytes();
  c.events_bytes = st.events_bytes();
  c.wall_s = st.wall_s();
  c.members = copy(st.members());
  return c;
}

// ---- consistency ------------------------------------------------------------------------------

void check_finite(const fs::path& file, const char* what, const std::vector<double>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) refuse(file, str(what, "[", i, "] is ", v[i]));
  }
}

// Counters and totals: finite and never negative.
void check_count(const fs::path& file, const char* what, double v) {
  if (!std::isfinite(v) || v < 0.0) refuse(file, str(what, " = ", v, " (must be finite, >= 0)"));
}

// A row's loss and ‖∇f‖² are only reported, never computed with, and a diverging run can log
// inf; so they are not checked.
void check_row(const fs::path& file, const char* what, const run::LogRow& r, uint32_t n) {
  if (r.participants > n) {
    refuse(file, str(what, ": ", r.participants, " participants for n = ", n, " workers"));
  }
  const std::string prefix = std::string(what) + ": ";
  check_count(file, (prefix + "bits_per_worker").c_str(), r.bits_per_worker);
  check_count(file, (prefix + "oracle_calls").c_str(), r.oracle_calls);
  check_count(file, (prefix + "wall_s").c_str(), r.wall_s);
}

void check_ids(const fs::path& file, const char* what, const std::vector<uint32_t>& ids,
               uint32_t n) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= n) refuse(file, str(what, "[", i, "] = ", ids[i], " >= n = ", n));
  }
}

void check_consistency(const fs::path& file, const Checkpoint& c) {
  const methods::MethodConfig& k = c.config;
  const uint32_t n = k.workers;
  const uint64_t d = k.dim;
  if (n == 0) refuse(file, "n = 0 workers");
  // Indices of updates and payloads are uint32.
  if (d == 0 || d > std::numeric_limits<uint32_t>::max()) refuse(file, str("d = ", d));
  if (k.compressor.empty()) refuse(file, "no compressor");
  if (!std::isfinite(k.gamma) || k.gamma < 0.0) refuse(file, str("gamma = ", k.gamma));
  if (!std::isfinite(k.alpha) || k.alpha < 0.0) refuse(file, str("alpha = ", k.alpha));
  if (!(k.p >= 0.0 && k.p <= 1.0)) refuse(file, str("p = ", k.p, " outside [0, 1]"));

  const methods::ServerState& s = c.server;
  if (s.x.size() != d) refuse(file, str("x of ", s.x.size(), " values for d = ", d));
  // x^{k-1} does not exist before the first round.
  if (s.x_prev.size() != d && !(s.round == 0 && s.x_prev.empty())) {
    refuse(file, str("x_prev of ", s.x_prev.size(), " values for d = ", d, " at round ", s.round));
  }
  if (s.aux.size() != d) refuse(file, str("aux of ", s.aux.size(), " values for d = ", d));
  if (!s.worker_aux.empty() && (s.worker_aux.size() % d != 0 || s.worker_aux.size() / d != n)) {
    refuse(file, str("worker_aux of ", s.worker_aux.size(), " values for n = ", n, ", d = ", d,
                     " (expected none or n·d)"));
  }
  check_finite(file, "x", s.x);
  check_finite(file, "x_prev", s.x_prev);
  check_finite(file, "aux", s.aux);
  check_finite(file, "worker_aux", s.worker_aux);
  // The same check every worker applies to a received broadcast, so a restored server never
  // sends an update its workers refuse.
  try {
    methods::validate(s.pending, static_cast<Eigen::Index>(d));
  } catch (const methods::ProtocolError& e) {
    refuse(file, std::string("pending ") + e.what());
  }
  check_ids(file, "dropped", s.dropped, n);

  check_count(file, "tally values", c.tally.values);
  check_count(file, "tally oracle", c.tally.oracle);
  check_row(file, "tally row", c.tally.row, n);
  if (c.held) check_row(file, "held row", *c.held, n);
  if (c.initial_grad_norm_sq) check_count(file, "initial_grad_norm_sq", *c.initial_grad_norm_sq);
  check_count(file, "wall_s", c.wall_s);

  check_ids(file, "members", c.members, n);
  std::vector<uint32_t> sorted = c.members;
  std::sort(sorted.begin(), sorted.end());
  if (const auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end()) {
    refuse(file, str("member ", *dup, " listed twice"));
  }
}

// ---- files ------------------------------------------------------------------------------------

std::string errno_text(int err) {
  return std::strerror(err);
}

// The round in "checkpoint-<digits>.mrck"; nullopt for any other name.
std::optional<uint64_t> round_of(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.size() <= kPrefix.size() + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  const char* first = name.data() + kPrefix.size();
  const char* last = name.data() + name.size() - kSuffix.size();
  if (!std::all_of(first, last, [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return std::nullopt;
  }
  uint64_t round = 0;
  const auto [end, ec] = std::from_chars(first, last, round);
  if (ec != std::errc() || end != last) return std::nullopt;
  return round;
}

fs::path checkpoint_name(uint64_t round) {
  char digits[21];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(round));
  return std::string(kPrefix) + digits + std::string(kSuffix);
}

struct Listed {
  uint64_t round;
  fs::path path;
};

// Checkpoint files in DIR, newest first (temporary files and other names are not listed).
std::vector<Listed> list_checkpoints(const fs::path& dir) {
  std::vector<Listed> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return out;
    throw CheckpointError(dir.string() + ": cannot list checkpoints: " + ec.message());
  }
  for (const fs::directory_iterator end; it != end; it.increment(ec)) {
    if (const auto round = round_of(it->path()); round) out.push_back({*round, it->path()});
  }
  if (ec) throw CheckpointError(dir.string() + ": cannot list checkpoints: " + ec.message());
  std::sort(out.begin(), out.end(), [](const Listed& a, const Listed& b) {
    return a.round != b.round ? a.round > b.round : a.path > b.path;
  });
  return out;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  // close() reports write-back errors of some file systems, so its result matters.
  int close() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

void write_all(int fd, const uint8_t* data, std::size_t size, const fs::path& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CheckpointError(path.string() + ": cannot write: " + errno_text(errno));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Without this, the rename itself may not survive a power loss.
void sync_directory(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) {
    throw CheckpointError(dir.string() + ": cannot sync directory: " + errno_text(errno));
  }
}

// Storage whose start is 8-byte aligned, so the doubles of a verified buffer load in place.
struct Aligned {
  std::vector<uint64_t> words;
  std::size_t size = 0;
  [[nodiscard]] const uint8_t* data() const {
    return reinterpret_cast<const uint8_t*>(words.data());
  }
  [[nodiscard]] uint8_t* data() { return reinterpret_cast<uint8_t*>(words.data()); }
  void resize(std::size_t bytes) {
    words.resize((bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t));
    size = bytes;
  }
};

Aligned read_file(const fs::path& file) {
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) refuse(file, "cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) refuse(file, "cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) refuse(file, "not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes) {
    refuse(file, str(st.st_size, " bytes, more than any checkpoint (at most ", kMaxFileBytes, ")"));
  }
  Aligned out;
  out.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < out.size) {
    const ssize_t n = ::read(fd.get(), out.data() + got, out.size - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      refuse(file, "cannot read: " + errno_text(errno));
    }
    if (n == 0)
      refuse(file, str("file shrank while being read (", got, " of ", out.size, " bytes)"));
    got += static_cast<std::size_t>(n);
  }
  return out;
}

}  // namespace

uint32_t crc32(std::span<const uint8_t> bytes) {
  uint32_t c = 0xFFFFFFFFu;
  for (const uint8_t b : bytes) c = kCrcTable[(c ^ b) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::vector<uint8_t> frame_checkpoint(std::span<const uint8_t> state) {
  flatbuffers::FlatBufferBuilder fbb(state.size() + 64);
  fbb.ForceDefaults(true);
  // The state is a FlatBuffer with doubles: aligned to 8 within the file, it is read in place.
  fbb.ForceVectorAlignment(state.size(), sizeof(uint8_t), alignof(double));
  const auto bytes = fbb.CreateVector(state.data(), state.size());
  fb::FinishCheckpointFileBuffer(
      fbb, fb::CreateCheckpointFile(fbb, kCheckpointFormatVersion, crc32(state), bytes));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

fs::path write_checkpoint(const fs::path& dir, const Checkpoint& c) {
  const std::vector<uint8_t> bytes = frame_checkpoint(encode_state(c));

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw CheckpointError(dir.string() + ": cannot create directory: " + ec.message());

  const fs::path final_path = dir / checkpoint_name(c.server.round);
  std::string temp = (dir / (std::string(kTempPrefix) + "XXXXXX")).string();
  Fd fd(::mkstemp(temp.data()));
  if (fd.get() < 0) {
    throw CheckpointError(temp + ": cannot create temporary file: " + errno_text(errno));
  }
  try {
    write_all(fd.get(), bytes.data(), bytes.size(), temp);
    if (::fsync(fd.get()) != 0) {
      throw CheckpointError(temp + ": cannot sync: " + errno_text(errno));
    }
    if (fd.close() != 0) throw CheckpointError(temp + ": cannot close: " + errno_text(errno));
    if (::rename(temp.c_str(), final_path.c_str()) != 0) {
      throw CheckpointError(final_path.string() + ": cannot rename " + temp +
                            " to it: " + errno_text(errno));
    }
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  sync_directory(dir);

  // Keep the file just written and the newest older one (see checkpoint.h).
  bool kept_older = false;
  for (const Listed& l : list_checkpoints(dir)) {
    if (l.path.filename() == final_path.filename()) continue;
    if (l.round < c.server.round && !kept_older) {
      kept_older = true;
      continue;
    }
    if (!fs::remove(l.path, ec) && ec) {
      throw CheckpointError(l.path.string() + ": cannot remove old checkpoint: " + ec.message() +
                            " (" + final_path.string() + " was written)");
    }
  }
  return final_path;
}

Checkpoint parse_checkpoint(std::span<const uint8_t> bytes, const std::string& origin) {
  const fs::path file(origin);
  const std::size_t size = bytes.size();
  if (size > kMaxFileBytes) {
    refuse(file, str(size, " bytes, more than any checkpoint (at most ", kMaxFileBytes, ")"));
  }
  // The Verifiers check alignment against the buffer's address, so bytes that did not come from
  // read_file() are copied to aligned storage first.
  Aligned copied;
  const uint8_t* data = bytes.data();
  if (reinterpret_cast<std::uintptr_t>(data) % alignof(double) != 0) {
    copied.resize(size);
    std::memcpy(copied.data(), bytes.data(), size);
    data = copied.data();
  }

  const std::size_t min_size = frame_checkpoint({}).size();
  if (size < min_size) {
    refuse(file, str(size, " bytes, too short for a checkpoint (at least ", min_size, ")"));
  }
  if (!fb::CheckpointFileBufferHasIdentifier(data)) {
    refuse(file, str("not a checkpoint (file identifier is not \"", fb::CheckpointFileIdentifier(),
                     "\")"));
  }
  flatbuffers::Verifier::Options outer_options;
  outer_options.max_depth = 2;
  outer_options.max_tables = 1;
  outer_options.check_nested_flatbuffers = false;
  flatbuffers::Verifier outer_verifier(data, size, outer_options);
  if (!fb::VerifyCheckpointFileBuffer(outer_verifier)) {
    refuse(file, "malformed checkpoint: FlatBuffers verification failed");
  }
  const fb::CheckpointFile& outer = *fb::GetCheckpointFile(data);
  if (outer.format_version() != kCheckpointFormatVersion) {
    refuse(file, str("format version ", outer.format_version(), ", this build reads version ",
                     kCheckpointFormatVersion));
  }
  if (outer.state() == nullptr || outer.state()->size() == 0) refuse(file, "no state");
  const std::span<const uint8_t> state(outer.state()->Data(), outer.state()->size());
  if (const uint32_t computed = crc32(state); computed != outer.crc32()) {
    refuse(file, str("CRC mismatch: stored 0x", std::hex, outer.crc32(), ", computed 0x", computed,
                     " (the file is damaged)"));
  }
  // The CRC covers the state only; the framing must be exactly what the writer produces.
  if (const std::vector<uint8_t> expected = frame_checkpoint(state);
      expected.size() != size || std::memcmp(expected.data(), data, size) != 0) {
    refuse(file, "damaged framing around the state, or extra bytes at the end");
  }

  // The framing check implies this alignment; the copy is for the impossible case only.
  Aligned aligned;
  const uint8_t* state_data = state.data();
  if (reinterpret_cast<std::uintptr_t>(state_data) % alignof(double) != 0) {
    aligned.resize(state.size());
    std::memcpy(aligned.data(), state.data(), state.size());
    state_data = aligned.data();
  }
  flatbuffers::Verifier::Options inner_options;
  inner_options.max_depth = 4;
  inner_options.max_tables = 8;
  inner_options.check_nested_flatbuffers = false;
  flatbuffers::Verifier inner_verifier(state_data, state.size(), inner_options);
  if (!inner_verifier.VerifyBuffer<fb::State>(nullptr)) {
    refuse(file, "malformed state: FlatBuffers verification failed");
  }
  Checkpoint c = decode_state(file, *flatbuffers::GetRoot<fb::State>(state_data));
  check_consistency(file, c);
  return c;
}

Checkpoint read_checkpoint(const fs::path& file) {
  const Aligned buf = read_file(file);
  return parse_checkpoint(std::span<const uint8_t>(buf.data(), buf.size), file.string());
}

std::optional<LoadedCheckpoint> read_latest_checkpoint(const fs::path& dir) {
  const std::vector<Listed> files = list_checkpoints(dir);
  if (files.empty()) return std::nullopt;
  LoadedCheckpoint loaded;
  for (const Listed& l : files) {
    try {
      loaded.checkpoint = read_checkpoint(l.path);
      loaded.file = l.path;
      return loaded;
    } catch (const CheckpointError& e) {
      loaded.refused.emplace_back(e.what());
    }
  }
  std::string message = dir.string() + ": no checkpoint verifies:";
  for (const std::string& r : loaded.refused) message += "\n  " + r;
  throw CheckpointError(message);
}

}  // namespace marina::drivers

#pragma once
// Bytes on the wire <-> the message structs of methods/messages.h (schema: schemas/marina.fbs).
//
// The Decoder is the trust boundary of the networked drivers: whatever it returns has passed
// the size bound, the FlatBuffers Verifier, the protocol identity checks and the semantic bounds
// below, so the method halves never see a malformed message. The Encoder does not validate:
// sending something odd is a local bug, and the peer's Decoder rejects it anyway.
//
// Both sides reuse their buffers, so a worker that decodes one broadcast and encodes one reply
// per round does not touch the heap once the buffers have grown to the run's sizes.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffer_builder.h>

#include "marina/methods/config.h"
#include "marina/methods/messages.h"
#include "marina/model.h"

namespace marina::wire {

// 2: Join.shard_count, Broadcast.dropped, ResyncResponse.worker_aux (partial participation).
// 3: Join carries the model's smoothness constants and description instead of a linear
//    model's shard statistics and data settings; Welcome drops loss and l2, adds init_scale.
// 4: Welcome.batch_sampling (minibatches drawn without replacement): a worker of version 3
//    would ignore it and draw other rows without a word.
inline constexpr uint16_t kProtocolVersion = 4;

// Worker id that the coordinator uses for itself in Heartbeat and Bye; it passes the
// Limits::workers check of those two kinds only.
inline constexpr uint32_t kCoordinatorId = 0xFFFFFFFFu;

// Longest string the Decoder accepts (arch, compressor spec, Bye reason).
inline constexpr std::size_t kMaxStringBytes = 256;

// The Encoder never produces less: root offset + file identifier + the envelope's vtable
// (4 slots) and table (soffset, body type, body offset) + the body's vtable and soffset.
// Anything shorter is rejected before the Verifier runs.
inline constexpr std::size_t kMinMessageBytes = 4 + 4 + 12 + 12 + 4 + 4;

enum class MessageKind : uint8_t {
  kJoin,
  kWelcome,
  kBroadcast,
  kReply,
  kResyncRequest,
  kResyncResponse,
  kHeartbeat,
  kBye,
};

// "join", "welcome", "broadcast", "reply", "resync-request", "resync-response", "heartbeat",
// "bye".
[[nodiscard]] std::string_view to_string(MessageKind kind);

// Worker -> coordinator: the first message of a worker.
struct Join {
  uint32_t worker_id = 0;
  uint64_t shard_rows = 0;  // m_i, the model's samples()
  uint64_t dim = 0;
  uint32_t capabilities = 0;  // bitmask, meaning defined by the drivers
  std::string arch;           // e.g. "aarch64"
  Smoothness smoothness;      // of f_i, for the theoretical stepsizes
  std::string model;          // Model::description(), the same on every worker
  uint32_t shard_count = 0;   // N of --shard I/N; 0 when not given

  bool operator==(const Join&) const = default;
};

// Coordinator -> worker: admission with the settings of the run.
struct Welcome {
  uint32_t worker_id = 0;
  methods::MethodConfig config;
};

// Worker -> coordinator: "I have round have_round, send me the state of want_round".
struct ResyncRequest {
  uint32_t worker = 0;
  uint64_t have_round = 0;
  uint64_t want_round = 0;

  bool operator==(const ResyncRequest&) const = default;
};

// Either direction; `worker` is kCoordinatorId when the coordinator sends it.
struct Heartbeat {
  uint32_t worker = 0;
  uint64_t round = 0;

  bool operator==(const Heartbeat&) const = default;
};

// Either direction; `worker` is kCoordinatorId when the coordinator sends it.
struct Bye {
  uint32_t worker = 0;
  std::string reason;

  bool operator==(const Bye&) const = default;
};

// One decoded message of each kind. Decoding overwrites only the member of the kind it returns
// (and `session`); decoding into the same Inbox reuses that member's vector capacity.
struct Inbox {
  uint64_t session = 0;  // of the last successfully decoded message
  Join join;
  Welcome welcome;
  methods::Broadcast broadcast;
  methods::Reply reply;
  ResyncRequest resync_request;
  methods::Snapshot resync;  // a ResyncResponse
  Heartbeat heartbeat;
  Bye bye;
};

struct Limits {
  std::size_t max_bytes = 1u << 20;  // see max_message_bytes()
  uint64_t dim = 0;      // 0: unknown; else vectors longer than d are rejected, and so are
                         // payloads, dense updates and snapshots of another dimension
  uint32_t workers = 0;  // 0: unknown; else worker ids >= workers are rejected
};

// A max_bytes that admits every valid message of a run with dimension `dim` whose broadcasts
// name at most `max_participants` workers (also a sensible ZMQ_MAXMSGSIZE). Saturates at the
// FlatBuffers buffer limit.
[[nodiscard]] std::size_t max_message_bytes(uint64_t dim, uint64_t max_participants);

// Why a message was rejected, e.g. "reply: 14 values for d = 13".
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A well-formed message of another protocol version: the peer runs another release. Both
// sides refuse to work with it, naming both versions.
class VersionError : public DecodeError {
 public:
  VersionError(const std::string& what, uint16_t peer) : DecodeError(what), peer_version(peer) {}
  uint16_t peer_version;
};

class Encoder {
 public:
  explicit Encoder(uint64_t session);

  // Each returns the encoded message; the bytes stay valid until the next encode call.
  [[nodiscard]] std::span<const uint8_t> encode(const Join& m);
  [[nodiscard]] std::span<const uint8_t> encode(const Welcome& m);
  [[nodiscard]] std::span<const uint8_t> encode(const methods::Broadcast& m);
  [[nodiscard]] std::span<const uint8_t> encode(const methods::Reply& m);
  [[nodiscard]] std::span<const uint8_t> encode(const ResyncRequest& m);
  [[nodiscard]] std::span<const uint8_t> encode(const methods::Snapshot& m);  // ResyncResponse
  [[nodiscard]] std::span<const uint8_t> encode(const Heartbeat& m);
  [[nodiscard]] std::span<const uint8_t> encode(const Bye& m);

  [[nodiscard]] uint64_t session() const { return session_; }
  void set_session(uint64_t session) { session_ = session; }

 private:
  // What distinguishes the layouts of two replies: the scalar fields written (those not at
  // their schema default), the payload's kind, the vectors' lengths and the session. Two
  // replies of one shape encode to bytes that differ only where their values are.
  struct ReplyShape {
    uint64_t session = 0;
    uint32_t written = 0;  // bit i: the reply's i-th scalar field is written
    uint8_t kind = 0;
    std::size_t values = 0, indices = 0, dense = 0, levels = 0;
    bool operator==(const ReplyShape&) const = default;
  };

  // Clear() keeps the builder's allocation, which is what makes encoding allocation-free.
  void clear() {
    fbb_.Clear();
    reply_shape_.reset();
  }

  flatbuffers::FlatBufferBuilder fbb_{1024};
  uint64_t session_;
  // Set while the builder holds an encoded reply of this shape: a worker's next reply of the
  // same shape is written over it (values in place, through FlatBuffers' mutation API) instead
  // of being built again, sparing the builder's table and vtable work, most of what encoding a
  // small reply costs. Every other encode clears it.
  std::optional<ReplyShape> reply_shape_;
};

class Decoder {
 public:
  explicit Decoder(Limits limits);

  // Checks, in this order, and throws DecodeError at the first failure:
  //  1. kMinMessageBytes <= bytes.size() <= limits.max_bytes;
  //  2. the file identifier "MRNA" (a foreign protocol gets its own message);
  //  3. the FlatBuffers Verifier, on an 8-byte-aligned copy when `bytes` is not aligned
  //     (ZeroMQ receive buffers are not; misaligned loads can fault on ARMv7);
  //  4. the protocol version and a known message kind;
  //  5. semantic bounds: Limits, vector lengths consistent with each other and with d, indices
  //     strictly increasing and < d, finite numbers wherever the algorithm computes with them.
  // Only then it fills the member of `inbox` for the returned kind and inbox.session, so a
  // rejected message leaves `inbox` untouched. The session id is not checked here.
  MessageKind decode(std::span<const uint8_t> bytes, Inbox& inbox);
  // The same, for a message the caller gives up, to spare the copy of its long vectors: the
  // values of a dense reply (kDense64), or the values (and indices) of a broadcast's dense (or
  // sparse) update are left in the message, which moves into inbox.reply.payload.received or
  // inbox.broadcast.update.received (see their dense_values(), delta_indices(),
  // delta_values()), and `bytes` gets that member's previous buffer (contents unspecified; it
  // keeps its capacity, so a transport that receives into it does not allocate). Any other
  // message, or one whose vectors are not aligned in memory for their elements, is decoded as
  // by decode() and leaves `bytes` as it was. So does a rejected one.
  MessageKind decode_taking(std::vector<uint8_t>& bytes, Inbox& inbox);

  void set_limits(Limits limits);
  [[nodiscard]] const Limits& limits() const { return limits_; }

 private:
  MessageKind decode(std::span<const uint8_t> bytes, Inbox& inbox, std::vector<uint8_t>* take);

  Limits limits_;
  std::vector<uint64_t> aligned_;  // uint64_t elements give the 8-byte alignment
};

}  // namespace marina::wire

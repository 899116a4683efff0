#pragma once
// CurveZMQ keys and the coordinator's allowlist. A key is 32 bytes, written as 40 Z85
// characters; a worker is admitted only with the public key its id is bound to.
//
// Files (marina-keygen NAME writes both):
//   NAME.key   "public-key = <Z85>" and "secret-key = <Z85>" lines; mode 0600, never
//              overwritten, refused when others may read it
//   NAME.pub   the public key alone (one line; '#' comments allowed)
//   allowlist  one "WORKER-ID PUBLIC-KEY" a line; an id or key appears once
// A comment starts at a '#' that begins a line or follows whitespace ('#' is a Z85 character).

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace marina::security {

// A key file or allowlist that cannot be used; what() names the file (and line) and why.
class KeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr std::size_t kZ85KeyChars = 40;

struct KeyPair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85
};

// A fresh keypair from libzmq (libsodium underneath).
[[nodiscard]] KeyPair generate_keypair();

// True when `text` is 40 characters of the Z85 alphabet that decode to a key.
[[nodiscard]] bool is_z85_key(std::string_view text);

// The public key of a secret key (Z85 in, Z85 out); throws KeyError for a malformed secret.
[[nodiscard]] std::string public_of(const std::string& secret_key);

// A short, stable label of a public key for people (logs, dashboard): 12 hex digits.
[[nodiscard]] std::string fingerprint(const std::string& public_key);

// Writes NAME.key (mode 0600, created exclusively: an existing file is never overwritten) and
// NAME.pub; throws KeyError naming the file that exists or cannot be written.
void write_keypair(const std::filesystem::path& name, const KeyPair& keys);

// Reads a secret key file (refused when group or others may read it, like ssh does).
[[nodiscard]] KeyPair read_secret_key(const std::filesystem::path& file);
// Reads a public key file: its first non-comment line, or a "public-key = ..." line.
[[nodiscard]] std::string read_public_key(const std::filesystem::path& file);

class Allowlist {
 public:
  // Parses "WORKER-ID PUBLIC-KEY" lines; `origin` names the source in errors
  // ("FILE:LINE: reason"). Ids must be < `workers` when it is given.
  static Allowlist parse(std::string_view text, const std::string& origin,
                         std::optional<uint32_t> workers = std::nullopt);
  static Allowlist read(const std::filesystem::path& file,
                        std::optional<uint32_t> workers = std::nullopt);

  // The worker id a public key is bound to.
  [[nodiscard]] std::optional<uint32_t> worker_of(const std::string& public_key) const;
  [[nodiscard]] std::optional<std::string> key_of(uint32_t worker) const;
  [[nodiscard]] std::size_t size() const { return by_key_.size(); }

 private:
  std::map<std::string, uint32_t> by_key_;
  std::map<uint32_t, std::string> by_id_;
};

}  // namespace marina::security

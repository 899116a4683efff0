#include "marina/security/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <zmq.h>

namespace marina::security {
namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// '#' is a Z85 character, so a comment starts only at a '#' that begins the line or follows
// whitespace.
std::string strip_comment(std::string_view line) {
  for (std::size_t i = 0; i < line.size(); ++i)
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t'))
      return trim(line.substr(0, i));
  return trim(line);
}

std::string slurp(const std::filesystem::path& file, std::size_t limit) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw KeyError(file.string() + ": cannot open: " + std::strerror(errno));
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > limit)
      throw KeyError(file.string() + ": larger than " + std::to_string(limit) + " bytes");
  }
  return text;
}

void write_exclusive(const std::filesystem::path& file, const std::string& text, mode_t mode) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    throw KeyError(file.string() + (errno == EEXIST
                                        ? ": exists; refusing to overwrite a key"
                                        : ": cannot create: " + std::string(std::strerror(errno))));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw KeyError(file.string() + ": write failed: " + std::strerror(errno));
}

// "key = value" → value, for the named key.
std::optional<std::string> field(const std::string& line, std::string_view key) {
  const auto eq = line.find('=');
  if (eq == std::string::npos || trim(line.substr(0, eq)) != key) return std::nullopt;
  return trim(line.substr(eq + 1));
}

}  // namespace

KeyPair generate_keypair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0)
    throw KeyError(std::string("cannot make a CurveZMQ keypair: ") + zmq_strerror(zmq_errno()));
  return {pub, sec};
}

bool is_z85_key(std::string_view text) {
  if (text.size() != kZ85KeyChars) return false;
  static constexpr std::string_view kAlphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  for (char c : text)
    if (kAlphabet.find(c) == std::string_view::npos) return false;
  uint8_t raw[32];
  const std::string copy(text);
  return zmq_z85_decode(raw, copy.c_str()) != nullptr;
}

std::string public_of(const std::string& secret_key) {
  if (!is_z85_key(secret_key)) throw KeyError("not a Z85 secret key (40 characters)");
  char pub[41];
  if (zmq_curve_public(pub, secret_key.c_str()) != 0)
    throw KeyError(std::string("cannot derive the public key: ") + zmq_strerror(zmq_errno()));
  return pub;
}

std::string fingerprint(const std::string& public_key) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a: a label, not a security property
  for (unsigned char c : public_key) h = (h ^ c) * 0x100000001b3ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 12);
}

void write_keypair(const std::filesystem::path& name, const KeyPair& keys) {
  const auto key_file = std::filesystem::path(name.string() + ".key");
  const auto pub_file = std::filesystem::path(name.string() + ".pub");
  if (std::filesystem::exists(pub_file))
    throw KeyError(pub_file.string() + ": exists; refusing to overwrite a key");
  write_exclusive(key_file,
                  "# marina secret key (CurveZMQ, Z85). Keep it private: anyone with it can\n"
                  "# speak as its owner.\npublic-key = " +
                      keys.public_key + "\nsecret-key = " + keys.secret_key + "\n",
                  0600);
  write_exclusive(pub_file, "# marina public key (CurveZMQ, Z85)\n" + keys.public_key + "\n", 0644);
}

KeyPair read_secret_key(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    throw KeyError(file.string() + ": cannot open: " + std::strerror(errno));
  if ((st.st_mode & 077) != 0)
    throw KeyError(file.string() + ": secret key readable by others (mode " +
                   std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
                   std::to_string(st.st_mode & 7) + "); chmod 600 it");
  const std::string text = slurp(file, 4096);
  std::istringstream lines(text);
  std::string line;
  KeyPair k;
  while (std::getline(lines, line)) {
    const std::string l = strip_comment(line);
    if (auto v = field(l, "secret-key")) k.secret_key = *v;
    if (auto v = field(l, "public-key")) k.public_key = *v;
  }
  if (!is_z85_key(k.secret_key))
    throw KeyError(file.string() + ": no valid 'secret-key = <40 Z85 characters>' line");
  const std::string derived = public_of(k.secret_key);
  if (!k.public_key.empty() && k.public_key != derived)
    throw KeyError(file.string() + ": its public-key does not belong to its secret-key");
  k.public_key = derived;
  return k;
}

std::string read_public_key(const std::filesystem::path& file) {
  const std::string text = slurp(file, 4096);
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const std::string l = strip_comment(line);
    if (l.empty()) continue;
    const std::string key = field(l, "public-key").value_or(l);
    if (!is_z85_key(key))
      throw KeyError(file.string() + ": '" + l.substr(0, 60) +
                     "' is not a public key (40 Z85 characters)");
    return key;
  }
  throw KeyError(file.string() + ": no public key in it");
}

Allowlist Allowlist::parse(std::string_view text, const std::string& origin,
                           std::optional<uint32_t> workers) {
  Allowlist a;
  std::size_t number = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto end = text.find('\n', pos);
    const std::string_view raw =
        text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? text.size() + 1 : end + 1;
    ++number;
    const std::string where = origin + ":" + std::to_string(number) + ": ";
    const std::string line = strip_comment(raw);
    if (line.empty()) continue;
    std::istringstream words(line);
    std::string id_text, key, extra;
    if (!(words >> id_text >> key) || (words >> extra))
      throw KeyError(where + "expected 'WORKER-ID PUBLIC-KEY'");
    uint32_t id = 0;
    if (id_text.empty() || id_text.size() > 9 ||
        id_text.find_first_not_of("0123456789") != std::string::npos)
      throw KeyError(where + "worker id '" + id_text.substr(0, 20) + "' is not a number");
    id = static_cast<uint32_t>(std::stoul(id_text));
    if (workers && id >= *workers)
      throw KeyError(where + "worker id " + id_text + " out of range (--workers " +
                     std::to_string(*workers) + ")");
    if (!is_z85_key(key))
      throw KeyError(where + "'" + key.substr(0, 60) + "' is not a public key (40 Z85 characters)");
    if (a.by_id_.count(id)) throw KeyError(where + "worker id " + id_text + " listed twice");
    if (a.by_key_.count(key))
      throw KeyError(where + "key already bound to worker " + std::to_string(a.by_key_[key]));
    a.by_id_[id] = key;
    a.by_key_[key] = id;
  }
  return a;
}

Allowlist Allowlist::read(const std::filesystem::path& file, std::optional<uint32_t> workers) {
  return parse(slurp(file, 16u << 20), file.string(), workers);
}

std::optional<uint32_t> Allowlist::worker_of(const std::string& public_key) const {
  const auto it = by_key_.find(public_key);
  if (it == by_key_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Allowlist::key_of(uint32_t worker) const {
  const auto it = by_id_.find(worker);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

}  // namespace marina::security

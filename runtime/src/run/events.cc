#include "marina/run/events.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace marina::run {

namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid. Overlong forms,
// surrogates and code points above U+10FFFF are invalid (RFC 3629). On 0, `consumed` is the
// length of the maximal invalid prefix (at least 1), which becomes one U+FFFD as Unicode
// recommends; so a truncated sequence costs one replacement, not one per byte.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& consumed) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (lead < 0x80) {
    return 1;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) lo = 0xA0;  // overlong
    if (lead == 0xED) hi = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) lo = 0x90;  // overlong
    if (lead == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    consumed = 1;
    return 0;
  }
  for (std::size_t k = 1; k < length; ++k) {
    const bool in_range = i + k < s.size() && (k == 1 ? byte(i + k) >= lo && byte(i + k) <= hi
                                                      : byte(i + k) >= 0x80 && byte(i + k) <= 0xBF);
    if (!in_range) {
      consumed = k;
      return 0;
    }
  }
  return length;
}

void append_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    std::size_t consumed = 0;
    if (const std::size_t n = utf8_sequence(s, i, consumed); n != 0) {
      out.append(s, i, n);
      i += n;
    } else {
      out += kReplacement;
      i += consumed;
    }
  }
  out += '"';
}

}  // namespace

std::string json_string(std::string_view s) {
  std::string out;
  append_string(out, s);
  return out;
}

std::string to_json(const Event& e) {
  std::string out = "{\"round\":" + std::to_string(e.round) + ",\"time_s\":";
  // JSON has no NaN or infinity.
  if (std::isfinite(e.time_s)) {
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, e.time_s);
    out.append(buf, end);
  } else {
    out += "null";
  }
  if (e.worker) out += ",\"worker\":" + std::to_string(*e.worker);
  out += ",\"event\":";
  append_string(out, e.kind);
  out += ",\"detail\":";
  append_string(out, e.detail);
  out += '}';
  return out;
}

EventLog::EventLog(const std::filesystem::path& file, std::optional<uint64_t> truncate_to)
    : path_(file) {
  namespace fs = std::filesystem;
  if (truncate_to) {
    std::error_code ec;
    const bool exists = fs::exists(file, ec);
    if (ec) throw std::runtime_error(file.string() + ": cannot resume events: " + ec.message());
    // Resuming at 0 bytes (the run being resumed had no events file) simply starts one.
    if (exists || *truncate_to != 0) {
      const uint64_t size = exists ? fs::file_size(file, ec) : 0;
      if (ec) throw std::runtime_error(file.string() + ": cannot resume events: " + ec.message());
      if (size < *truncate_to) {
        throw std::runtime_error(file.string() + ": cannot resume events: the file has " +
                                 std::to_string(size) + " bytes, fewer than the " +
                                 std::to_string(*truncate_to) + " to keep");
      }
      fs::resize_file(file, *truncate_to, ec);
      if (ec) throw std::runtime_error(file.string() + ": cannot truncate: " + ec.message());
    }
    out_.open(file, std::ios::binary | std::ios::app);
    bytes_ = *truncate_to;
  } else {
    out_.open(file, std::ios::binary | std::ios::trunc);
  }
  if (!out_) {
    throw std::runtime_error(file.string() + ": cannot open events file: " + std::strerror(errno));
  }
}

void EventLog::write(const Event& e) {
  std::string line = to_json(e);
  line += '\n';
  out_.write(line.data(), static_cast<std::streamsize>(line.size()));
  out_.flush();
  if (!out_) throw std::runtime_error(path_.string() + ": cannot write event");
  bytes_ += line.size();
}

uint64_t EventCounts::count(const std::string& kind) const {
  const auto it = counts_.find(kind);
  return it == counts_.end() ? 0 : it->second;
}

std::string EventCounts::summary() const {
  std::string out;
  for (const auto& [kind, n] : counts_) {
    if (!out.empty()) out += ", ";
    out += kind + ' ' + std::to_string(n);
  }
  return out;
}

}  // namespace marina::run

#include "marina/run/log.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace marina::run {

void Tally::on_broadcast(uint64_t encoded_bytes, uint32_t receivers) {
  row_.wire_bytes_down += encoded_bytes * receivers;
}

void Tally::on_reply(const methods::Reply& reply, uint64_t encoded_bytes) {
  on_reply(reply.payload.value_count(), reply.oracle_calls, encoded_bytes);
}

void Tally::on_reply(std::size_t values_sent, uint64_t oracle_calls, uint64_t encoded_bytes) {
  values_ += static_cast<double>(values_sent);
  oracle_ += static_cast<double>(oracle_calls);
  row_.wire_bytes_up += encoded_bytes;
}

void Tally::end_round(uint64_t round_closed, bool full_sync, uint32_t participants) {
  row_.round = round_closed + 1;
  row_.full_sync = full_sync;
  row_.participants = participants;
  row_.bits_per_worker = 32.0 * values_ / static_cast<double>(workers_);
  row_.oracle_calls = oracle_ / static_cast<double>(workers_);
  row_.loss.reset();
  row_.grad_norm_sq.reset();
  row_.local_grad_norm_sq.reset();
}

namespace {

void append(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void append_exact(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "nan";
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

}  // namespace

std::string exact(double v) {
  std::string s;
  append_exact(s, v);
  return s;
}

namespace {

// The rows in the first `size` bytes of a log being resumed; checks that they start with the
// header and end at a line break, so appended rows continue a well-formed CSV.
uint64_t count_rows(const std::filesystem::path& file, uint64_t size, CsvColumns columns) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot read log: " + std::strerror(errno));
  const std::string expected = CsvLog::header(columns) + '\n';
  // The first line, read no further than a header could reach.
  std::string first(static_cast<std::size_t>(std::min<uint64_t>(size, 256)), '\0');
  if (!in.read(first.data(), static_cast<std::streamsize>(first.size())))
    throw std::runtime_error(file.string() + ": cannot read log");
  first.resize(std::min(first.size(), first.find('\n') + 1));
  if (first != expected) {
    // The other column set's header: the log was started with the other choice of columns.
    CsvColumns other = columns;
    other.local_grad_norm_sq = !columns.local_grad_norm_sq;
    if (first == CsvLog::header(other) + '\n')
      throw std::runtime_error(file.string() + ": cannot resume log: it " +
                               (other.local_grad_norm_sq ? "has" : "lacks") +
                               " the local_grad_norm_sq column (the run was started " +
                               (other.local_grad_norm_sq ? "with" : "without") +
                               " --log-local-norms)");
    throw std::runtime_error(file.string() + ": cannot resume log: its first " +
                             std::to_string(size) + " bytes do not start with the header");
  }
  in.seekg(static_cast<std::streamoff>(expected.size()));
  uint64_t newlines = 0;
  char last = '\n';
  char buf[1 << 16];
  for (uint64_t left = size - expected.size(); left > 0;) {
    const auto chunk = static_cast<std::streamsize>(std::min<uint64_t>(left, sizeof buf));
    if (!in.read(buf, chunk)) throw std::runtime_error(file.string() + ": cannot read log");
    newlines += static_cast<uint64_t>(std::count(buf, buf + chunk, '\n'));
    last = buf[chunk - 1];
    left -= static_cast<uint64_t>(chunk);
  }
  if (last != '\n') {
    throw std::runtime_error(file.string() + ": cannot resume log: byte " + std::to_string(size) +
                             " is not the end of a row");
  }
  return newlines;
}

}  // namespace

CsvLog::CsvLog(const std::filesystem::path& file, std::optional<uint64_t> truncate_to,
               CsvColumns columns)
    : path_(file), columns_(columns) {
  namespace fs = std::filesystem;
  if (truncate_to) {
    std::error_code ec;
    const uint64_t size = fs::file_size(file, ec);
    if (ec) throw std::runtime_error(file.string() + ": cannot resume log: " + ec.message());
    if (size < *truncate_to) {
      throw std::runtime_error(file.string() + ": cannot resume log: it has " +
                               std::to_string(size) + " bytes, fewer than the " +
                               std::to_string(*truncate_to) + " to keep");
    }
    rows_ = count_rows(file, *truncate_to, columns);
    fs::resize_file(file, *truncate_to, ec);
    if (ec) throw std::runtime_error(file.string() + ": cannot truncate log: " + ec.message());
    out_.open(file, std::ios::binary | std::ios::app);
    if (!out_)
      throw std::runtime_error(file.string() + ": cannot open log: " + std::strerror(errno));
    bytes_ = *truncate_to;
    return;
  }
  out_.open(file, std::ios::binary | std::ios::trunc);
  if (!out_)
    throw std::runtime_error(file.string() + ": cannot create log: " + std::strerror(errno));
  const std::string line = header(columns) + '\n';
  out_ << line;
  out_.flush();
  if (!out_) throw std::runtime_error(path_.string() + ": write failed");
  bytes_ = line.size();
}

std::string CsvLog::header(CsvColumns columns) {
  std::string h =
      "round,loss,grad_norm_sq,full_sync,participants,bits_per_worker,wire_bytes_up,"
      "wire_bytes_down,oracle_calls,wall_s";
  if (columns.local_grad_norm_sq) h += ",local_grad_norm_sq";
  return h;
}

void CsvLog::format_into(const LogRow& r, std::string& s, CsvColumns columns) {
  append(s, r.round);
  s += ',';
  if (r.loss) append_exact(s, *r.loss);
  s += ',';
  if (r.grad_norm_sq) append_exact(s, *r.grad_norm_sq);
  s += ',';
  s += r.full_sync ? '1' : '0';
  s += ',';
  append(s, r.participants);
  s += ',';
  append_exact(s, r.bits_per_worker);
  s += ',';
  append(s, r.wire_bytes_up);
  s += ',';
  append(s, r.wire_bytes_down);
  s += ',';
  append_exact(s, r.oracle_calls);
  s += ',';
  append_exact(s, r.wall_s);
  if (columns.local_grad_norm_sq) {
    s += ',';
    if (r.local_grad_norm_sq) append_exact(s, *r.local_grad_norm_sq);
  }
}

std::string CsvLog::format(const LogRow& r, CsvColumns columns) {
  std::string s;
  format_into(r, s, columns);
  return s;
}

void CsvLog::write(const LogRow& row) {
  line_.clear();
  format_into(row, line_, columns_);
  line_ += '\n';
  out_.write(line_.data(), static_cast<std::streamsize>(line_.size()));
  if (!out_) throw std::runtime_error(path_.string() + ": write failed");
  bytes_ += line_.size();
  ++rows_;
  if (const auto now = std::chrono::steady_clock::now(); now - last_flush_ >= kFlushInterval)
    flush();
}

void CsvLog::flush() {
  out_.flush();
  last_flush_ = std::chrono::steady_clock::now();
  if (!out_) throw std::runtime_error(path_.string() + ": write failed");
}

}  // namespace marina::run

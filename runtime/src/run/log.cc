#include "marina/run/log.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace marina::run {

void Tally::on_broadcast(uint64_t encoded_bytes, uint32_t receivers) {
  row_.wire_bytes_down += encoded_bytes * receivers;
}

void Tally::on_reply(const methods::Reply& reply, uint64_t encoded_bytes) {
  values_ += static_cast<double>(reply.payload.value_count());
  oracle_ += static_cast<double>(reply.oracle_calls);
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
}

std::string exact(double v) {
  if (std::isnan(v)) return "nan";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

CsvLog::CsvLog(const std::filesystem::path& file) : path_(file), out_(file) {
  if (!out_)
    throw std::runtime_error(file.string() + ": cannot create log: " + std::strerror(errno));
  out_ << header() << '\n';
}

std::string CsvLog::header() {
  return "round,loss,grad_norm_sq,full_sync,participants,bits_per_worker,wire_bytes_up,"
         "wire_bytes_down,oracle_calls,wall_s";
}

std::string CsvLog::format(const LogRow& r) {
  std::string s = std::to_string(r.round);
  s += ',' + (r.loss ? exact(*r.loss) : std::string());
  s += ',' + (r.grad_norm_sq ? exact(*r.grad_norm_sq) : std::string());
  s += ',' + std::to_string(r.full_sync ? 1 : 0);
  s += ',' + std::to_string(r.participants);
  s += ',' + exact(r.bits_per_worker);
  s += ',' + std::to_string(r.wire_bytes_up);
  s += ',' + std::to_string(r.wire_bytes_down);
  s += ',' + exact(r.oracle_calls);
  s += ',' + exact(r.wall_s);
  return s;
}

void CsvLog::write(const LogRow& row) {
  out_ << format(row) << '\n';
  if (!out_) throw std::runtime_error(path_.string() + ": write failed");
}

}  // namespace marina::run

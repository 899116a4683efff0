#include "marina/methods/method.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>

#include "marina/methods/mirror.h"
#include "marina/util/bitmap.h"
#include "marina/util/compact.h"
#include "marina/util/random.h"
#include "marina/util/sample.h"

namespace marina::methods {

OutOfSync::OutOfSync(uint64_t expected_round, uint64_t got_round)
    : ProtocolError("missed broadcasts: expected round " + std::to_string(expected_round) +
                    ", got round " + std::to_string(got_round)),
      expected(expected_round),
      got(got_round) {}

namespace {
std::string diverged_message(uint64_t round, double step_norm) {
  char norm[32];
  std::snprintf(norm, sizeof norm, "%.3g", step_norm);
  return "diverged at round " + std::to_string(round) + " (||g|| = " + norm + "); lower --gamma";
}

// Whether a reply's indices (strictly increasing) are consecutive, as RandBlock's are: one run
// (returns size), or [0, s) followed by a run that ends the list (a block that wrapped past
// d − 1; returns s). 0 when they are neither. O(log size): with idx[0] == 0, idx[k] == k holds
// exactly up to the second run.
std::size_t consecutive_split(const uint32_t* idx, std::size_t size) {
  if (size == 0) return 0;
  if (idx[size - 1] - idx[0] == size - 1) return size;
  if (idx[0] != 0) return 0;
  std::size_t lo = 0, hi = size - 1;  // idx[lo] == lo, idx[hi] > hi
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    (idx[mid] == mid ? lo : hi) = mid;
  }
  return idx[size - 1] - idx[hi] == size - 1 - hi ? hi : 0;
}

// s[t] += c·v[t] over a run: the one rounding per entry of the scattered sum, so the same bits,
// but a loop the compiler vectorizes.
template <typename T>
void add_run(double* __restrict s, const T* __restrict v, std::size_t len, double c) {
  for (std::size_t t = 0; t < len; ++t) s[t] += c * static_cast<double>(v[t]);
}

}  // namespace

Diverged::Diverged(uint64_t round, double step_norm)
    : std::runtime_error(diverged_message(round, step_norm)) {}

Diverged::Diverged(uint64_t round, const std::string& why)
    : std::runtime_error("diverged at round " + std::to_string(round) + " (" + why +
                         "); lower --gamma") {}

// ---- server ---------------------------------------------------------------------------------

ServerHalf::ServerHalf(const MethodConfig& config)
    : config_(config), q_(compress::make_compressor(config.compressor)) {
  if (config_.workers == 0) throw std::invalid_argument("method: need at least one worker");
  if (config_.dim == 0) throw std::invalid_argument("method: dimension must be positive");
  const auto d = static_cast<Eigen::Index>(config_.dim);
  x_ = initial_point(config_);
  x_prev_ = x_;
  dense_.resize(config_.workers);
  sent_.resize(config_.workers);
  prepared_.assign(config_.workers, 0);
  max_values_ = compress::max_values(*q_, config_.dim, config_.workers);
  reply_values_.resize(config_.workers);
  sparse_.assign(config_.workers, 0);
  sum_ = Eigen::VectorXd::Zero(d);
  touched_bits_.assign((config_.dim + 63) / 64, 0);
  touched_.reserve(config_.dim / kSparseShare + 2);  // at most that many, + 1 of read-out slack
  run_.reserve(config_.workers);
  parts_.reserve(config_.workers);
  block_sum_.assign(kBlock, 0.0);
  block_bits_.assign(kBlock / 64, 0);
  multiplicity_.assign(config_.workers, 0);
  received_.assign(config_.workers, false);
}

const Broadcast& ServerHalf::begin_round() {
  if (open_) throw std::logic_error("begin_round: round " + std::to_string(round_) + " is open");
  broadcast_.round = round_;
  broadcast_.round_seed = util::derive(config_.seed, {round_, util::tag(util::Stream::kRoundSeed)});
  broadcast_.full_sync = false;
  broadcast_.participants.clear();
  std::swap(broadcast_.update, pending_);
  std::swap(broadcast_.dropped, dropped_);
  dropped_.clear();
  plan(broadcast_);

  std::fill(multiplicity_.begin(), multiplicity_.end(), 0);
  std::fill(received_.begin(), received_.end(), false);
  if (broadcast_.participants.empty()) {
    std::fill(multiplicity_.begin(), multiplicity_.end(), 1);
  } else {
    for (uint32_t w : broadcast_.participants) ++multiplicity_.at(w);
  }
  expected_count_ = static_cast<uint32_t>(
      std::count_if(multiplicity_.begin(), multiplicity_.end(), [](uint32_t m) { return m > 0; }));
  received_count_ = 0;
  received_multiplicity_ = 0;
  prepare_next_ = 0;
  open_ = true;
  return broadcast_;
}

bool ServerHalf::prepare(std::chrono::nanoseconds budget,
                         const std::function<bool(uint32_t)>& skip) {
  if (!open_ || broadcast_.full_sync || q_->payload_kind() != compress::PayloadKind::kSeeded)
    return true;
  const auto until = std::chrono::steady_clock::now() + budget;
  // The clock is read again once the indices derived since its last reading are worth it:
  // reading it (some 20 ns) before each of K = 1's derivations (some 15 ns) would double their
  // cost, and a batch of kIndicesPerClockRead overshoots the budget by microseconds at most.
  constexpr std::size_t kIndicesPerClockRead = 1024;
  std::size_t since_read = kIndicesPerClockRead;  // the first derivation looks at the clock
  for (; prepare_next_ < config_.workers; ++prepare_next_) {
    const uint32_t w = prepare_next_;
    if (!expects(w) || received_[w] || prepared_[w] == round_ + 1 || (skip && skip(w))) continue;
    if (since_read >= kIndicesPerClockRead) {
      if (std::chrono::steady_clock::now() >= until) return false;
      since_read = 0;
    }
    derive_indices(w);
    since_read += sent_[w].idx.size() + 16;  // + the fixed cost of seeding
    prepared_[w] = round_ + 1;
  }
  return true;
}

void ServerHalf::derive_indices(uint32_t w) {
  const compress::Context ctx{broadcast_.round_seed, w, config_.workers};
  compress::SparseValues& s = sent_[w];
  if (const auto run = q_->seeded_run(ctx, config_.dim)) {
    if (iota_.empty()) {
      iota_.resize(config_.dim);
      std::iota(iota_.begin(), iota_.end(), uint32_t{0});
    }
    s.idx = std::span<const uint32_t>(iota_).subspan(run->begin, run->size);
    // Room for the block that wraps, which this worker may draw in any later round: allocated
    // now, in its first round, rather than then.
    if (s.indices.capacity() < run->size) s.indices.reserve(run->size);
    return;
  }
  q_->seeded_indices(ctx, config_.dim, s.indices);
  s.idx = s.indices;
}

bool ServerHalf::expects(uint32_t worker) const {
  return worker < multiplicity_.size() && multiplicity_[worker] > 0;
}

bool ServerHalf::awaiting(uint32_t worker) const {
  return open_ && expects(worker) && !received_[worker];
}

void ServerHalf::accept(const Reply& reply) {
  accept(reply, nullptr);
}

void ServerHalf::accept_and_recycle(Reply& reply) {
  accept(reply, &reply);
}

void ServerHalf::accept(const Reply& reply, Reply* recycle) {
  // Built only on the way to an error: an accepted reply must not allocate.
  const auto where = [&reply] {
    return "reply of worker " + std::to_string(reply.worker) + " for round " +
           std::to_string(reply.round);
  };
  if (!open_) throw ProtocolError(where() + ": no round is open");
  if (reply.round != round_)
    throw ProtocolError(where() + ": the open round is " + std::to_string(round_));
  if (reply.worker >= config_.workers)
    throw ProtocolError(where() + ": unknown worker (n = " + std::to_string(config_.workers) + ")");
  if (!expects(reply.worker)) throw ProtocolError(where() + ": worker was not drawn this round");
  if (received_[reply.worker]) throw ProtocolError(where() + ": duplicate");
  if (reply.payload.dim != config_.dim)
    throw ProtocolError(where() + ": payload has d = " + std::to_string(reply.payload.dim) +
                        ", the run has d = " + std::to_string(config_.dim));
  if (broadcast_.full_sync) {
    if (reply.payload.kind != compress::PayloadKind::kDense64)
      throw ProtocolError(where() + ": full-sync round needs a dense gradient");
  } else if (const std::string why = q_->mismatch(reply.payload); !why.empty()) {
    throw ProtocolError(where() + ": " + why);
  } else if (max_values_ && reply.payload.value_count() > *max_values_) {
    // An indexed PermK reply's count is derived by nobody; its block's size bounds it.
    throw ProtocolError(where() + ": " + std::to_string(reply.payload.value_count()) + " values, " +
                        q_->name() + " sends at most " + std::to_string(*max_values_));
  }
  try {
    const compress::Context ctx{broadcast_.round_seed, reply.worker, config_.workers};
    const uint32_t w = reply.worker;
    compress::Payload* const give_back = recycle ? &recycle->payload : nullptr;
    sparse_[w] = 0;
    // Whatever happens next may change sent_[w]'s indices: prepared once, used once.
    const bool prepared = std::exchange(prepared_[w], 0) == round_ + 1;
    const auto kind = reply.payload.kind;
    if (kind == compress::PayloadKind::kSeeded && !prepared) derive_indices(w);
    // One message buffer per worker, held with whichever kind of reply it sent last: the one
    // that brought its last full sync's reply can keep its next sparse reply, and the other way
    // round (a round reads only the replies of that round).
    if (kind == compress::PayloadKind::kSparse || kind == compress::PayloadKind::kSeeded) {
      if (sent_[w].message.capacity() < dense_[w].message.capacity()) {
        sent_[w].message.swap(dense_[w].message);
        dense_[w].data = nullptr;
      }
    } else if (kind == compress::PayloadKind::kDense64 &&
               dense_[w].message.capacity() < sent_[w].message.capacity()) {
      dense_[w].message.swap(sent_[w].message);
    }
    // Float values are folded as sent (c·double(v) is what c·(0.0 + 1.0·double(v)) gives, −0.0
    // included, since sums start at +0.0), and taken rather than copied when recycling.
    if (compress::take_sparse(reply.payload, *q_, ctx, sent_[w], give_back,
                              kind == compress::PayloadKind::kSeeded))
      sparse_[w] = kSentValues;
    else if (compress::decode_sparse(reply.payload, *q_, ctx, sent_[w].indices, reply_values_[w])) {
      sent_[w].idx = sent_[w].indices;
      sparse_[w] = kDecodedValues;
    } else
      compress::decode_dense(reply.payload, dense_[w], give_back);
  } catch (const std::invalid_argument& e) {
    throw ProtocolError(where() + ": " + e.what());
  }
  received_[reply.worker] = true;
  ++received_count_;
  received_multiplicity_ += multiplicity_[reply.worker];
}

bool ServerHalf::complete() const {
  return open_ && received_count_ == expected_count_;
}

std::vector<uint32_t> ServerHalf::missing() const {
  std::vector<uint32_t> out;
  for (uint32_t w = 0; w < config_.workers; ++w)
    if (expects(w) && !received_[w]) out.push_back(w);
  return out;
}

void ServerHalf::end_round() {
  if (!open_) throw std::logic_error("end_round: no round is open");
  dropped_.clear();
  for (uint32_t w = 0; w < config_.workers; ++w)
    if (expects(w) && !received_[w]) dropped_.push_back(w);
  const bool ok = aggregate(pending_);
  last_participants_ = received_count_;
  ++round_;
  open_ = false;
  if (!ok) throw Diverged(round_ - 1, step_norm());
}

void ServerHalf::abandon_round() {
  if (!open_) return;
  std::swap(broadcast_.update, pending_);
  std::swap(broadcast_.dropped, dropped_);
  open_ = false;
}

double ServerHalf::step_norm() const {
  if (config_.gamma == 0.0) return 0.0;
  double sum = 0.0;  // a plain loop: the same order on every machine
  for (Eigen::Index j = 0; j < x_.size(); ++j) {
    const double v = x_[j] - x_prev_[j];
    sum += v * v;
  }
  return std::sqrt(sum) / config_.gamma;
}

double ServerHalf::weight(uint32_t worker) const {
  // When every participant replied this is 1/n, or multiplicity/r for PP-MARINA's draws.
  return static_cast<double>(multiplicity_[worker]) / static_cast<double>(received_multiplicity_);
}

Snapshot ServerHalf::snapshot(uint32_t worker) const {
  Snapshot s;
  s.round = round_;
  s.x.assign(x_.data(), x_.data() + x_.size());
  if (round_ > 0) s.x_prev.assign(x_prev_.data(), x_prev_.data() + x_prev_.size());
  snapshot_aux(worker, s);
  return s;
}

ServerState ServerHalf::save() const {
  if (open_) throw std::logic_error("save: round " + std::to_string(round_) + " is open");
  ServerState s;
  s.round = round_;
  s.x.assign(x_.data(), x_.data() + x_.size());
  s.x_prev.assign(x_prev_.data(), x_prev_.data() + x_prev_.size());
  s.pending = pending_;
  s.dropped = dropped_;
  save_aux(s);
  return s;
}

void ServerHalf::load(const ServerState& s) {
  const std::size_t d = config_.dim;
  if (s.x.size() != d || s.x_prev.size() != d)
    throw std::invalid_argument("server state: x has " + std::to_string(s.x.size()) +
                                " values for d = " + std::to_string(d));
  for (uint32_t w : s.dropped)
    if (w >= config_.workers)
      throw std::invalid_argument("server state: dropped worker " + std::to_string(w) +
                                  " >= n = " + std::to_string(config_.workers));
  try {
    validate(s.pending, static_cast<Eigen::Index>(d));
  } catch (const ProtocolError& e) {
    throw std::invalid_argument(std::string("server state: pending ") + e.what());
  }
  load_aux(s);  // checks its own sizes first
  round_ = s.round;
  x_ = Eigen::Map<const Eigen::VectorXd>(s.x.data(), static_cast<Eigen::Index>(d));
  x_prev_ = Eigen::Map<const Eigen::VectorXd>(s.x_prev.data(), static_cast<Eigen::Index>(d));
  pending_ = s.pending;
  dropped_ = s.dropped;
  std::fill(prepared_.begin(), prepared_.end(), 0);
  open_ = false;
}

void ServerHalf::clear_sum() {
  // Unless sum_to_delta or weighted_delta already did.
  if (!sum_zero_) {
    if (sum_dense_) {
      sum_.setZero();
    } else {
      for (uint32_t j : touched_) sum_[j] = 0.0;
    }
  }
  sum_zero_ = true;
}

void ServerHalf::collect_parts() {
  parts_.clear();
  run_.clear();
  parts_sparse_values_ = 0;
  parts_sparse_ = 0;
  parts_dense_ = false;
  for (uint32_t w = 0; w < config_.workers;) {
    if (!received_[w]) {
      ++w;
      continue;
    }
    Part p;
    if (sparse_[w]) {
      const std::span<const uint32_t> idx = sent_[w].idx;
      p.idx = idx.data();
      if (sparse_[w] == kSentValues)
        p.sent = sent_[w].val.data();
      else
        p.val = reply_values_[w].data();
      p.size = idx.size();
      p.split = consecutive_split(p.idx, p.size);
      p.c = weight(w);
      parts_sparse_values_ += p.size;
      ++parts_sparse_;
      ++w;
    } else {
      p.run_begin = run_.size();
      for (; w < config_.workers && !(received_[w] && sparse_[w]); ++w)
        if (received_[w]) run_.emplace_back(dense_[w].data, weight(w));
      p.run_end = run_.size();
      parts_dense_ = true;
    }
    parts_.push_back(p);
  }
}

const Eigen::VectorXd& ServerHalf::weighted_sum() {
  collect_parts();
  return sum_parts();
}

const Eigen::VectorXd& ServerHalf::sum_parts() {
  clear_sum();
  sum_zero_ = false;
  // After a dense reply every entry may be nonzero. So may a large share of them after many
  // sparse values: then a pass over all d (clearing, and finding the nonzeros in sum_to_delta)
  // costs less than keeping track of the touched entries.
  const std::size_t sparse_values = parts_sparse_values_;
  sum_dense_ = parts_dense_ || sparse_values > static_cast<std::size_t>(sum_.size()) / kSparseShare;
  // Sparse: each entry's first touch is marked in a d-bit bitmap and appended to touched_ (both
  // without a branch: the append position moves on only for a new entry).
  touched_.resize(sum_dense_ ? 0 : sparse_values);
  uint64_t* bits = touched_bits_.data();
  uint32_t* touched = touched_.data();
  std::size_t count = 0;
  for (const Part& p : parts_) {
    if (p.idx == nullptr) {  // dense replies up to the next sparse one, added together
      add_dense_run(run_.data() + p.run_begin, p.run_end - p.run_begin);
      continue;
    }
    // Locals: stores into the sum must not make the compiler reload the part.
    const auto fold = [&, idx = p.idx, size = p.size, split = p.split, c = p.c,
                       sum = sum_.data()](const auto* __restrict v) {
      if (split != 0) {  // two runs of consecutive indices (the second may be empty)
        for (const auto& [k0, k1] : {std::pair{std::size_t{0}, split}, std::pair{split, size}}) {
          if (k0 == k1) continue;
          add_run(sum + idx[k0], v + k0, k1 - k0, c);
          if (!sum_dense_)
            util::mark_range(bits, idx[k0], k1 - k0,
                             [&](std::size_t j) { touched[count++] = static_cast<uint32_t>(j); });
        }
        return;
      }
      if (sum_dense_) {
        for (std::size_t k = 0; k < size; ++k) sum[idx[k]] += c * static_cast<double>(v[k]);
        return;
      }
      for (std::size_t k = 0; k < size; ++k) {
        const uint32_t j = idx[k];
        sum[j] += c * static_cast<double>(v[k]);
        uint64_t& word = bits[j >> 6];
        const uint64_t bit = uint64_t{1} << (j & 63);
        touched[count] = j;
        count += (word & bit) == 0;
        word |= bit;
      }
    };
    if (p.sent != nullptr)
      fold(p.sent);
    else
      fold(p.val);
  }
  if (!sum_dense_) {
    // In ascending order, for sum_to_delta: a sort while there are few, else the bitmap's
    // read-out.
    if (util::bitmap_beats_sort(count, static_cast<std::size_t>(sum_.size()))) {
      util::read_set_bits(bits, touched_bits_.size(), count, touched_);
    } else {
      touched_.resize(count);
      std::sort(touched_.begin(), touched_.end());
    }
    for (uint32_t j : touched_) bits[j >> 6] = 0;
  }
  return sum_;
}

void ServerHalf::add_dense_run(const std::pair<const double*, double>* run, std::size_t m) {
  // Going block by block keeps the block of the sum in L1 while all replies pass through it
  // (the whole sum would be streamed from memory once per reply otherwise).
  constexpr std::size_t kDenseBlock = 1024;
  const auto d = static_cast<std::size_t>(sum_.size());
  for (std::size_t j0 = 0; j0 < d; j0 += kDenseBlock)
    add_dense_block(sum_.data() + j0, run, m, j0, std::min(kDenseBlock, d - j0));
}

void ServerHalf::add_dense_block(double* __restrict s, const std::pair<const double*, double>* run,
                                 std::size_t m, std::size_t j0, std::size_t len) {
  // Per entry these are the additions sum += c_r·v_r of a loop over the replies, one rounding
  // each, in the same order, so the bits are the same. Four replies per sweep save loads and
  // stores of the sum.
  std::size_t r = 0;
  for (; r + 4 <= m; r += 4) {
    const double* __restrict a = run[r].first + j0;
    const double* __restrict b = run[r + 1].first + j0;
    const double* __restrict c = run[r + 2].first + j0;
    const double* __restrict e = run[r + 3].first + j0;
    const double ca = run[r].second, cb = run[r + 1].second;
    const double cc = run[r + 2].second, ce = run[r + 3].second;
    for (std::size_t j = 0; j < len; ++j)
      s[j] = (((s[j] + ca * a[j]) + cb * b[j]) + cc * c[j]) + ce * e[j];
  }
  for (; r < m; ++r) {
    const double* __restrict a = run[r].first + j0;
    const double ca = run[r].second;
    for (std::size_t j = 0; j < len; ++j) s[j] = s[j] + ca * a[j];
  }
}

void ServerHalf::weighted_delta(ModelUpdate& out) {
  const auto d = static_cast<std::size_t>(sum_.size());
  const std::size_t blocks = (d + kBlock - 1) / kBlock;
  collect_parts();
  const std::size_t sparse_values = parts_sparse_values_;
  const bool any_dense = parts_dense_;
  // Sparse replies go block by block only with at least one value per reply and block on
  // average (visiting every block for every reply would cost more than the scattered sum) and
  // at most kInterleaved of them: each is read a run at a time, and beyond some 16 interleaved
  // runs the hardware prefetcher stops following them (measured: at n = 100, K = 10 % the
  // blocks were 10-18 % slower than the scattered sum; at n = 10, K = 1 % a third faster).
  if (!any_dense && (sparse_values < parts_sparse_ * blocks || parts_sparse_ > kInterleaved)) {
    (void)sum_parts();
    sum_to_delta(out);
    return;
  }
  // With a dense reply, or sparse values for more than d / kSparseShare entries, each block is
  // scanned whole for its nonzeros; otherwise its touched entries are marked and read out.
  const bool scan = any_dense || sparse_values > d / kSparseShare;
  out.kind = UpdateKind::kDelta;
  out.dense.clear();
  const std::size_t candidates = scan ? d : std::min(d, sparse_values);
  out.indices.resize(candidates);
  out.values.resize(candidates);
  uint32_t* __restrict idx = out.indices.data();
  double* __restrict val = out.values.data();
  // The block's sum and marks: zero between blocks, and in L1 throughout.
  double* __restrict sum = block_sum_.data();
  uint64_t* __restrict bits = block_bits_.data();
  std::size_t n = 0;
  // As in sum_to_delta, every candidate is written and the count moves on past nonzeros only.
  const auto emit = [&](std::size_t j0, std::size_t i) {
    idx[n] = static_cast<uint32_t>(j0 + i);
    val[n] = sum[i];
    n += sum[i] != 0.0;
    sum[i] = 0.0;
  };
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t j0 = b * kBlock;
    const std::size_t j1 = std::min(d, j0 + kBlock);
    for (Part& p : parts_) {
      if (p.idx == nullptr) {
        add_dense_block(sum, run_.data() + p.run_begin, p.run_end - p.run_begin, j0, j1 - j0);
        continue;
      }
      // Locals: stores into the block must not make the compiler reload the part.
      const auto add = [&](const auto* __restrict pv) {
        const uint32_t* __restrict pi = p.idx;
        const std::size_t size = p.size;
        const double c = p.c;
        std::size_t k = p.pos;
        if (p.split != 0) {
          // Run by run: the entries of this block are the run's next min(run left, j1 − pi[k]).
          while (k < size && pi[k] < j1) {
            const std::size_t run_end = k < p.split ? p.split : size;
            const std::size_t len = std::min<std::size_t>(run_end - k, j1 - pi[k]);
            add_run(sum + (pi[k] - j0), pv + k, len, c);
            if (!scan) util::mark_range(bits, pi[k] - j0, len, [](std::size_t) {});
            k += len;
          }
        } else if (scan) {
          for (; k < size && pi[k] < j1; ++k) sum[pi[k] - j0] += c * static_cast<double>(pv[k]);
        } else {
          for (; k < size && pi[k] < j1; ++k) {
            const std::size_t i = pi[k] - j0;
            sum[i] += c * static_cast<double>(pv[k]);
            bits[i >> 6] |= uint64_t{1} << (i & 63);
          }
        }
        p.pos = k;
      };
      if (p.sent != nullptr)
        add(p.sent);
      else
        add(p.val);
    }
    if (scan) {
      n += util::compact_nonzero(sum, j1 - j0, static_cast<uint32_t>(j0), idx + n, val + n);
      continue;
    }
    for (std::size_t wd = 0; wd < kBlock / 64; ++wd) {
      for (uint64_t word = bits[wd]; word != 0; word &= word - 1)
        emit(j0, wd * 64 + static_cast<std::size_t>(std::countr_zero(word)));
      bits[wd] = 0;
    }
  }
  out.indices.resize(n);
  out.values.resize(n);
}

void ServerHalf::sum_to_delta(ModelUpdate& out) {
  out.kind = UpdateKind::kDelta;
  out.dense.clear();
  // Every candidate entry is written and the count moves on past the nonzeros only: no branch
  // to mispredict where zeros and nonzeros mix. Room for all candidates, then cut back (the
  // capacity stays, so later rounds do not allocate).
  const auto d = static_cast<std::size_t>(sum_.size());
  const std::size_t candidates = sum_dense_ ? d : touched_.size();
  out.indices.resize(candidates);
  out.values.resize(candidates);
  uint32_t* __restrict idx = out.indices.data();
  double* __restrict val = out.values.data();
  double* __restrict sum = sum_.data();
  // The pass that finds the nonzeros in order also clears the sum for the next round.
  std::size_t n = 0;
  if (sum_dense_) {
    n = util::compact_nonzero(sum, d, 0, idx, val);
  } else {
    for (uint32_t j : touched_) {
      idx[n] = j;
      val[n] = sum[j];
      n += sum[j] != 0.0;
      sum[j] = 0.0;
    }
  }
  sum_zero_ = true;
  out.indices.resize(n);
  out.values.resize(n);
}

void ServerHalf::shift_by_reply(uint32_t worker, double alpha, Eigen::VectorXd& h_i) const {
  if (!sparse_[worker]) {
    diana_shift(alpha, Eigen::Map<const Eigen::VectorXd>(dense_[worker].data, h_i.size()), h_i);
    return;
  }
  const std::span<const uint32_t> idx = sent_[worker].idx;
  const auto shift = [&](const auto& val) {
    for (std::size_t k = 0; k < idx.size(); ++k)
      if (val[k] != 0) h_i[idx[k]] += alpha * static_cast<double>(val[k]);
  };
  if (sparse_[worker] == kSentValues)
    shift(sent_[worker].val);
  else
    shift(reply_values_[worker]);
}

// ---- worker ---------------------------------------------------------------------------------

Eigen::VectorXd initial_point(const MethodConfig& config) {
  const auto d = static_cast<Eigen::Index>(config.dim);
  if (config.init_scale == 0.0) return Eigen::VectorXd::Zero(d);
  if (!(config.init_scale > 0.0) || !std::isfinite(config.init_scale))
    throw std::invalid_argument("init_scale must be a finite number >= 0");
  // 2u − 1 is exact for u = k·2⁻⁵³, so each entry is one rounding of S·(2u − 1): the same
  // double on every architecture.
  util::Rng rng(util::derive(config.seed, {util::tag(util::Stream::kInit)}));
  Eigen::VectorXd x(d);
  for (Eigen::Index j = 0; j < d; ++j) x[j] = config.init_scale * (2.0 * rng.uniform() - 1.0);
  return x;
}

WorkerHalf::WorkerHalf(const MethodConfig& config, uint32_t id, Model& model)
    : config_(config), id_(id), f_(model), q_(compress::make_compressor(config.compressor)) {
  if (id_ >= config_.workers)
    throw std::invalid_argument("worker id " + std::to_string(id_) +
                                " out of range (n = " + std::to_string(config_.workers) + ")");
  if (model.dim() != config_.dim)
    throw std::invalid_argument("worker " + std::to_string(id_) +
                                ": its model has d = " + std::to_string(model.dim()) +
                                " but the run has d = " + std::to_string(config_.dim));
  if (model.samples() == 0)
    throw std::invalid_argument("worker " + std::to_string(id_) + ": its model has no samples");
  support_ = model.gradient_support();
  for (std::size_t i = 0; i < support_.size(); ++i) {
    if (support_[i] >= config_.dim || (i > 0 && support_[i] <= support_[i - 1])) {
      throw std::invalid_argument(
          "worker " + std::to_string(id_) + ": its model's gradient_support() is not strictly " +
          "increasing below d = " + std::to_string(config_.dim) + " (column " +
          std::to_string(support_[i]) + " at position " + std::to_string(i) + ")");
    }
  }
  if (!support_.empty()) {
    support_bits_.assign((config_.dim + 63) / 64, 0);
    for (const uint32_t c : support_) support_bits_[c >> 6] |= uint64_t{1} << (c & 63);
  }
  try {
    check_batches_fit(config_, model.samples());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("worker " + std::to_string(id_) + ": " + e.what());
  }
  x_ = initial_point(config_);
  x_prev_ = x_;
}

double WorkerHalf::gradient(const Eigen::VectorXd& x, Eigen::VectorXd& out) {
  out.resize(x.size());
  return f_.gradient({x.data(), static_cast<std::size_t>(x.size())},
                     {out.data(), static_cast<std::size_t>(out.size())});
}

double WorkerHalf::gradient_on_support(const Eigen::VectorXd& x, Eigen::VectorXd& out) {
  if (support_.empty() || out.size() != x.size()) return gradient(x, out);
  return f_.gradient_on_support({x.data(), static_cast<std::size_t>(x.size())},
                                {out.data(), static_cast<std::size_t>(out.size())});
}

void WorkerHalf::subtract_on_support(const Eigen::VectorXd& a, Eigen::VectorXd& out) const {
  if (support_.empty()) {
    out = a - out;
    return;
  }
  for (const uint32_t c : support_) out[c] = a[c] - out[c];
}

void WorkerHalf::draw_minibatch(uint64_t round, uint64_t size, std::vector<uint32_t>& out) const {
  util::Rng rng(util::derive(config_.seed, {round, id_, util::tag(util::Stream::kMinibatch)}));
  const auto m = static_cast<uint64_t>(f_.samples());
  if (config_.batch_sampling == BatchSampling::kWithoutReplacement) {
    util::sample_sorted(rng, static_cast<uint32_t>(m), static_cast<uint32_t>(size), out);
    return;
  }
  out.resize(size);
  for (auto& j : out) j = static_cast<uint32_t>(rng.below(m));
}

void WorkerHalf::minibatch_gradient(const Eigen::VectorXd& x, std::span<const uint32_t> batch,
                                    Eigen::VectorXd& out) {
  out.resize(x.size());
  f_.minibatch_gradient({x.data(), static_cast<std::size_t>(x.size())}, batch,
                        {out.data(), static_cast<std::size_t>(out.size())});
}

void WorkerHalf::minibatch_difference(const Eigen::VectorXd& x, const Eigen::VectorXd& y,
                                      std::span<const uint32_t> batch, Eigen::VectorXd& out) {
  out.resize(x.size());
  f_.minibatch_difference({x.data(), static_cast<std::size_t>(x.size())},
                          {y.data(), static_cast<std::size_t>(y.size())}, batch,
                          {out.data(), static_cast<std::size_t>(out.size())});
}

bool WorkerHalf::on_broadcast(const Broadcast& b, Reply& reply) {
  if (b.round < next_round_)
    throw ProtocolError("stale broadcast of round " + std::to_string(b.round) +
                        " (expected round " + std::to_string(next_round_) + ")");
  if (b.round > next_round_) throw OutOfSync(next_round_, b.round);
  // Participants, dropped ids and the update were checked by the wire decoder against n and d.
  if (!restored_) {
    settle(b);
    advance(b.update);
  }
  restored_ = false;
  next_round_ = b.round + 1;
  const bool drawn = b.participants.empty() ||
                     std::binary_search(b.participants.begin(), b.participants.end(), id_);
  if (!drawn) return false;
  reply.worker = id_;
  reply.round = b.round;
  reply.local_loss.reset();
  reply.oracle_calls = 0;
  respond(b, reply);
  return true;
}

void WorkerHalf::restore(const Snapshot& s) {
  const auto d = static_cast<std::size_t>(config_.dim);
  // Every method mirrors one auxiliary d-vector (g^{k−1} or h^k) besides x.
  if (s.x.size() != d || s.aux.size() != d || (!s.x_prev.empty() && s.x_prev.size() != d) ||
      (!s.worker_aux.empty() && s.worker_aux.size() != d))
    throw ProtocolError("snapshot of round " + std::to_string(s.round) + " has the wrong size");
  x_ = Eigen::Map<const Eigen::VectorXd>(s.x.data(), static_cast<Eigen::Index>(d));
  if (s.x_prev.empty())
    x_prev_ = x_;
  else
    x_prev_ = Eigen::Map<const Eigen::VectorXd>(s.x_prev.data(), static_cast<Eigen::Index>(d));
  next_round_ = s.round;
  restored_ = true;
}

compress::Context WorkerHalf::context(const Broadcast& b) const {
  return compress::Context{b.round_seed, id_, config_.workers};
}

void WorkerHalf::compress_reply(const Eigen::VectorXd& v, const Broadcast& b, Reply& reply,
                                Eigen::VectorXd* decoded) {
  compress_within(v, nullptr, b, reply, decoded);
}

void WorkerHalf::compress_on_support(const Eigen::VectorXd& v, const Broadcast& b, Reply& reply) {
  compress_within(v, support_bits_.empty() ? nullptr : support_bits_.data(), b, reply, nullptr);
}

void WorkerHalf::compress_within(const Eigen::VectorXd& v, const uint64_t* support,
                                 const Broadcast& b, Reply& reply, Eigen::VectorXd* decoded) {
  const compress::Context ctx = context(b);
  try {
    q_->compress_within({v.data(), static_cast<std::size_t>(v.size())}, support, ctx,
                        reply.payload);
    if (decoded) compress::accumulate(reply.payload, *q_, ctx, 1.0, *decoded);
  } catch (const std::invalid_argument& e) {
    throw Diverged(b.round, e.what());
  }
}

}  // namespace marina::methods

// Tests of the mlp-device example's model and data: back-propagation against finite
// differences, minibatch gradients, the digits reader and split, and that plain gradient
// descent on a few hundred digits learns.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "../../examples/mlp-device/digits.h"
#include "../../examples/mlp-device/mlp.h"
#include "test_support.h"

namespace fs = std::filesystem;
using mlp_device::Digits;
using mlp_device::kClasses;
using mlp_device::kPixels;
using mlp_device::Mlp;
using mlp_device::SplitMix64;

namespace {

// `rows` samples with random pixels (about a third of them blank, like real digits) and labels.
Digits random_digits(std::size_t rows, uint64_t seed) {
  SplitMix64 rng(seed);
  Digits d;
  for (std::size_t j = 0; j < rows; ++j) {
    for (std::size_t i = 0; i < kPixels; ++i) {
      const double u = rng.uniform();
      d.pixels.push_back(u < 0.35 ? 0.0 : static_cast<double>(rng.below(17)) / 16.0);
    }
    d.labels.push_back(static_cast<uint8_t>(rng.below(kClasses)));
    d.rows.push_back(static_cast<uint32_t>(j));
  }
  return d;
}

std::vector<double> random_point(std::size_t d, double scale, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<double> x(d);
  for (double& v : x) v = scale * (2.0 * rng.uniform() - 1.0);
  return x;
}

Digits one_sample(const Digits& all, std::size_t j) {
  Digits d;
  d.pixels.assign(all.sample(j), all.sample(j) + kPixels);
  d.labels.push_back(all.labels[j]);
  d.rows.push_back(all.rows[j]);
  return d;
}

using marina::test::TempDir;

// A valid CSV line: pixel i is (i + k) mod 17, the class k mod 10.
std::string line(int k) {
  std::string s;
  for (int i = 0; i < 64; ++i) s += std::to_string((i + k) % 17) + ",";
  return s + std::to_string(k % 10) + "\n";
}

// The message of the error that reading `content` throws ("" if none is thrown).
std::string read_error(const TempDir& tmp, const std::string& content) {
  const fs::path p = tmp.write("digits.csv", content);
  try {
    (void)mlp_device::read_digits(p);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return {};
}

fs::path digits_file() {
#ifdef MARINA_REPO_DATA_DIR
  return fs::path(MARINA_REPO_DATA_DIR) / "digits.csv";
#else
  return fs::path("data") / "digits.csv";
#endif
}

}  // namespace

TEST_CASE("mlp example: gradient matches central finite differences") {
  for (const double l2 : {0.0, 0.05}) {
    CAPTURE(l2);
    Mlp model(random_digits(7, 3), {.hidden = 5, .l2 = l2, .data = {}});
    REQUIRE(model.dim() == 64 * 5 + 5 + 5 * 10 + 10);
    const std::vector<double> x = random_point(model.dim(), 0.5, 11);
    std::vector<double> g(model.dim()), scratch(model.dim());
    const double fx = model.gradient(x, g);
    CHECK(fx == doctest::Approx(model.loss(x, random_digits(7, 3))).epsilon(1e-15));

    // A few coordinates of every block (W1, b1, W2, b2), then random ones.
    std::vector<std::size_t> coords = {0,      7,           64 * 5 - 1, 64 * 5, 64 * 5 + 4,
                                       65 * 5, 65 * 5 + 31, 75 * 5 - 1, 75 * 5, 75 * 5 + 9};
    SplitMix64 rng(5);
    for (int k = 0; k < 10; ++k) coords.push_back(rng.below(model.dim()));
    double worst = 0.0;
    for (const std::size_t k : coords) {
      CAPTURE(k);
      const double h = 1e-5;
      std::vector<double> xp = x, xm = x;
      xp[k] += h;
      xm[k] -= h;
      const double fd = (model.gradient(xp, scratch) - model.gradient(xm, scratch)) / (2 * h);
      // Pixel columns that are blank in every sample have an exactly zero gradient.
      if (fd == 0.0 && g[k] == 0.0) continue;
      const double rel = std::fabs(g[k] - fd) / std::max(std::fabs(g[k]), std::fabs(fd));
      worst = std::max(worst, rel);
      CHECK(rel < 1e-5);
    }
    MESSAGE("largest relative error of the gradient vs central differences: " << worst);
  }
}

TEST_CASE("mlp example: minibatch gradients agree with the full and per-sample gradients") {
  const Digits data = random_digits(9, 21);
  Mlp model(data, {.hidden = 4, .l2 = 0.01, .data = {}});
  const std::vector<double> x = random_point(model.dim(), 0.3, 2);
  std::vector<double> full(model.dim()), batch(model.dim());
  (void)model.gradient(x, full);

  std::vector<uint32_t> all(data.size());
  for (uint32_t j = 0; j < all.size(); ++j) all[j] = j;
  model.minibatch_gradient(x, all, batch);
  for (std::size_t k = 0; k < model.dim(); ++k)
    CHECK(batch[k] == doctest::Approx(full[k]).epsilon(1e-13).scale(1e-15));

  // A repeated index is that sample's gradient: the full gradient of a one-sample model.
  const std::vector<uint32_t> three = {3, 3, 3};
  model.minibatch_gradient(x, three, batch);
  Mlp single(one_sample(data, 3), {.hidden = 4, .l2 = 0.01, .data = {}});
  std::vector<double> g3(model.dim());
  (void)single.gradient(x, g3);
  for (std::size_t k = 0; k < model.dim(); ++k)
    CHECK(batch[k] == doctest::Approx(g3[k]).epsilon(1e-13).scale(1e-15));

  // The default minibatch_difference: the difference of two minibatch gradients.
  const std::vector<double> y = random_point(model.dim(), 0.3, 9);
  const std::vector<uint32_t> some = {0, 5, 5, 8, 2};
  std::vector<double> diff(model.dim()), gx(model.dim()), gy(model.dim());
  model.minibatch_difference(x, y, some, diff);
  model.minibatch_gradient(x, some, gx);
  model.minibatch_gradient(y, some, gy);
  for (std::size_t k = 0; k < model.dim(); ++k)
    CHECK(diff[k] == doctest::Approx(gx[k] - gy[k]).epsilon(1e-13).scale(1e-15));

  const std::vector<uint32_t> empty, outside = {1, 9};
  CHECK_THROWS_AS(model.minibatch_gradient(x, empty, batch), std::invalid_argument);
  CHECK_THROWS_AS(model.minibatch_gradient(x, outside, batch), std::out_of_range);
  CHECK_THROWS_AS((void)model.gradient(std::span(x).first(10), full), std::invalid_argument);
}

TEST_CASE("mlp example: smoothness is cached and description names the setup") {
  Mlp model(random_digits(20, 4), {.hidden = 6, .l2 = 1e-4, .data = "split-seed=1"});
  const marina::Smoothness s = model.smoothness();
  CHECK(s.L > 0.0);
  CHECK(std::isfinite(s.L));
  CHECK(model.smoothness().L == s.L);
  CHECK(model.description() == "mlp 64-6-10 tanh softmax-xent l2=0.0001 split-seed=1");
}

TEST_CASE("mlp example: the digits reader rejects malformed lines with FILE:LINE") {
  TempDir tmp;
  const fs::path p = tmp.write("good.csv", line(0) + "\n" + line(1) + line(2));
  const Digits d = mlp_device::read_digits(p);
  REQUIRE(d.size() == 3);
  CHECK(d.labels[2] == 2);
  CHECK(d.sample(1)[0] == doctest::Approx(1.0 / 16.0));
  CHECK(d.sample(0)[16] == 1.0);
  CHECK(d.rows[2] == 2);

  std::string short_line = line(1);
  short_line.erase(0, short_line.find(',') + 1);  // drops the first value
  CHECK(read_error(tmp, line(0) + short_line).find("digits.csv:2: expected 65") !=
        std::string::npos);
  std::string big_pixel = line(0);
  big_pixel.replace(0, 1, "17");
  CHECK(read_error(tmp, line(0) + line(1) + big_pixel).find("digits.csv:3: pixel 1 is 17") !=
        std::string::npos);
  std::string bad_class = line(0);
  bad_class.replace(bad_class.rfind(',') + 1, 1, "10");
  CHECK(read_error(tmp, bad_class).find("digits.csv:1: class is 10") != std::string::npos);
  std::string text = line(0);
  text.replace(0, 1, "x");
  CHECK(read_error(tmp, text).find("digits.csv:1: value 1 'x' is not an integer") !=
        std::string::npos);
  CHECK(read_error(tmp, "").find("no data rows") != std::string::npos);
  CHECK_THROWS_AS((void)mlp_device::read_digits(tmp.write("x", "") / "missing"),
                  std::runtime_error);
}

TEST_CASE("mlp example: the split is deterministic, disjoint and shares the test set") {
  // SplitMix64's published first output for seed 0: the shuffle is the same everywhere.
  CHECK(SplitMix64(0).next() == 0xe220a8397b1dcdafULL);

  const Digits all = random_digits(103, 8);
  std::set<uint32_t> seen, test_rows;
  std::vector<uint32_t> first_test;
  for (uint32_t shard = 0; shard < 4; ++shard) {
    const mlp_device::SplitOptions options{
        .test_fraction = 0.2, .seed = 5, .shard = shard, .shards = 4};
    const auto split = mlp_device::split_digits(all, options);
    const auto again = mlp_device::split_digits(all, options);
    CHECK(split.train.rows == again.train.rows);
    CHECK(split.train.pixels == again.train.pixels);
    CHECK(split.test.size() == 21);   // round(0.2 · 103)
    CHECK(split.train.size() == 20);  // (103 − 21) / 4, two rows dropped
    if (shard == 0) first_test = split.test.rows;
    CHECK(split.test.rows == first_test);
    for (std::size_t j = 0; j < split.train.size(); ++j) {
      const uint32_t r = split.train.rows[j];
      CHECK(seen.insert(r).second);
      CHECK(split.train.labels[j] == all.labels[r]);
      CHECK(split.train.sample(j)[7] == all.sample(r)[7]);
    }
  }
  for (const uint32_t r : first_test) CHECK(seen.count(r) == 0);
  CHECK(std::set<uint32_t>(first_test.begin(), first_test.end()).size() == first_test.size());

  const auto other = mlp_device::split_digits(all, {.test_fraction = 0.2, .seed = 6});
  CHECK(other.test.rows != first_test);
  CHECK_THROWS_AS((void)mlp_device::split_digits(all, {.shard = 4, .shards = 4}),
                  std::invalid_argument);
  CHECK_THROWS_AS((void)mlp_device::split_digits(all, {.test_fraction = 1.0}),
                  std::invalid_argument);
  CHECK_THROWS_AS((void)mlp_device::split_digits(all, {.shards = 100}), std::invalid_argument);
}

TEST_CASE("mlp example: gradient descent on 300 digits learns") {
  const fs::path file = digits_file();
  if (!fs::exists(file)) {
    MESSAGE("skipped: " << file.string() << " is missing (scripts/fetch-data.sh writes it)");
    return;
  }
  const Digits all = mlp_device::read_digits(file);
  REQUIRE(all.size() == 1797);
  const auto split = mlp_device::split_digits(all, {.test_fraction = 0.2, .seed = 1});
  Digits train;
  for (std::size_t j = 0; j < 300; ++j) {
    train.pixels.insert(train.pixels.end(), split.train.sample(j), split.train.sample(j) + kPixels);
    train.labels.push_back(split.train.labels[j]);
    train.rows.push_back(split.train.rows[j]);
  }
  Mlp model(train, {.hidden = 32, .l2 = 1e-4, .data = {}});
  std::vector<double> x = random_point(model.dim(), 0.1, 1), g(model.dim());
  const double first = model.gradient(x, g);
  double last = first;
  for (int it = 0; it < 200; ++it) {
    last = model.gradient(x, g);
    for (std::size_t k = 0; k < x.size(); ++k) x[k] -= 0.5 * g[k];
  }
  const double train_accuracy = model.accuracy(x, train);
  MESSAGE("GD: loss " << first << " -> " << last << ", training accuracy " << train_accuracy
                      << ", test accuracy " << model.accuracy(x, split.test));
  CHECK(last < 0.5 * first);
  CHECK(train_accuracy > 0.9);
}

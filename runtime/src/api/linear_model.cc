// marina::load_linear_model: the built-in linear classifier (problem::Objective) on a shard
// of a LibSVM file, behind the public Model interface.

#include "marina/linear_model.h"

#include <stdexcept>

#include "marina/data/dataset.h"
#include "marina/problem/objective.h"

namespace marina {

std::unique_ptr<Model> load_linear_model(const LinearModelOptions& o) {
  if (o.shards == 0 || o.shard >= o.shards)
    throw std::invalid_argument("shard " + std::to_string(o.shard) + " of " +
                                std::to_string(o.shards) + ": expected 0 <= shard < shards");
  const problem::Loss loss = problem::parse_loss(o.loss);
  data::Dataset shard = data::read_libsvm_shard(o.data, {o.shard, o.shards, o.shuffle_seed});
  if (o.bias) data::append_bias(shard);
  return std::make_unique<problem::Objective>(
      std::move(shard), loss, o.l2, problem::describe(loss, o.l2, o.bias, o.shuffle_seed));
}

}  // namespace marina

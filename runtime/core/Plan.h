//===- Plan.h - Loading and verifying plan.bin ----------------------------===//
//
// "Validate once, then run blind" (design.md §3): loading checks the
// FlatBuffers structure, the identifier and version, every buffer against
// the arena, every step's op name and operand/result indices, so the execute
// loop can trust the plan. Never throws; a bad plan is a message.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CORE_PLAN_H
#define FORGE_RUNTIME_CORE_PLAN_H

#include "runtime/core/CommWindow.h"
#include "runtime/core/plan_generated.h"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace forge::runtime {

/// The plan format version this runtime reads.
constexpr uint32_t kPlanVersion = 6;

/// Arena alignment of every buffer, in bytes.
constexpr uint64_t kArenaAlignment = 64;

/// The program a pipeline action runs: `forward.<slot>` (`backward.`), or
/// `forward.<chunk>.<slot>` when the stage holds several model chunks.
inline std::string pipelineProgram(bool backward, int64_t chunk, int64_t slot,
                                   int64_t virtualStages) {
  return std::string(backward ? "backward." : "forward.") +
         (virtualStages > 1 ? std::to_string(chunk) + "." : "") +
         std::to_string(slot);
}

/// Bytes per element.
uint64_t dtypeSize(plan::DType t);
const char *dtypeName(plan::DType t);

/// How many operands and results a step of this op has (-1: any number).
struct OpInfo {
  std::string_view name;
  int operands;
  int results;
};

/// The op a plan step names, or null for an op this runtime does not know.
const OpInfo *findOp(std::string_view name);

/// Every op this runtime knows.
const std::vector<OpInfo> &knownOps();

/// Checks a plan held in memory. Returns an empty string when it is valid,
/// otherwise the first problem found.
std::string verifyPlan(const uint8_t *data, size_t size);

/// A verified plan and the bytes it lives in.
struct LoadedPlan {
  std::vector<uint8_t> bytes;
  const plan::Plan *get() const { return plan::GetPlan(bytes.data()); }
};

/// Where a (possibly sharded) buffer lies in its global tensor: the
/// rank's block starts at `lo` and has `shape`; `global` is the full shape.
/// Along each dim only the first `valid` entries exist: the rest is the
/// zero padding of uneven splits.
struct Block {
  std::vector<int64_t> lo, shape, global, valid;

  /// Whether local element `i` exists, and if so its row-major index in the
  /// global tensor.
  bool globalIndex(int64_t i, int64_t &g) const {
    if (shape == global) { // not split
      g = i;
      return true;
    }
    int64_t idx[16];
    const size_t rank = shape.size();
    for (size_t d = rank; d-- > 0;) {
      idx[d] = i % shape[d];
      i /= shape[d];
    }
    g = 0;
    for (size_t d = 0; d < rank; ++d) {
      if (idx[d] >= valid[d])
        return false;
      g = g * global[d] + lo[d] + idx[d];
    }
    return true;
  }
};

/// The block of buffer `b` this rank holds, from the size of each mesh dim
/// and the rank's coordinate in it. Returns an error for splits that do
/// not divide (a verified plan has none).
std::string localBlock(const plan::Buffer *b,
                       const std::function<int64_t(const std::string &)> &size,
                       const std::function<int64_t(const std::string &)> &coord,
                       Block &out);

/// A stacked buffer (forge-shard-experts: one expert per row of dim 0) has
/// one `*` in its name, standing for the row: "layers.0.mlp.experts.*.
/// gate_proj.weight" holds "layers.0.mlp.experts.<e>.gate_proj.weight".
/// Initialization seeds, weight files and state dumps use the row names.
inline bool isStacked(std::string_view name) {
  return name.find('*') != std::string_view::npos;
}
/// The name of row `i` of stacked buffer `name`.
inline std::string stackedName(std::string_view name, int64_t i) {
  size_t star = name.find('*');
  return std::string(name.substr(0, star)) + std::to_string(i) +
         std::string(name.substr(star + 1));
}

/// Bytes of scratch the CPU runtime needs to run collective `op` (a
/// "dist.*" step) over `n` ranks along `dim`, from its input and result
/// shapes: none when the blocks are contiguous and even (dim 0 of an even
/// split), else the gathered blocks (all_gather) or the f32 blocks to
/// reduce (reduce_scatter). The runtime allocates the largest one once and
/// forgec --report shows it as "comm buffers".
uint64_t collectiveScratchBytes(std::string_view op, int64_t dim, int64_t n,
                                const std::vector<int64_t> &in,
                                const std::vector<int64_t> &out,
                                plan::DType dtype);

/// Reads and verifies `path`. Returns an empty string on success.
std::string loadPlan(const std::string &path, LoadedPlan &out);

} // namespace forge::runtime

#endif // FORGE_RUNTIME_CORE_PLAN_H

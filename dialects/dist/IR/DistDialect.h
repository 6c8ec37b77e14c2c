//===- DistDialect.h - The dist collectives dialect -------------*- C++ -*-===//

#ifndef FORGE_DIALECTS_DIST_IR_DISTDIALECT_H
#define FORGE_DIALECTS_DIST_IR_DISTDIALECT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Dialect.h"

#include "dialects/dist/IR/DistDialect.h.inc"

#include <cstdint>
#include <string>
#include <vector>

namespace forge::dist {

/// The module attribute holding the mesh, and a param's shard spec.
constexpr const char kMeshAttr[] = "dist.mesh";
constexpr const char kShardAttr[] = "dist.shard";
/// Module attribute: tensor parallelism shards the residual stream along the
/// sequence where reference §3.3 allows it (distributed.sequence_parallel).
constexpr const char kSequenceParallelAttr[] = "dist.sequence_parallel";

/// The mesh of a module: dims in order with their sizes (empty when the
/// module is not sharded).
struct Mesh {
  std::vector<std::string> dims;
  std::vector<int64_t> sizes;

  /// The size of `dim`, or 0 when the mesh has no such dim.
  int64_t size(const std::string &dim) const;
};

/// Reads `dist.mesh` of `module` (an empty mesh when absent). Returns false
/// with `error` set when the attribute is malformed.
bool readMesh(mlir::ModuleOp module, Mesh &mesh, std::string &error);

/// Sets `dist.mesh` on `module`.
void writeMesh(mlir::ModuleOp module, const Mesh &mesh);

/// On a module with pp > 1: {schedule = "1f1b" | "gpipe" |
/// "interleaved_1f1b", micro_batches = N} (distributed.pp_schedule,
/// train.grad_accum_steps).
constexpr const char kPipelineAttr[] = "dist.pipeline";

/// On a pipeline stage's module after forge-schedule: its programs in
/// order, as (backward ? 1 : 0, micro-batch, activation slot, model chunk)
/// quadruples.
constexpr const char kPipelineActionsAttr[] = "dist.pipeline_actions";

/// With virtual pipeline stages (interleaved_1f1b), on the ops
/// forge-split-pipeline adds to sum a rank's chunk outputs into its
/// program's result: forge-schedule drops them when it gives each chunk its
/// own programs.
constexpr const char kPipelineGlueAttr[] = "dist.pipeline_glue";

/// On a pipeline stage's module (forge-split-pipeline): its stage index.
constexpr const char kStageAttr[] = "dist.stage";

/// Why a collective is there (design.md §5.7): the attribute `dist.origin`
/// = {pass, what, of, phase} that the pass placing it sets, e.g.
/// {pass = "forge-shard-fsdp", what = "weight gather",
///  of = "layers.0.attention.q_proj.weight", phase = "forward"}.
constexpr const char kOriginAttr[] = "dist.origin";
void setOrigin(mlir::Operation *op, llvm::StringRef pass, llvm::StringRef what,
               llvm::StringRef of, llvm::StringRef phase);
/// The parts of `op`'s origin (empty strings when it has none).
struct Origin {
  std::string pass, what, of, phase;
  /// "pass: what (phase)", the reason without its subject; "" without one.
  std::string reason() const;
};
Origin originOf(mlir::Operation *op);

/// One split of a sharded parameter (see `dist.shard`).
struct Split {
  int64_t dim;
  std::string group;
  /// The size along `dim` before the split when the group's size does not
  /// divide it (the blocks are then ceil(size / n), the last ones padded);
  /// 0 for an even split.
  int64_t size = 0;
};

/// The splits recorded in `op`'s `dist.shard`, outermost first (empty when
/// it has none). Returns false with `error` set when the attribute is
/// malformed.
bool readShard(mlir::Operation *op, std::vector<Split> &splits,
               std::string &error);

/// Appends a split (the innermost one) to `op`'s `dist.shard`.
void appendShard(mlir::Operation *op, int64_t dim, const std::string &group,
                 int64_t size = 0);

} // namespace forge::dist

#endif // FORGE_DIALECTS_DIST_IR_DISTDIALECT_H

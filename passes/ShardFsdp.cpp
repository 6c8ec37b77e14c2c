//===- ShardFsdp.cpp - Parameters sharded over dp_shard -------------------===//
//
// FSDP as a graph rewrite: each trainable parameter becomes its dim-0 shard
// and each read of it gathers the full tensor (the rank's tensor-parallel
// block when forge-shard-tensor-parallel split it first). Everything else
// follows from the other passes: autodiff turns the gather into the gradient's
// reduce-scatter, the optimizer pass builds sharded state from the sharded
// gradients, and memory planning counts the gathered copies.
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace forge {
#define GEN_PASS_DEF_SHARDFSDPPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

constexpr const char kGroup[] = "dp_shard";

struct ShardFsdpPass : public forge::impl::ShardFsdpPassBase<ShardFsdpPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    dist::Mesh mesh;
    std::string error;
    if (!dist::readMesh(module, mesh, error)) {
      module.emitError("forge-shard-fsdp: ") << error;
      return signalPassFailure();
    }
    const int64_t n = mesh.size(kGroup);
    if (n <= 1)
      return; // nothing to shard: a single rank or pure replication
    OpBuilder b(&getContext());
    // Shard every trainable parameter along dim 0.
    llvm::DenseMap<StringAttr, RankedTensorType> full;
    for (ParamOp p : module.getOps<ParamOp>()) {
      if (p.getBuffer())
        continue;
      RankedTensorType t = p.getTensorType();
      if (t.getRank() == 0) {
        p.emitError("forge-shard-fsdp: cannot shard the scalar '")
            << p.getSymName() << "'";
        return signalPassFailure();
      }
      // Uneven dims are padded as FSDP2 does: blocks of ceil(d0 / n) rows,
      // the last ones ending in zero rows that never train (their gradient
      // and optimizer state stay zero).
      const int64_t d0 = t.getDimSize(0);
      SmallVector<int64_t> shape(t.getShape());
      shape[0] = (d0 + n - 1) / n;
      full[p.getSymNameAttr()] = t;
      p.setTypeAttr(
          TypeAttr::get(RankedTensorType::get(shape, t.getElementType())));
      // After tensor parallelism this splits the rank's tp block further.
      dist::appendShard(p, 0, kGroup, d0 % n ? d0 : 0);
    }
    // Every read of a sharded parameter gathers it: the shard in, the full
    // tensor out, for the same uses as before.
    module.walk([&](GetParamOp get) {
      auto it = full.find(get.getNameAttr().getAttr());
      if (it == full.end())
        return;
      // (get_param's verifier guarantees it reads the parameter's type.)
      RankedTensorType fullType = it->second;
      b.setInsertionPointAfter(get);
      auto shardType = cast<RankedTensorType>(
          module.lookupSymbol<ParamOp>(get.getNameAttr().getAttr()).getType());
      get.getResult().setType(shardType);
      auto gather = dist::AllGatherOp::create(
          b, get.getLoc(), fullType, get.getResult(), b.getI64IntegerAttr(0),
          b.getStringAttr(kGroup), b.getI64IntegerAttr(n), b.getUnitAttr(),
          UnitAttr());
      dist::setOrigin(gather, "forge-shard-fsdp", "weight gather",
                      get.getName(), "forward");
      get.getResult().replaceAllUsesExcept(gather.getResult(), gather);
    });
  }
};

} // namespace

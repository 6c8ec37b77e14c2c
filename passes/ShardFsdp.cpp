//===- ShardFsdp.cpp - Parameters sharded over dp_shard -------------------===//
//
// FSDP as a graph rewrite: each trainable parameter becomes its dim-0 shard
// and each read of it gathers the full tensor. Everything else follows from
// the other passes: autodiff turns the gather into the gradient's
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
      if (p.getBuffer() || p->hasAttr(dist::kShardAttr))
        continue;
      RankedTensorType t = p.getTensorType();
      if (t.getRank() == 0 || t.getDimSize(0) % n != 0) {
        p.emitError("forge-shard-fsdp: cannot shard '")
            << p.getSymName() << "' " << t << " evenly over dp_shard " << n
            << ": dim 0 must be a multiple of " << n
            << " (FSDP2 pads uneven shards; forge does not yet); choose a "
               "dp_shard that divides it";
        return signalPassFailure();
      }
      SmallVector<int64_t> shape(t.getShape());
      shape[0] /= n;
      full[p.getSymNameAttr()] = t;
      p.setTypeAttr(
          TypeAttr::get(RankedTensorType::get(shape, t.getElementType())));
      p->setAttr(dist::kShardAttr,
                 b.getDictionaryAttr(
                     {b.getNamedAttr("dim", b.getI64IntegerAttr(0)),
                      b.getNamedAttr("group", b.getStringAttr(kGroup))}));
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
          b.getStringAttr(kGroup), b.getI64IntegerAttr(n), b.getUnitAttr());
      get.getResult().replaceAllUsesExcept(gather.getResult(), gather);
    });
  }
};

} // namespace

//===- ShardFsdp.cpp - Parameters sharded over dp_shard -------------------===//
//
// FSDP as a graph rewrite: each trainable parameter becomes its dim-0 shard
// and each read of it gathers the full tensor (the rank's tensor-parallel
// block when forge-shard-tensor-parallel split it first). Everything else
// follows from the other passes: autodiff turns the gather into the gradient's
// reduce-scatter, the optimizer pass builds sharded state from the sharded
// gradients, and memory planning counts the gathered copies.
//
// A gathered weight that only feeds an fp8 cast (forge-convert-fp8 ran
// before) is gathered in fp8: the cast moves into the gather
// (`dist.all_gather {fp8 = "e4m3"}`), which moves one byte per element and
// yields exactly the cast's values, as FSDP2's float8 all-gather does.
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
    SmallVector<dist::AllGatherOp> gathers;
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
          UnitAttr(), StringAttr());
      dist::setOrigin(gather, "forge-shard-fsdp", "weight gather",
                      get.getName(), "forward");
      get.getResult().replaceAllUsesExcept(gather.getResult(), gather);
      gathers.push_back(gather);
    });
    // After the walk: fusing erases casts the walk would still visit.
    for (dist::AllGatherOp gather : gathers)
      fuseFp8Cast(gather);
  }

  /// Moves the fp8 casts that read a weight gather into the gather when
  /// nothing else reads it.
  static void fuseFp8Cast(dist::AllGatherOp gather) {
    std::optional<StringRef> format;
    SmallVector<Fp8CastOp> casts;
    for (Operation *user : gather.getResult().getUsers()) {
      auto cast = dyn_cast<Fp8CastOp>(user);
      if (!cast || (format && *format != cast.getFormat()))
        return;
      format = cast.getFormat();
      casts.push_back(cast);
    }
    if (casts.empty())
      return;
    gather.setFp8(*format);
    for (Fp8CastOp cast : casts) {
      cast.getResult().replaceAllUsesWith(gather.getResult());
      cast.erase();
    }
  }
};

} // namespace

//===- CheckpointActivations.cpp - Recompute regions for the backward -----===//
//
// Activation checkpointing as data: this pass only marks which forward ops
// of @train_step the backward recomputes (`forge.remat = N`, the block
// they belong to); forge-build-backward clones each marked region right
// before its VJPs and differentiates the clones, so the forward values the
// region computes die at the end of the forward pass and the memory plan
// no longer keeps them.
//
// Blocks are found from the IR alone, so a dumped file reproduces the pass:
// an op reading a parameter `layers.N.*` belongs to block N, any other
// parameter read puts it outside every block, and an op without parameter
// operands belongs to the latest block among its operands' (a residual add
// joins its block; the final norm reads `norm.weight` and is outside).
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace forge {
#define GEN_PASS_DEF_CHECKPOINTACTIVATIONSPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

/// N for a parameter `layers.N.*`, -1 for any other.
int64_t blockOfParam(StringRef fqn) {
  if (!fqn.consume_front("layers."))
    return -1;
  int64_t n;
  if (fqn.split('.').first.getAsInteger(10, n))
    return -1;
  return n;
}

struct CheckpointActivationsPass
    : public forge::impl::CheckpointActivationsPassBase<
          CheckpointActivationsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto mode = module->getAttrOfType<StringAttr>(kActivationCheckpointingAttr);
    if (!mode || mode.getValue() == "none")
      return;
    if (mode.getValue() != "full" && mode.getValue() != "selective") {
      module.emitError("forge-checkpoint-activations: ")
          << kActivationCheckpointingAttr << " must be none, full or "
          << "selective, got '" << mode.getValue() << "'";
      return signalPassFailure();
    }
    const bool full = mode.getValue() == "full";
    auto fn = module.lookupSymbol<func::FuncOp>("train_step");
    if (!fn)
      return;
    Builder b(&getContext());
    DenseMap<Value, int64_t> block;
    for (Operation &op : fn.getBody().front()) {
      int64_t n = -1;
      bool readsParam = false;
      if (auto get = dyn_cast<GetParamOp>(op)) {
        n = blockOfParam(get.getName());
        readsParam = true;
      } else {
        for (Value v : op.getOperands()) {
          auto get = v.getDefiningOp<GetParamOp>();
          if (!get)
            continue;
          int64_t p = blockOfParam(get.getName());
          n = readsParam ? std::max(n, p) : p;
          readsParam = true;
        }
        if (!readsParam)
          for (Value v : op.getOperands()) {
            auto it = block.find(v); // program inputs are in no block
            n = std::max(n, it == block.end() ? int64_t{-1} : it->second);
          }
      }
      for (Value r : op.getResults())
        block[r] = n;
      // A pipeline send or receive happens once: it is never recomputed
      // (its value belongs to no block's recompute region).
      if (isa<dist::SendOp, dist::RecvOp>(op))
        for (Value r : op.getResults())
          block[r] = -1;
      if (n < 0 ||
          isa<GetParamOp, func::ReturnOp, dist::SendOp, dist::RecvOp>(op))
        continue;
      // Selective: matmul and collective outputs are saved; the cheap ops
      // and attention between them are recomputed.
      if (!full && (isa<LinearOp, GroupedLinearOp>(op) ||
                    isa<dist::DistDialect>(op.getDialect())))
        continue;
      op.setAttr(kRematAttr, b.getI64IntegerAttr(n));
    }
  }
};

} // namespace

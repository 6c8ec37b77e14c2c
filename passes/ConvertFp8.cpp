//===- ConvertFp8.cpp - FP8 matmuls with dynamic tensor-wise scaling ------===//
//
// `mixed_precision = "fp8"` as a graph rewrite (reference §3.8, torchao's
// convert_to_float8_training with the tensorwise recipe): each converted
// linear becomes
//
//   y = fp8_grad_cast(linear(fp8_cast(x, e4m3), fp8_cast(w, e4m3)))
//
// so the forward matmul sees both operands rounded through e4m3 with their
// own dynamic scale, and autodiff gives the two backward matmuls the output
// gradient rounded through e5m2 (fp8_grad_cast's VJP) against the same e4m3
// operands; the bf16 parameters stay the masters. Converted are the linears
// that read a parameter whose FQN names none of `experts`, `shared_expert`
// or `router`: attention q/k/v/o, the dense MLP and the output head.
//
//===----------------------------------------------------------------------===//

#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace forge {
#define GEN_PASS_DEF_CONVERTFP8PASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

bool converted(StringRef fqn) {
  return !fqn.contains("experts") && !fqn.contains("shared_expert") &&
         !fqn.contains("router");
}

struct ConvertFp8Pass : public forge::impl::ConvertFp8PassBase<ConvertFp8Pass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!module->hasAttr(kFp8Attr))
      return;
    OpBuilder b(&getContext());
    SmallVector<LinearOp> linears;
    module.walk([&](LinearOp l) {
      auto get = l.getWeight().getDefiningOp<GetParamOp>();
      if (get && converted(get.getName()))
        linears.push_back(l);
    });
    auto e4m3 = b.getStringAttr("e4m3");
    for (LinearOp l : linears) {
      b.setInsertionPoint(l);
      for (OpOperand &use : l->getOpOperands())
        use.set(Fp8CastOp::create(b, l.getLoc(), use.get().getType(), use.get(),
                                  e4m3));
      b.setInsertionPointAfter(l);
      auto out = Fp8GradCastOp::create(b, l.getLoc(), l.getType(), l);
      l.getResult().replaceAllUsesExcept(out, out);
    }
  }
};

} // namespace

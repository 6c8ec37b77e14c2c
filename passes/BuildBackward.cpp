//===- BuildBackward.cpp - Reverse-mode autodiff of @train_step -----------===//
//
// One VJP rule per forward op. The numerics of every rule are those of the
// reference kernels (runtime/cpu/RefKernels), which are checked against
// finite differences; this pass only wires the cotangents.
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/TypeSwitch.h"

namespace forge {
#define GEN_PASS_DEF_BUILDBACKWARDPASS
#include "passes/Passes.h.inc"
} // namespace forge

#include <map>

using namespace mlir;
using namespace forge;

namespace {

class Differentiator {
public:
  Differentiator(OpBuilder &b) : b_(b) {}

  /// Adds `g` to the cotangent of `v` (integer tensors have none).
  void accumulate(Value v, Value g) {
    if (!isa<FloatType>(cast<RankedTensorType>(v.getType()).getElementType()))
      return;
    v = key(v);
    auto it = cot_.find(v);
    if (it == cot_.end()) {
      cot_[v] = g;
      return;
    }
    it->second = AddOp::create(b_, g.getLoc(), v.getType(), it->second, g);
  }

  Value cotangent(Value v) {
    auto it = cot_.find(key(v));
    return it == cot_.end() ? Value() : it->second;
  }

  Value zeros(Type t, Location loc) {
    return FillOp::create(b_, loc, t, b_.getF64FloatAttr(0.0));
  }

  /// `g` scaled by 1 / n: the VJP of an average over a group of n ranks.
  Value meanOver(Value g, int64_t n, Location loc) {
    return ScaleOp::create(b_, loc, g.getType(), g,
                           b_.getF64FloatAttr(1.0 / static_cast<double>(n)));
  }

  Value cotangentOrZero(Value v, Location loc) {
    Value g = cotangent(v);
    return g ? g : zeros(v.getType(), loc);
  }

  /// Emits the VJP of `op`. Fails (with a diagnostic) for an op without one.
  LogicalResult differentiate(Operation *op);

  llvm::MapVector<StringAttr, Value> paramGrads;

  /// A recomputed value (activation checkpointing) shares the cotangent of
  /// the forward value it recomputes.
  void setAlias(Value recomputed, Value original) {
    alias_[recomputed] = original;
  }

private:
  Value key(Value v) const {
    auto it = alias_.find(v);
    return it == alias_.end() ? v : it->second;
  }

  OpBuilder &b_;
  DenseMap<Value, Value> cot_, alias_;
};

LogicalResult Differentiator::differentiate(Operation *op) {
  Location loc = op->getLoc();
  auto acc = [&](Value v, Value g) { accumulate(v, g); };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](GetParamOp p) {
        StringAttr name = p.getNameAttr().getAttr();
        Value g = cotangent(p.getResult());
        auto it = paramGrads.find(name);
        if (it == paramGrads.end())
          paramGrads.insert({name, g});
        else
          it->second = AddOp::create(b_, loc, g.getType(), it->second, g);
        return success();
      })
      .Case([&](EmbeddingOp e) {
        acc(e.getTable(),
            EmbeddingGradOp::create(b_, loc, e.getTable().getType(),
                                    cotangent(e.getResult()), e.getIds()));
        return success();
      })
      .Case([&](LinearOp l) {
        Value dy = cotangent(l.getResult());
        acc(l.getInput(),
            LinearGradInputOp::create(b_, loc, l.getInput().getType(), dy,
                                      l.getWeight()));
        acc(l.getWeight(),
            LinearGradWeightOp::create(b_, loc, l.getWeight().getType(), dy,
                                       l.getInput()));
        return success();
      })
      .Case([&](GroupedLinearOp g) {
        Value dy = cotangent(g.getResult());
        acc(g.getInput(),
            GroupedLinearGradInputOp::create(
                b_, loc, g.getInput().getType(), dy, g.getWeight(),
                g.getGroupSizes(), g.getLayoutAttr()));
        acc(g.getWeight(),
            GroupedLinearGradWeightOp::create(
                b_, loc, g.getWeight().getType(), dy, g.getInput(),
                g.getGroupSizes(), g.getLayoutAttr()));
        return success();
      })
      .Case([&](StackOp s) {
        auto parts = UnstackOp::create(b_, loc, s.getInputs().getTypes(),
                                       cotangent(s.getResult()));
        for (auto [in, g] : llvm::zip(s.getInputs(), parts.getResults()))
          acc(in, g);
        return success();
      })
      .Case([&](RMSNormOp n) {
        auto g = RMSNormGradOp::create(
            b_, loc, TypeRange{n.getInput().getType(), n.getWeight().getType()},
            n.getInput(), n.getWeight(), cotangent(n.getResult()),
            n.getEpsAttr());
        acc(n.getInput(), g.getDinput());
        acc(n.getWeight(), g.getDweight());
        return success();
      })
      .Case([&](LayerNormOp n) {
        Type wt = n.getWeight().getType();
        auto g = LayerNormGradOp::create(
            b_, loc, TypeRange{n.getInput().getType(), wt, wt}, n.getInput(),
            n.getWeight(), cotangent(n.getResult()), n.getEpsAttr());
        acc(n.getInput(), g.getDinput());
        acc(n.getWeight(), g.getDweight());
        acc(n.getBias(), g.getDbias());
        return success();
      })
      .Case([&](ReshapeOp r) {
        acc(r.getInput(), ReshapeOp::create(b_, loc, r.getInput().getType(),
                                            cotangent(r.getResult())));
        return success();
      })
      .Case([&](RopeOp r) {
        acc(r.getInput(),
            RopeGradOp::create(b_, loc, r.getInput().getType(),
                               cotangent(r.getResult()), r.getThetaAttr()));
        return success();
      })
      .Case([&](AttentionOp a) {
        auto g = AttentionGradOp::create(
            b_, loc,
            TypeRange{a.getQ().getType(), a.getK().getType(),
                      a.getV().getType()},
            a.getQ(), a.getK(), a.getV(), a.getResult(),
            cotangent(a.getResult()), a.getDocIds(), a.getCausalAttr(),
            a.getScaleAttr());
        acc(a.getQ(), g.getDq());
        acc(a.getK(), g.getDk());
        acc(a.getV(), g.getDv());
        return success();
      })
      .Case([&](SiluOp u) {
        acc(u.getInput(), SiluGradOp::create(b_, loc, u.getType(), u.getInput(),
                                             cotangent(u.getResult())));
        return success();
      })
      .Case([&](GeluOp u) {
        acc(u.getInput(), GeluGradOp::create(b_, loc, u.getType(), u.getInput(),
                                             cotangent(u.getResult())));
        return success();
      })
      .Case([&](ReluOp u) {
        acc(u.getInput(), ReluGradOp::create(b_, loc, u.getType(), u.getInput(),
                                             cotangent(u.getResult())));
        return success();
      })
      .Case([&](TanhOp u) {
        acc(u.getInput(), TanhGradOp::create(b_, loc, u.getType(), u.getInput(),
                                             cotangent(u.getResult())));
        return success();
      })
      .Case([&](AddOp a) {
        Value dy = cotangent(a.getResult());
        acc(a.getLhs(), dy);
        acc(a.getRhs(), dy);
        return success();
      })
      .Case([&](MulOp m) {
        Value dy = cotangent(m.getResult());
        acc(m.getLhs(), MulOp::create(b_, loc, m.getType(), dy, m.getRhs()));
        acc(m.getRhs(), MulOp::create(b_, loc, m.getType(), dy, m.getLhs()));
        return success();
      })
      .Case([&](ScaleOp s) {
        acc(s.getInput(),
            ScaleOp::create(b_, loc, s.getType(), cotangent(s.getResult()),
                            s.getFactorAttr()));
        return success();
      })
      .Case([&](SoftmaxTopKOp r) {
        acc(r.getLogits(),
            SoftmaxTopKGradOp::create(b_, loc, r.getLogits().getType(),
                                      r.getProbs(), r.getIndices(),
                                      cotangentOrZero(r.getWeights(), loc),
                                      cotangentOrZero(r.getProbs(), loc)));
        return success();
      })
      .Case([&](SigmoidTopKOp r) {
        auto g = SigmoidTopKGradOp::create(
            b_, loc, TypeRange{r.getLogits().getType(), r.getBias().getType()},
            r.getScores(), r.getIndices(), cotangentOrZero(r.getWeights(), loc),
            cotangentOrZero(r.getScores(), loc));
        acc(r.getLogits(), g.getDlogits());
        acc(r.getBias(), g.getDbias());
        return success();
      })
      .Case([&](MoeCapacityOp c) {
        acc(c.getWeights(),
            MoeCapacityGradOp::create(b_, loc, c.getType(), c.getIndices(),
                                      cotangent(c.getResult()),
                                      c.getExpertsAttr(), c.getFactorAttr()));
        return success();
      })
      .Case([&](MoeDispatchOp d) {
        acc(d.getInput(),
            MoeDispatchGradOp::create(b_, loc, d.getInput().getType(),
                                      cotangent(d.getRows()), d.getOrder()));
        return success();
      })
      .Case([&](MoeCombineOp c) {
        auto g = MoeCombineGradOp::create(
            b_, loc, TypeRange{c.getRows().getType(), c.getWeights().getType()},
            c.getRows(), c.getOrder(), c.getWeights(), c.getGroupSizes(),
            cotangent(c.getResult()), c.getGradientScaleAttr());
        acc(c.getRows(), g.getDrows());
        acc(c.getWeights(), g.getDweights());
        return success();
      })
      .Case([&](MoeAuxLossOp a) {
        acc(a.getProbs(),
            MoeAuxLossGradOp::create(b_, loc, a.getProbs().getType(),
                                     a.getIndices(), cotangent(a.getResult())));
        return success();
      })
      .Case([&](ZLossOp z) {
        acc(z.getLogits(),
            ZLossGradOp::create(b_, loc, z.getLogits().getType(), z.getLogits(),
                                cotangent(z.getResult())));
        return success();
      })
      .Case([&](CrossEntropyOp c) {
        acc(c.getLogits(),
            CrossEntropyGradOp::create(
                b_, loc, c.getLogits().getType(), c.getLogits(), c.getLabels(),
                cotangent(c.getResult()), c.getIgnoreIndexAttr()));
        return success();
      })
      .Case([&](ChunkedCrossEntropyOp c) {
        auto g = ChunkedCrossEntropyGradOp::create(
            b_, loc,
            TypeRange{c.getHidden().getType(), c.getWeight().getType()},
            c.getHidden(), c.getWeight(), c.getLabels(),
            cotangent(c.getResult()), c.getChunkAttr(), c.getIgnoreIndexAttr(),
            c.getZWeightAttr());
        acc(c.getHidden(), g.getDhidden());
        acc(c.getWeight(), g.getDweight());
        return success();
      })
      .Case([&](dist::AllGatherOp g) {
        if (g.getSliceGrad()) {
          // Replicated consumers: the cotangent is complete everywhere.
          acc(g.getInput(),
              dist::SliceOp::create(b_, loc, g.getInput().getType(),
                                    cotangent(g.getResult()), g.getDimAttr(),
                                    g.getGroupAttr(), g.getGroupSizeAttr()));
          return success();
        }
        // The data-parallel mean: each rank's loss is the mean over its own
        // batch, the job's loss the mean over ranks.
        acc(g.getInput(),
            dist::ReduceScatterOp::create(
                b_, loc, g.getInput().getType(), cotangent(g.getResult()),
                g.getDimAttr(), g.getGroupAttr(), g.getGroupSizeAttr(),
                b_.getStringAttr(g.getDataParallel() ? "avg" : "sum")));
        return success();
      })
      .Case([&](dist::ReduceScatterOp r) {
        Value g = dist::AllGatherOp::create(
            b_, loc, r.getInput().getType(), cotangent(r.getResult()),
            r.getDimAttr(), r.getGroupAttr(), r.getGroupSizeAttr(), UnitAttr(),
            UnitAttr(), StringAttr());
        acc(r.getInput(),
            r.getReduce() == "avg" ? meanOver(g, r.getGroupSize(), loc) : g);
        return success();
      })
      .Case([&](dist::AllReduceOp r) -> LogicalResult {
        // The result is replicated and so is its cotangent (every rank
        // continues with the same computation): each input contributed to
        // it once (Megatron's g).
        if (r.getReduce() == "max")
          return r.emitOpError("has no VJP rule for reduce(\"max\")");
        Value g = cotangent(r.getResult());
        acc(r.getInput(),
            r.getReduce() == "avg" ? meanOver(g, r.getGroupSize(), loc) : g);
        return success();
      })
      .Case([&](Fp8CastOp c) {
        // Straight through: the rounding has no useful derivative.
        acc(c.getInput(), cotangent(c.getResult()));
        return success();
      })
      .Case([&](Fp8GradCastOp c) {
        acc(c.getInput(),
            Fp8CastOp::create(b_, loc, c.getType(), cotangent(c.getResult()),
                              b_.getStringAttr("e5m2")));
        return success();
      })
      .Case([&](dist::SliceOp s) {
        acc(s.getInput(),
            dist::AllGatherOp::create(b_, loc, s.getInput().getType(),
                                      cotangent(s.getResult()), s.getDimAttr(),
                                      s.getGroupAttr(), s.getGroupSizeAttr(),
                                      UnitAttr(), UnitAttr(), StringAttr()));
        return success();
      })
      .Case([&](dist::CopyOp c) {
        // Each rank's consumers computed part of the gradient (Megatron's
        // f): sum the parts.
        acc(c.getInput(), dist::AllReduceOp::create(
                              b_, loc, c.getType(), cotangent(c.getResult()),
                              c.getGroupAttr(), c.getGroupSizeAttr(),
                              b_.getStringAttr("sum")));
        return success();
      })
      .Case([&](dist::ExpertDispatchOp x) {
        // The rows' cotangents go back the way the rows came (the counts
        // and sizes are integers: no cotangent).
        acc(x.getRows(),
            dist::ExpertCombineOp::create(
                b_, loc, x.getRows().getType(), cotangent(x.getResult()),
                x.getReceived(), x.getGroupSizes(), x.getGroupAttr(),
                x.getGroupSizeAttr()));
        return success();
      })
      .Case([&](dist::ExpertCombineOp c) {
        // Each returned row's cotangent goes to the expert that computed
        // it; the counts are known, so only rows move.
        auto x = dist::ExpertDispatchOp::create(
            b_, loc,
            TypeRange{
                c.getRows().getType(),
                RankedTensorType::get({c.getCounts().getType().getDimSize(1)},
                                      b_.getI64Type()),
                c.getCounts().getType()},
            cotangent(c.getResult()), c.getGroupSizes(), c.getCounts(),
            c.getGroupAttr(), c.getGroupSizeAttr());
        acc(c.getRows(), x.getResult());
        return success();
      })
      .Case([&](dist::SendOp s) {
        // The stage's "loss" is the send's zero: the gradient of what it
        // sent comes back from the next stage (tag 1: the backward
        // direction).
        acc(s.getInput(), dist::RecvOp::create(
                              b_, loc, s.getInput().getType(), s.getPeerAttr(),
                              s.getGroupAttr(), s.getGroupSizeAttr(),
                              b_.getI64IntegerAttr(s.getTag() + 1)));
        return success();
      })
      .Case([&](dist::RecvOp r) {
        dist::SendOp::create(
            b_, loc, RankedTensorType::get({}, b_.getF32Type()),
            cotangent(r.getResult()), r.getPeerAttr(), r.getGroupAttr(),
            r.getGroupSizeAttr(), b_.getI64IntegerAttr(r.getTag() + 1));
        return success();
      })
      .Case([&](FillOp) { return success(); })
      .Default([&](Operation *other) {
        return other->emitOpError(
            "has no VJP rule in forge-build-backward; the loss depends on it");
      });
}

struct BuildBackwardPass
    : public forge::impl::BuildBackwardPassBase<BuildBackwardPass> {
  /// FSDP2's reshard_after_forward (KempnerForge never turns it off): a
  /// parameter gathered for the forward pass is not kept for its backward
  /// uses (the VJPs that read the weight); the backward gathers it again
  /// from the shard right before its first use there, so the memory plan
  /// frees the forward copy after its last forward use.
  void reshardAfterForward(ArrayRef<Operation *> forward) {
    llvm::SmallPtrSet<Operation *, 32> isForward(forward.begin(),
                                                 forward.end());
    for (Operation *op : forward) {
      auto gather = dyn_cast<dist::AllGatherOp>(op);
      if (!gather || !gather.getDataParallel())
        continue;
      auto get = gather.getInput().getDefiningOp<GetParamOp>();
      if (!get)
        continue;
      SmallVector<OpOperand *> late;
      Operation *first = nullptr;
      for (OpOperand &use : gather.getResult().getUses()) {
        Operation *user = use.getOwner();
        if (isForward.contains(user))
          continue;
        late.push_back(&use);
        if (!first || user->isBeforeInBlock(first))
          first = user;
      }
      if (late.empty())
        continue;
      OpBuilder b(first);
      Operation *reget = b.clone(*get);
      auto regather = cast<dist::AllGatherOp>(b.clone(*gather));
      regather.getInputMutable().assign(reget->getResult(0));
      dist::setOrigin(regather, "forge-build-backward",
                      "weight re-gather (reshard after forward)", get.getName(),
                      "backward");
      for (OpOperand *use : late)
        use->set(regather.getResult());
    }
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fn = module.lookupSymbol<func::FuncOp>("train_step");
    if (!fn) {
      module.emitError("forge-build-backward: the module has no "
                       "func.func @train_step to differentiate");
      return signalPassFailure();
    }
    if (fn->hasAttr("forge.grads")) {
      fn.emitError("forge-build-backward: @train_step is already "
                   "differentiated (it has forge.grads)");
      return signalPassFailure();
    }
    Block &body = fn.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    if (ret.getNumOperands() != 1 ||
        ret.getOperand(0).getType() !=
            RankedTensorType::get({}, Float32Type::get(&getContext()))) {
      ret.emitError("forge-build-backward: @train_step must return exactly "
                    "one tensor<f32> loss");
      return signalPassFailure();
    }
    SmallVector<Operation *> forward;
    for (Operation &op : body.without_terminator())
      forward.push_back(&op);

    OpBuilder b(ret);
    Differentiator d(b);
    Value loss = ret.getOperand(0);
    auto seed =
        FillOp::create(b, ret.getLoc(), loss.getType(), b.getF64FloatAttr(1.0));
    // Where the backward begins: forge-schedule cuts a pipeline stage's
    // step into forward and backward programs here.
    seed->setAttr(kBackwardBeginAttr, b.getUnitAttr());
    d.accumulate(loss, seed);
    // Activation checkpointing: the regions forge-checkpoint-activations
    // marked, in forward order.
    std::map<int64_t, SmallVector<Operation *>> regions;
    for (Operation *op : forward)
      if (auto r = op->getAttrOfType<IntegerAttr>(kRematAttr))
        regions[r.getInt()].push_back(op);
    DenseMap<Operation *, Operation *> recomputed;
    IRMapping remap; // forward value -> its recomputed value
    SmallVector<Operation *> clones;
    for (Operation *op : llvm::reverse(forward)) {
      // Ops the loss does not depend on get no backward.
      if (llvm::none_of(op->getResults(),
                        [&](Value r) { return bool(d.cotangent(r)); }))
        continue;
      Operation *last = ret->getPrevNode();
      Operation *target = op;
      SmallVector<std::pair<OpOperand *, Value>> swapped;
      if (auto r = op->getAttrOfType<IntegerAttr>(kRematAttr)) {
        // The first VJP of a region (its last op): recompute the whole
        // region from its inputs here, then differentiate the recomputed
        // ops, so the forward values inside it are dead after the forward.
        if (!recomputed.count(op))
          for (Operation *o : regions[r.getInt()]) {
            Operation *c = b.clone(*o, remap);
            c->removeAttr(kRematAttr);
            for (auto [orig, now] : llvm::zip(o->getResults(), c->getResults()))
              d.setAlias(now, orig);
            recomputed[o] = c;
            clones.push_back(c);
          }
        target = recomputed[op];
      } else {
        // A kept op (selective AC's matmuls) reads recomputed values.
        for (OpOperand &use : op->getOpOperands())
          if (Value now = remap.lookupOrNull(use.get())) {
            swapped.push_back({&use, use.get()});
            use.set(now);
          }
      }
      LogicalResult ok = d.differentiate(target);
      for (auto [use, orig] : swapped)
        use->set(orig);
      if (failed(ok))
        return signalPassFailure();
      // The backward collectives say which forward op's VJP placed them.
      for (Operation *n = last ? last->getNextNode() : &body.front(); n != ret;
           n = n->getNextNode()) {
        if (!isa<dist::DistDialect>(n->getDialect()) ||
            n->hasAttr(dist::kOriginAttr))
          continue;
        dist::Origin o = dist::originOf(op);
        dist::setOrigin(n, "forge-build-backward",
                        "VJP of " + (o.what.empty()
                                         ? op->getName().getStringRef().str()
                                         : o.what),
                        o.of, "backward");
      }
    }

    // Recomputed values no VJP read (a region's outputs: the forward kept
    // them) are not computed again.
    for (Operation *c : llvm::reverse(clones))
      if (c->use_empty() && isMemoryEffectFree(c))
        c->erase();

    SmallVector<Value> results = {loss};
    SmallVector<Attribute> names;
    for (auto param : module.getOps<ParamOp>()) {
      if (param.getBuffer())
        continue;
      auto it = d.paramGrads.find(param.getSymNameAttr());
      results.push_back(it != d.paramGrads.end()
                            ? it->second
                            : d.zeros(param.getType(), param.getLoc()));
      names.push_back(FlatSymbolRefAttr::get(param.getSymNameAttr()));
    }
    ret.getOperandsMutable().assign(results);
    reshardAfterForward(forward);
    fn.setFunctionType(FunctionType::get(&getContext(),
                                         fn.getFunctionType().getInputs(),
                                         ValueRange(results).getTypes()));
    fn->setAttr("forge.grads", ArrayAttr::get(&getContext(), names));
  }
};

} // namespace

//===- BuildOptimizer.cpp - Accumulation, clipping, AdamW, LR schedule ----===//
//
// After forge-build-backward, @train_step returns (loss, grads...). This
// pass splits a training step the way the runtime executes it: the micro
// step (forward + backward + accumulate, run grad_accum_steps times) and the
// optimizer step (norm, clip, schedule, update, reset, run once).
//
//===----------------------------------------------------------------------===//

#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace forge {
#define GEN_PASS_DEF_BUILDOPTIMIZERPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

/// Reads the module's training settings; reports what is missing.
class Settings {
public:
  Settings(ModuleOp module) : module_(module) {}

  DictionaryAttr dict(StringRef name) {
    auto d = module_->getAttrOfType<DictionaryAttr>(name);
    if (!d && ok_) {
      module_.emitError("forge-build-optimizer: the module has no '")
          << name << "' attribute (the model frontend records it)";
      ok_ = false;
    }
    return d;
  }
  template <typename A> A get(DictionaryAttr d, StringRef key) {
    if (!d)
      return A();
    auto a = d.getAs<A>(key);
    if (!a && ok_) {
      module_.emitError("forge-build-optimizer: missing or mistyped '")
          << key << "' in the module's training settings";
      ok_ = false;
    }
    return a;
  }
  bool ok() const { return ok_; }

private:
  ModuleOp module_;
  bool ok_ = true;
};

/// KempnerForge's decay group: >= 2-D and not a bias.
bool decays(ParamOp p) {
  return p.getTensorType().getRank() >= 2 && !p.getSymName().contains("bias");
}

struct BuildOptimizerPass
    : public forge::impl::BuildOptimizerPassBase<BuildOptimizerPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    auto fn = module.lookupSymbol<func::FuncOp>("train_step");
    auto grads = fn ? fn->getAttrOfType<ArrayAttr>("forge.grads") : nullptr;
    if (!grads) {
      module.emitError("forge-build-optimizer: needs @train_step "
                       "differentiated by forge-build-backward first");
      return signalPassFailure();
    }
    if (module.lookupSymbol("optimizer_step")) {
      module.emitError("forge-build-optimizer: the module already has "
                       "@optimizer_step");
      return signalPassFailure();
    }
    Settings s(module);
    DictionaryAttr train = s.dict("forge.train"),
                   opt = s.dict("forge.optimizer"),
                   sched = s.dict("forge.schedule");
    auto accum = s.get<IntegerAttr>(train, "grad_accum_steps");
    auto clip = s.get<FloatAttr>(train, "grad_clip_norm");
    auto maxSteps = s.get<IntegerAttr>(train, "max_steps");
    auto optName = s.get<StringAttr>(opt, "name");
    auto lr = s.get<FloatAttr>(opt, "lr");
    auto wd = s.get<FloatAttr>(opt, "weight_decay");
    auto beta1 = s.get<FloatAttr>(opt, "beta1");
    auto beta2 = s.get<FloatAttr>(opt, "beta2");
    auto eps = s.get<FloatAttr>(opt, "eps");
    auto schedName = s.get<StringAttr>(sched, "name");
    auto warmup = s.get<IntegerAttr>(sched, "warmup");
    auto decay = s.get<IntegerAttr>(sched, "decay");
    auto stable = s.get<IntegerAttr>(sched, "stable");
    auto minLr = s.get<FloatAttr>(sched, "min_lr_ratio");
    auto wsdDecay = s.get<StringAttr>(sched, "wsd_decay");
    auto rexAlpha = s.get<FloatAttr>(sched, "rex_alpha");
    if (!s.ok())
      return signalPassFailure();
    const bool lion = optName.getValue() == "lion";
    if (optName.getValue() != "adamw" && !lion) {
      module.emitError("forge-build-optimizer: optimizer '")
          << optName.getValue()
          << "' is not supported yet; adamw and lion are implemented";
      return signalPassFailure();
    }

    OpBuilder b(ctx);
    auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
    Location loc = ret.getLoc();
    SmallVector<ParamOp> params;
    for (Attribute a : grads)
      params.push_back(
          module.lookupSymbol<ParamOp>(cast<FlatSymbolRefAttr>(a).getAttr()));

    // State buffers, declared after the parameters.
    b.setInsertionPoint(fn);
    auto declare = [&](const std::string &name, ParamOp like) {
      ParamOp::create(b, like.getLoc(), b.getStringAttr(name),
                      TypeAttr::get(like.getType()),
                      InitKindAttr::get(ctx, InitKind::zeros), FloatAttr(),
                      b.getUnitAttr());
      return FlatSymbolRefAttr::get(ctx, name);
    };
    SmallVector<FlatSymbolRefAttr> acc, m, v;
    for (ParamOp p : params) {
      std::string fqn = p.getSymName().str();
      acc.push_back(declare("grad." + fqn, p));
      m.push_back(declare("optimizer.exp_avg." + fqn, p));
      if (!lion) // Lion keeps one moment
        v.push_back(declare("optimizer.exp_avg_sq." + fqn, p));
    }

    // Micro step: accumulate grad / accum into the buffers.
    b.setInsertionPoint(ret);
    double inv = 1.0 / static_cast<double>(accum.getInt());
    for (auto [i, p] : llvm::enumerate(params)) {
      Value g = ret.getOperand(i + 1);
      Value cur = GetParamOp::create(b, loc, p.getType(), acc[i]);
      Value scaled =
          ScaleOp::create(b, loc, g.getType(), g, b.getF64FloatAttr(inv));
      SetParamOp::create(b, loc, acc[i],
                         AddOp::create(b, loc, g.getType(), cur, scaled));
    }
    Value loss = ret.getOperand(0);
    ret.getOperandsMutable().assign(loss);
    fn.setFunctionType(FunctionType::get(ctx, fn.getFunctionType().getInputs(),
                                         {loss.getType()}));
    fn->removeAttr("forge.grads");

    // Optimizer step.
    auto f32 = RankedTensorType::get({}, b.getF32Type());
    auto i64 = RankedTensorType::get({}, b.getI64Type());
    b.setInsertionPointAfter(fn);
    auto step = func::FuncOp::create(b, loc, "optimizer_step",
                                     b.getFunctionType({i64}, {f32, f32}));
    Block *entry = step.addEntryBlock();
    b.setInsertionPointToStart(entry);
    Value stepArg = entry->getArgument(0);
    SmallVector<Value> gs;
    for (auto [i, p] : llvm::enumerate(params))
      gs.push_back(GetParamOp::create(b, loc, p.getType(), acc[i]));
    Value norm = GlobalNormOp::create(b, loc, f32, gs);
    Value coef = ClipCoefficientOp::create(b, loc, f32, norm, clip);
    Value factor = LrFactorOp::create(
        b, loc, f32, stepArg, schedName, warmup, decay, stable, minLr,
        b.getI64IntegerAttr(maxSteps.getInt()), wsdDecay, rexAlpha);
    Value rate = ScaleOp::create(b, loc, f32, factor, lr);
    for (auto [i, p] : llvm::enumerate(params)) {
      Type t = p.getType();
      Value pv = GetParamOp::create(b, p.getLoc(), t, p.getSymName());
      Value mv = GetParamOp::create(b, p.getLoc(), t, m[i]);
      FloatAttr decay =
          b.getF64FloatAttr(decays(p) ? wd.getValueAsDouble() : 0.0);
      auto self = FlatSymbolRefAttr::get(p.getSymNameAttr());
      if (lion) {
        auto upd =
            LionUpdateOp::create(b, p.getLoc(), TypeRange{t, t}, pv, gs[i], mv,
                                 rate, coef, beta1, beta2, decay);
        SetParamOp::create(b, p.getLoc(), self, upd.getNewParam());
        SetParamOp::create(b, p.getLoc(), m[i], upd.getNewExpAvg());
      } else {
        Value vv = GetParamOp::create(b, p.getLoc(), t, v[i]);
        auto upd = AdamWUpdateOp::create(b, p.getLoc(), TypeRange{t, t, t}, pv,
                                         gs[i], mv, vv, rate, coef, stepArg,
                                         beta1, beta2, eps, decay);
        SetParamOp::create(b, p.getLoc(), self, upd.getNewParam());
        SetParamOp::create(b, p.getLoc(), m[i], upd.getNewExpAvg());
        SetParamOp::create(b, p.getLoc(), v[i], upd.getNewExpAvgSq());
      }
      SetParamOp::create(
          b, p.getLoc(), acc[i],
          FillOp::create(b, p.getLoc(), t, b.getF64FloatAttr(0.0)));
    }
    func::ReturnOp::create(b, loc, ValueRange{norm, rate});
  }
};

} // namespace

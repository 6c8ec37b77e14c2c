//===- BuildOptimizer.cpp - Accumulation, clipping, optimizers, LR --------===//
//
// After forge-build-backward, @train_step returns (loss, grads...). This
// pass splits a training step the way the runtime executes it: the micro
// step (forward + backward + accumulate, run grad_accum_steps times) and the
// optimizer step (norm, clip, schedule, update, reset, run once). For
// schedule-free AdamW it also adds @eval_params and @train_params, the swap
// between the averaged weights x and the training point y.
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSwitch.h"

#include <algorithm>
#include <map>

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

/// The shapes a sharded parameter passes through from its local block to
/// the whole tensor: shapes[k] is the block before split k (shapes[0] the
/// global shape), shapes.back() the local block.
SmallVector<SmallVector<int64_t>>
splitShapes(ParamOp p, ArrayRef<dist::Split> splits, const dist::Mesh &mesh) {
  SmallVector<SmallVector<int64_t>> shapes(splits.size() + 1);
  shapes.back().assign(p.getTensorType().getShape().begin(),
                       p.getTensorType().getShape().end());
  for (size_t k = splits.size(); k-- > 0;) {
    shapes[k] = shapes[k + 1];
    const dist::Split &sp = splits[k];
    shapes[k][sp.dim] =
        sp.size ? sp.size : shapes[k + 1][sp.dim] * mesh.size(sp.group);
  }
  return shapes;
}

/// KempnerForge's Muon eligibility: >= 2-D and, flattened to dim 0 x the
/// rest, an aspect ratio of at most 10 (embeddings and output heads with a
/// large vocabulary fall back to AdamW).
bool muonEligible(RankedTensorType t) {
  if (t.getRank() < 2)
    return false;
  int64_t m = t.getDimSize(0), n = t.getNumElements() / std::max<int64_t>(m, 1);
  return static_cast<double>(std::max(m, n)) /
             static_cast<double>(std::max<int64_t>(std::min(m, n), 1)) <=
         10.0;
}

enum class Optimizer { Unknown, AdamW, Lion, Muon, ScheduleFree };

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
    for (const char *made : {"optimizer_step", "eval_params", "train_params"})
      if (module.lookupSymbol(made)) {
        module.emitError("forge-build-optimizer: the module already has @")
            << made;
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
    const Optimizer kind =
        llvm::StringSwitch<Optimizer>(optName)
            .Case("adamw", Optimizer::AdamW)
            .Case("lion", Optimizer::Lion)
            .Case("muon", Optimizer::Muon)
            .Case("schedule_free_adamw", Optimizer::ScheduleFree)
            .Default(Optimizer::Unknown);
    if (kind == Optimizer::Unknown) { // a plugin's: no update rule in forge
      module.emitError("forge-build-optimizer: optimizer '")
          << optName.getValue()
          << "' is not supported yet; adamw, lion, muon and "
             "schedule_free_adamw are implemented";
      return signalPassFailure();
    }
    // Keys only the optimizer that uses them needs.
    IntegerAttr nsSteps, sfWarmup;
    FloatAttr momentum, adamLr = lr;
    if (kind == Optimizer::Muon) {
      momentum = s.get<FloatAttr>(opt, "muon_momentum");
      nsSteps = s.get<IntegerAttr>(opt, "muon_ns_steps");
      // Unset: the fallback AdamW runs at lr, as KempnerForge.
      if (opt.contains("muon_adam_lr"))
        adamLr = s.get<FloatAttr>(opt, "muon_adam_lr");
    }
    if (kind == Optimizer::ScheduleFree)
      sfWarmup = s.get<IntegerAttr>(opt, "schedule_free_warmup");
    if (!s.ok())
      return signalPassFailure();

    OpBuilder b(ctx);
    auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
    Location loc = ret.getLoc();
    SmallVector<ParamOp> params;
    for (Attribute a : grads)
      params.push_back(
          module.lookupSymbol<ParamOp>(cast<FlatSymbolRefAttr>(a).getAttr()));

    // State buffers, declared after the parameters, named
    // optimizer.<KempnerForge state key>.<fqn>.
    b.setInsertionPoint(fn);
    dist::Mesh mesh;
    std::string meshError;
    if (!dist::readMesh(module, mesh, meshError)) {
      module.emitError("forge-build-optimizer: ") << meshError;
      return signalPassFailure();
    }
    // State is sharded like its parameter (TP, FSDP): it inherits
    // dist.shard.
    Attribute shard;
    auto declare = [&](const std::string &name, Type type, Location at) {
      auto state =
          ParamOp::create(b, at, b.getStringAttr(name), TypeAttr::get(type),
                          InitKindAttr::get(ctx, InitKind::zeros), FloatAttr(),
                          b.getUnitAttr());
      if (shard)
        state->setAttr(dist::kShardAttr, shard);
      return FlatSymbolRefAttr::get(ctx, name);
    };
    // Per parameter: which update it gets and its state.
    struct Slot {
      bool muon = false;
      FlatSymbolRefAttr acc, m, v, x;
    };
    SmallVector<Slot> slots;
    bool anyAdam = false;
    for (ParamOp p : params) {
      std::string fqn = p.getSymName().str();
      Type t = p.getType();
      Location at = p.getLoc();
      shard = p->getAttr(dist::kShardAttr);
      Slot slot;
      slot.acc = declare("grad." + fqn, t, at);
      switch (kind) {
      case Optimizer::Unknown: // rejected above
      case Optimizer::AdamW:
        slot.m = declare("optimizer.exp_avg." + fqn, t, at);
        slot.v = declare("optimizer.exp_avg_sq." + fqn, t, at);
        break;
      case Optimizer::Lion: // one moment
        slot.m = declare("optimizer.exp_avg." + fqn, t, at);
        break;
      case Optimizer::Muon: {
        // Eligibility is the whole matrix's, not a shard's.
        std::vector<dist::Split> splits;
        std::string splitError;
        if (!dist::readShard(p, splits, splitError)) {
          p.emitError("forge-build-optimizer: ") << splitError;
          return signalPassFailure();
        }
        slot.muon = muonEligible(
            RankedTensorType::get(splitShapes(p, splits, mesh).front(),
                                  p.getTensorType().getElementType()));
        if (slot.muon) {
          slot.m = declare("optimizer.momentum_buffer." + fqn, t, at);
        } else {
          slot.m = declare("optimizer.exp_avg." + fqn, t, at);
          slot.v = declare("optimizer.exp_avg_sq." + fqn, t, at);
          anyAdam = true;
        }
        break;
      }
      case Optimizer::ScheduleFree: // m holds z
        slot.m = declare("optimizer.z." + fqn, t, at);
        slot.v = declare("optimizer.v." + fqn, t, at);
        slot.x = declare("optimizer.x." + fqn, t, at);
        break;
      }
      slots.push_back(slot);
    }
    // Schedule-free AdamW's step count and weight sum, shared by all
    // parameters (ScheduleFreeCountOp holds the layout).
    auto sfStateType = RankedTensorType::get({4}, b.getF32Type());
    FlatSymbolRefAttr sfState;
    if (kind == Optimizer::ScheduleFree)
      sfState = declare("optimizer.schedule_free", sfStateType, fn.getLoc());

    // Micro step: accumulate grad / accum into the buffers.
    b.setInsertionPoint(ret);
    double inv = 1.0 / static_cast<double>(accum.getInt());
    for (auto [i, p] : llvm::enumerate(params)) {
      Value g = ret.getOperand(i + 1);
      Value cur = GetParamOp::create(b, loc, p.getType(), slots[i].acc);
      Value scaled =
          ScaleOp::create(b, loc, g.getType(), g, b.getF64FloatAttr(inv));
      SetParamOp::create(b, loc, slots[i].acc,
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
                                     b.getFunctionType({i64, f32}, {f32, f32}));
    Block *entry = step.addEntryBlock();
    b.setInsertionPointToStart(entry);
    // Inputs: the number of updates so far (the schedule's step) and the
    // active training phase's lr_scale (reference §4.5), which the runtime
    // owns because phases follow the data.
    Value stepArg = entry->getArgument(0);
    Value lrScaleArg = entry->getArgument(1);
    SmallVector<Value> gs;
    for (auto [i, p] : llvm::enumerate(params))
      gs.push_back(GetParamOp::create(b, loc, p.getType(), slots[i].acc));
    // Data parallelism over dp_replicate (DDP, or HSDP's replica dim): the
    // gradients accumulated over the micro-batches are averaged once per
    // step, in f32 (reference §3.6); dp_shard's reduce-scatter came from
    // autodiff already.
    if (int64_t r = mesh.size("dp_replicate"); r > 1)
      for (auto [i, g] : llvm::enumerate(gs)) {
        auto avg = dist::AllReduceOp::create(
            b, loc, g.getType(), g, b.getStringAttr("dp_replicate"),
            b.getI64IntegerAttr(r), b.getStringAttr("avg"));
        dist::setOrigin(avg, "forge-build-optimizer",
                        "gradient average over replicas",
                        params[i].getSymName(), "optimizer");
        g = avg;
      }
    // Expert parallelism: the ep ranks read different batches. Parameters
    // replicated over ep average their gradients over it as data-parallel
    // ranks do; an expert's gradient already sums the contributions of every
    // ep rank's tokens (the all-to-all brought them), so it is divided by
    // ep to be the gradient of the mean loss.
    if (int64_t e = mesh.size("ep"); e > 1)
      for (auto [i, g] : llvm::enumerate(gs)) {
        std::vector<dist::Split> splits;
        std::string splitError;
        if (!dist::readShard(params[i], splits, splitError)) {
          params[i].emitError("forge-build-optimizer: ") << splitError;
          return signalPassFailure();
        }
        if (llvm::any_of(splits, [](const dist::Split &sp) {
              return sp.group == "ep";
            })) {
          g = ScaleOp::create(b, loc, g.getType(), g,
                              b.getF64FloatAttr(1.0 / static_cast<double>(e)));
          continue;
        }
        auto avg = dist::AllReduceOp::create(
            b, loc, g.getType(), g, b.getStringAttr("ep"),
            b.getI64IntegerAttr(e), b.getStringAttr("avg"));
        dist::setOrigin(avg, "forge-build-optimizer",
                        "gradient average over expert-parallel ranks",
                        params[i].getSymName(), "optimizer");
        g = avg;
      }
    // The pre-clip global norm over every shard and tensor-parallel group
    // (reference §3.10). The gradients fall into classes by the groups they
    // are split over; a class's squared norm is its local sum, summed over
    // those groups. With b split over dp_shard only, d over dp_shard and
    // tp, c over tp only and a replicated:
    //   norm^2 = a + all_reduce_tp(c) + all_reduce_dp(b + all_reduce_tp(d))
    // (tp and dp_shard sums commute). Replicated gradients are identical on
    // the ranks of a group, so they are counted once, not summed.
    Value norm;
    {
      // Bit i of a class: split over kSplitGroups[i].
      // A pipeline stage holds only its layers: every gradient is "split"
      // over pp, and the stages' sums add up.
      static const char *const kSplitGroups[] = {"tp", "ep", "dp_shard", "pp"};
      const bool staged = module->hasAttr(dist::kStageAttr);
      std::map<unsigned, SmallVector<Value>> byClass;
      for (auto [i, p] : llvm::enumerate(params)) {
        std::vector<dist::Split> splits;
        std::string splitError;
        if (!dist::readShard(p, splits, splitError)) {
          p.emitError("forge-build-optimizer: ") << splitError;
          return signalPassFailure();
        }
        unsigned cls = 0;
        for (const dist::Split &sp : splits) {
          auto *it = llvm::find(kSplitGroups, sp.group);
          if (it == std::end(kSplitGroups)) {
            p.emitError("forge-build-optimizer: no gradient-norm rule for "
                        "parameters split over '")
                << sp.group << "'";
            return signalPassFailure();
          }
          cls |= 1u << (it - std::begin(kSplitGroups));
        }
        if (staged)
          cls |= 1u << 3;
        byClass[cls].push_back(gs[i]);
      }
      auto plus = [&](Value x, Value y) -> Value {
        if (!x || !y)
          return x ? x : y;
        return AddOp::create(b, loc, f32, x, y);
      };
      if (byClass.size() == 1 && byClass.count(0)) {
        norm = GlobalNormOp::create(b, loc, f32, gs, UnitAttr());
      } else {
        // Each class's local sum of squares is summed over each group it
        // is split over, innermost group first; classes that are left with
        // the same groups share the next all-reduce.
        std::map<unsigned, Value> cur;
        for (auto &[cls, g] : byClass)
          cur[cls] = GlobalNormOp::create(b, loc, f32, g, b.getUnitAttr());
        for (unsigned bit = 0; bit < std::size(kSplitGroups); ++bit) {
          const char *group = kSplitGroups[bit];
          std::map<unsigned, Value> next, bucket;
          for (auto &[cls, v] : cur) {
            if (cls & (1u << bit))
              bucket[cls & ~(1u << bit)] = plus(bucket[cls & ~(1u << bit)], v);
            else
              next[cls] = plus(next[cls], v);
          }
          for (auto &[rest, v] : bucket) {
            Value summed = v;
            if (mesh.size(group) > 1) {
              auto sum = dist::AllReduceOp::create(
                  b, loc, f32, v, b.getStringAttr(group),
                  b.getI64IntegerAttr(mesh.size(group)),
                  b.getStringAttr("sum"));
              dist::setOrigin(sum, "forge-build-optimizer",
                              "squared gradient norm of the shards",
                              std::string("gradients split over ") + group,
                              "optimizer");
              summed = sum.getResult();
            }
            next[rest] = plus(next[rest], summed);
          }
          cur = std::move(next);
        }
        norm = SqrtOp::create(b, loc, f32, cur[0]);
      }
    }
    Value coef = ClipCoefficientOp::create(b, loc, f32, norm, clip);
    Value factor =
        MulOp::create(b, loc, f32,
                      LrFactorOp::create(b, loc, f32, stepArg, schedName,
                                         warmup, decay, stable, minLr,
                                         b.getI64IntegerAttr(maxSteps.getInt()),
                                         wsdDecay, rexAlpha),
                      lrScaleArg);
    Value rate = ScaleOp::create(b, loc, f32, factor, lr);
    // Muon's AdamW group runs at muon_adam_lr times the same schedule
    // factor (KempnerForge rescales it by current lr / initial lr).
    Value adamRate = rate;
    if (anyAdam && adamLr != lr)
      adamRate = ScaleOp::create(b, loc, f32, factor, adamLr);
    Value sfNow;
    if (kind == Optimizer::ScheduleFree) {
      Value cur = GetParamOp::create(b, loc, sfStateType, sfState);
      sfNow = ScheduleFreeCountOp::create(b, loc, sfStateType, cur, rate, beta1,
                                          sfWarmup);
      SetParamOp::create(b, loc, sfState, sfNow);
    }
    for (auto [i, p] : llvm::enumerate(params)) {
      const Slot &slot = slots[i];
      Type t = p.getType();
      Location at = p.getLoc();
      Value pv = GetParamOp::create(b, at, t, p.getSymName());
      Value mv = GetParamOp::create(b, at, t, slot.m);
      FloatAttr decay =
          b.getF64FloatAttr(decays(p) ? wd.getValueAsDouble() : 0.0);
      auto self = FlatSymbolRefAttr::get(p.getSymNameAttr());
      if (kind == Optimizer::Lion) {
        auto upd = LionUpdateOp::create(b, at, TypeRange{t, t}, pv, gs[i], mv,
                                        rate, coef, beta1, beta2, decay);
        SetParamOp::create(b, at, self, upd.getNewParam());
        SetParamOp::create(b, at, slot.m, upd.getNewExpAvg());
      } else if (slot.muon) {
        // Newton-Schulz needs the whole matrix: a sharded (TP, FSDP)
        // parameter's update gathers parameter, gradient and momentum,
        // updates the whole matrix on every rank, and keeps its block.
        std::vector<dist::Split> splits;
        std::string splitError;
        if (!dist::readShard(p, splits, splitError)) {
          p.emitError("forge-build-optimizer: ") << splitError;
          return signalPassFailure();
        }
        auto shapes = splitShapes(p, splits, mesh);
        Type elt = p.getTensorType().getElementType();
        auto gather = [&](Value v) {
          for (size_t k = splits.size(); k-- > 0;) {
            auto all = dist::AllGatherOp::create(
                b, at, RankedTensorType::get(shapes[k], elt), v,
                b.getI64IntegerAttr(splits[k].dim),
                b.getStringAttr(splits[k].group),
                b.getI64IntegerAttr(mesh.size(splits[k].group)), UnitAttr(),
                UnitAttr(), StringAttr());
            dist::setOrigin(all, "forge-build-optimizer",
                            "whole matrix for Muon", p.getSymName(),
                            "optimizer");
            v = all;
          }
          return v;
        };
        auto block = [&](Value v) {
          for (size_t k = 0; k < splits.size(); ++k) {
            auto slice = dist::SliceOp::create(
                b, at, RankedTensorType::get(shapes[k + 1], elt), v,
                b.getI64IntegerAttr(splits[k].dim),
                b.getStringAttr(splits[k].group),
                b.getI64IntegerAttr(mesh.size(splits[k].group)));
            dist::setOrigin(slice, "forge-build-optimizer",
                            "Muon update's block", p.getSymName(), "optimizer");
            v = slice;
          }
          return v;
        };
        Type whole = RankedTensorType::get(shapes.front(), elt);
        auto upd = MuonUpdateOp::create(b, at, TypeRange{whole, whole},
                                        gather(pv), gather(gs[i]), gather(mv),
                                        rate, coef, momentum, nsSteps, decay);
        SetParamOp::create(b, at, self, block(upd.getNewParam()));
        SetParamOp::create(b, at, slot.m, block(upd.getNewMomentumBuffer()));
      } else if (kind == Optimizer::ScheduleFree) {
        Value vv = GetParamOp::create(b, at, t, slot.v);
        Value xv = GetParamOp::create(b, at, t, slot.x);
        auto upd = ScheduleFreeAdamWUpdateOp::create(
            b, at, TypeRange{t, t, t, t}, pv, gs[i], mv, vv, xv, rate, coef,
            sfNow, beta1, beta2, eps, decay, sfWarmup);
        SetParamOp::create(b, at, self, upd.getNewParam());
        SetParamOp::create(b, at, slot.m, upd.getNewZ());
        SetParamOp::create(b, at, slot.v, upd.getNewExpAvgSq());
        SetParamOp::create(b, at, slot.x, upd.getNewX());
      } else { // AdamW, or Muon's AdamW group
        Value vv = GetParamOp::create(b, at, t, slot.v);
        auto upd =
            AdamWUpdateOp::create(b, at, TypeRange{t, t, t}, pv, gs[i], mv, vv,
                                  kind == Optimizer::Muon ? adamRate : rate,
                                  coef, stepArg, beta1, beta2, eps, decay);
        SetParamOp::create(b, at, self, upd.getNewParam());
        SetParamOp::create(b, at, slot.m, upd.getNewExpAvg());
        SetParamOp::create(b, at, slot.v, upd.getNewExpAvgSq());
      }
      SetParamOp::create(b, at, slot.acc,
                         FillOp::create(b, at, t, b.getF64FloatAttr(0.0)));
    }
    func::ReturnOp::create(b, loc, ValueRange{norm, rate});

    if (kind != Optimizer::ScheduleFree)
      return;
    // The train/eval swap of schedule-free AdamW (KempnerForge's
    // eval_params / train_params): programs without inputs or outputs that
    // the runtime runs around evaluation. Parameters hold y while training;
    // @eval_params sets them to x, @train_params back to
    // y = (1 - beta1) z + beta1 x. Both leave the parameters alone before the
    // first step (z and x do not exist yet) and can run any number of times.
    auto swap = [&](StringRef name, double weight) {
      auto f = func::FuncOp::create(b, loc, name, b.getFunctionType({}, {}));
      b.setInsertionPointToStart(f.addEntryBlock());
      Value st = GetParamOp::create(b, loc, sfStateType, sfState);
      for (auto [i, p] : llvm::enumerate(params)) {
        Type t = p.getType();
        Location at = p.getLoc();
        auto self = FlatSymbolRefAttr::get(p.getSymNameAttr());
        Value pv = GetParamOp::create(b, at, t, self);
        Value zv = GetParamOp::create(b, at, t, slots[i].m);
        Value xv = GetParamOp::create(b, at, t, slots[i].x);
        Value point = ScheduleFreeInterpolateOp::create(
            b, at, t, pv, zv, xv, st, b.getF64FloatAttr(weight));
        SetParamOp::create(b, at, self, point);
      }
      func::ReturnOp::create(b, loc, ValueRange{});
      b.setInsertionPointAfter(f);
    };
    b.setInsertionPointAfter(step);
    swap("eval_params", 1.0);
    swap("train_params", beta1.getValueAsDouble());
  }
};

} // namespace

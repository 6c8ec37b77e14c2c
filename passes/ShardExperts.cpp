//===- ShardExperts.cpp - MoE experts split over ep -----------------------===//
//
// Expert parallelism as a graph rewrite (reference §3.4). Each rank of the
// ep group keeps E/ep experts; between forge.moe_dispatch (token copies
// grouped by expert) and forge.moe_combine (weighted sum per token) the
// rows travel to the ranks that hold their experts and back:
//
//   rows, sizes, order = forge.moe_dispatch x, indices
//   local, lsizes, counts = dist.expert_dispatch rows, sizes    (all-to-all)
//   ... grouped linears on `local` with this rank's expert weights ...
//   back = dist.expert_combine out, counts, sizes               (all-to-all)
//   y = forge.moe_combine back, order, weights, sizes
//
// Routing, capacity, the router losses, the shared expert and the combine
// weights stay on the rank that owns the tokens, so they are computed as
// without expert parallelism. Autodiff derives the backward all-to-alls
// from the two ops' VJPs.
//
// Unlike KempnerForge, ep ranks read different batches: they are
// data-parallel for every parameter but the experts (forge-build-optimizer
// averages those gradients over ep), and an expert's gradient sums the
// contributions of every rank's tokens through the all-to-all (the
// optimizer divides it by ep). KempnerForge's ep ranks consume identical
// batches, so each expert processes ep duplicate copies of every token.
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/TypeSwitch.h"

namespace forge {
#define GEN_PASS_DEF_SHARDEXPERTSPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

constexpr const char kGroup[] = "ep";
constexpr const char kPass[] = "forge-shard-experts";

/// `t` with dim 0 multiplied by `n`.
RankedTensorType widen(RankedTensorType t, int64_t n) {
  SmallVector<int64_t> shape(t.getShape());
  shape[0] *= n;
  return RankedTensorType::get(shape, t.getElementType());
}

struct ShardExpertsPass
    : public forge::impl::ShardExpertsPassBase<ShardExpertsPass> {
  ModuleOp module;
  int64_t n = 1;
  /// The local expert weight read in place of each stacked or packed one,
  /// by the name of the parameter that replaced it.
  llvm::StringMap<ParamOp> sharded;

  void runOnOperation() override {
    module = getOperation();
    dist::Mesh mesh;
    std::string error;
    if (!dist::readMesh(module, mesh, error)) {
      module.emitError(kPass) << ": " << error;
      return signalPassFailure();
    }
    n = mesh.size(kGroup);
    if (n <= 1)
      return;
    // Muon orthogonalizes each expert's matrix; a stacked parameter would
    // be one [E, out * in] matrix to it.
    if (auto opt = module->getAttrOfType<DictionaryAttr>("forge.optimizer"))
      if (auto name = opt.getAs<StringAttr>("name"); name && name == "muon") {
        module.emitError(kPass)
            << ": optimizer.name = \"muon\" with ep > 1 is not supported yet "
               "(use adamw, lion or schedule_free_adamw)";
        return signalPassFailure();
      }
    SmallVector<MoeDispatchOp> dispatches;
    module.walk([&](MoeDispatchOp d) { dispatches.push_back(d); });
    if (dispatches.empty()) {
      module.emitError(kPass)
          << ": ep = " << n << " needs an MoE model (model.num_experts > 0)";
      return signalPassFailure();
    }
    for (MoeDispatchOp d : dispatches)
      if (failed(shard(d)))
        return signalPassFailure();
    // The replaced per-expert parameters are read nowhere now.
    SmallVector<ParamOp> dead;
    for (ParamOp p : module.getOps<ParamOp>())
      if (SymbolTable::symbolKnownUseEmpty(p, module))
        if (p.getSymName().contains(".experts."))
          dead.push_back(p);
    for (ParamOp p : dead)
      p.erase();
  }

  LogicalResult shard(MoeDispatchOp d) {
    const int64_t experts = d.getExperts();
    if (experts % n != 0)
      return d.emitOpError(kPass)
             << ": " << experts << " experts do not divide over ep = " << n;
    auto rowsType = cast<RankedTensorType>(d.getRows().getType());
    const int64_t R = rowsType.getDimSize(0);
    OpBuilder b(d->getContext());
    b.setInsertionPointAfter(d);
    auto i64 = b.getI64Type();
    std::string where = locName(d.getLoc());
    auto x = dist::ExpertDispatchOp::create(
        b, d.getLoc(),
        TypeRange{widen(rowsType, n), RankedTensorType::get({experts / n}, i64),
                  RankedTensorType::get({n, experts / n}, i64)},
        d.getRows(), d.getGroupSizes(), Value(), b.getStringAttr(kGroup),
        b.getI64IntegerAttr(n));
    dist::setOrigin(x, kPass, "token dispatch to the experts' ranks", where,
                    "forward");
    d.getRows().replaceAllUsesExcept(x.getResult(), x);

    // Every op between the two all-to-alls now works on the received rows
    // (n * R of them, the tail zero) with this rank's experts.
    SmallVector<Value> work = {x.getResult()};
    llvm::SetVector<Operation *> done;
    while (!work.empty()) {
      Value v = work.pop_back_val();
      for (Operation *user : llvm::to_vector(v.getUsers())) {
        if (user == x || done.contains(user))
          continue;
        LogicalResult r =
            llvm::TypeSwitch<Operation *, LogicalResult>(user)
                .Case([&](GroupedLinearOp g) -> LogicalResult {
                  if (g.getInput() != v ||
                      g.getGroupSizes() != d.getGroupSizes())
                    return g.emitOpError(kPass)
                           << ": a grouped linear of the dispatched rows must "
                              "use the dispatch's group sizes";
                  FailureOr<Value> w = localWeight(g.getWeight(), experts);
                  if (failed(w))
                    return failure();
                  g.getWeightMutable().assign(*w);
                  g.getGroupSizesMutable().assign(x.getLocalSizes());
                  g.getResult().setType(widen(
                      cast<RankedTensorType>(g.getResult().getType()), n));
                  work.push_back(g.getResult());
                  return success();
                })
                .Case<SiluOp, GeluOp, ReluOp, TanhOp, ScaleOp, MulOp, AddOp>(
                    [&](Operation *op) -> LogicalResult {
                      auto t =
                          cast<RankedTensorType>(op->getResult(0).getType());
                      if (t.getDimSize(0) == R)
                        op->getResult(0).setType(widen(t, n));
                      work.push_back(op->getResult(0));
                      return success();
                    })
                .Case([&](MoeCombineOp c) -> LogicalResult {
                  if (c.getRows() != v ||
                      c.getGroupSizes() != d.getGroupSizes())
                    return c.emitOpError(kPass)
                           << ": the combine must weight the rows of its "
                              "dispatch";
                  OpBuilder cb(c);
                  auto back = dist::ExpertCombineOp::create(
                      cb, c.getLoc(),
                      RankedTensorType::get(
                          {R,
                           cast<RankedTensorType>(v.getType()).getDimSize(1)},
                          cast<RankedTensorType>(v.getType()).getElementType()),
                      v, x.getReceived(), d.getGroupSizes(),
                      cb.getStringAttr(kGroup), cb.getI64IntegerAttr(n));
                  dist::setOrigin(back, kPass,
                                  "expert outputs back to the tokens' ranks",
                                  where, "forward");
                  c.getRowsMutable().assign(back.getResult());
                  return success();
                })
                .Default([&](Operation *op) {
                  return op->emitOpError(kPass)
                         << ": cannot run on the rows dispatched to the "
                            "experts' ranks (expected grouped linears, "
                            "activations and products, then "
                            "forge.moe_combine)";
                });
        if (failed(r))
          return failure();
        done.insert(user);
      }
    }
    // An elementwise op reached through one operand was widened; one whose
    // other operand never was would now mix row counts: the verifier of the
    // next pass run would catch it, but say here which op it is.
    for (Operation *op : done)
      for (Value o : op->getOperands())
        if (auto t = dyn_cast<RankedTensorType>(o.getType());
            t && t.getRank() == 2 &&
            isa<SiluOp, GeluOp, ReluOp, TanhOp, ScaleOp, MulOp, AddOp>(op) &&
            t.getDimSize(0) != n * R)
          return op->emitOpError(kPass)
                 << ": mixes dispatched rows with other values";
    return success();
  }

  /// This rank's experts of the grouped-linear weight `w`: a packed
  /// parameter [E, ., .] is split along dim 0; a forge.stack of the E
  /// per-expert parameters becomes one stacked parameter
  /// `...experts.*.NAME`, split along dim 0 (the runtime names its rows
  /// `...experts.<e>.NAME`, so checkpoints keep the per-expert FQNs).
  FailureOr<Value> localWeight(Value w, int64_t experts) {
    OpBuilder b(module.getContext());
    if (auto get = w.getDefiningOp<GetParamOp>()) {
      auto p = module.lookupSymbol<ParamOp>(get.getNameAttr().getAttr());
      if (!p)
        return failure();
      if (!sharded.count(p.getSymName())) {
        if (failed(splitParam(p, experts)))
          return failure();
        sharded[p.getSymName()] = p;
      }
      retype(p);
      return w;
    }
    auto stack = w.getDefiningOp<StackOp>();
    if (!stack || stack.getNumOperands() != static_cast<unsigned>(experts))
      return w.getDefiningOp()
                 ? (w.getDefiningOp()->emitOpError(kPass)
                        << ": an expert weight must be a parameter or a "
                           "forge.stack of one parameter per expert",
                    failure())
                 : failure();
    // The per-expert parameters: same type, initializer and name but for
    // the expert index.
    SmallVector<ParamOp> ps;
    for (Value v : stack.getOperands()) {
      auto get = v.getDefiningOp<GetParamOp>();
      ParamOp p =
          get ? module.lookupSymbol<ParamOp>(get.getNameAttr().getAttr())
              : ParamOp();
      if (!p)
        return stack.emitOpError(kPass)
               << ": stacks something other than parameters";
      ps.push_back(p);
    }
    std::string first = ps[0].getSymName().str();
    size_t at = first.find(".experts.0.");
    if (at == std::string::npos)
      return stack.emitOpError(kPass)
             << ": expert parameters must be named '...experts.<e>....', got '"
             << first << "'";
    auto nameOf = [&](const std::string &e) {
      return first.substr(0, at) + ".experts." + e + "." +
             first.substr(at + std::string(".experts.0.").size());
    };
    for (auto [e, p] : llvm::enumerate(ps))
      if (p.getSymName() != nameOf(std::to_string(e)) ||
          p.getType() != ps[0].getType() || p.getInit() != ps[0].getInit() ||
          p.getStdAttr() != ps[0].getStdAttr() || p->hasAttr("dist.shard"))
        return stack.emitOpError(kPass)
               << ": expert " << e << "'s parameter '" << p.getSymName()
               << "' is not like expert 0's";
    std::string stacked = nameOf("*");
    ParamOp p;
    if (auto it = sharded.find(stacked); it != sharded.end()) {
      p = it->second;
    } else {
      auto single = cast<RankedTensorType>(ps[0].getType());
      SmallVector<int64_t> shape = {experts};
      shape.append(single.getShape().begin(), single.getShape().end());
      b.setInsertionPoint(ps[0]);
      p = ParamOp::create(
          b, ps[0].getLoc(), b.getStringAttr(stacked),
          TypeAttr::get(RankedTensorType::get(shape, single.getElementType())),
          ps[0].getInitAttr(), ps[0].getStdAttr(), UnitAttr());
      if (failed(splitParam(p, experts)))
        return failure();
      sharded[stacked] = p;
    }
    b.setInsertionPoint(stack);
    auto get = GetParamOp::create(b, stack.getLoc(), p.getType(),
                                  FlatSymbolRefAttr::get(p.getSymNameAttr()));
    Value local = get.getResult();
    stack.getResult().replaceAllUsesWith(local);
    SmallVector<Operation *> reads;
    for (Value v : stack.getOperands())
      reads.push_back(v.getDefiningOp());
    stack.erase();
    for (Operation *r : reads)
      if (r->use_empty())
        r->erase();
    return local;
  }

  /// Keeps this rank's E/n experts of `p` (dim 0).
  LogicalResult splitParam(ParamOp p, int64_t experts) {
    auto t = p.getTensorType();
    if (t.getRank() != 3 || t.getDimSize(0) != experts)
      return p.emitOpError(kPass) << ": an expert weight must be [" << experts
                                  << ", ., .], got " << t;
    std::vector<dist::Split> splits;
    std::string error;
    if (!dist::readShard(p, splits, error))
      return p.emitOpError(kPass) << ": " << error;
    if (!splits.empty())
      return p.emitOpError(kPass)
             << ": expert weights must not be split before expert "
                "parallelism";
    SmallVector<int64_t> shape(t.getShape());
    shape[0] /= n;
    p.setTypeAttr(
        TypeAttr::get(RankedTensorType::get(shape, t.getElementType())));
    dist::appendShard(p, 0, kGroup);
    return success();
  }

  /// Every read of `p` returns its (new) type.
  void retype(ParamOp p) {
    module.walk([&](GetParamOp get) {
      if (get.getName() == p.getSymName())
        get.getResult().setType(p.getType());
    });
  }

  static std::string locName(Location loc) {
    if (auto named = dyn_cast<NameLoc>(loc))
      return named.getName().str();
    return "";
  }
};

} // namespace

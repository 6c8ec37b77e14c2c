//===- ShardTensorParallel.cpp - Megatron tensor parallelism over tp ------===//
//
// The tensor-parallel plan of reference §3.3 as a graph rewrite, before
// FSDP and autodiff. In each block, q/k/v and the dense MLP's input
// projections are split along their output features (column-parallel) and
// o_proj / down_proj along their input features (row-parallel), so each tp
// rank computes its share of the heads and hidden units. Each value gets a
// layout, and a collective sits wherever a layout changes; autodiff derives
// the backward collectives from their VJPs:
//
//   without sequence parallelism (SP), the residual stream is replicated:
//     x -> dist.copy -> column linears -> ... -> row linear
//       -> dist.all_reduce -> x'
//   with SP, it is cut along the sequence, and so are the norms:
//     x[seq block] -> dist.all_gather(seq) -> column linears -> ...
//       -> row linear -> dist.reduce_scatter(seq) -> x'[seq block]
//
// dist.copy is free in the forward pass; its VJP sums the partial input
// gradients of the column linears over tp (all_gather's VJP, a
// reduce-scatter, does the same with SP). A replicated weight applied to a
// rank's share (QK-norm's, a norm's on a sequence block) is wrapped in
// dist.copy too, so its gradient is summed over tp.
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/TypeSwitch.h"

namespace forge {
#define GEN_PASS_DEF_SHARDTENSORPARALLELPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

constexpr const char kGroup[] = "tp";
constexpr const char kHead[] = "output_head.proj.weight";
/// The sequence dim of the residual stream [batch, seq, dim].
constexpr int64_t kSeqDim = 1;

enum class Split { None, Column, Row };

/// The §3.3 plan by FQN: `layers.N.attention.{q,k,v}_proj.weight` and a
/// dense MLP's input projections are column-parallel, `o_proj` and
/// `down_proj` row-parallel. MoE experts, shared experts and routers
/// (`layers.N.mlp.experts...`) do not match: they stay replicated.
Split splitOf(StringRef fqn) {
  if (!fqn.consume_front("layers."))
    return Split::None;
  auto [index, rest] = fqn.split('.');
  if (index.empty() ||
      !llvm::all_of(index, [](char c) { return c >= '0' && c <= '9'; }))
    return Split::None;
  if (rest == "attention.q_proj.weight" || rest == "attention.k_proj.weight" ||
      rest == "attention.v_proj.weight" || rest == "mlp.gate_proj.weight" ||
      rest == "mlp.up_proj.weight")
    return Split::Column;
  if (rest == "attention.o_proj.weight" || rest == "mlp.down_proj.weight")
    return Split::Row;
  return Split::None;
}

/// The module a weight belongs to: "layers.0.attention" for
/// "layers.0.attention.q_proj.weight", "output_head" for
/// "output_head.proj.weight".
std::string moduleOf(StringRef fqn) {
  for (int i = 0; i < 2; ++i)
    fqn = fqn.rsplit('.').first;
  return fqn.str();
}

/// The FQN of the parameter `v` reads, or "".
std::string paramName(Value v) {
  auto get = v.getDefiningOp<GetParamOp>();
  return get ? get.getName().str() : "";
}

constexpr const char kPass[] = "forge-shard-tensor-parallel";

RankedTensorType divided(RankedTensorType t, int64_t dim, int64_t n) {
  SmallVector<int64_t> shape(t.getShape());
  shape[dim] /= n;
  return RankedTensorType::get(shape, t.getElementType());
}

/// Where a value lives across the tp ranks.
enum class Layout {
  Replicated, ///< the same on every rank
  Local,      ///< the rank's share of heads, hidden units or vocabulary
  Seq,        ///< the rank's block of the sequence (SP)
};

struct ShardTensorParallelPass
    : public forge::impl::ShardTensorParallelPassBase<ShardTensorParallelPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    dist::Mesh mesh;
    std::string error;
    if (!dist::readMesh(module, mesh, error)) {
      module.emitError("forge-shard-tensor-parallel: ") << error;
      return signalPassFailure();
    }
    tp_ = mesh.size(kGroup);
    if (tp_ <= 1)
      return;
    // Sequence parallelism exactly where §3.3 enables it: not with MoE
    // blocks and not with tied embeddings (the head reads the embedding).
    bool moe = false;
    module.walk([&](MoeDispatchOp) { moe = true; });
    sp_ = module->hasAttr(dist::kSequenceParallelAttr) && !moe &&
          module.lookupSymbol<ParamOp>(kHead);
    // Split the parameters. With SP the output head is column-parallel too
    // (vocabulary rows), unless the loss fuses it (chunked cross-entropy).
    bool fusedHead = false;
    module.walk([&](ChunkedCrossEntropyOp) { fusedHead = true; });
    for (ParamOp p : module.getOps<ParamOp>()) {
      Split s = splitOf(p.getSymName());
      if (sp_ && !fusedHead && p.getSymName() == kHead)
        s = Split::Column;
      if (s == Split::None || p.getBuffer())
        continue;
      RankedTensorType t = p.getTensorType();
      const int64_t dim = s == Split::Column ? 0 : 1;
      if (t.getRank() != 2 || t.getDimSize(dim) % tp_ != 0) {
        p.emitError("forge-shard-tensor-parallel: cannot split '")
            << p.getSymName() << "' " << t << " over tp " << tp_ << ": dim "
            << dim << " must be a multiple of " << tp_
            << " (heads, kv heads, the MLP hidden size and, with sequence "
               "parallelism, the vocabulary must be divisible by tp)";
        return signalPassFailure();
      }
      p.setTypeAttr(TypeAttr::get(divided(t, dim, tp_)));
      dist::appendShard(p, dim, kGroup);
      split_[p.getSymNameAttr()] = s;
    }
    for (auto fn : module.getOps<func::FuncOp>())
      if (failed(rewrite(fn)))
        return signalPassFailure();
  }

private:
  /// The split of the parameter `v` reads, if it is a split parameter.
  Split paramSplit(Value v) {
    auto get = v.getDefiningOp<GetParamOp>();
    if (!get)
      return Split::None;
    auto it = split_.find(get.getNameAttr().getAttr());
    return it == split_.end() ? Split::None : it->second;
  }

  Layout layoutOf(Value v) {
    auto it = layout_.find(v);
    return it == layout_.end() ? Layout::Replicated : it->second;
  }

  /// Sets the insertion point right after `v` is defined.
  static void after(OpBuilder &b, Value v) {
    if (Operation *def = v.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(cast<BlockArgument>(v).getOwner());
  }

  /// `v` wrapped in a dist.copy (one per value): a replicated value whose
  /// consumers on each rank produce only part of its gradient.
  Value copyOf(Value v, OpBuilder &b, StringRef what, StringRef of) {
    auto [it, inserted] = copies_.try_emplace(v, Value());
    if (!inserted)
      return it->second;
    OpBuilder::InsertionGuard guard(b);
    after(b, v);
    auto copy =
        dist::CopyOp::create(b, v.getLoc(), v.getType(), v,
                             b.getStringAttr(kGroup), b.getI64IntegerAttr(tp_));
    dist::setOrigin(copy, kPass, what, of, "forward");
    it->second = copy;
    return it->second;
  }

  /// The whole sequence of the SP block `v` (one gather per value). With
  /// `sliceGrad` its consumers are replicated computations (the fused head
  /// and loss) whose gradient is complete on every rank.
  Value gatherOf(Value v, bool sliceGrad, OpBuilder &b, StringRef of) {
    auto [it, inserted] = gathers_.try_emplace(v, Value());
    if (!inserted)
      return it->second;
    OpBuilder::InsertionGuard guard(b);
    after(b, v);
    auto t = cast<RankedTensorType>(v.getType());
    SmallVector<int64_t> shape(t.getShape());
    shape[kSeqDim] *= tp_;
    auto gather = dist::AllGatherOp::create(
        b, v.getLoc(), RankedTensorType::get(shape, t.getElementType()), v,
        b.getI64IntegerAttr(kSeqDim), b.getStringAttr(kGroup),
        b.getI64IntegerAttr(tp_), UnitAttr(),
        sliceGrad ? b.getUnitAttr() : UnitAttr(), StringAttr());
    dist::setOrigin(gather, kPass,
                    sliceGrad ? "sequence gather for the replicated head"
                              : "sequence gather before column-parallel "
                                "linears",
                    of, "forward");
    it->second = gather;
    return it->second;
  }

  /// Replaces the uses of `v` (except by the new op) with what `make`
  /// builds from it right after its definition.
  template <typename F> Value rewire(Value v, OpBuilder &b, F make) {
    OpBuilder::InsertionGuard guard(b);
    after(b, v);
    Value n = make();
    v.replaceAllUsesExcept(n, n.getDefiningOp());
    return n;
  }

  LogicalResult rewrite(func::FuncOp fn) {
    copies_.clear();
    gathers_.clear();
    layout_.clear();
    OpBuilder b(fn.getContext());
    SmallVector<Operation *> ops;
    fn.walk([&](Operation *op) { ops.push_back(op); });
    for (Operation *op : ops)
      if (failed(visit(op, b)))
        return failure();
    return success();
  }

  LogicalResult visit(Operation *op, OpBuilder &b) {
    if (auto get = dyn_cast<GetParamOp>(op)) {
      // get_param reads the parameter's (now split) type.
      auto p =
          SymbolTable::lookupNearestSymbolFrom<ParamOp>(op, get.getNameAttr());
      if (p && split_.count(p.getSymNameAttr()))
        get.getResult().setType(p.getType());
      return success();
    }
    if (auto emb = dyn_cast<EmbeddingOp>(op)) {
      if (!sp_)
        return success();
      // Enter the sequence-parallel residual stream: each rank keeps its
      // block of the (replicated) embedding output.
      auto t = cast<RankedTensorType>(emb.getType());
      if (t.getRank() != 3 || t.getDimSize(kSeqDim) % tp_ != 0)
        return emb.emitOpError("forge-shard-tensor-parallel: sequence "
                               "parallelism needs seq_len divisible by tp ")
               << tp_ << ", got " << t;
      Value block = rewire(emb.getResult(), b, [&] {
        auto slice = dist::SliceOp::create(
            b, emb.getLoc(), divided(t, kSeqDim, tp_), emb.getResult(),
            b.getI64IntegerAttr(kSeqDim), b.getStringAttr(kGroup),
            b.getI64IntegerAttr(tp_));
        dist::setOrigin(slice, kPass, "sequence block of the embedding output",
                        "token_embedding", "forward");
        return slice.getResult();
      });
      layout_[block] = Layout::Seq;
      return success();
    }
    if (auto linear = dyn_cast<LinearOp>(op))
      return visitLinear(linear, b);
    if (auto ce = dyn_cast<ChunkedCrossEntropyOp>(op)) {
      // The fused head and loss are replicated: they read the whole
      // sequence.
      if (layoutOf(ce.getHidden()) == Layout::Seq)
        ce.getHiddenMutable().assign(
            gatherOf(ce.getHidden(), /*sliceGrad=*/true, b,
                     moduleOf(paramName(ce.getWeight()))));
      return checkReplicated(op);
    }
    bool local = llvm::any_of(op->getOperands(), [&](Value v) {
      return layoutOf(v) == Layout::Local;
    });
    bool seq = llvm::any_of(
        op->getOperands(), [&](Value v) { return layoutOf(v) == Layout::Seq; });
    if (local && seq)
      return op->emitOpError("forge-shard-tensor-parallel: mixes a "
                             "tensor-parallel share and a sequence block");
    if (local)
      return visitLocal(op, b);
    if (seq)
      return visitSeq(op, b);
    return success();
  }

  /// An op that must see replicated operands.
  LogicalResult checkReplicated(Operation *op) {
    for (Value v : op->getOperands())
      if (layoutOf(v) != Layout::Replicated)
        return op->emitOpError("forge-shard-tensor-parallel: no rule for "
                               "this op on a split value");
    return success();
  }

  LogicalResult visitLinear(LinearOp linear, OpBuilder &b) {
    Split s = paramSplit(linear.getWeight());
    Value x = linear.getInput();
    Layout in = layoutOf(x);
    if (s == Split::Column) {
      // The whole input on every rank, with its gradient summed over tp.
      if (in == Layout::Local)
        return linear.emitOpError("forge-shard-tensor-parallel: a "
                                  "column-parallel linear reads a "
                                  "tensor-parallel value");
      const std::string of = moduleOf(paramName(linear.getWeight()));
      linear.getInputMutable().assign(
          in == Layout::Seq ? gatherOf(x, false, b, of)
                            : copyOf(x, b, "column-parallel input", of));
      auto t = cast<RankedTensorType>(linear.getType());
      const int64_t last = t.getRank() - 1;
      linear.getResult().setType(divided(t, last, tp_));
      auto get = linear.getWeight().getDefiningOp<GetParamOp>();
      if (get.getName() != kHead) {
        layout_[linear.getResult()] = Layout::Local;
        return success();
      }
      // The head's vocabulary shares, gathered into replicated logits for
      // the loss (whose gradient is then complete on every rank).
      Value logits = rewire(linear.getResult(), b, [&] {
        auto gather = dist::AllGatherOp::create(
            b, linear.getLoc(), t, linear.getResult(),
            b.getI64IntegerAttr(last), b.getStringAttr(kGroup),
            b.getI64IntegerAttr(tp_), UnitAttr(), b.getUnitAttr(),
            StringAttr());
        dist::setOrigin(gather, kPass, "vocabulary gather of the logits",
                        "output_head", "forward");
        return gather.getResult();
      });
      layout_[logits] = Layout::Replicated;
      return success();
    }
    if (s == Split::Row) {
      if (in != Layout::Local)
        return linear.emitOpError("forge-shard-tensor-parallel: a "
                                  "row-parallel linear reads a value that is "
                                  "not a tensor-parallel share");
      // Each rank's product is a partial sum over its input features: sum
      // it (SP: and keep this rank's sequence block of the sum).
      auto t = cast<RankedTensorType>(linear.getType());
      if (sp_) {
        if (t.getRank() != 3 || t.getDimSize(kSeqDim) % tp_ != 0)
          return linear.emitOpError("forge-shard-tensor-parallel: cannot "
                                    "split ")
                 << t << " along the sequence over tp " << tp_;
        Value block = rewire(linear.getResult(), b, [&] {
          auto scatter = dist::ReduceScatterOp::create(
              b, linear.getLoc(), divided(t, kSeqDim, tp_), linear.getResult(),
              b.getI64IntegerAttr(kSeqDim), b.getStringAttr(kGroup),
              b.getI64IntegerAttr(tp_), b.getStringAttr("sum"));
          dist::setOrigin(scatter, kPass,
                          "row-parallel partial sums to sequence blocks",
                          moduleOf(paramName(linear.getWeight())), "forward");
          return scatter.getResult();
        });
        layout_[block] = Layout::Seq;
        return success();
      }
      rewire(linear.getResult(), b, [&] {
        auto sum = dist::AllReduceOp::create(
            b, linear.getLoc(), t, linear.getResult(), b.getStringAttr(kGroup),
            b.getI64IntegerAttr(tp_), b.getStringAttr("sum"));
        dist::setOrigin(sum, kPass, "row-parallel partial sum",
                        moduleOf(paramName(linear.getWeight())), "forward");
        return sum.getResult();
      });
      return success();
    }
    return checkReplicated(linear);
  }

  /// Inside a tensor-parallel region: the op runs on the rank's heads or
  /// hidden units; its result shape follows and every replicated float
  /// operand (QK-norm's weight) gets only a partial gradient here.
  LogicalResult visitLocal(Operation *op, OpBuilder &b) {
    for (OpOperand &use : op->getOpOperands()) {
      Value v = use.get();
      auto t = dyn_cast<RankedTensorType>(v.getType());
      if (layoutOf(v) == Layout::Replicated && t &&
          isa<FloatType>(t.getElementType()))
        use.set(copyOf(v, b, "replicated weight on tensor-parallel shares",
                       paramName(v)));
    }
    LogicalResult ok =
        llvm::TypeSwitch<Operation *, LogicalResult>(op)
            .Case([&](ReshapeOp r) -> LogicalResult {
              // [B, S, F] <-> [B, S, H, hd]: the feature (heads) dim 2.
              auto t = cast<RankedTensorType>(r.getType());
              if (t.getRank() < 3 || t.getDimSize(2) % tp_ != 0)
                return r.emitOpError("forge-shard-tensor-parallel: cannot "
                                     "split ")
                       << t << " along dim 2 over tp " << tp_;
              r.getResult().setType(divided(t, 2, tp_));
              return success();
            })
            .Case([&](AttentionOp a) {
              a.getResult().setType(a.getQ().getType());
              return success();
            })
            .Case<RopeOp, RMSNormOp, SiluOp, GeluOp, ReluOp, TanhOp, MulOp>(
                [&](Operation *e) {
                  e->getResult(0).setType(e->getOperand(0).getType());
                  return success();
                })
            .Default([&](Operation *other) {
              return other->emitOpError(
                  "forge-shard-tensor-parallel: no rule for this op on a "
                  "tensor-parallel value");
            });
    if (failed(ok))
      return failure();
    for (Value r : op->getResults())
      layout_[r] = Layout::Local;
    return success();
  }

  /// On the sequence-parallel residual stream: norms run on the rank's
  /// block (their replicated weights get partial gradients) and residual
  /// adds combine blocks.
  LogicalResult visitSeq(Operation *op, OpBuilder &b) {
    LogicalResult ok =
        llvm::TypeSwitch<Operation *, LogicalResult>(op)
            .Case<RMSNormOp, LayerNormOp>(
                [&](Operation *norm) -> LogicalResult {
                  if (layoutOf(norm->getOperand(0)) != Layout::Seq)
                    return norm->emitOpError(
                        "forge-shard-tensor-parallel: a "
                        "sequence-parallel norm's weight is "
                        "split");
                  for (OpOperand &use : llvm::drop_begin(norm->getOpOperands()))
                    use.set(copyOf(use.get(), b,
                                   "replicated norm weight on sequence blocks",
                                   paramName(use.get())));
                  norm->getResult(0).setType(norm->getOperand(0).getType());
                  return success();
                })
            .Case([&](AddOp add) -> LogicalResult {
              if (layoutOf(add.getLhs()) != Layout::Seq ||
                  layoutOf(add.getRhs()) != Layout::Seq)
                return add.emitOpError("forge-shard-tensor-parallel: adds a "
                                       "sequence block and a whole sequence");
              add.getResult().setType(add.getLhs().getType());
              return success();
            })
            .Default([&](Operation *other) {
              return other->emitOpError(
                  "forge-shard-tensor-parallel: no sequence-parallel rule "
                  "for this op");
            });
    if (failed(ok))
      return failure();
    for (Value r : op->getResults())
      layout_[r] = Layout::Seq;
    return success();
  }

  int64_t tp_ = 1;
  bool sp_ = false;
  llvm::DenseMap<StringAttr, Split> split_;
  llvm::DenseMap<Value, Value> copies_, gathers_;
  llvm::DenseMap<Value, Layout> layout_;
};

} // namespace

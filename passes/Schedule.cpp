//===- Schedule.cpp - Program order and streams ---------------------------===//
//
// Fixes the order in which each program's ops run and the stream each one
// runs on, before forge-plan-memory lays out memory in that order.
//
// The order is a topological sort of the program's dependence graph: uses
// of values, and the order of reads and writes of each parameter
// (forge.get_param / forge.set_param of the same symbol) and of ops whose
// effects are unknown. Among ready ops the earliest in the input runs first,
// so the result is stable: IR from the frontend and autodiff is already in
// a topological order and keeps it. Then FSDP's weight gathers move one
// gather ahead (prefetch), so the communication stream overlaps compute.
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/exec/IR/ExecDialect.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"
#include "passes/PipelineSchedule.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

#include <functional>
#include <map>
#include <queue>

namespace forge {
#define GEN_PASS_DEF_SCHEDULEPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

/// The dependences of `ops` (a block's ops without its terminator): for
/// each op, the positions of the ops that must run before it.
std::vector<SmallVector<unsigned>> dependences(ArrayRef<Operation *> ops) {
  DenseMap<Operation *, unsigned> position;
  for (auto [i, op] : llvm::enumerate(ops))
    position[op] = i;
  Block *block = ops.empty() ? nullptr : ops.front()->getBlock();
  std::vector<SmallVector<unsigned>> deps(ops.size());

  // Reads and writes of one symbol keep their order relative to each
  // other's writes; an op with unknown effects is ordered after every
  // effectful op before it and before every one after it.
  struct SymbolState {
    std::optional<unsigned> lastWrite;
    SmallVector<unsigned> readsSinceWrite;
  };
  DenseMap<Attribute, SymbolState> symbols;
  std::optional<unsigned> lastBarrier;
  SmallVector<unsigned> effectfulSinceBarrier;

  for (auto [i, op] : llvm::enumerate(ops)) {
    SmallVector<unsigned> &d = deps[i];
    // Values used by the op or by anything nested in it.
    op->walk([&](Operation *user) {
      for (Value v : user->getOperands()) {
        Operation *def = v.getDefiningOp();
        if (!def)
          continue;
        if (Operation *top = block->findAncestorOpInBlock(*def))
          if (top != op)
            d.push_back(position.at(top));
      }
    });
    if (isMemoryEffectFree(op))
      continue;
    SmallVector<Attribute> touched;
    for (NamedAttribute a : op->getAttrs())
      if (isa<SymbolRefAttr>(a.getValue()))
        touched.push_back(a.getValue());
    auto effects = dyn_cast<MemoryEffectOpInterface>(op);
    if (!effects || touched.empty()) {
      // Unknown effects: a barrier.
      if (lastBarrier)
        d.push_back(*lastBarrier);
      d.append(effectfulSinceBarrier);
      lastBarrier = i;
      effectfulSinceBarrier.clear();
      continue;
    }
    bool writes = effects.hasEffect<MemoryEffects::Write>() ||
                  effects.hasEffect<MemoryEffects::Allocate>() ||
                  effects.hasEffect<MemoryEffects::Free>();
    if (lastBarrier)
      d.push_back(*lastBarrier);
    for (Attribute sym : touched) {
      SymbolState &s = symbols[sym];
      if (s.lastWrite)
        d.push_back(*s.lastWrite);
      if (writes) {
        d.append(s.readsSinceWrite);
        s.readsSinceWrite.clear();
        s.lastWrite = i;
      } else {
        s.readsSinceWrite.push_back(i);
      }
    }
    effectfulSinceBarrier.push_back(i);
  }
  for (SmallVector<unsigned> &d : deps) {
    llvm::sort(d);
    d.erase(std::unique(d.begin(), d.end()), d.end());
  }
  return deps;
}

/// Kahn's algorithm, the earliest ready op first: the positions of `ops` in
/// their new order.
std::vector<unsigned> topologicalOrder(ArrayRef<Operation *> ops) {
  std::vector<SmallVector<unsigned>> deps = dependences(ops);
  std::vector<SmallVector<unsigned>> users(ops.size());
  std::vector<unsigned> waiting(ops.size(), 0);
  for (auto [i, d] : llvm::enumerate(deps)) {
    waiting[i] = d.size();
    for (unsigned j : d)
      users[j].push_back(i);
  }
  std::priority_queue<unsigned, std::vector<unsigned>, std::greater<unsigned>>
      ready;
  for (unsigned i = 0; i < ops.size(); ++i)
    if (waiting[i] == 0)
      ready.push(i);
  std::vector<unsigned> order;
  order.reserve(ops.size());
  while (!ready.empty()) {
    unsigned i = ready.top();
    ready.pop();
    order.push_back(i);
    for (unsigned u : users[i])
      if (--waiting[u] == 0)
        ready.push(u);
  }
  // Every dependence points to an earlier op of a valid block, so the graph
  // has no cycle.
  assert(order.size() == ops.size() && "dependence cycle in a block");
  return order;
}

/// FSDP prefetch (FSDP2's forward and backward prefetch, one ahead): each
/// weight gather (a forge.get_param read only by a dist.all_gather
/// {data_parallel}) moves up to just before the op that first reads the
/// previous weight gather's result, so that the communication stream
/// transfers the next weight while that op computes. Parameters written in
/// the program (forge.set_param) stay where they are.
void prefetchWeightGathers(Block &block) {
  llvm::DenseSet<Attribute> written;
  SmallVector<dist::AllGatherOp> gathers;
  for (Operation &op : block) {
    if (auto set = dyn_cast<SetParamOp>(op))
      written.insert(set.getNameAttr());
    auto g = dyn_cast<dist::AllGatherOp>(op);
    auto get = g ? g.getInput().getDefiningOp<GetParamOp>() : GetParamOp();
    if (g && g.getDataParallel() && get && get->hasOneUse())
      gathers.push_back(g);
  }
  for (size_t k = 1; k < gathers.size(); ++k) {
    auto get = gathers[k].getInput().getDefiningOp<GetParamOp>();
    if (written.contains(get.getNameAttr()))
      continue;
    Operation *first = nullptr;
    for (Operation *user : gathers[k - 1].getResult().getUsers())
      if (!first || user->isBeforeInBlock(first))
        first = user;
    if (!first || !first->isBeforeInBlock(get))
      continue;
    get->moveBefore(first);
    gathers[k]->moveBefore(first);
  }
}

/// A pipeline stage's @train_step and the first op of its backward (which
/// forge-build-backward marks).
LogicalResult differentiatedStep(ModuleOp module, func::FuncOp &fn,
                                 Operation *&begin) {
  fn = module.lookupSymbol<func::FuncOp>("train_step");
  if (!fn)
    return module.emitError("forge-schedule: the stage has no @train_step");
  for (Operation &op : fn.getBody().front())
    if (op.hasAttr(kBackwardBeginAttr)) {
      begin = &op;
      return success();
    }
  return fn.emitError("forge-schedule: @train_step of a pipeline stage "
                      "must be differentiated (forge-build-backward marks "
                      "where its backward begins)");
}

/// Ops every program may repeat instead of owning: parameter reads, and
/// constants (no operands, no effects), but not a receive.
bool sharedOp(Operation *op) {
  return isa<GetParamOp>(op) ||
         (op->getNumOperands() == 0 && isMemoryEffectFree(op) &&
          !isa<dist::RecvOp>(op));
}

/// With virtual stages (interleaved_1f1b): a rank's @train_step holds its
/// model chunks side by side (forge-split-pipeline), which share nothing
/// but parameter reads, constants and the glue that sums their outputs. The
/// ops fall into connected components by the values they exchange; each
/// chunk's component holds the chunk's sends and receives, whose tags (2c
/// forward, 2c + 1 backward, c the sending chunk) say which chunk it is.
/// Each chunk j and slot K then gets `@forward.j.K` and `@backward.j.K`
/// (stash buffers `pipeline.stash.j.K.I`), built as a stage's are.
LogicalResult splitChunks(ModuleOp module,
                          const std::vector<pipeline::Action> &actions,
                          int64_t pp) {
  const int64_t stage =
      module->getAttrOfType<IntegerAttr>(dist::kStageAttr).getInt();
  func::FuncOp fn;
  Operation *begin = nullptr;
  if (failed(differentiatedStep(module, fn, begin)))
    return failure();
  Block &body = fn.getBody().front();
  SmallVector<Operation *> ops;
  DenseMap<Operation *, unsigned> index;
  for (Operation &op : body.without_terminator()) {
    index[&op] = ops.size();
    ops.push_back(&op);
  }
  // Union-find over the ops that belong to one chunk.
  std::vector<unsigned> parent(ops.size());
  for (unsigned i = 0; i < ops.size(); ++i)
    parent[i] = i;
  std::function<unsigned(unsigned)> find = [&](unsigned i) {
    return parent[i] == i ? i : parent[i] = find(parent[i]);
  };
  auto owned = [&](Operation *op) {
    return op && index.count(op) && !sharedOp(op) &&
           !op->hasAttr(dist::kPipelineGlueAttr);
  };
  for (Operation *op : ops) {
    if (!owned(op))
      continue;
    op->walk([&](Operation *inner) {
      for (Value v : inner->getOperands()) {
        Operation *def = v.getDefiningOp();
        if (def)
          def = body.findAncestorOpInBlock(*def);
        if (owned(def))
          parent[find(index[def])] = find(index[op]);
      }
    });
  }
  // Each component's chunk (the rank's j), from its sends and receives.
  std::map<unsigned, int64_t> chunkOfRoot;
  for (Operation *op : ops) {
    int64_t c = -1;
    if (auto s = dyn_cast<dist::SendOp>(op))
      c = s.getTag() % 2 == 0 ? s.getTag() / 2 : (s.getTag() - 1) / 2 + 1;
    else if (auto r = dyn_cast<dist::RecvOp>(op))
      c = r.getTag() % 2 == 0 ? r.getTag() / 2 + 1 : (r.getTag() - 1) / 2;
    if (c < 0)
      continue;
    if (c % pp != stage)
      return op->emitOpError("forge-schedule: belongs to model chunk ")
             << c << ", which is not on pipeline stage " << stage;
    auto [it, fresh] = chunkOfRoot.insert({find(index[op]), c / pp});
    if (!fresh && it->second != c / pp)
      return op->emitOpError("forge-schedule: connects model chunks ")
             << it->second * pp + stage << " and " << c
             << " of one rank (they may share only parameters and constants)";
  }
  DenseMap<Operation *, int64_t> chunkOf;
  for (Operation *op : ops) {
    if (!owned(op))
      continue;
    auto it = chunkOfRoot.find(find(index[op]));
    if (it == chunkOfRoot.end())
      return op->emitOpError("forge-schedule: belongs to no model chunk "
                             "(no send or receive reaches it)");
    chunkOf[op] = it->second;
  }
  // Each chunk's result: the glue's leaves.
  int64_t chunks = 0;
  for (auto &[root, j] : chunkOfRoot)
    chunks = std::max(chunks, j + 1);
  SmallVector<Value> result(chunks);
  SmallVector<Value> pending = {body.getTerminator()->getOperand(0)};
  while (!pending.empty()) {
    Value v = pending.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (def && def->hasAttr(dist::kPipelineGlueAttr)) {
      pending.append(def->getOperands().begin(), def->getOperands().end());
      continue;
    }
    if (!owned(def))
      return fn.emitError("forge-schedule: a chunk's output is not its own");
    result[chunkOf[def]] = v;
  }

  OpBuilder b(module.getContext());
  b.setInsertionPoint(fn);
  SmallVector<int64_t> flat;
  for (int64_t j = 0; j < chunks; ++j) {
    if (!result[j])
      return fn.emitError("forge-schedule: model chunk ")
             << j * pp + stage << " has no output";
    SmallVector<Operation *> fwd, bwd, sharedFwd, sharedBwd;
    for (Operation *op : ops) {
      const bool isBwd = begin->isBeforeInBlock(op) || op == begin;
      if (owned(op)) {
        if (chunkOf[op] == j)
          (isBwd ? bwd : fwd).push_back(op);
      } else if (sharedOp(op)) {
        (isBwd ? sharedBwd : sharedFwd).push_back(op);
      }
    }
    llvm::SmallPtrSet<Operation *, 32> inFwd(fwd.begin(), fwd.end());
    llvm::SetVector<Value> kept;
    for (Operation *op : bwd)
      op->walk([&](Operation *inner) {
        for (Value v : inner->getOperands())
          if (Operation *def = v.getDefiningOp())
            if (inFwd.contains(def))
              kept.insert(v);
      });
    // The shared ops a program reads, in body order.
    auto sharedFor = [&](ArrayRef<Operation *> users,
                         ArrayRef<Operation *> candidates) {
      llvm::SmallPtrSet<Operation *, 16> used;
      for (Operation *op : users)
        op->walk([&](Operation *inner) {
          for (Value v : inner->getOperands())
            if (Operation *def = v.getDefiningOp())
              used.insert(def);
        });
      SmallVector<Operation *> out;
      for (Operation *op : candidates)
        if (used.contains(op))
          out.push_back(op);
      return out;
    };
    SmallVector<Operation *> fwdShared = sharedFor(fwd, sharedFwd);
    SmallVector<Operation *> allShared(sharedFwd);
    allShared.append(sharedBwd);
    SmallVector<Operation *> bwdShared = sharedFor(bwd, allShared);
    const int64_t slots = pipeline::slotsOf(actions, j);
    SmallVector<SmallVector<FlatSymbolRefAttr>> stash(slots);
    const std::string tag = std::to_string(j) + ".";
    for (int64_t k = 0; k < slots; ++k)
      for (auto [i, v] : llvm::enumerate(kept)) {
        std::string name = "pipeline.stash." + tag + std::to_string(k) + "." +
                           std::to_string(i);
        ParamOp::create(b, fn.getLoc(), b.getStringAttr(name),
                        TypeAttr::get(v.getType()),
                        InitKindAttr::get(module.getContext(), InitKind::zeros),
                        FloatAttr(), b.getUnitAttr());
        stash[k].push_back(FlatSymbolRefAttr::get(b.getStringAttr(name)));
      }
    for (int64_t k = 0; k < slots; ++k) {
      auto f = func::FuncOp::create(
          b, fn.getLoc(), "forward." + tag + std::to_string(k),
          b.getFunctionType(fn.getArgumentTypes(), {result[j].getType()}));
      OpBuilder fb = OpBuilder::atBlockBegin(f.addEntryBlock());
      IRMapping map;
      map.map(fn.getArguments(), f.getArguments());
      for (Operation *op : fwdShared)
        fb.clone(*op, map);
      for (Operation *op : fwd)
        fb.clone(*op, map);
      for (auto [i, v] : llvm::enumerate(kept))
        SetParamOp::create(fb, fn.getLoc(), stash[k][i], map.lookup(v));
      func::ReturnOp::create(fb, fn.getLoc(), map.lookup(result[j]));

      auto g = func::FuncOp::create(
          b, fn.getLoc(), "backward." + tag + std::to_string(k),
          b.getFunctionType(fn.getArgumentTypes(), {}));
      OpBuilder gb = OpBuilder::atBlockBegin(g.addEntryBlock());
      IRMapping bmap;
      bmap.map(fn.getArguments(), g.getArguments());
      for (auto [i, v] : llvm::enumerate(kept))
        bmap.map(v,
                 GetParamOp::create(gb, fn.getLoc(), v.getType(), stash[k][i])
                     .getResult());
      for (Operation *op : bwdShared) {
        Operation *c = gb.clone(*op, bmap);
        c->removeAttr(kBackwardBeginAttr);
      }
      for (Operation *op : bwd) {
        Operation *c = gb.clone(*op, bmap);
        c->removeAttr(kBackwardBeginAttr);
      }
      func::ReturnOp::create(gb, fn.getLoc());
    }
  }
  for (const pipeline::Action &a : actions)
    flat.append({a.backward ? 1 : 0, a.micro, a.slot, a.chunk});
  module->setAttr(dist::kPipelineActionsAttr, b.getDenseI64ArrayAttr(flat));
  fn.erase();
  return success();
}

/// A pipeline stage's @train_step (one micro-batch, forward then backward)
/// becomes `@forward.K` and `@backward.K` for each activation slot K of the
/// stage's schedule: the values the backward reads from the forward are
/// kept in per-slot buffers `pipeline.stash.K.I` (set at the end of the
/// forward, read at the start of the backward), so several micro-batches
/// can be in flight. Parameter reads and constants are repeated in the
/// backward instead of kept. The stage's actions (forward or backward,
/// micro-batch, slot) are recorded as `dist.pipeline_actions`.
LogicalResult splitStage(ModuleOp module) {
  const int64_t stage =
      module->getAttrOfType<IntegerAttr>(dist::kStageAttr).getInt();
  auto pipe = module->getAttrOfType<DictionaryAttr>(dist::kPipelineAttr);
  dist::Mesh mesh;
  std::string error;
  if (!dist::readMesh(module, mesh, error))
    return module.emitError("forge-schedule: ") << error;
  auto kind = pipe ? pipe.getAs<StringAttr>("schedule") : StringAttr();
  auto micro = pipe ? pipe.getAs<IntegerAttr>("micro_batches") : IntegerAttr();
  if (!kind || !micro)
    return module.emitError("forge-schedule: a pipeline stage needs "
                            "dist.pipeline = {schedule, micro_batches}");
  std::vector<std::vector<pipeline::Action>> all;
  if (!pipeline::schedule(kind.str(), mesh.size("pp"), micro.getInt(), all,
                          error))
    return module.emitError("forge-schedule: ") << error;
  const std::vector<pipeline::Action> &actions = all[stage];
  if (pipeline::virtualStages(kind.str()) > 1)
    return splitChunks(module, actions, mesh.size("pp"));
  const int64_t slots = pipeline::slotsOf(actions);

  func::FuncOp fn;
  Operation *begin = nullptr;
  if (failed(differentiatedStep(module, fn, begin)))
    return failure();
  Block &body = fn.getBody().front();
  SmallVector<Operation *> fwd, bwd;
  for (Operation &op : body.without_terminator())
    (begin->isBeforeInBlock(&op) || &op == begin ? bwd : fwd).push_back(&op);
  llvm::SmallPtrSet<Operation *, 32> inFwd(fwd.begin(), fwd.end());
  // What the backward reads from the forward.
  llvm::SetVector<Value> kept;
  llvm::SetVector<Operation *> repeated;
  for (Operation *op : bwd)
    for (Value v : op->getOperands()) {
      Operation *def = v.getDefiningOp();
      if (!def || !inFwd.contains(def))
        continue;
      if (isa<GetParamOp>(def) ||
          (def->getNumOperands() == 0 && isMemoryEffectFree(def)))
        repeated.insert(def);
      else
        kept.insert(v);
    }
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  Value loss = ret.getOperand(0);
  if (!loss.getDefiningOp() || !inFwd.contains(loss.getDefiningOp()))
    return fn.emitError("forge-schedule: the stage's loss must come from its "
                        "forward");

  OpBuilder b(module.getContext());
  b.setInsertionPoint(fn);
  SmallVector<SmallVector<FlatSymbolRefAttr>> stash(slots);
  for (int64_t k = 0; k < slots; ++k)
    for (auto [i, v] : llvm::enumerate(kept)) {
      std::string name =
          "pipeline.stash." + std::to_string(k) + "." + std::to_string(i);
      ParamOp::create(b, fn.getLoc(), b.getStringAttr(name),
                      TypeAttr::get(v.getType()),
                      InitKindAttr::get(module.getContext(), InitKind::zeros),
                      FloatAttr(), b.getUnitAttr());
      stash[k].push_back(FlatSymbolRefAttr::get(b.getStringAttr(name)));
    }
  for (int64_t k = 0; k < slots; ++k) {
    // Forward: the micro-batch's forward, then its kept values.
    auto f = func::FuncOp::create(
        b, fn.getLoc(), "forward." + std::to_string(k),
        b.getFunctionType(fn.getArgumentTypes(), {loss.getType()}));
    Block *entry = f.addEntryBlock();
    OpBuilder fb = OpBuilder::atBlockBegin(entry);
    IRMapping map;
    map.map(fn.getArguments(), entry->getArguments());
    for (Operation *op : fwd)
      fb.clone(*op, map);
    for (auto [i, v] : llvm::enumerate(kept))
      SetParamOp::create(fb, fn.getLoc(), stash[k][i], map.lookup(v));
    func::ReturnOp::create(fb, fn.getLoc(), map.lookup(loss));
    // Backward: the kept values, then the backward.
    auto g =
        func::FuncOp::create(b, fn.getLoc(), "backward." + std::to_string(k),
                             b.getFunctionType(fn.getArgumentTypes(), {}));
    entry = g.addEntryBlock();
    OpBuilder gb = OpBuilder::atBlockBegin(entry);
    IRMapping bmap;
    bmap.map(fn.getArguments(), entry->getArguments());
    for (auto [i, v] : llvm::enumerate(kept))
      bmap.map(v, GetParamOp::create(gb, fn.getLoc(), v.getType(), stash[k][i])
                      .getResult());
    for (Operation *op : repeated)
      gb.clone(*op, bmap);
    for (Operation *op : bwd) {
      Operation *c = gb.clone(*op, bmap);
      c->removeAttr(kBackwardBeginAttr);
    }
    func::ReturnOp::create(gb, fn.getLoc());
  }
  SmallVector<int64_t> flat;
  for (const pipeline::Action &a : actions)
    flat.append({a.backward ? 1 : 0, a.micro, a.slot, a.chunk});
  module->setAttr(dist::kPipelineActionsAttr, b.getDenseI64ArrayAttr(flat));
  fn.erase();
  return success();
}

struct SchedulePass : public forge::impl::SchedulePassBase<SchedulePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (module->hasAttr(dist::kStageAttr) && failed(splitStage(module)))
      return signalPassFailure();
    Builder b(&getContext());
    IntegerAttr compute = b.getI64IntegerAttr(0);
    IntegerAttr comm = b.getI64IntegerAttr(1);
    for (func::FuncOp fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal())
        continue;
      if (!fn.getBody().hasOneBlock()) {
        fn.emitError("forge-schedule: @")
            << fn.getSymName()
            << " has several blocks; a program is straight-line code";
        return signalPassFailure();
      }
      Block &block = fn.getBody().front();
      SmallVector<Operation *> ops;
      for (Operation &op : block.without_terminator())
        ops.push_back(&op);
      std::vector<unsigned> order = topologicalOrder(ops);
      Operation *end = block.getTerminator();
      for (unsigned i : order) {
        ops[i]->moveBefore(end);
        // Collectives go to the communication stream, so that a device
        // runtime can overlap them with the kernels of stream 0.
        bool collective = ops[i]->getDialect() &&
                          ops[i]->getDialect()->getNamespace() ==
                              dist::DistDialect::getDialectNamespace();
        ops[i]->setAttr(exec::ExecDialect::kStreamAttr,
                        collective ? comm : compute);
      }
      prefetchWeightGathers(block);
    }
  }
};

} // namespace

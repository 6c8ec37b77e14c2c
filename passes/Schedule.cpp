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

#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"

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

struct SchedulePass : public forge::impl::SchedulePassBase<SchedulePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
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

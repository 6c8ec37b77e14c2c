//===- PlanMemory.cpp - Liveness-based arena layout ----------------------===//
//
// Places every tensor of @train_step and @optimizer_step in one arena and
// records the offsets in the IR, so `--dump-ir` shows the layout and the
// plan writer only serializes it. Persistent tensors (parameters, their
// gradient accumulators and optimizer state, other buffers, program inputs)
// come first in declaration order; activations share one region above them
// that each program reuses from its start (programs run one at a time),
// placed first-fit in op order and freed after their last use. A view
// (forge.reshape) shares its input's storage; forge.get_param reads the
// parameter in place.
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"
#include "runtime/core/CommWindow.h"

#include "mlir/IR/Builders.h"

#include <algorithm>
#include <deque>

namespace forge {
#define GEN_PASS_DEF_PLANMEMORYPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

constexpr uint64_t kAlign = 64; // matches the runtime's kArenaAlignment

uint64_t alignUp(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

enum class Kind {
  Activation,
  Parameter,
  Gradient,
  OptimizerState,
  State,
  Input
};

struct Storage {
  uint64_t bytes = 0;
  Kind kind = Kind::Activation;
  uint64_t offset = 0;
  int program = -1, def = 0, lastUse = -1;
};

struct PlanMemoryPass : public forge::impl::PlanMemoryPassBase<PlanMemoryPass> {
  void runOnOperation() override;

private:
  /// Bytes of a statically shaped tensor value, or failure.
  FailureOr<uint64_t> bytesOf(Type t, Operation *where) {
    auto rt = dyn_cast<RankedTensorType>(t);
    if (!rt || !rt.hasStaticShape() ||
        !(rt.getElementType().isF32() || rt.getElementType().isBF16() ||
          rt.getElementType().isF16() || rt.getElementType().isInteger(64) ||
          rt.getElementType().isInteger(32))) {
      where->emitOpError("forge-plan-memory: cannot place a value of type ")
          << t << " (static f32/bf16/f16/i64/i32 tensors only)";
      return failure();
    }
    return static_cast<uint64_t>(rt.getNumElements()) *
           rt.getElementTypeBitWidth() / 8;
  }

  unsigned newStorage(uint64_t bytes, Kind kind) {
    storages_.push_back({bytes, kind});
    return storages_.size() - 1;
  }

  std::vector<Storage> storages_;
  DenseMap<Value, unsigned> storageOf_;
};

void PlanMemoryPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *ctx = &getContext();
  // Every function is a program the runtime runs on its own (train_step,
  // optimizer_step, eval_step, optimizer helpers); the first two must exist.
  // A pipeline stage has forward and backward programs per activation slot
  // (forge-schedule) instead of @train_step.
  const bool staged = module->hasAttr(dist::kStageAttr);
  // With virtual stages (interleaved_1f1b) per chunk: forward.0.0, ...
  const bool chunked =
      staged && module.lookupSymbol<func::FuncOp>("forward.0.0");
  for (const char *name : {!staged   ? "train_step"
                           : chunked ? "forward.0.0"
                                     : "forward.0",
                           !staged   ? "optimizer_step"
                           : chunked ? "backward.0.0"
                                     : "backward.0",
                           "optimizer_step"})
    if (!module.lookupSymbol<func::FuncOp>(name)) {
      module.emitError("forge-plan-memory: the module has no @")
          << name << " (run forge-build-optimizer first)";
      return signalPassFailure();
    }
  SmallVector<func::FuncOp> programs(module.getOps<func::FuncOp>());
  DenseMap<StringAttr, unsigned> paramStorage;
  SmallVector<std::pair<ParamOp, unsigned>> params;
  for (auto p : module.getOps<ParamOp>()) {
    auto bytes = bytesOf(p.getType(), p);
    if (failed(bytes))
      return signalPassFailure();
    StringRef name = p.getSymName();
    Kind kind = !p.getBuffer()                   ? Kind::Parameter
                : name.starts_with("grad.")      ? Kind::Gradient
                : name.starts_with("optimizer.") ? Kind::OptimizerState
                                                 : Kind::State;
    unsigned s = newStorage(*bytes, kind);
    paramStorage[p.getSymNameAttr()] = s;
    params.push_back({p, s});
  }
  // Program inputs are persistent: the runtime writes them between runs.
  for (func::FuncOp fn : programs)
    for (BlockArgument arg : fn.getArguments()) {
      auto bytes = bytesOf(arg.getType(), fn);
      if (failed(bytes))
        return signalPassFailure();
      storageOf_[arg] = newStorage(*bytes, Kind::Input);
    }
  // Liveness, per program, in op order. Collectives that communicate run
  // on the communication stream (the CPU runtime's comm thread, a device's
  // comm stream) and finish asynchronously: their operands and results stay
  // live until the collective has surely finished, which is when the
  // runtime waits for it: at the first op reading its result, or when the
  // collective kCommWindow places later is issued (runtime::kCommWindow),
  // or at the end of the program.
  SmallVector<SmallVector<unsigned>> defined(programs.size());
  for (auto [pi, fn] : llvm::enumerate(programs)) {
    int step = 0;
    auto use = [&](Value v) {
      Storage &s = storages_[storageOf_.at(v)];
      s.lastUse = std::max(s.lastUse, step);
    };
    struct InFlight {
      SmallVector<unsigned> storages; // operands and results
      SmallVector<unsigned> results;
    };
    std::deque<InFlight> inFlight;
    // Collectives up to and including the n-th in flight finish at `step`.
    auto finish = [&](size_t n) {
      for (size_t k = 0; k < n; ++k) {
        for (unsigned id : inFlight.front().storages)
          storages_[id].lastUse = std::max(storages_[id].lastUse, step);
        inFlight.pop_front();
      }
    };
    for (Operation &op : fn.getBody().front()) {
      if (auto get = dyn_cast<GetParamOp>(op)) {
        storageOf_[get.getResult()] =
            paramStorage.at(get.getNameAttr().getAttr());
        continue;
      }
      if (auto view = dyn_cast<ReshapeOp>(op)) {
        storageOf_[view.getResult()] = storageOf_.at(view.getInput());
        continue;
      }
      const bool async =
          isa<dist::AllGatherOp, dist::ReduceScatterOp, dist::AllReduceOp,
              dist::ExpertDispatchOp, dist::ExpertCombineOp, dist::SendOp,
              dist::RecvOp>(op);
      if (isa<func::ReturnOp>(op)) {
        finish(inFlight.size());
      } else if (async) {
        if (inFlight.size() >= runtime::kCommWindow)
          finish(inFlight.size() - runtime::kCommWindow + 1);
      } else {
        size_t n = 0;
        for (auto [k, c] : llvm::enumerate(inFlight))
          for (Value v : op.getOperands())
            if (llvm::is_contained(c.results, storageOf_.at(v)))
              n = k + 1;
        finish(n);
      }
      for (Value v : op.getOperands())
        use(v);
      if (isa<func::ReturnOp>(op))
        break;
      // An optimizer update writes its new parameter and state where the
      // old ones are, and a gradient accumulation (add) its sum into the
      // gradient, when nothing reads the old values after it: these
      // kernels go element by element, so the set_param that stores the
      // result then copies nothing (no temporary, no copy). A fill (the
      // optimizer step zeroing a gradient) reads nothing and goes straight
      // into its parameter on the same condition: one pass over the
      // gradient instead of a fill and a copy.
      constexpr unsigned kNoOperand = ~0u;
      llvm::SmallDenseMap<unsigned, unsigned> inPlace;  // result -> storage
      SmallVector<std::pair<unsigned, unsigned>> pairs; // (result, operand)
      if (isa<AdamWUpdateOp>(op))
        pairs = {{0, 0}, {1, 2}, {2, 3}};
      else if (isa<LionUpdateOp>(op))
        pairs = {{0, 0}, {1, 2}};
      else if (isa<AddOp>(op))
        pairs = {{0, op.getOperand(0).getDefiningOp<GetParamOp>() ? 0u : 1u}};
      else if (isa<FillOp>(op))
        pairs = {{0, kNoOperand}};
      for (auto [ri, oi] : pairs) {
        Value r = op.getResult(ri);
        auto set = r.hasOneUse() ? dyn_cast<SetParamOp>(*r.getUsers().begin())
                                 : SetParamOp();
        if (!set)
          continue;
        if (oi != kNoOperand) {
          auto get = op.getOperand(oi).getDefiningOp<GetParamOp>();
          if (!get || get.getName() != set.getName())
            continue;
        }
        bool readLater = false;
        fn.walk([&](GetParamOp other) {
          if (other.getName() != set.getName())
            return;
          for (Operation *user : other.getResult().getUsers())
            if (user != set.getOperation() && op.isBeforeInBlock(user))
              readLater = true;
        });
        if (!readLater)
          inPlace[ri] = paramStorage.at(set.getNameAttr().getAttr());
      }
      for (auto [ri, r] : llvm::enumerate(op.getResults())) {
        if (auto it = inPlace.find(ri); it != inPlace.end()) {
          storageOf_[r] = it->second;
          continue;
        }
        auto bytes = bytesOf(r.getType(), &op);
        if (failed(bytes))
          return signalPassFailure();
        unsigned s = newStorage(*bytes, Kind::Activation);
        storages_[s].program = pi;
        storages_[s].def = step;
        storages_[s].lastUse = step;
        storageOf_[r] = s;
        defined[pi].push_back(s);
      }
      if (async) {
        InFlight c;
        for (Value v : op.getOperands())
          c.storages.push_back(storageOf_.at(v));
        for (Value r : op.getResults()) {
          c.storages.push_back(storageOf_.at(r));
          c.results.push_back(storageOf_.at(r));
        }
        inFlight.push_back(std::move(c));
      }
      ++step;
    }
  }
  // Persistent storages, in declaration order.
  uint64_t top = 0;
  uint64_t byKind[6] = {0, 0, 0, 0, 0, 0};
  for (Storage &s : storages_) {
    if (s.kind == Kind::Activation)
      continue;
    s.offset = top;
    top = alignUp(top + s.bytes);
    byKind[static_cast<int>(s.kind)] += s.bytes;
  }
  const uint64_t base = top;
  uint64_t peak = 0;
  for (auto [pi, fn] : llvm::enumerate(programs)) {
    std::vector<std::pair<uint64_t, uint64_t>> live; // [offset, end)
    std::vector<unsigned> liveIds;
    int last = 0;
    for (unsigned id : defined[pi])
      last = std::max(last, storages_[id].lastUse);
    size_t next = 0;
    for (int step = 0; step <= last; ++step) {
      for (; next < defined[pi].size() &&
             storages_[defined[pi][next]].def == step;
           ++next) {
        Storage &s = storages_[defined[pi][next]];
        uint64_t size = alignUp(s.bytes), at = 0;
        std::vector<std::pair<uint64_t, uint64_t>> sorted = live;
        std::sort(sorted.begin(), sorted.end());
        for (auto [o, e] : sorted) {
          if (at + size <= o)
            break;
          at = std::max(at, e);
        }
        s.offset = base + at;
        live.push_back({at, at + size});
        liveIds.push_back(defined[pi][next]);
        peak = std::max(peak, at + size);
      }
      for (size_t i = 0; i < liveIds.size();) {
        if (storages_[liveIds[i]].lastUse <= step) {
          live.erase(live.begin() + i);
          liveIds.erase(liveIds.begin() + i);
        } else {
          ++i;
        }
      }
    }
  }

  // Record the layout in the IR.
  Builder b(ctx);
  auto offsetAttr = [&](Value v) {
    return b.getI64IntegerAttr(
        static_cast<int64_t>(storages_[storageOf_.at(v)].offset));
  };
  for (auto [p, s] : params)
    p->setAttr("exec.offset", b.getI64IntegerAttr(storages_[s].offset));
  for (func::FuncOp fn : programs) {
    for (BlockArgument arg : fn.getArguments())
      fn.setArgAttr(arg.getArgNumber(), "exec.offset", offsetAttr(arg));
    for (Operation &op : fn.getBody().front()) {
      if (op.getNumResults() == 0 || isa<GetParamOp>(op))
        continue;
      SmallVector<int64_t> offsets;
      for (Value r : op.getResults())
        offsets.push_back(offsetAttr(r).getInt());
      op.setAttr("exec.offsets", b.getDenseI64ArrayAttr(offsets));
    }
  }
  auto i64 = [&](uint64_t v) {
    return b.getI64IntegerAttr(static_cast<int64_t>(v));
  };
  module->setAttr(
      "exec.memory",
      b.getDictionaryAttr(
          {b.getNamedAttr("parameters", i64(byKind[int(Kind::Parameter)])),
           b.getNamedAttr("gradients", i64(byKind[int(Kind::Gradient)])),
           b.getNamedAttr("optimizer_state",
                          i64(byKind[int(Kind::OptimizerState)])),
           b.getNamedAttr("other_state", i64(byKind[int(Kind::State)])),
           b.getNamedAttr("inputs", i64(byKind[int(Kind::Input)])),
           b.getNamedAttr("activations_peak", i64(peak)),
           b.getNamedAttr("total", i64(base + peak))}));
}

} // namespace

//===- SplitPipeline.cpp - One module per pipeline stage ------------------===//
//
// Pipeline parallelism's first step (reference §3.9): the model's layers
// are cut into pp contiguous stages, L // pp layers each and one more on
// the first L % pp, with the embedding on the first stage and the final
// norm, head and loss on the last. Each stage becomes a nested module
// `@stageN` with its own parameters and its own @train_step (and
// @eval_step): a stage after the first starts by receiving the hidden
// state (`dist.recv`), a stage before the last ends by sending its hidden
// state (`dist.send`, whose zero result it returns as its loss, so
// autodiff reaches it and its VJP receives the gradient). Every later pass
// runs on each stage module; forge-schedule then orders the stages'
// forward and backward programs by the pipeline schedule.
//
// With virtual stages (interleaved_1f1b, v chunks per rank) the layers are
// cut into pp x v chunks by the same rule, chunk c going to rank c % pp:
// a rank's module holds its v chunks one after the other in one
// @train_step, each receiving from the rank before and sending to the rank
// after (tags 2c forward, 2c + 1 for the gradient, so the chunks' messages
// between two ranks never mix), and returns the sum of their outputs
// (the adds marked dist.pipeline_glue). forge-schedule cuts the chunks
// apart again into their own forward and backward programs.
//
//===----------------------------------------------------------------------===//

#include "dialects/dist/IR/DistOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"
#include "passes/PipelineSchedule.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace forge {
#define GEN_PASS_DEF_SPLITPIPELINEPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

constexpr const char kGroup[] = "pp";
constexpr const char kPass[] = "forge-split-pipeline";

/// The layer an FQN-named location belongs to ("layers.7.mlp" -> 7), or -1.
int64_t layerOf(Location loc) {
  auto named = dyn_cast<NameLoc>(loc);
  if (!named)
    return -1;
  StringRef name = named.getName().getValue();
  if (!name.consume_front("layers."))
    return -1;
  int64_t layer;
  if (name.consumeInteger(10, layer))
    return -1;
  return layer;
}

int64_t layerOfName(StringRef name) {
  if (!name.consume_front("layers."))
    return -1;
  int64_t layer;
  if (name.consumeInteger(10, layer))
    return -1;
  return layer;
}

struct SplitPipelinePass
    : public forge::impl::SplitPipelinePassBase<SplitPipelinePass> {
  int64_t pp = 1, chunks = 1;
  std::vector<int64_t> stageOfLayer; ///< the model chunk of each layer

  void runOnOperation() override {
    ModuleOp module = getOperation();
    dist::Mesh mesh;
    std::string error;
    if (!dist::readMesh(module, mesh, error)) {
      module.emitError(kPass) << ": " << error;
      return signalPassFailure();
    }
    pp = mesh.size(kGroup);
    if (pp <= 1)
      return;
    auto pipe = module->getAttrOfType<DictionaryAttr>(dist::kPipelineAttr);
    auto kind = pipe ? pipe.getAs<StringAttr>("schedule") : StringAttr();
    chunks = pp * pipeline::virtualStages(kind ? kind.str() : "");
    auto train = module.lookupSymbol<func::FuncOp>("train_step");
    if (!train) {
      module.emitError(kPass) << ": the module has no func.func @train_step";
      return signalPassFailure();
    }
    // The layers, from the ops' FQN locations.
    int64_t layers = 0;
    train.walk([&](Operation *op) {
      layers = std::max(layers, layerOf(op->getLoc()) + 1);
    });
    // Two message tags per chunk boundary (runtime: 8 bits of tag).
    if (2 * chunks > 256) {
      module.emitError(kPass) << ": " << chunks
                              << " model chunks need more than 256 message "
                                 "tags; at most 128 are supported";
      return signalPassFailure();
    }
    if (layers < chunks) {
      if (chunks == pp)
        module.emitError(kPass) << ": " << layers << " layers cannot fill "
                                << pp << " pipeline stages";
      else
        module.emitError(kPass)
            << ": " << layers << " layers cannot fill " << chunks
            << " model chunks (pp " << pp << " x " << chunks / pp
            << " virtual stages of interleaved_1f1b)";
      return signalPassFailure();
    }
    // Reference §3.9: L // pp layers per stage, the first L % pp one more
    // (per model chunk with virtual stages).
    for (int64_t s = 0; s < chunks; ++s)
      for (int64_t i = 0; i < layers / chunks + (s < layers % chunks ? 1 : 0);
           ++i)
        stageOfLayer.push_back(s);

    MLIRContext *ctx = &getContext();
    OpBuilder top(ctx);
    top.setInsertionPointToEnd(module.getBody());
    SmallVector<ModuleOp> stages;
    for (int64_t s = 0; s < pp; ++s) {
      auto stage = ModuleOp::create(top, module.getLoc(),
                                    StringRef("stage" + std::to_string(s)));
      // Every setting the later passes read (mesh, optimizer, schedule...).
      for (NamedAttribute a : module->getDiscardableAttrs())
        stage->setAttr(a.getName(), a.getValue());
      stage->setAttr(dist::kStageAttr, top.getI64IntegerAttr(s));
      stages.push_back(stage);
    }
    for (const char *name : {"train_step", "eval_step"})
      if (auto fn = module.lookupSymbol<func::FuncOp>(name))
        if (failed(split(module, fn, stages)))
          return signalPassFailure();
    // Parameters follow their readers; one no step reads stays with its
    // layer (or the first stage).
    for (ParamOp p : llvm::to_vector(module.getOps<ParamOp>())) {
      int64_t s = -1;
      for (ModuleOp stage : stages)
        if (!SymbolTable::symbolKnownUseEmpty(p.getSymNameAttr(), stage))
          s = s < 0
                  ? stage->getAttrOfType<IntegerAttr>(dist::kStageAttr).getInt()
                  : -2;
      if (s == -2) {
        p.emitError(kPass) << ": parameter '" << p.getSymName()
                           << "' is read by several pipeline stages (tied "
                              "weights cannot be split)";
        return signalPassFailure();
      }
      if (s < 0) {
        int64_t layer = layerOfName(p.getSymName());
        s = layer >= 0 ? stageOfLayer[layer] % pp : 0;
      }
      // In their original order, before the stage's functions.
      p->moveBefore((*stages[s].getOps<func::FuncOp>().begin()).getOperation());
    }
    for (const char *name : {"train_step", "eval_step"})
      if (auto fn = module.lookupSymbol<func::FuncOp>(name))
        fn.erase();
  }

  /// The stage of each op of `fn`: its layer's, the first before any layer
  /// and the last after them.
  LogicalResult split(ModuleOp module, func::FuncOp fn,
                      ArrayRef<ModuleOp> stages) {
    Block &body = fn.getBody().front();
    DenseMap<Operation *, int64_t> stageOf;
    Operation *lastLayerOp = nullptr;
    for (Operation &op : body.without_terminator())
      if (layerOf(op.getLoc()) >= 0)
        lastLayerOp = &op;
    int64_t cur = 0;
    bool afterLast = false;
    for (Operation &op : body.without_terminator()) {
      int64_t layer = layerOf(op.getLoc());
      // A layer-less op goes with the chunk before it (the embedding with
      // the first), and everything after the last layer with the last.
      int64_t s = layer >= 0  ? stageOfLayer[layer]
                  : afterLast ? chunks - 1
                              : cur;
      if (s < cur)
        return op.emitOpError(kPass)
               << ": ops of pipeline stage " << s << " follow stage " << cur
               << " (the layers must be in order)";
      cur = s;
      stageOf[&op] = s;
      afterLast |= &op == lastLayerOp;
    }
    auto stageOfValue = [&](Value v) -> int64_t {
      if (Operation *def = v.getDefiningOp())
        return stageOf.lookup(def);
      return -1; // a function argument: every stage has it
    };
    // What each chunk receives: exactly one value, from the chunk before.
    SmallVector<Value> boundary(chunks); // boundary[s]: sent from s to s + 1
    for (Operation &op : body.without_terminator())
      for (Value v : op.getOperands()) {
        int64_t from = stageOfValue(v), to = stageOf[&op];
        if (from < 0 || from == to)
          continue;
        if (to != from + 1)
          return op.emitOpError(kPass)
                 << ": reads a value of pipeline stage " << from
                 << " from stage " << to
                 << " (only the hidden state passes, one stage at a time)";
        if (boundary[from] && boundary[from] != v)
          return op.emitOpError(kPass)
                 << ": a second value crosses from pipeline stage " << from
                 << " to " << to << " (only the hidden state may)";
        boundary[from] = v;
      }
    Value loss = body.getTerminator()->getOperand(0);
    if (stageOfValue(loss) != chunks - 1)
      return fn.emitOpError(kPass) << ": the loss is not on the last stage";
    for (int64_t s = 0; s + 1 < chunks; ++s)
      if (!boundary[s])
        return fn.emitOpError(kPass) << ": nothing crosses from pipeline stage "
                                     << s << " to " << s + 1;

    const bool interleaved = chunks > pp;
    // Names in origins: stages, or model chunks with virtual stages.
    auto name = [&](int64_t c) {
      return interleaved ? "chunk " + std::to_string(c) + " (rank " +
                               std::to_string(c % pp) + ")"
                         : "stage " + std::to_string(c);
    };
    for (int64_t s = 0; s < pp; ++s) {
      ModuleOp stage = stages[s];
      OpBuilder b(stage.getBody(), stage.getBody()->end());
      auto f = func::FuncOp::create(b, fn.getLoc(), fn.getSymName(),
                                    fn.getFunctionType());
      Block *entry = f.addEntryBlock();
      b.setInsertionPointToStart(entry);
      IRMapping map;
      for (auto [a, n] : llvm::zip(fn.getArguments(), entry->getArguments()))
        map.map(a, n);
      Value out;
      for (int64_t c = s; c < chunks; c += pp) {
        // Chunk c receives from chunk c - 1 (on the rank before) and sends
        // to chunk c + 1 (on the rank after), tagged by the sending chunk.
        if (c > 0) {
          auto recv = dist::RecvOp::create(
              b, fn.getLoc(), boundary[c - 1].getType(),
              b.getI64IntegerAttr((c - 1) % pp), b.getStringAttr(kGroup),
              b.getI64IntegerAttr(pp),
              b.getI64IntegerAttr(interleaved ? 2 * (c - 1) : 0));
          dist::setOrigin(recv, kPass,
                          interleaved ? "hidden state from the previous chunk"
                                      : "hidden state from the previous stage",
                          name(c - 1), "forward");
          map.map(boundary[c - 1], recv.getResult());
        }
        for (Operation &op : body.without_terminator())
          if (stageOf[&op] == c)
            b.clone(op, map);
        Value chunkOut;
        if (c + 1 < chunks) {
          auto send = dist::SendOp::create(
              b, fn.getLoc(), loss.getType(), map.lookup(boundary[c]),
              b.getI64IntegerAttr((c + 1) % pp), b.getStringAttr(kGroup),
              b.getI64IntegerAttr(pp),
              b.getI64IntegerAttr(interleaved ? 2 * c : 0));
          dist::setOrigin(send, kPass,
                          interleaved ? "hidden state to the next chunk"
                                      : "hidden state to the next stage",
                          name(c + 1), "forward");
          chunkOut = send.getResult();
        } else {
          chunkOut = map.lookup(loss);
        }
        if (!out) {
          out = chunkOut;
        } else {
          auto sum =
              AddOp::create(b, fn.getLoc(), out.getType(), out, chunkOut);
          sum->setAttr(dist::kPipelineGlueAttr, b.getUnitAttr());
          out = sum.getResult();
        }
      }
      func::ReturnOp::create(b, fn.getLoc(), out);
    }
    (void)module;
    return success();
  }
};

} // namespace

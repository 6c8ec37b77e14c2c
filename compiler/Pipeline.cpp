//===- Pipeline.cpp - The forge pass pipeline -----------------------------===//

#include "compiler/Pipeline.h"
#include "dialects/dist/IR/DistDialect.h"
#include "dialects/exec/IR/ExecOps.h"
#include "frontends/config/Config.h"
#include "passes/Passes.h"
#include "passes/PipelineSchedule.h"
#include <map>
#include <tuple>

#include "mlir/IR/OperationSupport.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>

namespace forge::compiler {

const std::vector<PipelineStep> &pipeline() {
  static const std::vector<PipelineStep> steps = [] {
    std::vector<PipelineStep> s;
    auto add = [&](std::function<std::unique_ptr<mlir::Pass>()> create) {
      std::unique_ptr<mlir::Pass> probe = create();
      s.push_back({probe->getArgument().str(), probe->getDescription().str(),
                   std::move(create)});
    };
    add([] { return forge::createSplitPipelinePass(); });
    add([] { return forge::createShardTensorParallelPass(); });
    add([] { return forge::createShardExpertsPass(); });
    add([] { return forge::createConvertFp8Pass(); });
    add([] { return forge::createCheckpointActivationsPass(); });
    add([] { return forge::createShardFsdpPass(); });
    add([] { return forge::createBuildBackwardPass(); });
    add([] { return forge::createBuildOptimizerPass(); });
    add([] { return forge::createSchedulePass(); });
    add([] { return forge::createPlanMemoryPass(); });
    add([] { return forge::createConvertForgeToExecPass(); });
    return s;
  }();
  return steps;
}

std::string setMesh(mlir::ModuleOp module, const config::JobConfig &cfg,
                    int64_t worldSize) {
  if (worldSize <= 1)
    return "";
  const config::DistributedConfig &d = cfg.distributed;
  if (d.cp > 1)
    return "distributed.cp = " + std::to_string(d.cp) +
           ": context parallelism is not implemented (KempnerForge declares "
           "it but has none either); plans for several ranks use pp, "
           "dp_shard, dp_replicate, ep and tp";
  // Interleaving runs the micro-batches in groups of pp (Megatron-LM's
  // virtual pipeline): said here, before any pass runs.
  if (d.pp > 1 && d.pp_schedule == "interleaved_1f1b" &&
      cfg.train.grad_accum_steps % d.pp != 0)
    return "distributed.pp_schedule = \"interleaved_1f1b\" runs the "
           "micro-batches in groups of pp: train.grad_accum_steps (" +
           std::to_string(cfg.train.grad_accum_steps) +
           ") must be a multiple of pp (" + std::to_string(d.pp) + ")";
  dist::Mesh mesh;
  mesh.dims = {"pp", "dp_replicate", "dp_shard", "ep", "tp"};
  mesh.sizes = {d.pp, d.dp_replicate, config::resolveDpShard(d, worldSize),
                d.ep, d.tp};
  dist::writeMesh(module, mesh);
  // forge-schedule reads the pipeline schedule; its micro-batches are the
  // gradient-accumulation steps (reference §3.9).
  if (d.pp > 1) {
    mlir::Builder b(module.getContext());
    module->setAttr(
        dist::kPipelineAttr,
        b.getDictionaryAttr(
            {b.getNamedAttr("schedule", b.getStringAttr(d.pp_schedule)),
             b.getNamedAttr("micro_batches",
                            b.getI64IntegerAttr(cfg.train.grad_accum_steps))}));
  }
  // forge-shard-tensor-parallel reads it: the dumped IR carries the choice.
  // Reference §3.3: no sequence parallelism on pipeline stages (a stage
  // receives and sends the whole sequence).
  if (d.tp > 1 && d.sequence_parallel && d.pp == 1)
    module->setAttr(dist::kSequenceParallelAttr,
                    mlir::UnitAttr::get(module.getContext()));
  return "";
}

static mlir::LogicalResult dump(mlir::ModuleOp module, const std::string &dir,
                                int index, const std::string &name,
                                std::string &error) {
  char prefix[16];
  std::snprintf(prefix, sizeof(prefix), "%02d-", index);
  std::string path = dir + "/" + prefix + name + ".mlir";
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec) {
    error = "cannot write " + path + ": " + ec.message();
    return mlir::failure();
  }
  module->print(os);
  os << "\n";
  return mlir::success();
}

/// Pipeline parallelism's send/receive pairs, matched before launch: in
/// each kind of program (forward, backward, eval), every send from stage a
/// to stage b with a tag has a receive of the same tag and tensor type on
/// stage b from a, and the schedule completes (no stage waits for a send
/// that never comes). A mismatch is a compile error, never a hang.
std::string checkPipeline(mlir::ModuleOp module) {
  using Key = std::tuple<std::string, int64_t, int64_t, int64_t, std::string>;
  std::map<Key, int64_t> balance; // sends minus receives
  for (mlir::ModuleOp stage : module.getBody()->getOps<mlir::ModuleOp>()) {
    auto index = stage->getAttrOfType<mlir::IntegerAttr>(dist::kStageAttr);
    if (!index)
      continue;
    const int64_t s = index.getInt();
    mlir::SymbolTable symbols(stage);
    for (auto program : stage.getOps<exec::ProgramOp>()) {
      // forward.K / backward.K (forward.J.K per model chunk J) run once
      // per micro-batch whatever K is (the slots' programs are clones:
      // slot 0 stands for them all).
      llvm::StringRef head = program.getSymName().split('.').first;
      llvm::StringRef slot = program.getSymName().contains('.')
                                 ? program.getSymName().rsplit('.').second
                                 : llvm::StringRef();
      if (!slot.empty() && slot != "0")
        continue;
      std::string kind = head.str();
      for (auto coll : program.getBody().getOps<exec::CollectiveOp>()) {
        const bool send = coll.getKind() == "send";
        if (!send && coll.getKind() != "recv")
          continue;
        auto attrs = coll.getKernelAttrsAttr();
        auto peer = attrs ? attrs.getAs<mlir::IntegerAttr>("peer") : nullptr;
        auto tag = attrs ? attrs.getAs<mlir::IntegerAttr>("tag") : nullptr;
        mlir::ArrayAttr refs = send ? coll.getIns() : coll.getOuts();
        if (!peer || !tag || refs.empty())
          return "a pipeline " + coll.getKind().str() +
                 " without peer, tag or buffer";
        auto buffer = symbols.lookup<exec::BufferOp>(
            mlir::cast<mlir::FlatSymbolRefAttr>(refs[0]).getValue());
        std::string type;
        llvm::raw_string_ostream os(type);
        if (buffer)
          os << buffer.getDtype() << " x " << buffer.getSize() << " bytes";
        const int64_t from = send ? s : peer.getInt();
        const int64_t to = send ? peer.getInt() : s;
        balance[{kind, from, to, tag.getInt(), os.str()}] += send ? 1 : -1;
      }
    }
  }
  for (auto &[key, n] : balance)
    if (n != 0) {
      auto &[kind, from, to, tag, type] = key;
      return "pipeline stage " + std::to_string(n > 0 ? from : to) + "'s @" +
             kind + " has " + std::to_string(n > 0 ? n : -n) + " " +
             (n > 0 ? "send" : "receive") + (std::abs(n) > 1 ? "s" : "") +
             " (stage " + std::to_string(from) + " to " + std::to_string(to) +
             ", tag " + std::to_string(tag) + ", " + type +
             ") with no matching " + (n > 0 ? "receive" : "send");
    }
  // The schedule itself completes.
  auto pipe = module->getAttrOfType<mlir::DictionaryAttr>(dist::kPipelineAttr);
  dist::Mesh mesh;
  std::string error;
  if (pipe && dist::readMesh(module, mesh, error) && mesh.size("pp") > 1) {
    std::vector<std::vector<pipeline::Action>> actions;
    pipeline::Timeline timeline;
    auto kind = pipe.getAs<mlir::StringAttr>("schedule");
    auto micro = pipe.getAs<mlir::IntegerAttr>("micro_batches");
    if (!kind || !micro ||
        !pipeline::schedule(kind.str(), mesh.size("pp"), micro.getInt(),
                            actions, error) ||
        !pipeline::simulate(actions, timeline, error))
      return error;
  }
  return "";
}

mlir::LogicalResult runPipeline(mlir::ModuleOp module,
                                const std::string &dumpDir,
                                std::string &error) {
  if (!dumpDir.empty()) {
    if (std::error_code ec = llvm::sys::fs::create_directories(dumpDir)) {
      error = "cannot create " + dumpDir + ": " + ec.message();
      return mlir::failure();
    }
    if (mlir::failed(dump(module, dumpDir, 0, "frontend", error)))
      return mlir::failure();
  }
  int index = 1;
  for (const PipelineStep &step : pipeline()) {
    // One pass manager per pass, so each pass's output can be dumped and
    // verified on its own.
    mlir::PassManager pm(module->getContext());
    // After forge-split-pipeline each stage is a nested module: the passes
    // run on each of them.
    bool staged = !module.getBody()->getOps<mlir::ModuleOp>().empty();
    if (staged)
      pm.nest<mlir::ModuleOp>().addPass(step.create());
    else
      pm.addPass(step.create());
    if (mlir::failed(pm.run(module))) {
      error = "pass " + step.flag + " failed";
      return mlir::failure();
    }
    if (!dumpDir.empty() &&
        mlir::failed(dump(module, dumpDir, index, step.flag, error)))
      return mlir::failure();
    ++index;
  }
  if (std::string e = checkPipeline(module); !e.empty()) {
    error = e;
    return mlir::failure();
  }
  return mlir::success();
}

} // namespace forge::compiler

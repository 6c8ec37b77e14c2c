//===- Pipeline.cpp - The forge pass pipeline -----------------------------===//

#include "compiler/Pipeline.h"
#include "dialects/dist/IR/DistDialect.h"
#include "frontends/config/Config.h"
#include "passes/Passes.h"

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
  for (auto [name, size] : {std::pair<const char *, int64_t>{"pp", d.pp},
                            {"cp", d.cp}})
    if (size > 1)
      return std::string("distributed.") + name + " = " + std::to_string(size) +
             ": the pass for this parallelism is not implemented yet; plans "
             "for several ranks use dp_shard, dp_replicate, ep and tp";
  dist::Mesh mesh;
  mesh.dims = {"pp", "dp_replicate", "dp_shard", "ep", "tp"};
  mesh.sizes = {d.pp, d.dp_replicate, config::resolveDpShard(d, worldSize),
                d.ep, d.tp};
  dist::writeMesh(module, mesh);
  // forge-shard-tensor-parallel reads it: the dumped IR carries the choice.
  if (d.tp > 1 && d.sequence_parallel)
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
  return mlir::success();
}

} // namespace forge::compiler

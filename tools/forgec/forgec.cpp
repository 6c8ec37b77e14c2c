//===- forgec.cpp - The forge compiler driver
//------------------------------===//
//
// forgec reads a KempnerForge-schema job file, applies command-line
// overrides, validates it for a world size and reports on it. Later stages
// (graph IR, passes, plan) hang off the same driver.
//
//===----------------------------------------------------------------------===//

#include "compiler/Analysis.h"
#include "compiler/Pipeline.h"
#include "compiler/PlanWriter.h"
#include "forge/Version.h"
#include "frontends/config/Config.h"
#include "frontends/model/ModelSummary.h"
#include "frontends/model/ir/BuildModel.h"
#include "frontends/registry/Registry.h"
#include "tools/common/ToolArgs.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

using namespace forge;

static const char kTool[] = "forgec";

static void printHelp() {
  std::printf(
      "USAGE: forgec [options] <job.toml>\n"
      "\n"
      "Compiles a training job described in KempnerForge's TOML schema.\n"
      "Without a mode option, validates the job and prints a summary of its\n"
      "model and training setup.\n"
      "\n"
      "MODES:\n"
      "  --check                   validate only; print diagnostics, exit 0 "
      "if\n"
      "                            the job is valid, 1 if not\n"
      "  --print-config            print the fully resolved job as TOML "
      "(reads\n"
      "                            back to the same config)\n"
      "  --print-config-docs       print the key reference (docs/config.md)\n"
      "                            and exit; needs no job file\n"
      "  --list-registry           print every registered component name per\n"
      "                            category (after --plugin) and exit\n"
      "  --emit=forge              print the model as forge IR: every "
      "parameter\n"
      "                            (KempnerForge FQN, shape, dtype, "
      "initializer)\n"
      "                            and the graph of one step from tokens to "
      "loss\n"
      "  --print-locations         with --emit: print each op's location (the\n"
      "                            config key that shaped it)\n"
      "  --report                  print parameter counts, FLOPs per token and "
      "the\n"
      "                            layer structure, computed from the IR\n"
      "  --print-pipeline          print the passes forgec runs, in order, "
      "and\n"
      "                            exit; needs no job file\n"
      "  --dump-ir=<dir>           run the pass pipeline and write the IR "
      "after\n"
      "                            every pass to <dir>/NN-<pass>.mlir\n"
      "  -o <plan.bin>             compile the job and write the plan "
      "forge-run\n"
      "                            executes\n"
      "  --logits-program          with -o: also compile @logits_step (tokens\n"
      "                            -> logits [batch, seq, vocab]) for\n"
      "                            forge-run --dump-logits; one-rank jobs\n"
      "\n"
      "OPTIONS:\n"
      "  --set <table.key=value>   override a key after the file is read; the\n"
      "                            value is typed by the schema (repeatable)\n"
      "  --<table>.<key>=<value>   the same, in KempnerForge's form\n"
      "  --world-size <N>          validate for N ranks (default: the product\n"
      "                            of the [distributed] dims, with dp_shard =\n"
      "                            -1 counted as 1)\n"
      "  --plugin <lib.so>         load a shared library whose static\n"
      "                            initializers register components\n"
      "                            (repeatable; loaded before the job is "
      "read)\n"
      "  --version                 print the version and exit\n"
      "  -h, --help                print this help and exit\n"
      "\n"
      "Exit codes: 0 success, 1 invalid job, 2 misuse.\n");
}

template <typename C> static void listCategory(const C &c) {
  std::printf("%s:\n", c.name().c_str());
  for (const auto &e : c.entries())
    std::printf("  %-22s %s\n", e.name.c_str(), e.description.c_str());
}

static void listRegistry() {
  listCategory(registry::mlps());
  listCategory(registry::routers());
  listCategory(registry::norms());
  listCategory(registry::models());
  listCategory(registry::optimizers());
  listCategory(registry::schedulers());
  listCategory(registry::losses());
  listCategory(registry::vlmArchs());
  listCategory(registry::visionEncoders());
  listCategory(registry::adapters());
  listCategory(registry::checkpointWindows());
  listCategory(registry::videoDatasets());
  listCategory(registry::videoSamplingPolicies());
}

static int report(const config::ConfigLoader &loader) {
  int errors = 0;
  for (const config::Diagnostic &d : loader.diagnostics()) {
    std::fprintf(stderr, "%s\n", d.str().c_str());
    errors += d.severity == config::Diagnostic::Severity::Error;
  }
  return errors;
}

static mlir::OwningOpRef<mlir::ModuleOp>
compileModule(mlir::MLIRContext &ctx, const config::ConfigLoader &loader,
              const std::string &job, int64_t worldSize,
              std::vector<uint8_t> &planBytes, compiler::MemorySummary &memory);

/// What the model IR holds besides the training and evaluation steps
/// (--logits-program).
static model::BuildOptions gBuildOptions;

/// The job's model IR, or null after printing why it cannot be built.
static mlir::OwningOpRef<mlir::ModuleOp>
buildOrReport(mlir::MLIRContext &ctx, const config::ConfigLoader &loader) {
  std::string error;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      model::buildModel(ctx, loader, error, gBuildOptions);
  if (!module)
    std::fprintf(stderr, "%s\n", error.c_str());
  return module;
}

/// Builds and verifies the model IR, then prints it or the report.
static int emitOrReport(const config::ConfigLoader &loader, int64_t worldSize,
                        bool report, bool locations) {
  auto start = std::chrono::steady_clock::now();
  mlir::MLIRContext ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module = buildOrReport(ctx, loader);
  if (!module)
    return 1;
  // The builder's output must verify; a failure here is a forgec bug, and
  // the verifier's diagnostic (with the config key's location) says where.
  if (mlir::failed(mlir::verify(*module))) {
    std::fprintf(stderr, "%s: internal error: the built IR does not verify\n",
                 kTool);
    return 1;
  }
  if (!report) {
    mlir::OpPrintingFlags flags;
    if (locations)
      flags.enableDebugInfo(/*enable=*/true, /*prettyForm=*/false)
          .useLocalScope();
    module->print(llvm::outs(), flags);
    llvm::outs() << "\n";
    return 0;
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::fputs(compiler::report(*module, loader.config()).c_str(), stdout);
  std::printf("IR built and verified in %.3f s\n", seconds);
  // The memory plan needs the whole pipeline; VLM and multi-rank jobs stop
  // before it (reported above).
  std::vector<uint8_t> bytes;
  compiler::MemorySummary memory;
  mlir::MLIRContext planCtx;
  mlir::OwningOpRef<mlir::ModuleOp> compiled =
      compileModule(planCtx, loader, "", worldSize, bytes, memory);
  if (!compiled)
    return 1;
  std::fputs(compiler::describePipeline(*compiled).c_str(), stdout);
  std::fputs(compiler::describeCollectives(*compiled).c_str(), stdout);
  std::fputs(compiler::describeMemory(memory).c_str(), stdout);
  return 0;
}

/// Builds the IR, runs the pipeline and plans memory. Null on error (printed).
static mlir::OwningOpRef<mlir::ModuleOp>
compileModule(mlir::MLIRContext &ctx, const config::ConfigLoader &loader,
              const std::string &job, int64_t worldSize,
              std::vector<uint8_t> &planBytes,
              compiler::MemorySummary &memory) {
  // Settings forge-run would reject fail the plan; a report (no job path)
  // still shows the memory and says why the plan could not run.
  compiler::RunSettings run;
  std::string error;
  if (!compiler::resolveRunSettings(loader, run, error)) {
    if (!job.empty()) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return nullptr;
    }
    std::printf("note: no plan can be written for this job: %s\n",
                error.c_str());
    run = compiler::RunSettings();
    error.clear();
  }
  mlir::OwningOpRef<mlir::ModuleOp> module = buildOrReport(ctx, loader);
  if (!module)
    return nullptr;
  if (std::string e = compiler::setMesh(*module, loader.config(), worldSize);
      !e.empty()) {
    if (!job.empty()) {
      std::fprintf(stderr, "%s: error: %s\n", kTool, e.c_str());
      return nullptr;
    }
    // A report still shows what it can: one unsharded replica.
    std::printf("note: %s; the memory below is one unsharded replica\n",
                e.c_str());
  }
  if (mlir::failed(compiler::runPipeline(*module, "", error)) ||
      !compiler::writePlan(*module, loader.config(), run, job, planBytes,
                           memory, error)) {
    std::fprintf(stderr, "%s: error: %s\n", kTool, error.c_str());
    return nullptr;
  }
  return module;
}

/// forgec job.toml -o plan.bin
static int compilePlan(const config::ConfigLoader &loader,
                       const std::string &job, const std::string &output,
                       int64_t worldSize) {
  mlir::MLIRContext ctx;
  std::vector<uint8_t> bytes;
  compiler::MemorySummary memory;
  if (!compileModule(ctx, loader, job, worldSize, bytes, memory))
    return 1;
  std::ofstream out(output, std::ios::binary);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "%s: error: cannot write %s\n", kTool, output.c_str());
    return 1;
  }
  std::printf("wrote %s (%zu bytes); arena %llu bytes per rank\n",
              output.c_str(), bytes.size(),
              static_cast<unsigned long long>(memory.total));
  return 0;
}

/// Builds the model IR and runs the pass pipeline, writing every stage.
static int dumpIR(const config::ConfigLoader &loader, const std::string &dir,
                  int64_t worldSize) {
  mlir::MLIRContext ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module = buildOrReport(ctx, loader);
  if (!module)
    return 1;
  std::string error = compiler::setMesh(*module, loader.config(), worldSize);
  if (!error.empty()) {
    std::fprintf(stderr, "%s: error: %s\n", kTool, error.c_str());
    return 1;
  }
  if (mlir::failed(compiler::runPipeline(*module, dir, error))) {
    std::fprintf(stderr, "%s: error: %s\n", kTool, error.c_str());
    return 1;
  }
  std::printf("wrote %zu IR files to %s\n", compiler::pipeline().size() + 1,
              dir.c_str());
  return 0;
}

int main(int argc, char **argv) {
  enum class Mode {
    Summary,
    Check,
    PrintConfig,
    PrintDocs,
    ListRegistry,
    EmitForge,
    Report,
    PrintPipeline,
    DumpIR
  };
  Mode mode = Mode::Summary;
  std::string job, output, worldSizeText;
  std::vector<std::string> plugins;
  bool printLocations = false;
  std::string dumpDir;
  std::vector<std::pair<std::string, std::string>> overrides; // (k=v, flag)

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "-h" || arg == "--help") {
      printHelp();
      return 0;
    }
    if (arg == "--version") {
      std::printf("forgec %s\n", FORGE_VERSION_STRING);
      return 0;
    }
    if (arg == "--check")
      mode = Mode::Check;
    else if (arg == "--print-config")
      mode = Mode::PrintConfig;
    else if (arg == "--print-config-docs")
      mode = Mode::PrintDocs;
    else if (arg == "--list-registry")
      mode = Mode::ListRegistry;
    else if (arg == "--report")
      mode = Mode::Report;
    else if (arg == "--print-locations")
      printLocations = true;
    else if (arg == "--logits-program")
      gBuildOptions.logitsProgram = true;
    else if (arg == "--print-pipeline")
      mode = Mode::PrintPipeline;
    else if (tools::takeValue(kTool, argc, argv, i, "--dump-ir", dumpDir)) {
      if (dumpDir.empty())
        tools::usageError(kTool, "--dump-ir needs a directory");
      mode = Mode::DumpIR;
    } else if (tools::takeValue(kTool, argc, argv, i, "--emit", value)) {
      if (value != "forge")
        tools::usageError(kTool, "--emit must be 'forge', got '" + value + "'");
      mode = Mode::EmitForge;
    } else if (tools::takeValue(kTool, argc, argv, i, "-o", output))
      ;
    else if (tools::takeValue(kTool, argc, argv, i, "--world-size",
                              worldSizeText))
      ;
    else if (tools::takeValue(kTool, argc, argv, i, "--plugin", value))
      plugins.push_back(value);
    else if (tools::takeValue(kTool, argc, argv, i, "--set", value))
      overrides.emplace_back(value, "--set " + value);
    else if (arg.rfind("--", 0) == 0 && arg.find('.') != std::string::npos &&
             arg.find('.') < arg.find('='))
      overrides.emplace_back(arg.substr(2), arg);
    else if (arg.size() > 1 && arg[0] == '-')
      tools::usageError(kTool, "unknown option '" + arg + "'");
    else if (!job.empty())
      tools::usageError(kTool, "more than one job file given ('" + job +
                                   "' and '" + arg + "')");
    else
      job = arg;
  }

  for (const std::string &p : plugins) {
    std::string why = registry::loadPlugin(p);
    if (!why.empty()) {
      std::fprintf(stderr, "%s: error: --plugin %s: %s\n", kTool, p.c_str(),
                   why.c_str());
      return 1;
    }
  }
  if (mode == Mode::PrintDocs) {
    std::fputs(config::generateConfigDocs().c_str(), stdout);
    return 0;
  }
  if (mode == Mode::PrintPipeline) {
    for (const compiler::PipelineStep &step : compiler::pipeline())
      std::printf("%-24s %s\n", step.flag.c_str(), step.summary.c_str());
    return 0;
  }
  if (mode == Mode::ListRegistry) {
    listRegistry();
    return 0;
  }
  if (job.empty())
    tools::usageError(kTool, "no job file given");

  config::ConfigLoader loader;
  bool ok = loader.loadFile(job);
  for (const auto &[assignment, flag] : overrides)
    if (ok || !loader.hasErrors())
      ok = loader.applyOverride(assignment, flag) && ok;
  if (!loader.hasErrors())
    loader.finalize();
  int64_t worldSize = 0;
  if (!loader.hasErrors()) {
    if (worldSizeText.empty()) {
      worldSize = loader.defaultWorldSize();
    } else {
      auto n = tools::parseInt(worldSizeText);
      if (!n || *n < 1)
        tools::usageError(kTool, "--world-size must be a positive integer, "
                                 "got '" +
                                     worldSizeText + "'");
      worldSize = *n;
    }
    loader.validate(worldSize);
  }
  if (report(loader) > 0)
    return 1;
  // The logits program is a single-rank tool (the parallelism passes shard
  // the training and evaluation steps only).
  if (gBuildOptions.logitsProgram && worldSize != 1) {
    std::fprintf(stderr,
                 "%s: error: --logits-program needs a one-rank job; this one "
                 "runs on %lld ranks\n",
                 kTool, static_cast<long long>(worldSize));
    return 1;
  }

  switch (mode) {
  case Mode::Check:
    return 0;
  case Mode::PrintConfig:
    std::fputs(config::printConfig(loader.config(), worldSize).c_str(), stdout);
    return 0;
  case Mode::EmitForge:
  case Mode::Report:
    return emitOrReport(loader, worldSize, mode == Mode::Report,
                        printLocations);
  case Mode::DumpIR:
    return dumpIR(loader, dumpDir, worldSize);
  case Mode::Summary:
    if (!output.empty())
      return compilePlan(loader, job, output, worldSize);
    break;
  default:
    break;
  }
  const config::JobConfig &cfg = loader.config();
  int64_t shard = config::resolveDpShard(cfg.distributed, worldSize);
  std::printf("%s: valid for world size %lld (dp_replicate %lld x dp_shard "
              "%lld x tp %lld x pp %lld x ep %lld)\n",
              job.c_str(), static_cast<long long>(worldSize),
              static_cast<long long>(cfg.distributed.dp_replicate),
              static_cast<long long>(shard),
              static_cast<long long>(cfg.distributed.tp),
              static_cast<long long>(cfg.distributed.pp),
              static_cast<long long>(cfg.distributed.ep));
  std::fputs(model::summarize(cfg).c_str(), stdout);
  return 0;
}

//===- forge-run.cpp - Run a compiled forge plan
//---------------------------===//
//
// forge-run executes a plan.bin written by forgec on every rank. This build
// parses and checks its command line and reports the backends compiled in;
// plan loading and execution come with the runtime (see README, "Status").
//
//===----------------------------------------------------------------------===//

#include "forge/Version.h"
#include "runtime/core/BuildInfo.h"
#include "runtime/core/Plan.h"
#include "tools/common/ToolArgs.h"

#include <cstdio>
#include <string>

using namespace forge;

static const char kTool[] = "forge-run";

static void printHelp() {
  std::printf(
      "USAGE: forge-run [options] <plan.bin>\n"
      "\n"
      "Runs a training plan compiled by forgec.\n"
      "\n"
      "OPTIONS:\n"
      "  --device <auto|cpu|cuda>  backend to run on (default: auto = cuda "
      "when\n"
      "                            a GPU is visible, else cpu)\n"
      "  --nproc-per-node <N>      fork and supervise N local ranks (default "
      "1)\n"
      "  --check                   load and verify the plan, print what it "
      "holds\n"
      "                            (memory per rank, programs), and exit\n"
      "  --backends                list the backends compiled into this "
      "binary\n"
      "                            and the devices they see, then exit\n"
      "  --version                 print the version and exit\n"
      "  -h, --help                print this help and exit\n"
      "\n"
      "Exit codes: 0 success, 1 the plan could not be run, 2 misuse.\n");
}

int main(int argc, char **argv) {
  std::string plan, device = "auto", nproc = "1";
  bool checkOnly = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      printHelp();
      return 0;
    }
    if (arg == "--version") {
      std::printf("forge-run %s\n", FORGE_VERSION_STRING);
      return 0;
    }
    if (arg == "--check") {
      checkOnly = true;
      continue;
    }
    if (arg == "--backends") {
      std::printf("%s\n", runtime::describeBackends().c_str());
      return 0;
    }
    if (tools::takeValue(kTool, argc, argv, i, "--device", device) ||
        tools::takeValue(kTool, argc, argv, i, "--nproc-per-node", nproc))
      continue;
    if (arg.size() > 1 && arg[0] == '-')
      tools::usageError(kTool, "unknown option '" + arg + "'");
    if (!plan.empty())
      tools::usageError(kTool, "more than one plan given ('" + plan +
                                   "' and '" + arg + "')");
    plan = arg;
  }
  if (device != "auto" && device != "cpu" && device != "cuda")
    tools::usageError(kTool, "--device must be auto, cpu or cuda, got '" +
                                 device + "'");
  if (device == "cuda" && !runtime::hasCudaBackend())
    tools::usageError(kTool, "--device cuda: this forge-run was built without "
                             "the CUDA backend");
  auto n = tools::parseInt(nproc);
  if (!n || *n < 1)
    tools::usageError(kTool, "--nproc-per-node must be a positive integer, "
                             "got '" +
                                 nproc + "'");
  if (plan.empty())
    tools::usageError(kTool, "no plan given");
  runtime::LoadedPlan loaded;
  if (std::string why = runtime::loadPlan(plan, loaded); !why.empty()) {
    std::fprintf(stderr, "%s: error: %s: %s\n", kTool, plan.c_str(),
                 why.c_str());
    return 1;
  }
  const plan::Plan *p = loaded.get();
  if (checkOnly) {
    const plan::Memory *m = p->memory();
    std::printf("%s: valid plan (format version %u) for %s\n", plan.c_str(),
                p->version(),
                p->training()->job() ? p->training()->job()->c_str() : "?");
    std::printf("arena %llu bytes: parameters %llu, gradients %llu, optimizer "
                "state %llu, other state %llu, inputs %llu, activations at "
                "peak %llu\n",
                static_cast<unsigned long long>(p->arena_bytes()),
                static_cast<unsigned long long>(m->parameters()),
                static_cast<unsigned long long>(m->gradients()),
                static_cast<unsigned long long>(m->optimizer_state()),
                static_cast<unsigned long long>(m->other_state()),
                static_cast<unsigned long long>(m->inputs()),
                static_cast<unsigned long long>(m->activations_peak()));
    for (const plan::Program *prog : *p->programs())
      std::printf("program %s: %u steps\n", prog->name()->c_str(),
                  prog->steps() ? prog->steps()->size() : 0u);
    return 0;
  }
  std::fprintf(stderr,
               "%s: error: %s: the plan is valid, but this forge-run cannot "
               "execute plans yet (the CPU executor is the next milestone; "
               "use --check to inspect the plan)\n",
               kTool, plan.c_str());
  return 1;
}

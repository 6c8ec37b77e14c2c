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
#include "runtime/cpu/Executor.h"
#include "runtime/data/Dataset.h"
#include "runtime/train/State.h"
#include "tools/common/ToolArgs.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>

using namespace forge;

static const char kTool[] = "forge-run";

/// 12345.6 -> "12,346".
static std::string withCommas(double v) {
  std::string digits = std::to_string(static_cast<long long>(v + 0.5));
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

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
      "  --steps <N>               optimizer steps to run (default: the job's\n"
      "                            train.max_steps)\n"
      "  --repeat-batch            train on one fixed random-token batch (a\n"
      "                            memorization check) instead of a new one\n"
      "                            per micro-batch\n"
      "  --init-from <file>        load the initial parameters (by FQN) from "
      "a\n"
      "                            .safetensors file instead of initializing\n"
      "  --batch-from <file>       train on the tokens/labels (I64 [batch, "
      "seq])\n"
      "                            of a .safetensors file, every micro-batch\n"
      "  --dump-state <dir>        after each step write "
      "<dir>/step<N>.safetensors:\n"
      "                            loss, gradients (pre-clip) and parameters\n"
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
  bool checkOnly = false, repeatBatch = false;
  std::string stepsText, initFrom, batchFrom, dumpDir;
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
    if (arg == "--repeat-batch") {
      repeatBatch = true;
      continue;
    }
    if (tools::takeValue(kTool, argc, argv, i, "--steps", stepsText) ||
        tools::takeValue(kTool, argc, argv, i, "--init-from", initFrom) ||
        tools::takeValue(kTool, argc, argv, i, "--batch-from", batchFrom) ||
        tools::takeValue(kTool, argc, argv, i, "--dump-state", dumpDir))
      continue;
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
  if (device == "cuda") {
    std::fprintf(stderr,
                 "%s: error: --device cuda: the CUDA executor is not "
                 "implemented yet; the plan runs on the CPU\n",
                 kTool);
    return 1;
  }
  if (*n != 1) {
    std::fprintf(stderr,
                 "%s: error: --nproc-per-node %lld: multi-rank "
                 "execution is not implemented yet\n",
                 kTool, static_cast<long long>(*n));
    return 1;
  }
  const plan::Training *t = p->training();
  const std::string datasetPath =
      t->dataset_path() ? t->dataset_path()->str() : "";
  int64_t steps = t->max_steps();
  if (!stepsText.empty()) {
    auto v = tools::parseInt(stepsText);
    if (!v || *v < 1)
      tools::usageError(kTool, "--steps must be a positive integer, got '" +
                                   stepsText + "'");
    steps = *v;
  }
  cpu::Executor exec;
  if (std::string why = exec.prepare(p); !why.empty()) {
    std::fprintf(stderr, "%s: error: %s: %s\n", kTool, plan.c_str(),
                 why.c_str());
    return 1;
  }
  exec.initialize(static_cast<uint64_t>(t->seed()));
  auto fail = [&](const std::string &why) {
    std::fprintf(stderr, "%s: error: %s\n", kTool, why.c_str());
    return 1;
  };
  if (!initFrom.empty())
    if (std::string e = train::loadParameters(p, exec, initFrom); !e.empty())
      return fail(e);
  if (!batchFrom.empty()) {
    if (std::string e = train::loadBatch(exec, batchFrom); !e.empty())
      return fail(e);
    repeatBatch = true;
  }
  std::printf("%s: %s, arena %llu bytes (%.2f MiB), %lld steps x %lld "
              "micro-batches of %lld x %lld tokens (%s%s)\n",
              kTool, t->job() ? t->job()->c_str() : plan.c_str(),
              static_cast<unsigned long long>(exec.arenaBytes()),
              static_cast<double>(exec.arenaBytes()) / (1 << 20),
              static_cast<long long>(steps),
              static_cast<long long>(t->grad_accum_steps()),
              static_cast<long long>(t->batch_size()),
              static_cast<long long>(t->seq_len()),
              !batchFrom.empty()    ? batchFrom.c_str()
              : datasetPath.empty() ? "random tokens"
                                    : datasetPath.c_str(),
              repeatBatch && batchFrom.empty() ? ", one repeated batch" : "");
  const std::vector<cpu::View> &in = exec.inputs("train_step");
  // Real data when the job names a dataset (and no batch file overrides it).
  std::unique_ptr<data::TokenDataset> dataset;
  std::unique_ptr<data::Loader> loader;
  if (!datasetPath.empty() && batchFrom.empty()) {
    dataset = std::make_unique<data::TokenDataset>();
    if (std::string e = dataset->open(
            datasetPath, t->file_pattern() ? t->file_pattern()->str() : "*",
            t->seq_len(), t->vocab_size());
        !e.empty())
      return fail(e);
    if (dataset->numWindows() < t->batch_size())
      return fail("'" + datasetPath + "' holds " +
                  std::to_string(dataset->numWindows()) +
                  " windows of seq_len + 1 tokens, fewer than one batch of " +
                  std::to_string(t->batch_size()));
    std::printf("%s: data: %zu shards, %lld tokens, %lld windows of %lld\n",
                kTool, dataset->numShards(),
                static_cast<long long>(dataset->numTokens()),
                static_cast<long long>(dataset->numWindows()),
                static_cast<long long>(t->seq_len() + 1));
    loader =
        std::make_unique<data::Loader>(*dataset, t->batch_size(), t->seq_len(),
                                       static_cast<uint64_t>(t->data_seed()));
  }
  std::mt19937_64 gen(static_cast<uint64_t>(t->data_seed()));
  std::uniform_int_distribution<int64_t> token(0, t->vocab_size() - 1);
  auto fillBatch = [&] {
    if (loader) {
      loader->next(static_cast<int64_t *>(in[0].data),
                   static_cast<int64_t *>(in[1].data));
      for (size_t a = 2; a < in.size(); ++a)
        std::memset(in[a].data, 0, in[a].numel() * 4);
      return;
    }
    // Like KempnerForge without a dataset: independent random inputs and
    // labels. Document ids (packed sequences) are all one document.
    for (size_t a = 0; a < in.size(); ++a) {
      const cpu::View &v = in[a];
      if (v.dtype == plan::DType::i64) {
        auto *d = static_cast<int64_t *>(v.data);
        for (int64_t e = 0; e < v.numel(); ++e)
          d[e] = token(gen);
      } else {
        std::memset(v.data, 0, v.numel() * 4);
      }
    }
  };
  if (repeatBatch && batchFrom.empty())
    fillBatch();
  const cpu::View &stepIn = exec.inputs("optimizer_step")[0];
  const std::vector<cpu::View> &optOut = exec.outputs("optimizer_step");
  const cpu::View &lossOut = exec.outputs("train_step")[0];
  int64_t logEvery = std::max<int64_t>(1, t->log_interval());
  const double tokensPerStep = static_cast<double>(t->batch_size()) *
                               static_cast<double>(t->seq_len()) *
                               static_cast<double>(t->grad_accum_steps());
  const double machineGB = static_cast<double>(sysconf(_SC_PHYS_PAGES)) *
                           static_cast<double>(sysconf(_SC_PAGE_SIZE)) / 1e9;
  for (int64_t step = 0; step < steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    double loss = 0;
    for (int64_t micro = 0; micro < t->grad_accum_steps(); ++micro) {
      if (!repeatBatch)
        fillBatch();
      exec.run("train_step");
      loss += cpu::Executor::readFloat(lossOut, 0);
    }
    loss /= static_cast<double>(t->grad_accum_steps());
    train::TensorMap dump;
    if (!dumpDir.empty()) {
      dump["loss"] = train::scalar(static_cast<float>(loss));
      train::collect(p, exec, plan::Role::gradient, "", dump);
    }
    *static_cast<int64_t *>(stepIn.data) = step;
    exec.run("optimizer_step");
    if (!dumpDir.empty()) {
      train::collect(p, exec, plan::Role::parameter, "param.", dump);
      dump["grad_norm"] = train::scalar(cpu::Executor::readFloat(optOut[0], 0));
      std::string file =
          dumpDir + "/step" + std::to_string(step + 1) + ".safetensors";
      if (std::string e = train::writeSafeTensors(file, dump); !e.empty())
        return fail(e);
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if ((step + 1) % logEvery == 0 || step == 0 || step + 1 == steps)
      // KempnerForge's log line (reference §7.1). MFU is left out: it
      // needs a peak-FLOPS figure, which KempnerForge has for GPUs only;
      // mem is this rank's arena (planned, allocated once) over the machine.
      std::printf("[step %lld] loss=%.4f | lr=%.2e | grad_norm=%.3f | "
                  "tok/s=%s | mem=%.1f/%.0fGB | step_time=%.2fs\n",
                  static_cast<long long>(step + 1), loss,
                  cpu::Executor::readFloat(optOut[1], 0),
                  cpu::Executor::readFloat(optOut[0], 0),
                  withCommas(tokensPerStep / seconds).c_str(),
                  static_cast<double>(exec.arenaBytes()) / 1e9, machineGB,
                  seconds);
    std::fflush(stdout);
  }
  if (exec.profiling())
    std::fputs(exec.profileReport().c_str(), stdout);
  return 0;
}

//===- forge-run.cpp - Run a compiled forge plan --------------------------===//
//
// forge-run executes a plan.bin written by forgec: it loads and verifies
// the plan, then hands it to the training loop (runtime/train/Trainer).
//
//===----------------------------------------------------------------------===//

#include "forge/Version.h"
#include "runtime/comm/Launch.h"
#include "runtime/core/BuildInfo.h"
#include "runtime/core/Plan.h"
#include "runtime/cpu/Bf16Gemm.h"
#include "runtime/cpu/Executor.h"
#if FORGE_HAVE_CUDA
#include "runtime/cuda/Plugin.h"
#endif
#include "runtime/train/Trainer.h"
#include "tools/common/ToolArgs.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <utility>

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
      "                            a GPU is visible, else cpu); no GPU for\n"
      "                            cuda, or a GPU whose CUDA libraries do not\n"
      "                            load, is an error. One GPU per rank (its\n"
      "                            LOCAL_RANK); collectives and pipeline\n"
      "                            sends over NCCL (docs/cuda.md)\n"
      "  --nproc-per-node <N>      fork and supervise N local ranks (default "
      "1)\n"
      "  --steps <N>               optimizer steps to run (default: the job's\n"
      "                            train.max_steps; 0: none, e.g. to convert\n"
      "                            --init-from weights with --export-hf)\n"
      "  --repeat-batch            train on one fixed random-token batch (a\n"
      "                            memorization check) instead of a new one\n"
      "                            per micro-batch\n"
      "  --init-from <file>        load the initial parameters (by FQN) from "
      "a\n"
      "                            .safetensors file instead of initializing\n"
      "  --batch-from <file>       train on the tokens/labels (I64 [batch, "
      "seq])\n"
      "                            of a .safetensors file, every micro-batch\n"
      "                            (with grad_accum_steps times the rows: "
      "one\n"
      "                            batch per micro-step)\n"
      "  --dump-state <dir>        after each step write "
      "<dir>/step<N>.safetensors:\n"
      "                            loss, gradients (pre-clip), parameters,\n"
      "                            grad_norm and lr\n"
      "  --export-hf <dir>         after the last step write the weights as a\n"
      "                            Hugging Face Llama (Mixtral for MoE)\n"
      "                            checkpoint: <dir>/model.safetensors in\n"
      "                            checkpoint.export_dtype and config.json;\n"
      "                            --init-from reads such a file back\n"
      "  --dump-logits <file>      after the last step write the tokens of\n"
      "                            the batch and the model's logits for them\n"
      "                            (F32 [batch, seq, vocab]) to a "
      ".safetensors\n"
      "                            file; needs a plan compiled with forgec\n"
      "                            --logits-program\n"
      "  --no-checkpoint           neither resume from nor write checkpoints\n"
      "                            (default: resume from the newest complete\n"
      "                            checkpoint.dir/step_N or\n"
      "                            checkpoint.load_path, save every\n"
      "                            checkpoint.interval steps, at the end and\n"
      "                            on SIGTERM/SIGUSR1); also\n"
      "                            FORGE_NO_CHECKPOINT=1\n"
      "  --progress <auto|on|off>  live progress bar (default auto: only when\n"
      "                            stdout is a terminal)\n"
      "  --check                   load and verify the plan, print what it "
      "holds\n"
      "                            (memory per rank, programs), and exit\n"
      "  --backends                list the backends compiled into this "
      "binary\n"
      "                            and the devices they see, then exit\n"
      "  --version                 print the version and exit\n"
      "  -h, --help                print this help and exit\n"
      "\n"
      "Several ranks: forge-run --nproc-per-node N, or one process per rank\n"
      "under torchrun-style (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,\n"
      "MASTER_PORT) or Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID;\n"
      "without MASTER_ADDR/PORT: the first host of SLURM_JOB_NODELIST and a\n"
      "port from SLURM_JOB_ID) variables.\n"
      "\n"
      "Checkpoints ([checkpoint]): checkpoint.dir/step_N/ holds each rank's\n"
      "shards (rank<R>.safetensors) and manifest.json, written last;\n"
      "`latest` names the newest complete one. Rerunning the same command\n"
      "resumes from it on any number of ranks and any layout. SIGTERM or\n"
      "SIGUSR1 (a Slurm preemption): the ranks finish the step, save and\n"
      "exit 0 (hard exit after train.shutdown_timeout_sec).\n"
      "\n"
      "Profiling ([profiling] enable = true): steps start_step..end_step of\n"
      "every rank go to trace_dir/rank<R>.trace.json (Chrome trace events:\n"
      "chrome://tracing, ui.perfetto.dev), and trace_dir/summary.md splits\n"
      "each rank's step time into matmul, attention, other compute,\n"
      "communication and idle.\n"
      "\n"
      "Environment:\n"
      "  FORGE_PROFILE=1           print the time per op after the run (GPU\n"
      "                            time, by CUDA events, with --device cuda)\n"
      "  FORGE_NO_CHECKPOINT=1     as --no-checkpoint\n"
      "  FORGE_COMM_OVERLAP=0      run collectives on the compute thread\n"
      "                            instead of the communication thread\n"
      "  FORGE_COMM_TIMEOUT_SEC=S  collective timeout (default: the plan's\n"
      "                            distributed.nccl_timeout_sec)\n"
      "  FORGE_STORE_PATH=DIR      rendezvous through files in DIR (shared by\n"
      "                            every rank) instead of rank 0's TCP store\n"
      "  GLOO_SOCKET_IFNAME=IF     network interface for gloo's connections\n"
      "  NCCL_SOCKET_IFNAME=IF     NCCL's interface (with --device cuda: "
      "both\n"
      "                            default to the first UP ib* interface;\n"
      "                            NCCL_IB_DISABLE=0, NCCL_NET_GDR_LEVEL=2)\n"
      "  FORGE_FP8_MATMULS=0       --device cuda: fp8 jobs multiply the fp8\n"
      "                            values in bf16 instead of on fp8 tensor\n"
      "                            cores (sm_89 and later; the run's log\n"
      "                            says how many matmuls use them)\n"
      "  FORGE_CPU_BF16_GEMM=P     bf16 matmuls on the CPU: onednn (default;\n"
      "                            bf16 instructions where the CPU has them)\n"
      "                            or sgemm (f32 copies)\n"
      "  OMP_WAIT_POLICY=P         oneDNN's OpenMP threads; forge-run sets\n"
      "                            passive when unset (no spinning on the\n"
      "                            cores its own kernels use next)\n"
      "  OPENBLAS_THREAD_TIMEOUT=N OpenBLAS's threads spin 2^N cycles after\n"
      "                            a GEMM; forge-run sets 4 (sleep at once)\n"
      "                            when unset, for the same reason\n"
      "  FORGE_PEAK_TFLOPS=T       the peak for MFU (default: this CPU's fp32\n"
      "                            peak, its bf16 peak for bf16 runs on bf16\n"
      "                            instructions, or the GPU's data-sheet "
      "peak)\n"
      "  FORGE_GLOO_HOST=ADDR      address for gloo's connections (when no\n"
      "                            interface is named)\n"
      "  FORGE_CUDA_PLUGIN=FILE    the CUDA backend library (default:\n"
      "                            lib/libforge-cuda.so beside bin/forge-run)\n"
      "\n"
      "Exit codes: 0 success, 1 the plan could not be run, 2 misuse.\n");
}

/// Two thread pools besides our own share the cores: OpenBLAS's (sgemm) and
/// libgomp's (oneDNN's bf16 GEMMs, cpu/Bf16Gemm.h). By default both spin
/// after each call (OpenBLAS for 2^28 cycles, about 0.1 s) on the very cores
/// the next kernel's threads need: an fp32 step of bench/train_step.py's
/// shape (a) measured 520-640 ms against 480-510 ms with OpenBLAS's workers
/// sleeping at once, and a bf16 step 25% slower for libgomp's spinning. Both
/// libraries read their setting once, when they are loaded (before main), so
/// forge-run sets whichever of the two variables the user has not set and
/// executes itself again: same process id, arguments and environment
/// otherwise.
static void setThreadWaitPolicies(char **argv) {
  bool changed = false;
  for (auto [name, value] : {std::pair{"OMP_WAIT_POLICY", "passive"},
                             std::pair{"OPENBLAS_THREAD_TIMEOUT", "4"}})
    if (!std::getenv(name)) {
      setenv(name, value, 1);
      changed = true;
    }
  if (changed)
    execv("/proc/self/exe", argv);
  // No /proc (or exec refused): run on with the libraries' defaults.
}

int main(int argc, char **argv) {
  // gloo writes to its sockets with writev, which raises SIGPIPE when the
  // peer has gone: a rank whose peer died would then vanish without
  // reporting which collective failed. Ignored (as Python ignores it under
  // PyTorch), the write fails with EPIPE and the rank reports. Inherited by
  // the ranks --nproc-per-node starts.
  std::signal(SIGPIPE, SIG_IGN);
  setThreadWaitPolicies(argv);
  std::string plan, device = "auto", nproc = "1";
  bool checkOnly = false, repeatBatch = false, noCheckpoint = false;
  std::string stepsText, initFrom, batchFrom, dumpDir, exportHf, dumpLogits,
      progress = "auto";
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
    if (arg == "--no-checkpoint") {
      noCheckpoint = true;
      continue;
    }
    if (arg == "--repeat-batch") {
      repeatBatch = true;
      continue;
    }
    if (tools::takeValue(kTool, argc, argv, i, "--steps", stepsText) ||
        tools::takeValue(kTool, argc, argv, i, "--init-from", initFrom) ||
        tools::takeValue(kTool, argc, argv, i, "--batch-from", batchFrom) ||
        tools::takeValue(kTool, argc, argv, i, "--dump-state", dumpDir) ||
        tools::takeValue(kTool, argc, argv, i, "--export-hf", exportHf) ||
        tools::takeValue(kTool, argc, argv, i, "--dump-logits", dumpLogits) ||
        tools::takeValue(kTool, argc, argv, i, "--progress", progress))
      continue;
    if (arg == "--backends") {
      std::printf("%s\n", runtime::describeBackends().c_str());
      auto env = [](const char *name) {
        const char *v = std::getenv(name);
        return v ? v : "(unset)";
      };
      std::printf("cpu bf16 GEMMs: %s; OMP_WAIT_POLICY=%s; "
                  "OPENBLAS_THREAD_TIMEOUT=%s\n",
                  cpu::bf16GemmStatus().c_str(), env("OMP_WAIT_POLICY"),
                  env("OPENBLAS_THREAD_TIMEOUT"));
#if FORGE_HAVE_CUDA
      // NCCL is in libforge-cuda.so: its version says the library loads.
      std::string why;
      if (const cuda::Plugin *plugin = cuda::loadPlugin(why))
        std::printf("collectives: gloo (cpu), nccl %s (cuda; %s)\n",
                    plugin->ncclVersion().c_str(), cuda::kPluginFile);
      else
        std::printf("collectives: gloo (cpu); nccl unavailable: %s\n",
                    why.c_str());
#else
      std::printf("collectives: gloo (cpu)\n");
#endif
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
  if (progress != "auto" && progress != "on" && progress != "off")
    tools::usageError(kTool, "--progress must be auto, on or off, got '" +
                                 progress + "'");
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
    if (p->mesh() && p->mesh()->dims() && p->mesh()->sizes() &&
        p->mesh()->dims()->size() > 0) {
      std::string mesh;
      long long ranks = 1;
      for (size_t i = 0; i < p->mesh()->dims()->size(); ++i) {
        mesh += (i ? " x " : "") + p->mesh()->dims()->Get(i)->str() + " " +
                std::to_string(p->mesh()->sizes()->Get(i));
        ranks *= p->mesh()->sizes()->Get(i);
      }
      std::printf("mesh: %s (%lld ranks)\n", mesh.c_str(), ranks);
    }
    // Collectives, each with the op that issued it: what every rank will
    // communicate, known before launch.
    auto programs = [](const plan::Plan *pl, const char *indent) {
      for (const plan::Program *prog : *pl->programs()) {
        unsigned collectives = 0;
        if (prog->steps())
          for (const plan::Step *st : *prog->steps()) {
            // dist.copy and dist.slice are local: they communicate nothing.
            std::string_view op = st->op()->string_view();
            collectives += op.substr(0, 5) == "dist." && op != "dist.copy" &&
                           op != "dist.slice";
          }
        std::printf("%sprogram %s: %u steps, %u collectives\n", indent,
                    prog->name()->c_str(),
                    prog->steps() ? prog->steps()->size() : 0u, collectives);
      }
    };
    programs(p, "");
    if (const plan::Pipeline *pipe = p->pipeline();
        pipe && pipe->stage_plans()) {
      // Each stage's own plan: its arena, programs and schedule.
      std::printf("pipeline: %lld stages, schedule %s, %lld micro-batches\n",
                  static_cast<long long>(pipe->stages()),
                  pipe->schedule() ? pipe->schedule()->c_str() : "?",
                  static_cast<long long>(pipe->micro_batches()));
      for (const plan::StagePlan *sp : *pipe->stage_plans()) {
        const plan::Plan *stage = sp->plan_nested_root();
        std::string order;
        const bool chunked = stage->pipeline()->virtual_stages() > 1;
        for (const plan::Action *a : *stage->pipeline()->actions())
          order +=
              std::string(" ") + (a->backward() ? "B" : "F") +
              std::to_string(a->micro()) +
              (chunked ? std::string(1, static_cast<char>('a' + a->chunk()))
                       : std::string());
        std::printf("stage %lld: arena %llu bytes, activation stash %llu;%s\n",
                    static_cast<long long>(stage->pipeline()->stage()),
                    static_cast<unsigned long long>(stage->arena_bytes()),
                    static_cast<unsigned long long>(
                        stage->memory()->activation_stash()),
                    order.c_str());
        programs(stage, "  ");
      }
    }
    return 0;
  }
  // auto: CUDA when a GPU is visible. An explicit cuda without one is an
  // error, never a silent CPU run.
  {
    std::string why;
    const int gpus = runtime::cudaDevices(&why);
    [[maybe_unused]] const bool autoPicked = device == "auto";
    if (device == "cuda" && gpus == 0) {
      std::fprintf(stderr,
                   "%s: error: --device cuda: no usable CUDA device (%s); "
                   "use --device cpu to run on the CPU\n",
                   kTool, why.empty() ? "none found" : why.c_str());
      return 1;
    }
    if (device == "auto")
      device = gpus > 0 ? "cuda" : "cpu";
#if FORGE_HAVE_CUDA
    // A visible GPU whose backend cannot load (no cuBLAS or NCCL on the
    // machine, say) is an error, not a quiet CPU run; say why auto chose it.
    if (device == "cuda" && gpus > 0 && !cuda::loadPlugin(why)) {
      std::fprintf(stderr,
                   "%s: error: --device %s: %d CUDA device(s) visible, but %s; "
                   "use --device cpu to run on the CPU\n",
                   kTool, autoPicked ? "auto picked cuda" : "cuda", gpus,
                   why.c_str());
      return 1;
    }
#endif
  }
  if (*n != 1)
    return comm::launchLocal(static_cast<int>(*n), argc, argv);
  train::TrainerOptions options;
  options.planPath = plan;
  options.device = device;
  if (!stepsText.empty()) {
    auto v = tools::parseInt(stepsText);
    if (!v || *v < 0)
      tools::usageError(kTool, "--steps must be a non-negative integer, got '" +
                                   stepsText + "'");
    options.steps = *v;
  }
  options.repeatBatch = repeatBatch;
  options.initFrom = initFrom;
  options.batchFrom = batchFrom;
  options.dumpDir = dumpDir;
  const char *noCkptEnv = std::getenv("FORGE_NO_CHECKPOINT");
  options.noCheckpoint = noCheckpoint || (noCkptEnv && *noCkptEnv &&
                                          std::string(noCkptEnv) != "0");
  options.exportHf = exportHf;
  options.dumpLogits = dumpLogits;
  // The live progress bar only on a terminal; pipes and CI get log lines.
  options.progress = progress == "on" || (progress == "auto" && isatty(1));
  train::Trainer trainer(p);
  // Setup runs programs too (optimizer_init) and moves the state to the
  // device: a backend failure there is reported like one in training.
  std::string e;
  try {
    e = trainer.setup(options);
  } catch (const std::exception &ex) {
    e = ex.what();
  }
  if (!e.empty()) {
    std::fprintf(stderr, "%s: error: %s\n", kTool, e.c_str());
    return 1;
  }
  return trainer.run();
}

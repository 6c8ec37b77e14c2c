//===- Trainer.cpp - The training loop of forge-run -----------------------===//

#include "runtime/train/Trainer.h"
#include "runtime/comm/Communicator.h"
#include "runtime/comm/Launch.h"
#include "runtime/core/BuildInfo.h"
#include "runtime/cpu/Bf16Gemm.h"
#include "runtime/cpu/Executor.h"
#if FORGE_HAVE_CUDA
#include "runtime/cuda/Device.h"
#include "runtime/cuda/Plugin.h"
#endif
#include "runtime/data/Dataset.h"
#include "runtime/train/Checkpoint.h"
#include "runtime/train/HfExport.h"
#include "runtime/train/Metrics.h"
#include "runtime/train/State.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace forge::train {
namespace {

/// 12345.6 -> "12,346".
std::string withCommas(double v) {
  std::string digits = std::to_string(static_cast<long long>(v + 0.5));
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

std::string str(const flatbuffers::String *s) { return s ? s->str() : ""; }

/// "1h02m", "3m07s", "12s".
std::string duration(double seconds) {
  long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lds", s);
  return buf;
}

/// SIGTERM / SIGUSR1 (reference §7.5): finish the step, save, exit 0.
std::atomic<int> gShutdownSignal{0};
void onShutdownSignal(int sig) { gShutdownSignal.store(sig); }

/// KempnerForge stops after this many non-finite steps in a row (§4.1).
constexpr int kMaxConsecutiveNonFinite = 10;

/// The health check's all-reduce gives up after this long (reference §7.5).
constexpr double kHealthCheckTimeoutSec = 10.0;

} // namespace

struct Trainer::Impl {
  /// The checkpointer and the backend go first: their threads (an async
  /// save, the communication thread, pipeline sends) may still be using
  /// the communicators and the tracer, declared after them, when a run
  /// ends on an error.
  ~Impl() {
    ckpt.reset();
    exec.reset();
  }

  const plan::Plan *p;
  const plan::Training *t;
  TrainerOptions o;
  /// The backend that runs the plan (CPU, or CUDA with --device).
  std::unique_ptr<runtime::Backend> exec;
  int cudaDevice = 0; ///< --device cuda: this process's GPU
#if FORGE_HAVE_CUDA
  /// --device cuda: libforge-cuda.so, loaded by the first CUDA run.
  const cuda::Plugin *cudaPlugin = nullptr;
#endif
  int64_t steps = 0;

  // Ranks (a plan with a mesh): this process's communicators, and its place
  // among the data-parallel ranks (dp_replicate x dp_shard x ep), which read
  // different batches.
  std::unique_ptr<comm::Comms> comms;
  std::unique_ptr<comm::Comms> deviceComms; ///< NCCL, with --device cuda
  int64_t worldSize = 1, dpRank = 0, dpSize = 1;
  /// Pipeline parallelism: this rank's stage (its own plan replaces the
  /// job's once the rank knows its pp coordinate), the pp group, and the
  /// program whose inputs take each micro-batch.
  const plan::Pipeline *pipe = nullptr;
  const plan::Plan *job = nullptr; ///< the job's plan (p is the stage's)
  comm::Communicator *ppComm = nullptr;
  std::string microProgram = "train_step";
  /// The stage's loss summed over the pipeline (only the last stage
  /// computes one; the others contribute zero).
  double pipelineSum(double v, const std::string &why);
  /// Checkpoints (reference §6): the resumed state, and SIGTERM/SIGUSR1.
  std::unique_ptr<Checkpointer> ckpt;
  TrainState resumed;
  /// --batch-from with a block per micro-step: tokens, labels of each.
  std::vector<std::vector<uint8_t>> microBatches;
  bool lead = true; ///< world rank 0: the one that logs and writes metrics
  int64_t faultRank = -1, faultStep = -1;

  // Data.
  std::vector<std::unique_ptr<data::TokenDataset>> sources;
  std::vector<std::string> sourceNames;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<data::TokenDataset> evalData;
  std::unique_ptr<data::Loader> evalLoader;
  std::mt19937_64 gen;
  int phase = -1; ///< index into t->phases(), -1 before the first
  double lrScale = 1.0;
  double dataWait = 0; ///< seconds this step waited for data

  // Metrics.
  std::unique_ptr<MetricsSink> metrics;
  double peakFlops = 0;
  double smoothLoss = 0, smoothTps = 0, smoothMfu = 0, smoothTime = 0;
  bool smoothed = false;
  bool progressShown = false;

  // [profiling] (reference §7.4): steps [profStart, profEnd] are traced.
  std::unique_ptr<runtime::Tracer> tracer;
  int64_t profStart = 0, profEnd = -1;
  std::string traceDir;
  /// Writes this rank's trace and (on the lead) summary.md, once.
  std::string finishTrace();

  std::string connect();
  /// The mean of `v` over all ranks (v itself on one rank).
  double average(double v, const std::string &why);
  std::string openData();
  void fillRandom(const std::vector<runtime::View> &in);
  void fillBatch(const std::vector<runtime::View> &in);
  void enterPhase(int64_t step);
  std::string evaluate(int64_t step);
  void clearProgress();
  void showProgress(int64_t step, double loss, double stepTime, double elapsed);
  void zeroGradients();
  bool gradientsFinite();
};

Trainer::Trainer(const plan::Plan *plan) : impl_(std::make_unique<Impl>()) {
  impl_->p = plan;
  impl_->t = plan->training();
}

Trainer::~Trainer() = default;

std::string Trainer::Impl::connect() {
  comm::MeshShape mesh;
  if (p->mesh() && p->mesh()->dims() && p->mesh()->sizes())
    for (size_t i = 0; i < p->mesh()->dims()->size(); ++i) {
      mesh.dims.push_back(str(p->mesh()->dims()->Get(i)));
      mesh.sizes.push_back(p->mesh()->sizes()->Get(i));
      worldSize *= mesh.sizes.back();
    }
  if (worldSize == 1)
    return "";
  comm::WorldInfo world;
  if (t->comm_timeout_sec() > 0)
    world.timeoutSec = t->comm_timeout_sec();
  if (std::string e = comm::worldFromEnvironment(world); !e.empty())
    return e;
  if (world.size == 1)
    return "the plan is for " + std::to_string(worldSize) +
           " ranks: run it with forge-run --nproc-per-node " +
           std::to_string(worldSize) +
           " (or under torchrun/Slurm with that many processes)";
  if (world.size != worldSize)
    return "the plan is for " + std::to_string(worldSize) + " ranks, but " +
           std::to_string(world.size) +
           " were launched; recompile with forgec --world-size " +
           std::to_string(world.size);
  std::string error;
  comms = comm::connectGloo(world, mesh, error);
  if (!comms)
    return error;
  // Rank 0 now serves the TCP store for the rest of the process.
  world.storeServedHere = true;
#if FORGE_HAVE_CUDA
  // On GPUs the plan's collectives go over NCCL on device memory; gloo
  // stays for the trainer's own host-side agreement (health check,
  // checkpoints, state gathers).
  if (o.device == "cuda") {
    deviceComms = cudaPlugin->connectNccl(world, mesh, cudaDevice, error);
    if (!deviceComms)
      return error;
    exec->setDeviceComms(deviceComms.get());
  }
#endif
  lead = world.rank == 0;
  if (const char *r = std::getenv("FORGE_FAULT_RANK"))
    faultRank = std::atoll(r);
  if (const char *s = std::getenv("FORGE_FAULT_STEP"))
    faultStep = std::atoll(s);
  auto size = [&](const char *dim) {
    comm::Communicator *c = comms->group(dim);
    return c ? static_cast<int64_t>(c->size()) : int64_t{1};
  };
  // Unlike KempnerForge, ep ranks read different batches too (they are
  // data-parallel for every non-expert parameter; forge-shard-experts).
  dpSize = size("dp_replicate") * size("dp_shard") * size("ep");
  dpRank = (comms->coordinate("dp_replicate") * size("dp_shard") +
            comms->coordinate("dp_shard")) *
               size("ep") +
           comms->coordinate("ep");
  exec->setComms(comms.get());
  if (const plan::Pipeline *jobPipe = p->pipeline();
      jobPipe && jobPipe->stage_plans()) {
    // The stage's plan was verified with the job's (runtime::verifyPlan).
    const int64_t stage = comms->coordinate("pp");
    job = p;
    p = jobPipe->stage_plans()->Get(stage)->plan_nested_root();
    pipe = p->pipeline();
    ppComm = comms->group("pp");
    microProgram =
        runtime::pipelineProgram(false, 0, 0, pipe->virtual_stages());
  }
  return "";
}

double Trainer::Impl::pipelineSum(double v, const std::string &why) {
  if (!ppComm)
    return v;
  float x = static_cast<float>(v);
  if (std::string e = ppComm->allReduce(&x, 1, comm::ReduceOp::Sum, why);
      !e.empty())
    throw cpu::CollectiveError(e);
  return x;
}

double Trainer::Impl::average(double v, const std::string &why) {
  if (!comms)
    return v;
  float x = static_cast<float>(v);
  if (std::string e = comms->world().allReduce(&x, 1, comm::ReduceOp::Avg, why);
      !e.empty())
    throw cpu::CollectiveError(e);
  return x;
}

std::string Trainer::Impl::openData() {
  const int64_t B = t->batch_size(), S = t->seq_len();
  auto open = [&](const std::string &path, const std::string &pattern,
                  std::unique_ptr<data::TokenDataset> &ds) {
    ds = std::make_unique<data::TokenDataset>();
    return ds->open(path, pattern, S, t->vocab_size());
  };
  if (t->datasets() && t->datasets()->size() > 0 && o.batchFrom.empty()) {
    std::vector<const data::TokenDataset *> raw;
    std::vector<double> weights;
    for (const plan::DataSource *d : *t->datasets()) {
      sources.emplace_back();
      if (std::string e =
              open(str(d->path()), str(d->pattern()), sources.back());
          !e.empty())
        return e;
      raw.push_back(sources.back().get());
      weights.push_back(d->weight());
      sourceNames.push_back(str(d->name()));
      std::printf("forge-run: data '%s': %zu shards, %lld tokens, %lld "
                  "windows of %lld\n",
                  sourceNames.back().c_str(), sources.back()->numShards(),
                  static_cast<long long>(sources.back()->numTokens()),
                  static_cast<long long>(sources.back()->numWindows()),
                  static_cast<long long>(S + 1));
    }
    data::LoaderOptions lo;
    lo.batch = B;
    lo.seqLen = S;
    lo.seed = static_cast<uint64_t>(t->data_seed());
    lo.rank = dpRank;
    lo.worldSize = dpSize;
    lo.temperature = t->mix_temperature();
    lo.pack = t->pack_sequences();
    lo.eos = t->eos_id();
    loader = std::make_unique<data::Loader>(raw, weights, lo);
    if (loader->batchesPerEpoch() == 0)
      return "the training data holds fewer windows of seq_len + 1 tokens "
             "than one batch of " +
             std::to_string(B);
    if (raw.size() > 1) {
      std::string probs;
      for (size_t i = 0; i < raw.size(); ++i) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%s%s %.3f", i ? ", " : "",
                      sourceNames[i].c_str(), loader->probabilities()[i]);
        probs += buf;
      }
      std::printf("forge-run: mixing at temperature %g: %s\n",
                  t->mix_temperature(), probs.c_str());
    }
  }
  if (t->eval_interval() > 0) {
    if (std::string e = open(str(t->eval_dataset_path()),
                             str(t->eval_file_pattern()), evalData);
        !e.empty())
      return "eval data: " + e;
    data::LoaderOptions lo;
    lo.batch = B;
    lo.seqLen = S;
    lo.shuffle = false; // the same first eval.steps batches every time
    lo.rank = dpRank;
    lo.worldSize = dpSize;
    evalLoader = std::make_unique<data::Loader>(
        std::vector<const data::TokenDataset *>{evalData.get()},
        std::vector<double>{1.0}, lo);
    if (evalLoader->batchesPerEpoch() == 0)
      return "eval data '" + str(t->eval_dataset_path()) +
             "' holds fewer windows of seq_len + 1 tokens than one batch "
             "of " +
             std::to_string(B);
  }
  return "";
}

void Trainer::Impl::fillRandom(const std::vector<runtime::View> &in) {
  // Like KempnerForge without a dataset: independent random inputs and
  // labels. Document ids (packed sequences) are all one document.
  std::uniform_int_distribution<int64_t> token(0, t->vocab_size() - 1);
  for (const runtime::View &v : in) {
    if (v.dtype == plan::DType::i64) {
      auto *d = static_cast<int64_t *>(v.data);
      for (int64_t e = 0; e < v.numel(); ++e)
        d[e] = token(gen);
    } else {
      std::memset(v.data, 0, v.numel() * 4);
    }
  }
}

void Trainer::Impl::fillBatch(const std::vector<runtime::View> &in) {
  if (!loader)
    return fillRandom(in);
  loader->next(static_cast<int64_t *>(in[0].data),
               static_cast<int64_t *>(in[1].data),
               in.size() > 2 ? static_cast<int32_t *>(in[2].data) : nullptr);
  dataWait += loader->lastWaitSeconds();
}

void Trainer::Impl::enterPhase(int64_t step) {
  // The last phase whose start step has been reached is active; its data
  // weights apply to the following batches and its lr scale to the
  // following updates.
  if (!t->phases())
    return;
  int next = phase;
  for (int i = phase + 1; i < static_cast<int>(t->phases()->size()); ++i)
    if (t->phases()->Get(i)->start_step() <= step)
      next = i;
  if (next == phase)
    return;
  phase = next;
  const plan::Phase *ph = t->phases()->Get(phase);
  lrScale = ph->lr_scale();
  std::string desc;
  if (loader && ph->weights() && ph->weights()->size() == sourceNames.size()) {
    std::vector<double> w(ph->weights()->begin(), ph->weights()->end());
    loader->setWeights(w);
    for (size_t i = 0; i < w.size(); ++i) {
      char buf[96];
      std::snprintf(buf, sizeof(buf), "%s%s %.3f", i ? ", " : "",
                    sourceNames[i].c_str(), loader->probabilities()[i]);
      desc += buf;
    }
  }
  clearProgress();
  std::printf("[step %lld] phase %d (from step %lld): lr_scale=%g%s%s\n",
              static_cast<long long>(step), phase,
              static_cast<long long>(ph->start_step()), lrScale,
              desc.empty() ? "" : " | mixing: ", desc.c_str());
}

std::string Trainer::Impl::evaluate(int64_t step) {
  // Schedule-free AdamW evaluates at its averaged weights x (reference
  // §4.3: eval_params/train_params swap).
  bool swap = false;
  for (const plan::Program *prog : *p->programs())
    if (str(prog->name()) == "eval_params")
      swap = true;
  if (swap)
    exec->run("eval_params");
  const std::vector<runtime::View> &in = exec->inputs("eval_step");
  const runtime::View &out = exec->outputs("eval_step")[0];
  evalLoader->restore({});
  double sum = 0;
  for (int64_t i = 0; i < t->eval_steps(); ++i) {
    evalLoader->next(static_cast<int64_t *>(in[0].data),
                     static_cast<int64_t *>(in[1].data), nullptr);
    for (size_t a = 2; a < in.size(); ++a) // one document per window
      std::memset(in[a].data, 0, in[a].numel() * 4);
    exec->setMicroBatch(i);
    exec->run("eval_step");
    sum += runtime::readFloat(out, 0);
  }
  exec->finishSends();
  sum = pipelineSum(sum, "the pipeline's eval loss");
  if (swap)
    exec->run("train_params");
  // Each data-parallel rank evaluates its stride of the eval windows; the
  // reported loss is their mean.
  double loss =
      average(sum / static_cast<double>(t->eval_steps()), "the eval loss");
  double ppl = std::exp(std::min(loss, 20.0));
  clearProgress();
  std::printf("[eval step %lld] eval/loss=%.4f | eval/perplexity=%.2f\n",
              static_cast<long long>(step), loss, ppl);
  if (metrics)
    return metrics->log(step, {{"eval/loss", loss}, {"eval/perplexity", ppl}});
  return "";
}

std::string Trainer::Impl::finishTrace() {
  if (!tracer || (!tracer->active() && tracer->empty())) {
    if (tracer && lead && !traceDir.empty()) {
      clearProgress();
      std::printf("forge-run: [profiling] steps %lld..%lld were not run: no "
                  "trace written\n",
                  static_cast<long long>(profStart),
                  static_cast<long long>(profEnd));
    }
    traceDir.clear(); // said once
    return "";
  }
  if (traceDir.empty())
    return "";
  tracer->setActive(false);
  const int rank = comms ? comms->world().rank() : 0;
  const std::string path =
      traceDir + "/rank" + std::to_string(rank) + ".trace.json";
  if (std::string e = tracer->writeChromeTrace(path); !e.empty())
    return "[profiling] " + e;
  // Every rank's breakdown, for the summary's table (one row per rank).
  constexpr int kFields = 8;
  std::vector<float> all(static_cast<size_t>(worldSize) * kFields, 0.0f);
  const runtime::TraceBreakdown b = tracer->breakdown();
  const double mine[kFields] = {static_cast<double>(b.steps),
                                b.wall,
                                b.matmul,
                                b.attention,
                                b.compute,
                                b.exposedComm,
                                b.commStream,
                                b.matmulFlops / 1e9}; // GFLOP: fits a float
  for (int f = 0; f < kFields; ++f)
    all[static_cast<size_t>(rank) * kFields + f] = static_cast<float>(mine[f]);
  if (comms)
    if (std::string e = comms->world().allReduce(
            all.data(), all.size(), comm::ReduceOp::Sum, "the profile summary");
        !e.empty())
      return e;
  std::vector<runtime::TraceBreakdown> ranks(worldSize);
  for (int64_t r = 0; r < worldSize; ++r) {
    const float *v = &all[static_cast<size_t>(r) * kFields];
    runtime::TraceBreakdown &x = ranks[r];
    x.steps = static_cast<int64_t>(v[0]);
    x.wall = v[1], x.matmul = v[2], x.attention = v[3], x.compute = v[4];
    x.exposedComm = v[5], x.commStream = v[6];
    x.matmulFlops = static_cast<double>(v[7]) * 1e9;
    x.idle = std::max(0.0, x.wall - x.matmul - x.attention - x.compute -
                               x.exposedComm);
  }
  const std::string dir = traceDir;
  traceDir.clear(); // written once
  if (!lead)
    return "";
  const std::string window =
      "Steps " + std::to_string(profStart) + ".." + std::to_string(profEnd) +
      " of " + str(t->job()) + " (" + std::to_string(b.steps) +
      " profiled on rank " + std::to_string(rank) + "); traces: " + dir +
      "/rank<R>.trace.json (chrome://tracing or ui.perfetto.dev).";
  const std::string md =
      runtime::traceSummaryMarkdown(ranks, tracer->opTotals(), rank, window);
  const std::string summary = dir + "/summary.md";
  std::FILE *f = std::fopen(summary.c_str(), "w");
  if (!f || std::fwrite(md.data(), 1, md.size(), f) != md.size() ||
      std::fclose(f) != 0)
    return "[profiling] cannot write " + summary + ": " + std::strerror(errno);
  const double n = static_cast<double>(std::max<int64_t>(1, b.steps));
  auto pct = [&](double v) { return b.wall > 0 ? 100.0 * v / b.wall : 0.0; };
  clearProgress();
  std::printf("[profile] %lld steps, %.1f ms/step: matmul %.1f%% | attention "
              "%.1f%% | other compute %.1f%% | communication %.1f%% | idle "
              "%.1f%%\n[profile] wrote %s/rank*.trace.json and %s\n",
              static_cast<long long>(b.steps), 1e3 * b.wall / n, pct(b.matmul),
              pct(b.attention), pct(b.compute), pct(b.exposedComm),
              pct(ranks[rank].idle), dir.c_str(), summary.c_str());
  return "";
}

void Trainer::Impl::clearProgress() {
  if (progressShown) {
    std::fputs("\r\033[K", stdout);
    progressShown = false;
  }
}

void Trainer::Impl::showProgress(int64_t step, double loss, double stepTime,
                                 double elapsed) {
  const int width = 30;
  int filled = static_cast<int>(width * step / std::max<int64_t>(1, steps));
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  double eta =
      elapsed / static_cast<double>(step) * static_cast<double>(steps - step);
  std::printf("\r\033[K[%s] %lld/%lld %3.0f%% | loss %.4f | %.2f s/step | "
              "elapsed %s | eta %s",
              bar.c_str(), static_cast<long long>(step),
              static_cast<long long>(steps),
              100.0 * static_cast<double>(step) / static_cast<double>(steps),
              loss, stepTime, duration(elapsed).c_str(), duration(eta).c_str());
  std::fflush(stdout);
  progressShown = true;
}

void Trainer::Impl::zeroGradients() { exec->zeroRole(plan::Role::gradient); }

bool Trainer::Impl::gradientsFinite() {
  return exec->finiteRole(plan::Role::gradient);
}

std::string Trainer::setup(const TrainerOptions &options) {
  Impl &m = *impl_;
  m.o = options;
  const plan::Training *t = m.t;
  m.steps = options.steps >= 0 ? options.steps : t->max_steps();
  if (!options.dumpDir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.dumpDir, ec);
    if (ec)
      return "cannot create " + options.dumpDir + ": " + ec.message();
  }
  if (options.device == "cuda") {
#if FORGE_HAVE_CUDA
    // One GPU per process: the local rank's (torchrun's LOCAL_RANK,
    // Slurm's SLURM_LOCALID; forge-run --nproc-per-node sets LOCAL_RANK).
    for (const char *var : {"LOCAL_RANK", "SLURM_LOCALID"})
      if (const char *v = std::getenv(var); v && *v) {
        m.cudaDevice = std::atoi(v);
        break;
      }
    // Bound per task (Slurm's --gpus-per-task, --gpu-bind): the process
    // sees only its own GPU, as device 0, whatever its local rank.
    if (const char *bound = std::getenv("CUDA_VISIBLE_DEVICES");
        m.cudaDevice > 0 && bound && *bound && !std::strchr(bound, ',') &&
        runtime::cudaDevices() == 1)
      m.cudaDevice = 0;
    // KempnerForge's NCCL network defaults (reference §7.5), where unset.
    if (std::string set = comm::setNcclEnvironment(); !set.empty())
      std::printf("forge-run: NCCL environment: %s\n", set.c_str());
    std::string why;
    m.cudaPlugin = cuda::loadPlugin(why);
    if (!m.cudaPlugin)
      return "--device cuda: " + why;
    m.exec = m.cudaPlugin->makeExecutor(m.cudaDevice, why);
    if (!m.exec)
      return "--device cuda: " + why;
#else
    return "--device cuda: this forge-run was built without the CUDA backend";
#endif
  } else {
    m.exec = std::make_unique<cpu::Executor>();
  }
  if (std::string e = m.connect(); !e.empty())
    return e;
  // Only rank 0 logs (reference §7.1); every rank reports its errors on
  // stderr.
  if (!m.lead && !std::freopen("/dev/null", "w", stdout))
    return "cannot silence the log of rank " + std::to_string(m.dpRank);
  {
    const plan::Plan *jobPlan = m.job ? m.job : m.p;
    const plan::Profiling *prof = jobPlan->profiling();
    if (prof && prof->enable()) {
      m.tracer = std::make_unique<runtime::Tracer>(
          m.comms ? m.comms->world().rank() : 0);
      m.profStart = prof->start_step();
      m.profEnd = prof->end_step();
      m.traceDir = str(prof->trace_dir());
      m.exec->setTracer(m.tracer.get());
    }
  }
  if (std::string why = m.exec->prepare(m.p); !why.empty())
    return options.planPath + ": " + why;
  if (!options.dumpLogits.empty() && m.exec->outputs("logits_step").empty())
    return "--dump-logits: " + options.planPath +
           " has no logits_step program (compile the job with forgec "
           "--logits-program)";
  m.exec->initialize(static_cast<uint64_t>(t->seed()));
  // Optimizers whose state starts from the parameters (schedule-free
  // AdamW's z and x) initialize it once, after the parameters are final.
  bool hasInit = false;
  for (const plan::Program *prog : *m.p->programs())
    if (str(prog->name()) == "optimizer_init")
      hasInit = true;
  if (!options.initFrom.empty())
    if (std::string e = loadParameters(m.p, *m.exec, options.initFrom,
                                       m.comms.get(), m.job);
        !e.empty())
      return e;
  // The initial state goes to the device before the first program.
  m.exec->pushState();
  if (hasInit)
    m.exec->run("optimizer_init");
  const std::vector<runtime::View> &in = m.exec->inputs(m.microProgram);
  if (!options.batchFrom.empty()) {
    if (std::string e =
            loadBatch(*m.exec, options.batchFrom, m.dpRank, m.dpSize,
                      t->grad_accum_steps(), &m.microBatches, m.microProgram);
        !e.empty())
      return e;
    if (t->pack_sequences() && !m.microBatches.empty())
      return "--batch-from with a batch per micro-step cannot pack "
             "sequences (data.pack_sequences): give one batch";
    if (t->pack_sequences())
      for (int64_t b = 0; b < t->batch_size(); ++b) {
        const int64_t S = t->seq_len();
        data::packWindow(static_cast<int64_t *>(in[0].data) + b * S,
                         static_cast<int64_t *>(in[1].data) + b * S,
                         static_cast<int32_t *>(in[2].data) + b * S, S,
                         t->eos_id());
      }
    m.o.repeatBatch = true;
  }
  // Random tokens differ between data-parallel ranks, like their data.
  m.gen.seed(static_cast<uint64_t>(t->data_seed() + m.dpRank));
  if (std::string e = m.openData(); !e.empty())
    return e;

  // Resume (reference §6): the newest complete checkpoint of
  // checkpoint.dir, else checkpoint.load_path. Its tensors replace the
  // initialization (and --init-from); the data continue where they were.
  const plan::Plan *jobPlan = m.job ? m.job : m.p;
  if (!options.noCheckpoint && jobPlan->checkpoint() &&
      jobPlan->checkpoint()->dir() && jobPlan->checkpoint()->dir()->size()) {
    m.ckpt =
        std::make_unique<Checkpointer>(jobPlan, m.p, *m.exec, m.comms.get());
    std::string note;
    std::string path = m.ckpt->findResume(note);
    if (!note.empty())
      std::printf("forge-run: %s\n", note.c_str());
    if (!path.empty()) {
      if (std::string e = m.ckpt->load(path, m.resumed); !e.empty())
        return e;
      m.enterPhase(m.resumed.step);
      if (m.loader)
        m.loader->restore({m.resumed.epoch, m.resumed.batchesYielded});
      if (!m.resumed.rng.empty()) {
        std::istringstream in(m.resumed.rng);
        in >> m.gen;
      }
      std::printf("forge-run: resumed from %s at step %lld%s\n", path.c_str(),
                  static_cast<long long>(m.resumed.step),
                  options.initFrom.empty() ? ""
                                           : " (--init-from not used: the "
                                             "checkpoint's weights are)");
    }
    // SIGTERM / SIGUSR1 (Slurm preemption): finish the step, save, exit 0;
    // a watchdog ends the process if that takes longer than
    // train.shutdown_timeout_sec.
    struct sigaction sa {};
    sa.sa_handler = onShutdownSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGUSR1, &sa, nullptr);
    const double timeout = jobPlan->checkpoint()->shutdown_timeout_sec();
    std::thread([timeout] {
      std::chrono::steady_clock::time_point seen{};
      for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (!gShutdownSignal.load())
          continue;
        auto now = std::chrono::steady_clock::now();
        if (seen == std::chrono::steady_clock::time_point{})
          seen = now;
        if (std::chrono::duration<double>(now - seen).count() > timeout) {
          std::fprintf(stderr,
                       "forge-run: error: shutdown did not finish within "
                       "train.shutdown_timeout_sec (%.0f s); exiting\n",
                       timeout);
          _exit(1);
        }
      }
    }).detach();
  }

  std::string jsonl = str(t->jsonl_path()), tb = str(t->tensorboard_dir());
  if (m.lead && (!jsonl.empty() || !tb.empty())) {
    m.metrics = std::make_unique<MetricsSink>();
    if (!jsonl.empty())
      if (std::string e = m.metrics->openJsonl(jsonl); !e.empty())
        return e;
    if (!tb.empty())
      if (std::string e = m.metrics->openTensorBoard(tb); !e.empty())
        return e;
  }
  {
    // A bf16 plan whose GEMMs run on the CPU's bf16 instructions is
    // measured against the bf16 peak, not fp32's.
    bool bf16 = false;
    for (const plan::Buffer *b : *m.p->buffers())
      bf16 = bf16 || b->dtype() == plan::DType::bf16;
    m.peakFlops = cpuPeakFlops(bf16 && cpu::bf16GemmActive());
  }
#if FORGE_HAVE_CUDA
  if (options.device == "cuda" && !std::getenv("FORGE_PEAK_TFLOPS")) {
    // bf16, fp16 and fp8 plans run their matmuls on 16-bit (or fp8)
    // tensor cores: the dense 16-bit peak (fp8's is not claimed).
    bool low = false;
    for (const plan::Buffer *b : *m.p->buffers())
      low = low || b->dtype() == plan::DType::bf16 ||
            b->dtype() == plan::DType::f16;
    m.peakFlops = cuda::peakFlops(m.cudaDevice, low);
  }
#endif
  if (m.o.repeatBatch && options.batchFrom.empty())
    m.fillBatch(in);
  return "";
}

int Trainer::run() {
  // A failed collective on any rank ends the run with its message (rank,
  // collective, group, op); the launcher then stops the other ranks.
  try {
    int rc = runSteps();
    if (rc == 0 && !impl_->o.exportHf.empty())
      rc = exportHf();
    if (rc == 0 && !impl_->o.dumpLogits.empty())
      rc = dumpLogits();
    return rc;
  } catch (const std::exception &e) {
    impl_->clearProgress();
    std::fprintf(stderr, "forge-run: error: %s\n", e.what());
    return 1;
  }
}

int Trainer::dumpLogits() {
  Impl &m = *impl_;
  // The batch the model last saw: the first micro-batch of --batch-from,
  // else the current inputs of train_step (with the doc ids of packing).
  const std::vector<runtime::View> &train = m.exec->inputs("train_step");
  const std::vector<runtime::View> &in = m.exec->inputs("logits_step");
  for (size_t i = 0; i < in.size(); ++i) {
    const runtime::View &src = train[i ? i + 1 : 0];
    const size_t bytes =
        static_cast<size_t>(src.numel()) * runtime::dtypeSize(src.dtype);
    if (i == 0 && !m.microBatches.empty())
      std::memcpy(in[i].data, m.microBatches[0].data(), bytes);
    else
      std::memcpy(in[i].data, src.data, bytes);
  }
  m.exec->run("logits_step");
  const runtime::View &out = m.exec->outputs("logits_step")[0];
  TensorMap file;
  Tensor &tokens = file["tokens"];
  tokens.dtype = "I64";
  tokens.shape = in[0].shape;
  const auto *tb = static_cast<const uint8_t *>(in[0].data);
  tokens.data.assign(tb, tb + in[0].numel() * sizeof(int64_t));
  Tensor &logits = file["logits"];
  logits.dtype = "F32";
  logits.shape = out.shape;
  logits.data.resize(static_cast<size_t>(out.numel()) * sizeof(float));
  auto *lf = reinterpret_cast<float *>(logits.data.data());
  for (int64_t i = 0; i < out.numel(); ++i)
    lf[i] = runtime::readFloat(out, i);
  if (std::string e = writeSafeTensors(m.o.dumpLogits, file); !e.empty()) {
    std::fprintf(stderr, "forge-run: error: --dump-logits: %s\n", e.c_str());
    return 1;
  }
  std::string shape;
  for (int64_t d : out.shape)
    shape += (shape.empty() ? "[" : ", ") + std::to_string(d);
  std::printf("forge-run: wrote the tokens and logits %s] of the final "
              "weights to %s\n",
              shape.c_str(), m.o.dumpLogits.c_str());
  return 0;
}

int Trainer::exportHf() {
  Impl &m = *impl_;
  // Every rank takes part in gathering the global tensors; rank 0 writes.
  TensorMap params;
  m.exec->pullState();
  if (std::string e = collect(m.p, *m.exec, plan::Role::parameter, "", params,
                              m.comms.get());
      !e.empty()) {
    std::fprintf(stderr, "forge-run: error: %s\n", e.c_str());
    return 1;
  }
  if (!m.lead)
    return 0;
  if (std::string e = writeHfExport(m.p->hf_model(), params, m.o.exportHf);
      !e.empty()) {
    std::fprintf(stderr, "forge-run: error: --export-hf %s: %s\n",
                 m.o.exportHf.c_str(), e.c_str());
    return 1;
  }
  std::printf("forge-run: wrote the Hugging Face checkpoint %s "
              "(model.safetensors, config.json)\n",
              m.o.exportHf.c_str());
  return 0;
}

int Trainer::runSteps() {
  Impl &m = *impl_;
  const plan::Training *t = m.t;
  const std::string datasetDesc =
      !m.o.batchFrom.empty() ? m.o.batchFrom
      : m.sourceNames.empty()
          ? std::string("random tokens")
          : (m.sourceNames.size() == 1
                 ? str(t->datasets()->Get(0)->path())
                 : std::to_string(m.sourceNames.size()) + " datasets");
  std::printf(
      "forge-run: %s, arena %llu bytes (%.2f MiB), %lld steps x %lld "
      "micro-batches of %lld x %lld tokens (%s%s%s)\n",
      t->job() && t->job()->size() ? t->job()->c_str() : m.o.planPath.c_str(),
      static_cast<unsigned long long>(m.exec->arenaBytes()),
      static_cast<double>(m.exec->arenaBytes()) / (1 << 20),
      static_cast<long long>(m.steps),
      static_cast<long long>(t->grad_accum_steps()),
      static_cast<long long>(t->batch_size()),
      static_cast<long long>(t->seq_len()), datasetDesc.c_str(),
      m.o.repeatBatch && m.o.batchFrom.empty() ? ", one repeated batch" : "",
      t->pack_sequences() ? ", packed" : "");
  {
    std::istringstream notes(m.exec->notes());
    for (std::string line; std::getline(notes, line);)
      std::printf("forge-run: %s\n", line.c_str());
  }
  std::fflush(stdout);

  const std::vector<runtime::View> &in = m.exec->inputs(m.microProgram);
  const std::vector<runtime::View> &optIn = m.exec->inputs("optimizer_step");
  const std::vector<runtime::View> &optOut = m.exec->outputs("optimizer_step");
  const runtime::View &lossOut = m.exec->outputs(m.microProgram)[0];
  const int64_t logEvery = std::max<int64_t>(1, t->log_interval());
  const double tokensPerStep = static_cast<double>(t->batch_size()) *
                               static_cast<double>(t->seq_len()) *
                               static_cast<double>(t->grad_accum_steps());
  // mem= is the arena against the memory it lives in: the machine's, or
  // the GPU's with --device cuda.
  double machineGB = static_cast<double>(sysconf(_SC_PHYS_PAGES)) *
                     static_cast<double>(sysconf(_SC_PAGE_SIZE)) / 1e9;
#if FORGE_HAVE_CUDA
  if (m.o.device == "cuda")
    machineGB = cuda::deviceMemoryBytes(m.cudaDevice) / 1e9;
#endif
  auto fail = [&](const std::string &why) {
    m.clearProgress();
    std::fprintf(stderr, "forge-run: error: %s\n", why.c_str());
    return 1;
  };
  auto begin = std::chrono::steady_clock::now();
  int64_t updates = m.resumed.updates; // optimizer (and schedule) steps
  int nonFinite = 0;
  m.enterPhase(0);
  if (m.resumed.step >= m.steps && m.ckpt && m.resumed.step > 0)
    std::printf("forge-run: the checkpoint is at step %lld of %lld: nothing "
                "to train (to train from scratch, remove %s or pass "
                "--no-checkpoint)\n",
                static_cast<long long>(m.resumed.step),
                static_cast<long long>(m.steps),
                str((m.job ? m.job : m.p)->checkpoint()->dir()).c_str());
  // The initial weights, when the dynamic checkpoint window covers step 0
  // (reference §6).
  if (m.ckpt && m.resumed.step == 0 && m.steps > 0 && m.ckpt->due(0)) {
    TrainState st;
    std::ostringstream rng;
    rng << m.gen;
    st.rng = rng.str();
    if (m.loader) {
      data::LoaderPosition pos = m.loader->position();
      st.epoch = pos.epoch;
      st.batchesYielded = pos.batchesYielded;
    }
    if (std::string e = m.ckpt->save(st); !e.empty())
      return fail("saving the checkpoint of step 0: " + e);
  }
  for (int64_t step = m.resumed.step + 1; step <= m.steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    if (m.tracer)
      m.tracer->setActive(step >= m.profStart && step <= m.profEnd);
    const double startUs = m.tracer ? m.tracer->nowUs() : 0;
    double loss = 0;
    m.dataWait = 0;
    // Testing hook: FORGE_FAULT_RANK=r FORGE_FAULT_STEP=s makes world rank
    // r die at step s (exit code 3, or SIGKILL with FORGE_FAULT_KILL=1), to
    // check that the other ranks and the launcher report it instead of
    // hanging. With FORGE_FAULT_STALL=1 the rank instead stalls before
    // the step's health check (a hung rank, for the check's timeout).
    if (m.faultStep == step && m.comms &&
        m.comms->world().rank() == m.faultRank &&
        !std::getenv("FORGE_FAULT_STALL")) {
      if (std::getenv("FORGE_FAULT_KILL"))
        raise(SIGKILL);
      _exit(3);
    }
    // The micro-batch's inputs: the loader's next batch, the file's block
    // for it (--batch-from), or the repeated batch.
    auto nextMicro = [&](int64_t micro) {
      const double t0 = m.tracer ? m.tracer->nowUs() : 0;
      if (!m.o.repeatBatch) {
        m.fillBatch(in);
      } else if (!m.microBatches.empty()) {
        for (int a = 0; a < 2; ++a)
          std::memcpy(in[a].data, m.microBatches[2 * micro + a].data(),
                      m.microBatches[2 * micro + a].size());
      }
      if (m.tracer)
        m.tracer->record("read micro-batch " + std::to_string(micro),
                         runtime::TraceKind::Host, "compute", t0,
                         m.tracer->nowUs());
    };
    if (m.pipe) {
      // A pipeline stage runs its schedule: each micro-batch's forward
      // and backward as separate programs, in the compiled order. Every
      // micro-batch's inputs are read first (each stage reads the same
      // ones; the first uses the tokens, the last the labels).
      std::vector<std::vector<std::vector<uint8_t>>> data(
          t->grad_accum_steps());
      for (int64_t micro = 0; micro < t->grad_accum_steps(); ++micro) {
        nextMicro(micro);
        for (const runtime::View &v : in) {
          const auto *b = static_cast<const uint8_t *>(v.data);
          data[micro].emplace_back(b,
                                   b + v.numel() * runtime::dtypeSize(v.dtype));
        }
      }
      for (const plan::Action *a : *m.pipe->actions()) {
        const std::string name = runtime::pipelineProgram(
            a->backward(), a->chunk(), a->slot(), m.pipe->virtual_stages());
        const std::vector<runtime::View> &pin = m.exec->inputs(name);
        for (size_t i = 0; i < pin.size(); ++i)
          std::memcpy(pin[i].data, data[a->micro()][i].data(),
                      data[a->micro()][i].size());
        m.exec->setMicroBatch(a->micro());
        m.exec->run(name);
        if (!a->backward())
          loss += runtime::readFloat(m.exec->outputs(name)[0], 0);
      }
      m.exec->finishSends();
    } else {
      for (int64_t micro = 0; micro < t->grad_accum_steps(); ++micro) {
        nextMicro(micro);
        m.exec->run("train_step");
        loss += runtime::readFloat(lossOut, 0);
      }
    }
    loss /= static_cast<double>(t->grad_accum_steps());
    loss = m.pipelineSum(loss, "the pipeline's loss");

    // Reference §4.1 step 3: a non-finite loss or gradient skips the
    // update and the schedule; ten in a row end the run. Every rank takes
    // the same decision (the flag is reduced over all ranks), and the
    // logged loss is the mean over the data-parallel ranks.
    bool bad = !std::isfinite(loss) || !m.gradientsFinite();
    if (m.comms) {
      float flag = bad ? 1.0f : 0.0f;
      if (std::string e = m.comms->world().allReduce(
              &flag, 1, comm::ReduceOp::Max, "the non-finite check");
          !e.empty())
        return fail(e);
      bad = flag > 0;
      if (!bad)
        loss = m.average(loss, "the logged loss");
    }
    if (bad) {
      m.zeroGradients();
      ++nonFinite;
      m.clearProgress();
      std::printf("[step %lld] non-finite %s: update skipped (%d in a row)\n",
                  static_cast<long long>(step),
                  std::isfinite(loss) ? "gradients" : "loss", nonFinite);
      std::fflush(stdout);
      if (m.metrics)
        if (std::string e = m.metrics->log(
                step, {{"train/nonfinite_skips", double(nonFinite)}});
            !e.empty())
          return fail(e);
      if (nonFinite >= kMaxConsecutiveNonFinite)
        return fail("stopping at step " + std::to_string(step) + ": " +
                    std::to_string(nonFinite) +
                    " consecutive steps had a non-finite loss or gradients");
      m.enterPhase(step);
      continue;
    }
    nonFinite = 0;

    TensorMap dump;
    if (!m.o.dumpDir.empty()) {
      dump["loss"] = scalar(static_cast<float>(loss));
      m.exec->pullState();
      if (std::string e = collect(m.p, *m.exec, plan::Role::gradient, "", dump,
                                  m.comms.get());
          !e.empty())
        return fail(e);
    }
    // Update s uses schedule factor(s - 1), as LambdaLR (reference §4.1).
    *static_cast<int64_t *>(optIn[0].data) = updates;
    *static_cast<float *>(optIn[1].data) = static_cast<float>(m.lrScale);
    m.exec->run("optimizer_step");
    ++updates;
    const double gradNorm = runtime::readFloat(optOut[0], 0);
    const double lr = runtime::readFloat(optOut[1], 0);
    if (!m.o.dumpDir.empty()) {
      m.exec->pullState();
      if (std::string e = collect(m.p, *m.exec, plan::Role::parameter, "param.",
                                  dump, m.comms.get());
          !e.empty())
        return fail(e);
      dump["grad_norm"] = scalar(static_cast<float>(gradNorm));
      dump["lr"] = scalar(static_cast<float>(lr));
      std::string file =
          m.o.dumpDir + "/step" + std::to_string(step) + ".safetensors";
      if (m.lead)
        if (std::string e = writeSafeTensors(file, dump); !e.empty())
          return fail(e);
    }
    auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - start).count();
    if (m.tracer)
      m.tracer->record("step " + std::to_string(step), runtime::TraceKind::Step,
                       "steps", startUs, m.tracer->nowUs());
    const double elapsed = std::chrono::duration<double>(now - begin).count();
    // Global tokens (all data-parallel ranks) over this rank's step time.
    const double tps = tokensPerStep * static_cast<double>(m.dpSize) / seconds;
    const double mfu =
        100.0 * computeMfu(t->flops_per_token(), tps, m.peakFlops, m.worldSize);
    if (!m.smoothed) {
      m.smoothLoss = loss, m.smoothTps = tps, m.smoothMfu = mfu,
      m.smoothTime = seconds;
      m.smoothed = true;
    } else {
      const double a = 0.1; // KempnerForge's EMA (reference §7.3)
      m.smoothLoss += a * (loss - m.smoothLoss);
      m.smoothTps += a * (tps - m.smoothTps);
      m.smoothMfu += a * (mfu - m.smoothMfu);
      m.smoothTime += a * (seconds - m.smoothTime);
    }
    if (step % logEvery == 0 || step == 1 || step == m.steps) {
      // KempnerForge's log line (reference §7.1); mem is what this rank's
      // backend holds (the planned arena, allocated once, and on a GPU
      // what it keeps beside it) over the machine's or the GPU's memory.
      m.clearProgress();
      std::printf("[step %lld] loss=%.4f | lr=%.2e | grad_norm=%.3f | "
                  "tok/s=%s | mfu=%.1f%% | mem=%.1f/%.0fGB | "
                  "step_time=%.2fs\n",
                  static_cast<long long>(step), loss, lr, gradNorm,
                  withCommas(tps).c_str(), mfu,
                  static_cast<double>(m.exec->heldBytes()) / 1e9, machineGB,
                  seconds);
    }
    if (m.metrics) {
      std::vector<std::pair<std::string, double>> scalars = {
          {"train/loss", loss},
          {"train/grad_norm", gradNorm},
          {"train/lr", lr},
          {"train/tokens_per_sec", tps},
          {"train/mfu", mfu},
          {"train/step_time_sec", seconds},
          {"train/tokens_seen", tokensPerStep * static_cast<double>(m.dpSize) *
                                    static_cast<double>(step)},
          {"mem/arena_gb", static_cast<double>(m.exec->arenaBytes()) / 1e9},
          {"mem/held_gb", static_cast<double>(m.exec->heldBytes()) / 1e9},
          {"smoothed/loss", m.smoothLoss},
          {"smoothed/tokens_per_sec", m.smoothTps},
          {"smoothed/mfu", m.smoothMfu},
          {"smoothed/step_time", m.smoothTime}};
      if (m.loader)
        scalars.push_back({"data/wait_sec", m.dataWait});
      if (m.loader && m.sourceNames.size() > 1)
        for (size_t i = 0; i < m.sourceNames.size(); ++i)
          scalars.push_back(
              {"data/" + m.sourceNames[i] + "/tokens",
               static_cast<double>(m.loader->samplesPerSource()[i]) *
                   static_cast<double>(t->seq_len())});
      if (std::string e = m.metrics->log(step, scalars); !e.empty())
        return fail(e);
    }
    if (t->eval_interval() > 0 && step % t->eval_interval() == 0) {
      const double t0 = m.tracer ? m.tracer->nowUs() : 0;
      if (std::string e = m.evaluate(step); !e.empty())
        return fail(e);
      if (m.tracer)
        m.tracer->record("evaluation", runtime::TraceKind::Host, "compute", t0,
                         m.tracer->nowUs());
    }
    m.enterPhase(step);
    if (m.o.progress)
      m.showProgress(step, loss, seconds, elapsed);
    std::fflush(stdout);
    // distributed.nccl_health_check_interval: every rank answers.
    const int64_t health =
        m.job ? m.job->checkpoint()->health_check_interval()
              : (m.p->checkpoint() ? m.p->checkpoint()->health_check_interval()
                                   : 0);
    if (m.comms && health > 0 && step % health == 0) {
      // KempnerForge's probe: an all-reduce of ones that must finish within
      // 10 s (not the collectives' long timeout) and count every rank.
      float one = 1.0f;
      comm::Communicator &world = m.comms->world();
      if (m.faultStep == step && world.rank() == m.faultRank &&
          std::getenv("FORGE_FAULT_STALL"))
        std::this_thread::sleep_for(std::chrono::seconds(600));
      const double previous = world.setTimeout(kHealthCheckTimeoutSec);
      std::string e =
          world.allReduce(&one, 1, comm::ReduceOp::Sum, "the health check");
      world.setTimeout(previous);
      if (!e.empty() || one != static_cast<float>(m.worldSize))
        return fail(e.empty()
                        ? "health check: " + std::to_string(one) + " of " +
                              std::to_string(m.worldSize) + " ranks answered"
                        : e);
    }
    if (m.ckpt) {
      // Every rank agrees on a shutdown (signals reach ranks at different
      // times), then saves: at the interval, at the end, or on a signal.
      float sig = static_cast<float>(gShutdownSignal.load());
      if (m.comms)
        if (std::string e = m.comms->world().allReduce(
                &sig, 1, comm::ReduceOp::Max, "the shutdown check");
            !e.empty())
          return fail(e);
      if (m.ckpt->due(step) || step == m.steps || sig > 0) {
        TrainState st;
        st.step = step;
        st.updates = updates;
        st.tokensSeen =
            static_cast<int64_t>(tokensPerStep * static_cast<double>(m.dpSize) *
                                 static_cast<double>(step));
        if (m.loader) {
          data::LoaderPosition pos = m.loader->position();
          st.epoch = pos.epoch;
          st.batchesYielded = pos.batchesYielded;
        }
        std::ostringstream rng;
        rng << m.gen;
        st.rng = rng.str();
        const double t0 = m.tracer ? m.tracer->nowUs() : 0;
        if (std::string e = m.ckpt->save(st); !e.empty())
          return fail("saving the checkpoint of step " + std::to_string(step) +
                      ": " + e);
        if (m.tracer)
          m.tracer->record("checkpoint save", runtime::TraceKind::Host,
                           "compute", t0, m.tracer->nowUs());
      }
      if (sig > 0) {
        if (std::string e = m.ckpt->wait(); !e.empty())
          return fail(e);
        if (std::string e = m.finishTrace(); !e.empty())
          return fail(e);
        m.clearProgress();
        std::printf("[step %lld] %s: saved the checkpoint; stopping\n",
                    static_cast<long long>(step),
                    strsignal(static_cast<int>(sig)));
        std::fflush(stdout);
        return 0;
      }
    }
    if (m.tracer && step == m.profEnd)
      if (std::string e = m.finishTrace(); !e.empty())
        return fail(e);
  }
  if (m.ckpt)
    if (std::string e = m.ckpt->wait(); !e.empty())
      return fail(e);
  if (std::string e = m.finishTrace(); !e.empty())
    return fail(e);
  m.clearProgress();
  if (m.exec->profiling())
    std::fputs(m.exec->profileReport().c_str(), stdout);
  std::fflush(stdout);
  return 0;
}

} // namespace forge::train

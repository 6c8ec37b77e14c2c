//===- Executor.cpp - Runs a verified plan on one CUDA device -------------===//
//
// Binding mirrors the CPU executor (runtime/cpu/Executor.cpp): the same
// shape checks run first (the host mirror is a CPU executor's layout and
// validates nothing by itself, so the checks are repeated here per op), then
// each step becomes a closure that enqueues its kernels on the stream. An op
// without a CUDA kernel, or a collective, stops prepare() with a message
// naming it: the plan runs on the CPU backend (--device cpu) instead.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/Executor.h"
#include "runtime/comm/Communicator.h"
#include "runtime/core/DType.h"
#include "runtime/core/Trace.h"
#include "runtime/cpu/Executor.h"
#include "runtime/cuda/Blas.h"
#include "runtime/cuda/Composite.h"
#include "runtime/cuda/Device.h"
#include "runtime/cuda/Gemm.h"
#include "runtime/cuda/Kernels.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace forge::cuda {
namespace {

using runtime::View;
using Fn = std::function<void()>;

/// Workspace of the cuBLASLt matmuls (shared: one stream runs them in order).
constexpr size_t kGemmWorkspace = 32u << 20;
/// A pipeline message's header: the micro-batch and the plan tag.
constexpr size_t kMessageHeader = 16;

std::string cudaWhy(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

bool isFloat(plan::DType t) {
  return t == plan::DType::f32 || t == plan::DType::bf16 ||
         t == plan::DType::f16;
}

Dt dtOf(plan::DType t) {
  return t == plan::DType::bf16  ? Dt::bf16
         : t == plan::DType::f16 ? Dt::f16
                                 : Dt::f32;
}

class Executor final : public runtime::Backend {
public:
  explicit Executor(int device) : device_(device) {}
  ~Executor() override;
  std::string open();

  const char *kind() const override { return "cuda"; }
  void setComms(comm::Comms *comms) override { host_.setComms(comms); }
  void setDeviceComms(comm::Comms *comms) override { dcomms_ = comms; }
  void setTracer(runtime::Tracer *tracer) override { tracer_ = tracer; }
  std::string prepare(const plan::Plan *plan) override;
  void initialize(uint64_t seed) override { host_.initialize(seed); }
  void run(const std::string &name) override;
  void setMicroBatch(int64_t micro) override { micro_ = micro; }
  void finishSends() override;
  const std::vector<View> &inputs(const std::string &program) const override {
    return host_.inputs(program);
  }
  const std::vector<View> &outputs(const std::string &program) const override {
    return host_.outputs(program);
  }
  const View &buffer(uint32_t index) const override {
    return host_.buffer(index);
  }
  void zeroRole(plan::Role role) override;
  bool finiteRole(plan::Role role) override;
  void pullState() override { copyState(true); }
  void pushState() override { copyState(false); }
  uint64_t arenaBytes() const override { return plan_->arena_bytes(); }
  uint64_t heldBytes() const override {
    return arenaBytes() + besideArenaBytes(true);
  }
  std::string profileReport() const override {
    return runtime::opSecondsTable(
        opSeconds_, "GPU time by op (FORGE_PROFILE, CUDA events)");
  }
  bool profiling() const override { return profile_; }
  std::string notes() const override;

private:
  struct Step {
    std::string what; ///< "program P step S (op)" for messages
    Fn launch;
    /// A communicating collective: `launch` runs on the communication
    /// thread once the compute stream has reached `ready`.
    bool async = false;
    cudaEvent_t ready = nullptr;
    /// [profiling] and FORGE_PROFILE: the plan op, its category, a dense
    /// matmul's FLOPs and where it comes from.
    std::string op;
    runtime::TraceKind kind = runtime::TraceKind::Compute;
    double flops = 0;
    std::string detail;
  };
  struct Program {
    std::string name;
    std::vector<uint32_t> uploads, downloads; ///< buffer indices
    std::vector<Step> steps;
    /// planCommWaits: the collective ticket each step waits for (0: none).
    std::vector<uint64_t> waitFor;
  };
  /// One step being bound.
  struct Bind {
    const plan::Step *step;
    int index;
    std::vector<uint32_t> ops, res;
    const plan::Attr *attr(const char *name) const {
      if (step->attrs())
        for (const plan::Attr *a : *step->attrs())
          if (a->name() && a->name()->str() == name)
            return a;
      return nullptr;
    }
    int64_t i(const char *name, int64_t dflt = 0) const {
      const plan::Attr *a = attr(name);
      return a ? a->i() : dflt;
    }
    double f(const char *name, double dflt = 0) const {
      const plan::Attr *a = attr(name);
      return a ? a->f() : dflt;
    }
    std::string s(const char *name) const {
      const plan::Attr *a = attr(name);
      return a && a->s() ? a->s()->str() : "";
    }
    bool has(const char *name) const { return attr(name) != nullptr; }
  };

  std::string bind(const std::string &op, Bind &b, Fn &fn);
  std::string bindLinear(const std::string &op, Bind &b, Fn &fn);
  /// The linear's matmul on fp8 tensor cores when both operands are fp8
  /// values (fp8Sources_) and the device and shape allow it: true with `fn`
  /// set; false, with fp8Emulated_ counting it and fp8Why_ saying why, when
  /// the operands are fp8 values but the matmul cannot use fp8 kernels.
  bool bindFp8Linear(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
                     uint32_t a, uint32_t bb, uint32_t c,
                     const std::string &what, Fn &fn);
  /// `async`: the collective runs on the communication thread and stream
  /// (its staging kernels included); otherwise on the compute stream.
  std::string bindCollective(const std::string &op, Bind &b, Fn &fn,
                             bool async);
  std::string bindMore(const std::string &op, Bind &b, Fn &fn);
  /// An f32 view of buffer i: the buffer itself, or a scratch copy that
  /// `widen` fills (f32 work on bf16/f16 storage).
  Tensor f32Of(uint32_t i) {
    Tensor x = t(i);
    return x.dt == Dt::f32 ? x : Tensor{scratch(v(i).numel() * 4), Dt::f32};
  }
  void copyState(bool toHost);
  void check(const std::string &what, cudaError_t e) const;
  /// Pipeline parallelism: the channels of every dist.send / dist.recv of
  /// the plan, opened on all ranks before binding.
  std::string openChannels(const plan::Plan *plan);
  std::string bindPointToPoint(const std::string &op, Bind &b, Fn &fn);

  Tensor t(uint32_t i) const {
    return {dArena_ + plan_->buffers()->Get(i)->offset(),
            dtOf(plan_->buffers()->Get(i)->dtype())};
  }
  template <typename T> T *ptr(uint32_t i) const {
    return reinterpret_cast<T *>(dArena_ + plan_->buffers()->Get(i)->offset());
  }
  const View &v(uint32_t i) const { return host_.buffer(i); }
  uint64_t bytes(uint32_t i) const { return plan_->buffers()->Get(i)->bytes(); }
  /// Device scratch owned by the executor (freed with it).
  void *scratch(size_t bytes);

  int device_;
  cpu::Executor host_;
  runtime::Tracer *tracer_ = nullptr;
  comm::Comms *dcomms_ = nullptr;
  const plan::Plan *plan_ = nullptr;
  char *dArena_ = nullptr;
  cudaStream_t stream_ = nullptr;
  /// The communication stream: the staging kernels and copies of the
  /// collectives that overlap compute (NCCL runs on its communicator's own
  /// stream after them).
  cudaStream_t commStream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr; ///< run-time-shaped matmuls (Blas.h)
  void *workspace_ = nullptr;
  ErrorSlot *dError_ = nullptr;
  int *dFlag_ = nullptr;
  std::vector<void *> scratch_;
  size_t scratchBytes_ = 0; ///< all of scratch_, for notes()
  std::vector<std::unique_ptr<Gemm>> gemms_;
  std::vector<Program> programs_;
  /// Compute capability (major * 10 + minor): fp8 tensor cores from 89.
  int sm_ = 0;
  /// fp8 matmuls (mixed_precision = "fp8"). Within the program being
  /// bound, the buffers that hold fp8 values: forge.fp8_cast's results and
  /// fp8 all_gathers', with the amax their scale came from. A linear whose
  /// two operands are both runs on fp8 tensor cores, from the codes
  /// re-encoded with that scale (exact: see fp8EncodeMatrix).
  struct Fp8Source {
    const float *amax;
    bool e4m3;
  };
  std::unordered_map<uint32_t, Fp8Source> fp8Sources_;
  /// The two operands' codes, shared by every fp8 matmul (they run in
  /// order on the compute stream); allocated after binding, at the largest
  /// size a matmul needs, so the steps read the pointers when they run.
  uint8_t *fp8Operands_[2] = {nullptr, nullptr};
  size_t fp8OperandBytes_[2] = {0, 0};
  int fp8TensorCore_ = 0, fp8Emulated_ = 0;
  std::string fp8Why_;
  /// Pipeline parallelism. NCCL's send returns only once the peer has
  /// received, and one communicator's point-to-point calls match in issue
  /// order, from one thread. So, as the CPU backend's thread per peer,
  /// every direction of every pipeline edge (a plan tag to or from a peer)
  /// has a communicator of its own (Comms::openChannels): a send stages a
  /// copy of its bytes and hands it to the channel's thread, and the stage
  /// goes on; a receive waits on the compute thread. Each message starts
  /// with a header (micro-batch, tag) that the receiver checks, so that a
  /// schedule whose two ends disagree fails with a message, not wrong
  /// numbers.
  struct Channel {
    std::unique_ptr<comm::Communicator> comm;
    /// Sends: the thread that waits out each send, in plan order.
    std::unique_ptr<cpu::CommQueue> queue;
    /// Receives: the message lands here, then the compute stream copies
    /// the payload into the plan's buffer; `copied` marks that copy, which
    /// the next receive waits for before reusing the landing buffer.
    void *landing = nullptr;
    size_t bytes = 0; ///< the largest payload
    cudaEvent_t copied = nullptr;
  };
  /// (mesh dim, peer, plan tag, sending) -> its channel.
  std::map<std::tuple<std::string, int64_t, int64_t, bool>, Channel> channels_;
  /// A send's staged copy (header and payload), reused once sent.
  struct SendCopy {
    char *p = nullptr;
    size_t bytes = 0;
    cudaEvent_t staged = nullptr;
    bool streamOrdered = false; // from cudaMallocAsync (freed the same way)
  };
  SendCopy takeSendCopy(size_t bytes, cudaStream_t s);
  /// Device memory held beside the arena: scratch, workspaces, receive
  /// buffers and (with `withSendCopies`) the pipeline's send copies.
  size_t besideArenaBytes(bool withSendCopies) const;
  void giveSendCopy(const SendCopy &c);
  mutable std::mutex sendCopiesMu_;
  std::vector<SendCopy> freeSendCopies_, allSendCopies_;
  /// The micro-batch of the running program (setMicroBatch).
  int64_t micro_ = 0;
  /// Timing: FORGE_PROFILE (seconds per op) and [profiling] (the tracer's
  /// window). Compute-stream steps are timed by CUDA events around their
  /// work, so a span is the GPU's time, not the host's enqueueing; the
  /// collectives on the communication thread and the pipeline sends, which
  /// the host waits out, by the host clock.
  bool profile_ = false;
  mutable std::mutex profileMu_; ///< opSeconds_: compute and comm threads
  std::map<std::string, double> opSeconds_;
  std::vector<cudaEvent_t> timing_; ///< reused by every timed run
  size_t nextTiming_ = 0;
  cudaEvent_t timingEvent();
  void addOpSeconds(const std::string &op, double seconds) {
    std::lock_guard<std::mutex> lock(profileMu_);
    opSeconds_[op] += seconds;
  }
  /// The communication thread (the CPU backend's CommQueue): issues the
  /// collectives in plan order, the same on every rank, as NCCL requires.
  /// Last, so that it is destroyed (joined) first.
  cpu::CommQueue comm_;
};

Executor::~Executor() {
  try {
    comm_.drain();
  } catch (...) {
    // A failed collective was reported where it was waited for.
  }
  // The send threads end (each finishing or failing its sends) before the
  // staged copies and the communicators go.
  for (auto &[key, ch] : channels_)
    ch.queue.reset();
  if (stream_)
    cudaStreamSynchronize(stream_);
  for (auto &[key, ch] : channels_) {
    if (ch.landing)
      cudaFree(ch.landing);
    if (ch.copied)
      cudaEventDestroy(ch.copied);
  }
  channels_.clear();
  for (SendCopy &c : allSendCopies_) {
    if (c.streamOrdered)
      cudaFreeAsync(c.p, stream_);
    else
      cudaFree(c.p);
    cudaEventDestroy(c.staged);
  }
  for (cudaEvent_t e : timing_)
    cudaEventDestroy(e);
  if (stream_)
    cudaStreamSynchronize(stream_);
  if (commStream_)
    cudaStreamSynchronize(commStream_);
  for (Program &p : programs_)
    for (Step &s : p.steps)
      if (s.ready)
        cudaEventDestroy(s.ready);
  for (void *p : scratch_)
    cudaFree(p);
  if (dArena_)
    cudaFree(dArena_);
  gemms_.clear();
  if (lt_)
    cublasLtDestroy(lt_);
  if (blas_)
    cublasDestroy(blas_);
  if (commStream_)
    cudaStreamDestroy(commStream_);
  if (stream_)
    cudaStreamDestroy(stream_);
}

void *Executor::scratch(size_t n) {
  void *p = nullptr;
  cudaError_t e = cudaMalloc(&p, std::max<size_t>(n, 16));
  if (e != cudaSuccess)
    throw std::runtime_error("cannot allocate " + std::to_string(n) +
                             " bytes of device scratch (" + cudaWhy(e) + ")");
  scratch_.push_back(p);
  scratchBytes_ += std::max<size_t>(n, 16);
  return p;
}

std::string Executor::open() {
  std::string why;
  const int n = deviceCount(&why);
  if (n == 0)
    return "no usable CUDA device (" + (why.empty() ? "none found" : why) + ")";
  if (device_ >= n)
    return "local rank " + std::to_string(device_) +
           " has no GPU: " + std::to_string(n) +
           " visible (one process per GPU)";
  if (cudaError_t e = cudaSetDevice(device_); e != cudaSuccess)
    return "cudaSetDevice(" + std::to_string(device_) + "): " + cudaWhy(e);
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device_);
  sm_ = major * 10 + minor;
  if (cudaError_t e =
          cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
      e != cudaSuccess)
    return "cudaStreamCreate: " + cudaWhy(e);
  if (cudaError_t e =
          cudaStreamCreateWithFlags(&commStream_, cudaStreamNonBlocking);
      e != cudaSuccess)
    return "cudaStreamCreate: " + cudaWhy(e);
  if (cublasStatus_t st = cublasLtCreate(&lt_); st != CUBLAS_STATUS_SUCCESS)
    return std::string("cublasLtCreate: ") + statusName(st);
  if (cublasStatus_t st = cublasCreate(&blas_); st != CUBLAS_STATUS_SUCCESS)
    return std::string("cublasCreate: ") + statusName(st);
  cublasSetStream(blas_, stream_);
  // f32 means f32: no TF32 behind the caller's back.
  cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH);
  try {
    workspace_ = scratch(kGemmWorkspace);
    dError_ = static_cast<ErrorSlot *>(scratch(sizeof(ErrorSlot)));
    dFlag_ = static_cast<int *>(scratch(sizeof(int)));
  } catch (const std::exception &e) {
    return e.what();
  }
  // Everything goes through the one (non-blocking) stream: work on the
  // legacy default stream would not be ordered with it.
  if (cudaError_t e = cudaMemsetAsync(dError_, 0, sizeof(ErrorSlot), stream_);
      e != cudaSuccess)
    return "cudaMemsetAsync: " + cudaWhy(e);
  return "";
}

void Executor::check(const std::string &what, cudaError_t e) const {
  if (e != cudaSuccess)
    throw std::runtime_error("cuda:" + std::to_string(device_) + ": " + what +
                             ": " + cudaWhy(e));
}

std::string Executor::prepare(const plan::Plan *plan) {
  plan_ = plan;
  // FORGE_COMM_OVERLAP=0 keeps every collective on the compute stream, as
  // on the CPU backend.
  const char *ov = std::getenv("FORGE_COMM_OVERLAP");
  const bool overlap = !ov || std::string(ov) != "0";
  const char *prof = std::getenv("FORGE_PROFILE");
  profile_ = prof && *prof && std::string(prof) != "0";
  if (std::string e = host_.prepareLayout(plan); !e.empty())
    return e;
  if (cudaError_t e = cudaMalloc(reinterpret_cast<void **>(&dArena_),
                                 std::max<uint64_t>(plan->arena_bytes(), 256));
      e != cudaSuccess)
    return "cannot allocate the arena of " +
           std::to_string(plan->arena_bytes()) +
           " bytes on cuda:" + std::to_string(device_) + " (" + cudaWhy(e) +
           ")";
  if (cudaError_t e = cudaMemsetAsync(dArena_, 0, plan->arena_bytes(), stream_);
      e != cudaSuccess)
    return "cudaMemsetAsync: " + cudaWhy(e);
  if (std::string e = openChannels(plan); !e.empty())
    return e;
  for (const plan::Program *p : *plan->programs()) {
    Program prog;
    prog.name = p->name() ? p->name()->str() : "";
    fp8Sources_.clear();
    if (p->inputs())
      for (uint32_t i : *p->inputs())
        if (plan->buffers()->Get(i)->role() == plan::Role::input)
          prog.uploads.push_back(i);
    if (p->outputs())
      prog.downloads.assign(p->outputs()->begin(), p->outputs()->end());
    if (p->steps())
      for (size_t s = 0; s < p->steps()->size(); ++s) {
        const plan::Step *st = p->steps()->Get(s);
        const std::string op = st->op()->str();
        Step step;
        step.what = "program " + prog.name + " step " + std::to_string(s) +
                    " (" + op + ")";
        Bind b{st, static_cast<int>(s), {}, {}};
        if (st->operands())
          b.ops.assign(st->operands()->begin(), st->operands()->end());
        if (st->results())
          b.res.assign(st->results()->begin(), st->results()->end());
        step.op = op;
        step.kind = runtime::traceKindOfOp(op);
        step.detail = prog.name + " step " + std::to_string(s) + ": " +
                      (st->loc() ? st->loc()->str() : op);
        if ((op == "forge.linear" || op == "forge.linear_grad_input" ||
             op == "forge.linear_grad_weight") &&
            b.ops.size() == 2 && b.res.size() == 1) {
          // A dense linear's 2 m n k FLOPs, for the summary's matmul rate:
          // x[rows, k] w[n, k]; the VJPs read dy[rows, n] with w or x.
          const View &w =
              op == "forge.linear_grad_weight" ? v(b.res[0]) : v(b.ops[1]);
          if (w.shape.size() == 2 && w.dim(0) > 0 && w.dim(1) > 0) {
            const double n = static_cast<double>(w.dim(0)),
                         k = static_cast<double>(w.dim(1));
            step.flops = 2.0 * static_cast<double>(v(b.ops[0]).numel()) /
                         (op == "forge.linear" ? k : n) * n * k;
          }
        }
        // A step that writes a buffer ends its being an fp8 cast's value
        // (the cast and the fp8 gather register theirs as they bind).
        for (uint32_t r : b.res)
          fp8Sources_.erase(r);
        const bool collective = op.rfind("dist.", 0) == 0;
        // Collectives that communicate overlap compute; the local ones
        // (copy, slice) are compute-stream copies.
        const bool p2p = op == "dist.send" || op == "dist.recv";
        step.async = overlap && collective && !p2p && op != "dist.copy" &&
                     op != "dist.slice";
        std::string e;
        try {
          e = p2p          ? bindPointToPoint(op, b, step.launch)
              : collective ? bindCollective(op, b, step.launch, step.async)
                           : bind(op, b, step.launch);
        } catch (const std::exception &ex) {
          e = ex.what();
        }
        if (!e.empty())
          return step.what + ": " + e;
        if (step.async) {
          if (cudaError_t ce =
                  cudaEventCreateWithFlags(&step.ready, cudaEventDisableTiming);
              ce != cudaSuccess)
            return step.what + ": cudaEventCreate: " + cudaWhy(ce);
          // On the communication thread: the current device is per
          // thread; the stream waits for the compute stream's point of
          // issue, and the ticket is done only when the stream is.
          step.launch = [dev = device_, cs = commStream_, ready = step.ready,
                         what = step.what, inner = std::move(step.launch)] {
            auto ok = [&](const char *doing, cudaError_t ce) {
              if (ce != cudaSuccess)
                throw std::runtime_error(what + ": " + doing + ": " +
                                         cudaWhy(ce));
            };
            ok("cudaSetDevice", cudaSetDevice(dev));
            ok("waiting for the compute stream",
               cudaStreamWaitEvent(cs, ready));
            try {
              inner();
            } catch (const cpu::CollectiveError &) {
              throw; // names the rank, the collective and its reason
            } catch (const std::exception &e) {
              throw std::runtime_error(what + ": " + e.what());
            }
            ok("launching", cudaGetLastError());
            ok("finishing the collective", cudaStreamSynchronize(cs));
          };
          if (tracer_ || profile_)
            // The host waits out the collective on this thread: its span.
            step.launch = [this, op = step.op, detail = step.detail,
                           inner = std::move(step.launch)] {
              const bool traced = tracer_ && tracer_->active();
              if (!traced && !profile_) {
                inner();
                return;
              }
              const auto t0 = std::chrono::steady_clock::now();
              const double u0 = traced ? tracer_->nowUs() : 0;
              inner();
              if (profile_)
                addOpSeconds(op, std::chrono::duration<double>(
                                     std::chrono::steady_clock::now() - t0)
                                     .count());
              if (traced)
                tracer_->record(op, runtime::TraceKind::Communication,
                                "collectives", u0, tracer_->nowUs(), detail);
            };
        }
        prog.steps.push_back(std::move(step));
      }
    std::vector<bool> async;
    for (const Step &s : prog.steps)
      async.push_back(s.async);
    prog.waitFor = cpu::planCommWaits(plan, p, async);
    programs_.push_back(std::move(prog));
  }
  try {
    for (int i = 0; i < 2; ++i)
      if (fp8OperandBytes_[i])
        fp8Operands_[i] = static_cast<uint8_t *>(scratch(fp8OperandBytes_[i]));
  } catch (const std::exception &e) {
    return std::string("fp8 matmul operands: ") + e.what();
  }
  return "";
}

size_t Executor::besideArenaBytes(bool withSendCopies) const {
  size_t n = scratchBytes_;
  for (const auto &[key, ch] : channels_)
    if (ch.landing)
      n += ch.bytes + kMessageHeader;
  if (withSendCopies) {
    std::lock_guard<std::mutex> lock(sendCopiesMu_);
    for (const SendCopy &c : allSendCopies_)
      n += c.bytes;
  }
  return n;
}

std::string Executor::notes() const {
  // The plan's arena is the device memory the plan accounts for; say what
  // the backend holds beside it.
  const size_t beside = besideArenaBytes(false);
  char line[256];
  std::snprintf(
      line, sizeof(line),
      "cuda:%d: %.1f MiB of device memory beside the arena: cuBLASLt's "
      "workspace, kernels' and collectives' scratch%s (pipeline sends add "
      "a copy of each message in flight)",
      device_, static_cast<double>(beside) / (1 << 20),
      beside > scratchBytes_ ? ", pipeline receive buffers" : "");
  std::string out = line;
  if (fp8TensorCore_ + fp8Emulated_ == 0)
    return out;
  char mib[64];
  std::snprintf(mib, sizeof(mib), "%.1f MiB",
                static_cast<double>(fp8OperandBytes_[0] + fp8OperandBytes_[1]) /
                    (1 << 20));
  out += "\nfp8 matmuls: " + std::to_string(fp8TensorCore_) + " of " +
         std::to_string(fp8TensorCore_ + fp8Emulated_) +
         " on fp8 tensor cores (cuBLASLt, " + mib +
         " of operand codes, in the figure above)";
  if (fp8Emulated_)
    out += "; " + std::to_string(fp8Emulated_) +
           " multiply the fp8 values in bf16/f32 instead (" + fp8Why_ + ")";
  return out;
}

std::string Executor::bindLinear(const std::string &op, Bind &b, Fn &fn) {
  // linear: y[M, N] = x[M, K] w[N, K]^T; grad_input: dx = dy w;
  // grad_weight: dw[N, K] = dy^T x.
  const uint32_t a = b.ops[0], bb = b.ops[1], c = b.res[0];
  const View &w = op == "forge.linear_grad_weight" ? v(c) : v(bb);
  if (w.shape.size() != 2)
    return "the weight must be [out, in]";
  const int64_t outF = w.dim(0), inF = w.dim(1);
  bool transA = false, transB = false;
  int64_t m, n, k;
  if (op == "forge.linear") {
    if (v(a).numel() % inF || v(c).numel() != v(a).numel() / inF * outF)
      return "input, [out, in] weight and result disagree";
    m = v(a).numel() / inF, n = outF, k = inF, transB = true;
  } else if (op == "forge.linear_grad_input") {
    if (v(a).numel() % outF || v(c).numel() != v(a).numel() / outF * inF)
      return "dy, [out, in] weight and result disagree";
    m = v(a).numel() / outF, n = inF, k = outF;
  } else {
    const int64_t rows = v(a).numel() / outF;
    if (v(a).numel() % outF || v(bb).numel() != rows * inF)
      return "dy, input and [out, in] result disagree";
    m = outF, n = inF, k = rows, transA = true;
  }
  if (bindFp8Linear(transA, transB, m, n, k, a, bb, c, op, fn))
    return "";
  Dt da = t(a).dt, db = t(bb).dt, dc = t(c).dt;
  // cuBLASLt multiplies equal operand types into that type or f32; any
  // other mix computes in f32 from converted copies.
  const bool direct = da == db && Gemm::supported(da, dc);
  const Dt ab = direct ? da : Dt::f32, cd = direct ? dc : Dt::f32;
  const int64_t na = v(a).numel(), nb = v(bb).numel(), nc = v(c).numel();
  Tensor ta = t(a), tb = t(bb), tc = t(c);
  Tensor ca = ta, cb = tb, cc = tc;
  if (!direct) {
    if (da != Dt::f32)
      ca = {scratch(na * 4), Dt::f32};
    if (db != Dt::f32)
      cb = {scratch(nb * 4), Dt::f32};
    if (dc != Dt::f32)
      cc = {scratch(nc * 4), Dt::f32};
  }
  auto gemm = std::make_unique<Gemm>();
  if (std::string e =
          gemm->init(lt_, transA, transB, m, n, k, ab, cd, kGemmWorkspace,
                     commonAlignment({ca.p, cb.p, cc.p}));
      !e.empty())
    return e;
  const Gemm *g = gemm.get();
  gemms_.push_back(std::move(gemm));
  void *ws = workspace_;
  cudaStream_t s = stream_;
  std::string what = op;
  fn = [=] {
    if (ca.p != ta.p)
      convert(ta, ca, na, s);
    if (cb.p != tb.p)
      convert(tb, cb, nb, s);
    if (cublasStatus_t st = g->run(ca.p, cb.p, cc.p, ws, kGemmWorkspace, s);
        st != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error(what +
                               ": cublasLtMatmul failed: " + statusName(st));
    if (cc.p != tc.p)
      convert(cc, tc, nc, s);
  };
  return "";
}

bool Executor::bindFp8Linear(bool transA, bool transB, int64_t m, int64_t n,
                             int64_t k, uint32_t a, uint32_t bb, uint32_t c,
                             const std::string &what, Fn &fn) {
  const auto ia = fp8Sources_.find(a), ib = fp8Sources_.find(bb);
  if (ia == fp8Sources_.end() || ib == fp8Sources_.end())
    return false; // not an fp8 matmul
  auto emulated = [&](const std::string &why) {
    ++fp8Emulated_;
    if (fp8Why_.empty())
      fp8Why_ = why;
    return false;
  };
  const char *env = std::getenv("FORGE_FP8_MATMULS");
  if (env && std::string(env) == "0")
    return emulated("FORGE_FP8_MATMULS=0");
  if (sm_ < 89)
    return emulated("sm_" + std::to_string(sm_) +
                    " has no fp8 tensor cores; they start at sm_89");
  // Re-encoding is exact from bf16 or f32 storage (fp8EncodeMatrix); f16's
  // narrower range could have flushed small values of code / scale.
  if (t(a).dt == Dt::f16 || t(bb).dt == Dt::f16)
    return emulated("the fp8 values are stored in f16");
  const Fp8Source sa = ia->second, sb = ib->second;
  // Gemm::initFp8 takes A[m, k] and B[n, k]; the plan's A is [k, m] when
  // transA, its B [k, n] unless transB: those are encoded transposed.
  const int64_t rowsA = transA ? k : m, colsA = transA ? m : k;
  const int64_t rowsB = transB ? n : k, colsB = transB ? k : n;
  auto *dequant = static_cast<float *>(scratch(2 * sizeof(float)));
  auto gemm = std::make_unique<Gemm>();
  // The codes live in cudaMalloc'd buffers (256-byte aligned); the
  // result in the arena.
  if (std::string e =
          gemm->initFp8(lt_, m, n, k, sa.e4m3, sb.e4m3, t(c).dt, dequant,
                        dequant + 1, kGemmWorkspace, commonAlignment({t(c).p}));
      !e.empty())
    return emulated(e);
  const Gemm *g = gemm.get();
  gemms_.push_back(std::move(gemm));
  fp8OperandBytes_[0] = std::max<size_t>(fp8OperandBytes_[0], m * k);
  fp8OperandBytes_[1] = std::max<size_t>(fp8OperandBytes_[1], n * k);
  ++fp8TensorCore_;
  Tensor ta = t(a), tb = t(bb), tc = t(c);
  uint8_t *const *codes = fp8Operands_; // allocated when binding ends
  void *ws = workspace_;
  cudaStream_t s = stream_;
  fn = [=] {
    fp8EncodeMatrix(ta, rowsA, colsA, transA, sa.e4m3, sa.amax, codes[0],
                    dequant, s);
    fp8EncodeMatrix(tb, rowsB, colsB, !transB, sb.e4m3, sb.amax, codes[1],
                    dequant + 1, s);
    if (cublasStatus_t st =
            g->run(codes[0], codes[1], tc.p, ws, kGemmWorkspace, s);
        st != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error(
          what + " (fp8): cublasLtMatmul failed: " + statusName(st));
  };
  return true;
}

std::string Executor::openChannels(const plan::Plan *plan) {
  std::vector<comm::ChannelKey> keys;
  std::vector<std::tuple<std::string, int64_t, int64_t, bool>> ids;
  std::vector<size_t> sizes;
  for (const plan::Program *p : *plan->programs()) {
    if (!p->steps())
      continue;
    for (const plan::Step *st : *p->steps()) {
      const std::string op = st->op()->str();
      const bool sending = op == "dist.send";
      if (!sending && op != "dist.recv")
        continue;
      Bind b{st, 0, {}, {}};
      if (!dcomms_)
        return "pipeline stages need forge-run to join their ranks";
      const std::string dim = b.s("group");
      comm::Communicator *c = dcomms_->group(dim);
      if (!c)
        return "no communicator for mesh dim '" + dim + "'";
      const int64_t peer = b.i("peer"), tag = b.i("tag");
      if (peer < 0 || peer >= c->size() || peer == c->rank() || tag < 0)
        return op + " to or from group rank " + std::to_string(peer) +
               " (tag " + std::to_string(tag) + ") in group '" + dim + "' of " +
               std::to_string(c->size()) + " ranks";
      const auto *list = sending ? st->operands() : st->results();
      if (!list || list->size() == 0 || !st->results() ||
          st->results()->size() == 0)
        return op + " without its " + (sending ? "operand" : "result");
      const uint32_t buf = list->Get(0);
      const size_t len = plan->buffers()->Get(buf)->bytes();
      auto id = std::make_tuple(dim, peer, tag, sending);
      auto at = std::find(ids.begin(), ids.end(), id);
      if (at != ids.end()) {
        sizes[at - ids.begin()] = std::max(sizes[at - ids.begin()], len);
        continue;
      }
      ids.push_back(id);
      sizes.push_back(len);
      comm::ChannelKey k;
      k.dim = dim;
      k.src = sending ? c->rank() : static_cast<int>(peer);
      k.dst = sending ? static_cast<int>(peer) : c->rank();
      k.tag = static_cast<uint32_t>(tag);
      keys.push_back(k);
    }
  }
  if (keys.empty())
    return "";
  std::vector<std::unique_ptr<comm::Communicator>> comms;
  if (std::string e = dcomms_->openChannels(keys, comms); !e.empty())
    return "rank " + std::to_string(dcomms_->world().rank()) +
           ": the pipeline's NCCL channels: " + e;
  for (size_t i = 0; i < ids.size(); ++i) {
    Channel &ch = channels_[ids[i]];
    ch.comm = std::move(comms[i]);
    ch.bytes = sizes[i];
    if (std::get<3>(ids[i])) {
      ch.queue = std::make_unique<cpu::CommQueue>();
      continue;
    }
    if (cudaError_t e = cudaMalloc(&ch.landing, ch.bytes + kMessageHeader);
        e != cudaSuccess)
      return "cannot allocate " + std::to_string(ch.bytes) +
             " bytes for a pipeline receive (" + cudaWhy(e) + ")";
    if (cudaError_t e =
            cudaEventCreateWithFlags(&ch.copied, cudaEventDisableTiming);
        e != cudaSuccess)
      return "cudaEventCreate: " + cudaWhy(e);
  }
  return "";
}

Executor::SendCopy Executor::takeSendCopy(size_t bytes, cudaStream_t s) {
  {
    std::lock_guard<std::mutex> lock(sendCopiesMu_);
    for (size_t i = 0; i < freeSendCopies_.size(); ++i)
      if (freeSendCopies_[i].bytes >= bytes) {
        SendCopy c = freeSendCopies_[i];
        freeSendCopies_.erase(freeSendCopies_.begin() + i);
        return c;
      }
  }
  // At most a schedule's in-flight sends exist at once (a stage's warm-up
  // forwards), so the pool stays small; it grows only here.
  // Stream-ordered, because a plain cudaMalloc may wait for the device to
  // go idle: for an NCCL send or receive that waits on a peer, which may in
  // turn wait on this rank's compute thread, stuck here. cudaMalloc only
  // where the device has no memory pools.
  SendCopy c;
  c.bytes = bytes;
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void **>(&c.p), bytes, s);
  c.streamOrdered = e == cudaSuccess;
  if (e == cudaErrorNotSupported) {
    cudaGetLastError();
    e = cudaMalloc(reinterpret_cast<void **>(&c.p), bytes);
  }
  check("allocating a pipeline send's copy", e);
  check("cudaEventCreate",
        cudaEventCreateWithFlags(&c.staged, cudaEventDisableTiming));
  std::lock_guard<std::mutex> lock(sendCopiesMu_);
  allSendCopies_.push_back(c);
  return c;
}

void Executor::giveSendCopy(const SendCopy &c) {
  std::lock_guard<std::mutex> lock(sendCopiesMu_);
  freeSendCopies_.push_back(c);
}

std::string Executor::bindPointToPoint(const std::string &op, Bind &b, Fn &fn) {
  const bool sending = op == "dist.send";
  const int64_t peer = b.i("peer"), tag = b.i("tag");
  auto it = channels_.find(std::make_tuple(b.s("group"), peer, tag, sending));
  if (it == channels_.end())
    return "no channel for this step (tag " + std::to_string(tag) + ")";
  Channel *ch = &it->second;
  const std::string why = b.step->loc() ? b.step->loc()->str() : op;
  const std::string rank = "rank " + std::to_string(dcomms_->world().rank());
  const int64_t *micro = &micro_;
  cudaStream_t s = stream_;
  const int dev = device_;
  if (sending) {
    const uint32_t x = b.ops[0], y = b.res[0];
    const size_t len = bytes(x), tokenBytes = bytes(y);
    const char *src = ptr<char>(x);
    void *token = ptr<void>(y);
    fn = [=, this] {
      // The plan may overwrite the sent bytes right after this step: the
      // message is a copy, staged on the compute stream.
      const SendCopy c = takeSendCopy(len + kMessageHeader, s);
      writeHeader(c.p, static_cast<uint64_t>(*micro),
                  static_cast<uint64_t>(tag), s);
      cudaMemcpyAsync(c.p + kMessageHeader, src, len, cudaMemcpyDeviceToDevice,
                      s);
      check("staging a pipeline send", cudaEventRecord(c.staged, s));
      // The send's result is a token (as on the CPU backend).
      cudaMemsetAsync(token, 0, tokenBytes, s);
      ch->queue->push([=, this] {
        cudaSetDevice(dev);
        if (cudaError_t e = cudaEventSynchronize(c.staged); e != cudaSuccess)
          throw cpu::CollectiveError(rank + ": send for " + why + ": " +
                                     cudaWhy(e));
        const bool traced = tracer_ && tracer_->active();
        const double u0 = traced ? tracer_->nowUs() : 0;
        std::string e = ch->comm->send(c.p, len + kMessageHeader, 1,
                                       static_cast<uint32_t>(tag), why);
        if (traced)
          tracer_->record("dist.send", runtime::TraceKind::Communication,
                          "pipeline sends", u0, tracer_->nowUs(), why);
        giveSendCopy(c);
        if (!e.empty())
          throw cpu::CollectiveError(rank + ": " + e);
      });
    };
    return "";
  }
  const uint32_t y = b.res[0];
  const size_t len = bytes(y);
  char *dst = ptr<char>(y);
  fn = [=, this] {
    // The landing buffer is free once the last message's copy is done.
    if (cudaError_t e = cudaEventSynchronize(ch->copied); e != cudaSuccess)
      throw cpu::CollectiveError(rank + ": recv for " + why + ": " +
                                 cudaWhy(e));
    if (std::string e = ch->comm->recv(ch->landing, len + kMessageHeader, 0,
                                       static_cast<uint32_t>(tag), why);
        !e.empty())
      throw cpu::CollectiveError(rank + ": " + e);
    uint64_t header[2] = {0, 0};
    if (cudaError_t e = cudaMemcpy(header, ch->landing, sizeof(header),
                                   cudaMemcpyDeviceToHost);
        e != cudaSuccess)
      throw cpu::CollectiveError(rank + ": recv for " + why + ": " +
                                 cudaWhy(e));
    if (header[0] != static_cast<uint64_t>(*micro) ||
        header[1] != static_cast<uint64_t>(tag))
      throw cpu::CollectiveError(
          rank + ": recv for " + why + ": expected micro-batch " +
          std::to_string(*micro) + " tag " + std::to_string(tag) +
          " from group rank " + std::to_string(peer) + ", got micro-batch " +
          std::to_string(header[0]) + " tag " + std::to_string(header[1]) +
          " (the two stages' schedules disagree)");
    cudaMemcpyAsync(dst, static_cast<char *>(ch->landing) + kMessageHeader, len,
                    cudaMemcpyDeviceToDevice, s);
    check("after a pipeline receive", cudaEventRecord(ch->copied, s));
  };
  return "";
}

void Executor::finishSends() {
  const bool traced = tracer_ && tracer_->active();
  const double u0 = traced ? tracer_->nowUs() : 0;
  for (auto &[key, ch] : channels_)
    if (ch.queue)
      ch.queue->drain();
  if (traced && !channels_.empty())
    tracer_->record("wait for the pipeline sends", runtime::TraceKind::Wait,
                    "compute", u0, tracer_->nowUs());
}

std::string Executor::bindCollective(const std::string &op, Bind &b, Fn &fn,
                                     bool async) {
  if (!dcomms_)
    return "a collective in a plan run without communicators (a multi-rank "
           "plan needs forge-run to join its ranks)";
  const std::string group = b.s("group");
  comm::Communicator *c = dcomms_->group(group);
  if (!c)
    return "no communicator for mesh dim '" + group + "'";
  if (c->size() != b.i("group_size"))
    return "group '" + group + "' has " + std::to_string(c->size()) +
           " ranks, the plan expects " + std::to_string(b.i("group_size"));
  cudaStream_t s = async ? commStream_ : stream_;
  const uint32_t x = b.ops.empty() ? 0 : b.ops[0], y = b.res[0];
  if (op == "dist.copy") {
    // Megatron's f forward: an identity (its VJP all-reduces).
    void *dst = ptr<char>(y), *src = ptr<char>(x);
    const size_t len = bytes(x);
    fn = [=] {
      if (dst != src)
        cudaMemcpyAsync(dst, src, len, cudaMemcpyDeviceToDevice, s);
    };
    return "";
  }
  const std::string why = b.step->loc() ? b.step->loc()->str() : op;
  const int worldRank = dcomms_->world().rank();
  // NCCL runs on the communicator's stream once `s` (the stream of the
  // staging work; for an overlapped collective it has waited for the
  // compute stream) has produced its input; the communicator returns when
  // the collective is done.
  auto call = [worldRank, s, op, why](const std::function<std::string()> &f) {
    if (cudaError_t e = cudaStreamSynchronize(s); e != cudaSuccess)
      throw std::runtime_error(
          "rank " + std::to_string(worldRank) + ": " + op + " for " + why +
          ": the work before it failed: " + cudaGetErrorString(e));
    if (std::string e = f(); !e.empty())
      throw cpu::CollectiveError("rank " + std::to_string(worldRank) + ": " +
                                 e);
  };
  const std::string reduce = b.s("reduce");
  const comm::ReduceOp rop = reduce == "avg"   ? comm::ReduceOp::Avg
                             : reduce == "max" ? comm::ReduceOp::Max
                                               : comm::ReduceOp::Sum;
  const int64_t n = c->size();
  // Along dim d a block (`small`) is `outer` runs of `rows` rows of `row`
  // elements; the whole tensor has `big` rows per run (an uneven split
  // pads the last blocks with zeros), as the CPU backend.
  struct Runs {
    int64_t outer = 1, row = 1, rows = 0, big = 0;
  };
  auto runs = [](const View &small, const View &bigV, int64_t dim) {
    Runs r;
    for (int64_t d = 0; d < static_cast<int64_t>(small.shape.size()); ++d) {
      if (d < dim)
        r.outer *= small.shape[d];
      else if (d > dim)
        r.row *= small.shape[d];
    }
    r.rows = small.shape[dim];
    r.big = bigV.shape[dim];
    return r;
  };
  const int64_t dim = b.i("dim");
  if (op == "dist.all_gather" || op == "dist.reduce_scatter" ||
      op == "dist.slice") {
    const View &small = op == "dist.all_gather" ? v(x) : v(y);
    const View &whole = op == "dist.all_gather" ? v(y) : v(x);
    if (dim < 0 || dim >= static_cast<int64_t>(small.shape.size()) ||
        small.shape.size() != whole.shape.size())
      return "block and tensor ranks disagree";
  }
  if (op == "dist.all_gather" && !b.s("fp8").empty()) {
    // forge.fp8_cast of the gathered tensor moving one byte per element:
    // the group's amax, each shard encoded, the bytes gathered, decoded
    // into the layout (bit-identical to gathering, then casting).
    const bool e4m3 = b.s("fp8") == "e4m3";
    if (!isFloat(v(x).dtype) || !isFloat(v(y).dtype))
      return "an fp8 all_gather needs floating tensors";
    const Runs g = runs(v(x), v(y), dim);
    const int64_t m = v(x).numel();
    const size_t es = runtime::dtypeSize(v(y).dtype);
    Tensor tx = t(x), ty = t(y);
    auto *amax = static_cast<float *>(scratch(4));
    auto *mine = static_cast<uint8_t *>(scratch(m));
    auto *all = static_cast<uint8_t *>(scratch(m * n));
    const bool direct = g.outer == 1 && g.big == n * g.rows;
    Tensor decoded = direct ? ty : Tensor{scratch(m * n * es), ty.dt};
    char *dst = ptr<char>(y);
    fp8Sources_[y] = {amax, e4m3};
    fn = [=] {
      fp8Amax(tx, m, amax, s);
      call([&] {
        return c->allReduce(amax, 1, comm::ReduceOp::Max,
                            why + " (the fp8 scale's amax)");
      });
      fp8Encode(tx, m, e4m3, amax, mine, s);
      call([&] { return c->allGather(mine, all, m, why); });
      fp8Decode(all, m * n, e4m3, amax, decoded, s);
      if (direct)
        return;
      const size_t row = static_cast<size_t>(g.row) * es;
      for (int64_t r = 0; r < n; ++r) {
        const int64_t valid = std::min(g.rows, g.big - r * g.rows);
        if (valid > 0)
          cudaMemcpy2DAsync(dst + r * g.rows * row, g.big * row,
                            static_cast<char *>(decoded.p) + r * m * es,
                            g.rows * row, valid * row, g.outer,
                            cudaMemcpyDeviceToDevice, s);
      }
    };
    return "";
  }
  if (op == "dist.expert_dispatch" || op == "dist.expert_combine") {
    // Rows of any dtype move as bytes. Rank r of the group holds experts
    // [r * El, (r+1) * El); a rank's rows are grouped by global expert, so
    // each destination's rows are one contiguous block. The counts (device
    // data) come to the host to size the all-to-all.
    const bool dispatch = op == "dist.expert_dispatch";
    const uint32_t sent = dispatch ? b.ops[0] : b.res[0];
    const uint32_t sizes = b.ops[dispatch ? 1 : 2];
    const uint32_t counts = dispatch ? b.res[2] : b.ops[1];
    const bool knownCounts = dispatch && b.ops.size() > 2;
    const uint32_t given = knownCounts ? b.ops[2] : 0;
    const int64_t E = v(sizes).numel(), El = E / n;
    if (E % n || v(counts).numel() != n * El)
      return "expert counts and group size disagree";
    const size_t row =
        static_cast<size_t>(v(sent).dim(1)) * runtime::dtypeSize(v(sent).dtype);
    const uint32_t groupedIdx = dispatch ? b.res[0] : b.ops[0];
    char *grouped = ptr<char>(groupedIdx);
    const size_t groupedBytes = bytes(groupedIdx);
    char *sentPtr = ptr<char>(sent);
    auto *staged = static_cast<char *>(scratch(n * v(sent).dim(0) * row));
    int64_t *dSizes = ptr<int64_t>(sizes), *dCounts = ptr<int64_t>(counts);
    int64_t *dGiven = knownCounts ? ptr<int64_t>(given) : nullptr;
    int64_t *dLocal = dispatch ? ptr<int64_t>(b.res[1]) : nullptr;
    auto host = std::make_shared<std::vector<int64_t>>(E + n * El + El);
    const int64_t nn = n;
    fn = [=, this] {
      int64_t *sz = host->data(), *cnt = sz + E, *local = cnt + nn * El;
      if (dispatch) {
        // counts[s][j]: rows rank s sends to local expert j.
        if (knownCounts)
          cudaMemcpyAsync(dCounts, dGiven, nn * El * 8,
                          cudaMemcpyDeviceToDevice, s);
        else
          call([&] { return c->allToAll(dSizes, dCounts, El * 8, why); });
      }
      check(why, cudaMemcpyAsync(sz, dSizes, E * 8, cudaMemcpyDeviceToHost, s));
      check(why, cudaMemcpyAsync(cnt, dCounts, nn * El * 8,
                                 cudaMemcpyDeviceToHost, s));
      check(why, cudaStreamSynchronize(s));
      std::vector<size_t> toRank(nn, 0), fromRank(nn, 0), at(nn, 0);
      for (int64_t r = 0; r < nn; ++r)
        for (int64_t j = 0; j < El; ++j)
          toRank[r] += static_cast<size_t>(sz[r * El + j]) * row;
      size_t off = 0;
      for (int64_t src = 0; src < nn; ++src) {
        for (int64_t j = 0; j < El; ++j)
          fromRank[src] += static_cast<size_t>(cnt[src * El + j]) * row;
        at[src] = off;
        off += fromRank[src];
      }
      // The staged side in source order (source s, then local expert j);
      // the grouped side by local expert, then source.
      auto move = [&](bool toGrouped) {
        size_t g = 0;
        for (int64_t j = 0; j < El; ++j)
          for (int64_t src = 0; src < nn; ++src) {
            const size_t len = static_cast<size_t>(cnt[src * El + j]) * row;
            if (len)
              cudaMemcpyAsync(toGrouped ? grouped + g : staged + at[src],
                              toGrouped ? staged + at[src] : grouped + g, len,
                              cudaMemcpyDeviceToDevice, s);
            at[src] += len;
            g += len;
          }
        return g;
      };
      if (dispatch) {
        for (int64_t j = 0; j < El; ++j) {
          local[j] = 0;
          for (int64_t src = 0; src < nn; ++src)
            local[j] += cnt[src * El + j];
        }
        cudaMemcpyAsync(dLocal, local, El * 8, cudaMemcpyHostToDevice, s);
        call([&] {
          return c->allToAllV(sentPtr, toRank, staged, fromRank, why);
        });
        const size_t used = move(/*toGrouped=*/true);
        cudaMemsetAsync(grouped + used, 0, groupedBytes - used, s);
      } else {
        move(/*toGrouped=*/false);
        call([&] {
          return c->allToAllV(staged, fromRank, sentPtr, toRank, why);
        });
      }
      // The host arrays are reused by the next call: finish with them.
      check(why, cudaStreamSynchronize(s));
    };
    return "";
  }
  if (op == "dist.all_gather") {
    const Runs g = runs(v(x), v(y), dim);
    const size_t es = runtime::dtypeSize(v(x).dtype);
    const size_t blockBytes = bytes(x);
    const bool direct = g.outer == 1 && g.big == n * g.rows;
    char *src = ptr<char>(x), *dst = ptr<char>(y);
    char *staged =
        direct ? nullptr : static_cast<char *>(scratch(blockBytes * n));
    fn = [=] {
      call([&] {
        return c->allGather(src, direct ? dst : staged, blockBytes, why);
      });
      if (direct)
        return;
      // Rank r's rows go to rows [r * rows, ...) of every run.
      const size_t row = static_cast<size_t>(g.row) * es;
      for (int64_t r = 0; r < n; ++r) {
        const int64_t valid = std::min(g.rows, g.big - r * g.rows);
        if (valid <= 0)
          continue;
        cudaMemcpy2DAsync(dst + r * g.rows * row, g.big * row,
                          staged + r * blockBytes, g.rows * row, valid * row,
                          g.outer, cudaMemcpyDeviceToDevice, s);
      }
    };
    return "";
  }
  if (op == "dist.slice") {
    const Runs g = runs(v(y), v(x), dim);
    const size_t es = runtime::dtypeSize(v(x).dtype);
    const int64_t r = c->rank();
    char *src = ptr<char>(x), *dst = ptr<char>(y);
    const size_t len = bytes(y);
    fn = [=] {
      const size_t row = static_cast<size_t>(g.row) * es;
      const int64_t valid =
          std::max<int64_t>(0, std::min(g.rows, g.big - r * g.rows));
      if (valid < g.rows)
        cudaMemsetAsync(dst, 0, len, s);
      if (valid > 0)
        cudaMemcpy2DAsync(dst, g.rows * row, src + r * g.rows * row,
                          g.big * row, valid * row, g.outer,
                          cudaMemcpyDeviceToDevice, s);
    };
    return "";
  }
  if (op == "dist.reduce_scatter" || op == "dist.all_reduce") {
    // Reductions in f32 (reference §3.6): other dtypes through f32 copies.
    if (!isFloat(v(x).dtype) || !isFloat(v(y).dtype))
      return "reductions need floating tensors";
    const bool scatter = op == "dist.reduce_scatter";
    const Runs g = scatter ? runs(v(y), v(x), dim) : Runs{};
    const bool direct = !scatter || (g.outer == 1 && g.big == n * g.rows);
    const int64_t nx = v(x).numel(), ny = v(y).numel();
    Tensor tx = t(x), ty = t(y);
    // The f32 input, laid out as the collective wants it (rank blocks
    // contiguous), and the f32 result.
    const bool stageIn = tx.dt != Dt::f32 || !direct;
    const int64_t inCount = scatter ? ny * n : nx;
    Tensor in = stageIn ? Tensor{scratch(inCount * 4), Dt::f32} : tx;
    Tensor wide = stageIn && !direct ? Tensor{scratch(nx * 4), Dt::f32} : in;
    Tensor out = ty.dt != Dt::f32 ? Tensor{scratch(ny * 4), Dt::f32} : ty;
    fn = [=] {
      if (stageIn) {
        convert(tx, wide, nx, s);
        if (!direct) {
          // Rank r's rows of every run, zero-padded to `rows`, as block r.
          cudaMemsetAsync(in.p, 0, inCount * 4, s);
          const size_t row = static_cast<size_t>(g.row) * 4;
          for (int64_t r = 0; r < n; ++r) {
            const int64_t valid = std::min(g.rows, g.big - r * g.rows);
            if (valid > 0)
              cudaMemcpy2DAsync(
                  static_cast<char *>(in.p) + r * ny * 4, g.rows * row,
                  static_cast<char *>(wide.p) + r * g.rows * row, g.big * row,
                  valid * row, g.outer, cudaMemcpyDeviceToDevice, s);
          }
        }
      }
      if (scatter) {
        call([&] {
          return c->reduceScatter(static_cast<const float *>(in.p),
                                  static_cast<float *>(out.p), ny, rop, why);
        });
      } else {
        if (out.p != in.p)
          cudaMemcpyAsync(out.p, in.p, ny * 4, cudaMemcpyDeviceToDevice, s);
        call([&] {
          return c->allReduce(static_cast<float *>(out.p), ny, rop, why);
        });
      }
      if (out.p != ty.p)
        convert(out, ty, ny, s);
    };
    return "";
  }
  return "no CUDA implementation of collective " + op;
}

std::string Executor::bind(const std::string &op, Bind &b, Fn &fn) {
  cudaStream_t s = stream_;
  ErrorSlot *err = dError_;
  const int index = b.index;
  auto n = [&](uint32_t i) { return v(i).numel(); };
  for (uint32_t r : b.res)
    if (!isFloat(v(r).dtype) && v(r).dtype != plan::DType::i64 &&
        op != "forge.set_param")
      return "unsupported result dtype";
  auto floats = [&](std::initializer_list<uint32_t> idx) {
    for (uint32_t i : idx)
      if (!isFloat(v(i).dtype))
        return false;
    return true;
  };

  static const std::map<std::string, Unary> unaries = {
      {"forge.silu", Unary::Silu},
      {"forge.gelu", Unary::Gelu},
      {"forge.relu", Unary::Relu},
      {"forge.tanh", Unary::Tanh}};
  if (auto it = unaries.find(op); it != unaries.end()) {
    Tensor x = t(b.ops[0]), y = t(b.res[0]);
    const int64_t len = n(b.res[0]);
    if (n(b.ops[0]) != len || !floats({b.ops[0]}))
      return "input and result sizes differ";
    Unary kind = it->second;
    fn = [=] { unary(kind, x, y, len, s); };
    return "";
  }
  if (op.size() > 5 && op.ends_with("_grad"))
    if (auto it = unaries.find(op.substr(0, op.size() - 5));
        it != unaries.end()) {
      Tensor x = t(b.ops[0]), dy = t(b.ops[1]), dx = t(b.res[0]);
      const int64_t len = n(b.ops[0]);
      if (n(b.ops[1]) != len || n(b.res[0]) != len)
        return "operand sizes differ";
      Unary kind = it->second;
      fn = [=] { unaryGrad(kind, x, dy, dx, len, s); };
      return "";
    }
  if (op == "forge.add" || op == "forge.mul") {
    Tensor x = t(b.ops[0]), y = t(b.ops[1]), z = t(b.res[0]);
    const int64_t len = n(b.res[0]);
    if (n(b.ops[0]) != len || n(b.ops[1]) != len)
      return "operand sizes differ";
    const bool mul = op == "forge.mul";
    fn = [=] { binary(mul, x, y, z, len, s); };
    return "";
  }
  if (op == "forge.scale") {
    Tensor x = t(b.ops[0]), y = t(b.res[0]);
    const int64_t len = n(b.res[0]);
    if (n(b.ops[0]) != len)
      return "input and result sizes differ";
    const float f = static_cast<float>(b.f("factor"));
    fn = [=] { scale(x, f, y, len, s); };
    return "";
  }
  if (op == "forge.fill") {
    Tensor y = t(b.res[0]);
    const int64_t len = n(b.res[0]);
    const float value = static_cast<float>(b.f("value"));
    if (!floats({b.res[0]}))
      return "fill writes floating buffers only";
    fn = [=] { fill(y, value, len, s); };
    return "";
  }
  if (op == "forge.set_param" || op == "forge.fp8_grad_cast") {
    const uint32_t x = b.ops[0], p = b.res[0];
    if (v(x).dtype != v(p).dtype || n(x) != n(p))
      return "value and parameter differ in type or size";
    void *dst = ptr<char>(p), *src = ptr<char>(x);
    const size_t len =
        static_cast<size_t>(n(x)) * runtime::dtypeSize(v(x).dtype);
    fn = [=] {
      if (dst != src)
        cudaMemcpyAsync(dst, src, len, cudaMemcpyDeviceToDevice, s);
    };
    return "";
  }
  if (op == "forge.stack" || op == "forge.unstack") {
    const bool stack = op == "forge.stack";
    const std::vector<uint32_t> &parts = stack ? b.ops : b.res;
    const uint32_t whole = stack ? b.res[0] : b.ops[0];
    std::vector<std::pair<Tensor, Tensor>> copies; // (from, to)
    const int64_t each = n(parts[0]);
    for (size_t i = 0; i < parts.size(); ++i) {
      if (n(parts[i]) * static_cast<int64_t>(parts.size()) != n(whole))
        return "parts and the stacked tensor differ in size";
      Tensor w = t(whole);
      w.p = static_cast<char *>(w.p) +
            i * each * runtime::dtypeSize(v(whole).dtype);
      copies.push_back(stack ? std::make_pair(t(parts[i]), w)
                             : std::make_pair(w, t(parts[i])));
    }
    fn = [=] {
      for (const auto &[from, to] : copies)
        convert(from, to, each, s);
    };
    return "";
  }
  if (op == "forge.embedding") {
    const uint32_t tab = b.ops[0], ids = b.ops[1], y = b.res[0];
    if (v(tab).shape.size() != 2 || v(ids).dtype != plan::DType::i64 ||
        n(ids) * v(tab).dim(1) != n(y))
      return "needs a [vocab, dim] table, i64 ids and ids x dim results";
    Tensor tt = t(tab), ty = t(y);
    const int64_t *id = ptr<int64_t>(ids);
    const int64_t count = n(ids), d = v(tab).dim(1), vocab = v(tab).dim(0);
    fn = [=] { embedding(tt, id, count, d, vocab, ty, err, index, s); };
    return "";
  }
  if (op == "forge.embedding_grad") {
    const uint32_t dout = b.ops[0], ids = b.ops[1], dt = b.res[0];
    if (v(dt).shape.size() != 2 || v(ids).dtype != plan::DType::i64 ||
        n(ids) * v(dt).dim(1) != n(dout))
      return "needs i64 ids and a [vocab, dim] result";
    Tensor g = t(dout), out = t(dt);
    const int64_t *id = ptr<int64_t>(ids);
    const int64_t count = n(ids), d = v(dt).dim(1), vocab = v(dt).dim(0);
    const size_t sortBytes = embeddingGradScratchBytes(count, vocab);
    void *sorted = scratch(sortBytes);
    fn = [=] {
      embeddingGrad(g, id, count, d, vocab, out, sorted, sortBytes, s);
    };
    return "";
  }
  if (op == "forge.linear" || op == "forge.linear_grad_input" ||
      op == "forge.linear_grad_weight")
    return bindLinear(op, b, fn);
  if (op == "forge.rmsnorm" || op == "forge.rmsnorm_grad" ||
      op == "forge.layernorm" || op == "forge.layernorm_grad") {
    const uint32_t x = b.ops[0], w = b.ops[1];
    if (v(x).shape.empty() || n(w) != v(x).dim(-1) || n(b.res[0]) != n(x))
      return "weight must match the input's last dimension";
    const int64_t d = v(x).dim(-1), rows = n(x) / d;
    const float eps = static_cast<float>(b.f("eps"));
    Tensor tx = t(x), tw = t(w);
    if (op == "forge.rmsnorm") {
      Tensor y = t(b.res[0]);
      fn = [=] { rmsnorm(tx, tw, y, rows, d, eps, s); };
    } else if (op == "forge.layernorm") {
      Tensor bias = t(b.ops[2]), y = t(b.res[0]);
      fn = [=] { layernorm(tx, tw, bias, y, rows, d, eps, s); };
    } else if (op == "forge.rmsnorm_grad") {
      Tensor dy = t(b.ops[2]), dx = t(b.res[0]), dw = t(b.res[1]);
      float *rowScratch = static_cast<float *>(scratch(rows * 4));
      fn = [=] {
        rmsnormGrad(tx, tw, dy, dx, dw, rows, d, eps, rowScratch, s);
      };
    } else {
      Tensor dy = t(b.ops[2]), dx = t(b.res[0]), dw = t(b.res[1]),
             db = t(b.res[2]);
      float *rowScratch = static_cast<float *>(scratch(rows * 8));
      fn = [=] {
        layernormGrad(tx, tw, dy, dx, dw, db, rows, d, eps, rowScratch, s);
      };
    }
    return "";
  }
  if (op == "forge.rope" || op == "forge.rope_grad") {
    const uint32_t x = b.ops[0], y = b.res[0];
    const View &xv = v(x);
    if (xv.shape.size() != 4 || xv.dim(3) % 2 || n(y) != n(x))
      return "needs [batch, seq, heads, even head_dim]";
    Tensor tx = t(x), ty = t(y);
    const double theta = b.f("theta");
    const bool inverse = op == "forge.rope_grad";
    const int64_t B = xv.dim(0), S = xv.dim(1), H = xv.dim(2), HD = xv.dim(3);
    fn = [=] { rope(tx, ty, B, S, H, HD, theta, inverse, s); };
    return "";
  }
  if (op == "forge.attention" || op == "forge.attention_grad") {
    const bool fwd = op == "forge.attention";
    const size_t base = fwd ? 3 : 5;
    if (b.ops.size() != base && b.ops.size() != base + 1)
      return fwd ? "expects q, k, v and optional doc_ids"
                 : "expects q, k, v, out, dout and optional doc_ids";
    const View &q = v(b.ops[0]), &k = v(b.ops[1]), &vv = v(b.ops[2]);
    if (q.shape.size() != 4 || k.shape.size() != 4 || k.shape != vv.shape ||
        q.dim(0) != k.dim(0) || q.dim(1) != k.dim(1) || q.dim(3) != k.dim(3) ||
        k.dim(2) <= 0 || q.dim(2) % k.dim(2))
      return "q, k, v (and doc_ids) shapes disagree";
    if (q.dim(3) > kMaxAttentionHeadDim)
      return "head_dim " + std::to_string(q.dim(3)) +
             " is above the CUDA attention kernel's " +
             std::to_string(kMaxAttentionHeadDim);
    const int32_t *doc = nullptr;
    if (b.ops.size() == base + 1) {
      const uint32_t d = b.ops[base];
      if (v(d).dtype != plan::DType::i32 || n(d) != q.dim(0) * q.dim(1))
        return "doc_ids must be i32 [batch, seq]";
      doc = ptr<int32_t>(d);
    }
    AttentionShape sh{q.dim(0),
                      q.dim(1),
                      q.dim(2),
                      k.dim(2),
                      q.dim(3),
                      b.has("causal"),
                      static_cast<float>(b.f("scale"))};
    Tensor tq = t(b.ops[0]), tk = t(b.ops[1]), tv = t(b.ops[2]);
    const int64_t rows = sh.b * sh.h * sh.s;
    float *lse = static_cast<float *>(scratch(rows * 4));
    if (fwd) {
      Tensor o = t(b.res[0]);
      fn = [=] { attention(tq, tk, tv, doc, sh, o, lse, s); };
    } else {
      // The log-sum-exp is recomputed by a forward pass into a scratch
      // output (the plan does not carry it between programs), in q's
      // dtype: the same kernel as the forward's (tensor cores when it
      // used them), so the same log-sum-exp.
      Tensor o = t(b.ops[3]), dout = t(b.ops[4]);
      Tensor dq = t(b.res[0]), dk = t(b.res[1]), dv = t(b.res[2]);
      Tensor oScratch{scratch(bytes(b.ops[0])), tq.dt};
      float *rowScratch = static_cast<float *>(scratch(rows * 4));
      fn = [=] {
        attention(tq, tk, tv, doc, sh, oScratch, lse, s);
        attentionGrad(tq, tk, tv, doc, sh, o, lse, dout, dq, dk, dv, rowScratch,
                      s);
      };
    }
    return "";
  }
  if (op == "forge.cross_entropy" || op == "forge.cross_entropy_grad") {
    const uint32_t l = b.ops[0], lab = b.ops[1];
    if (v(lab).dtype != plan::DType::i64 || v(l).shape.size() < 2 ||
        n(lab) * v(l).dim(-1) != n(l))
      return "labels must be i64 with the logits' rows";
    const int64_t c = v(l).dim(-1), rows = n(l) / c;
    const int64_t ignore = b.i("ignore_index", -100);
    Tensor tl = t(l);
    const int64_t *labels = ptr<int64_t>(lab);
    float *rowScratch = static_cast<float *>(scratch(rows * 4));
    if (op == "forge.cross_entropy") {
      Tensor y = t(b.res[0]);
      fn = [=] {
        crossEntropy(tl, labels, rows, c, ignore, y, rowScratch, err, index, s);
      };
    } else {
      Tensor dl = t(b.ops[2]), dx = t(b.res[0]);
      fn = [=] {
        crossEntropyGrad(tl, labels, rows, c, ignore, dl, dx, rowScratch, s);
      };
    }
    return "";
  }
  if (op == "forge.global_norm") {
    std::vector<std::pair<Tensor, int64_t>> gs;
    for (uint32_t g : b.ops) {
      if (!isFloat(v(g).dtype))
        return "gradients must be floating";
      gs.push_back({t(g), n(g)});
    }
    double *partial =
        static_cast<double *>(scratch(gs.size() * kNormPartials * 8));
    Tensor y = t(b.res[0]);
    const bool squared = b.has("squared");
    fn = [=] {
      // Partials in gradient order, then one sum: the same every run.
      int64_t used = 0;
      for (const auto &[g, len] : gs)
        used += sumSquaresPartials(g, len, partial + used, s);
      finishNorm(partial, used, squared, y, s);
    };
    return "";
  }
  if (op == "forge.sqrt") {
    Tensor x = t(b.ops[0]), y = t(b.res[0]);
    fn = [=] { sqrtScalar(x, y, s); };
    return "";
  }
  if (op == "forge.clip_coefficient") {
    Tensor x = t(b.ops[0]), y = t(b.res[0]);
    const double maxNorm = b.f("max_norm");
    fn = [=] { clipCoefficient(x, maxNorm, y, s); };
    return "";
  }
  if (op == "forge.lr_factor") {
    static const std::map<std::string, int> kinds = {
        {"none", 0},   {"constant", 1}, {"cosine", 2},
        {"linear", 3}, {"wsd", 4},      {"rex", 5}};
    static const std::map<std::string, int> decays = {
        {"cosine", 0}, {"linear", 1}, {"sqrt", 2}, {"", 0}};
    auto kind = kinds.find(b.s("schedule"));
    auto decay = decays.find(b.s("wsd_decay"));
    if (kind == kinds.end() || decay == decays.end())
      return "unknown schedule '" + b.s("schedule") + "'";
    if (v(b.ops[0]).dtype != plan::DType::i64)
      return "the step must be i64";
    Schedule sched{kind->second,        decay->second,   b.i("warmup"),
                   b.i("decay"),        b.i("stable"),   b.i("max_steps"),
                   b.f("min_lr_ratio"), b.f("rex_alpha")};
    const int64_t *step = ptr<int64_t>(b.ops[0]);
    Tensor y = t(b.res[0]);
    fn = [=] { lrFactor(sched, step, y, s); };
    return "";
  }
  if (op == "forge.adamw_update") {
    for (size_t i = 1; i < 4; ++i)
      if (n(b.ops[i]) != n(b.ops[0]))
        return "parameter, gradient and moments differ in size";
    if (v(b.ops[6]).dtype != plan::DType::i64)
      return "the step must be i64";
    Tensor p = t(b.ops[0]), g = t(b.ops[1]), m = t(b.ops[2]), vv = t(b.ops[3]),
           lr = t(b.ops[4]), clip = t(b.ops[5]);
    const int64_t *step = ptr<int64_t>(b.ops[6]);
    Tensor np = t(b.res[0]), nm = t(b.res[1]), nv = t(b.res[2]);
    const float b1 = static_cast<float>(b.f("beta1")),
                b2 = static_cast<float>(b.f("beta2")),
                eps = static_cast<float>(b.f("eps")),
                wd = static_cast<float>(b.f("weight_decay"));
    const int64_t len = n(b.ops[0]);
    fn = [=] {
      adamw(p, g, m, vv, len, lr, clip, step, b1, b2, eps, wd, np, nm, nv, s);
    };
    return "";
  }
  if (op == "forge.lion_update") {
    if (n(b.ops[1]) != n(b.ops[0]) || n(b.ops[2]) != n(b.ops[0]))
      return "parameter, gradient and moment differ in size";
    Tensor p = t(b.ops[0]), g = t(b.ops[1]), m = t(b.ops[2]), lr = t(b.ops[3]),
           clip = t(b.ops[4]);
    Tensor np = t(b.res[0]), nm = t(b.res[1]);
    const double b1 = b.f("beta1"), b2 = b.f("beta2"), wd = b.f("weight_decay");
    const int64_t len = n(b.ops[0]);
    fn = [=] { lion(p, g, m, len, lr, clip, b1, b2, wd, np, nm, s); };
    return "";
  }
  return bindMore(op, b, fn);
}

/// Losses beyond cross-entropy, fp8, Muon, schedule-free AdamW and the
/// mixture-of-experts ops.
std::string Executor::bindMore(const std::string &op, Bind &b, Fn &fn) {
  cudaStream_t s = stream_;
  ErrorSlot *err = dError_;
  const int index = b.index;
  auto n = [&](uint32_t i) { return v(i).numel(); };
  auto widen = [s](Tensor from, Tensor to, int64_t len) {
    if (from.p != to.p)
      convert(from, to, len, s);
  };
  if (op == "forge.z_loss" || op == "forge.z_loss_grad") {
    const uint32_t l = b.ops[0];
    if (v(l).shape.size() != 2)
      return "logits must be [rows, classes]";
    const int64_t rows = v(l).dim(0), c = v(l).dim(1);
    Tensor tl = t(l);
    float *lse = static_cast<float *>(scratch(rows * 4));
    if (op == "forge.z_loss") {
      Tensor y = t(b.res[0]);
      fn = [=] {
        rowLogSumExp(tl, rows, c, lse, s);
        zLoss(lse, rows, y, s);
      };
    } else {
      Tensor dl = t(b.ops[1]), dx = t(b.res[0]);
      fn = [=] {
        rowLogSumExp(tl, rows, c, lse, s);
        zLossGrad(tl, lse, rows, c, dl, dx, s);
      };
    }
    return "";
  }
  if (op == "forge.chunked_cross_entropy" ||
      op == "forge.chunked_cross_entropy_grad") {
    const uint32_t h = b.ops[0], w = b.ops[1], lab = b.ops[2];
    if (v(lab).dtype != plan::DType::i64 || v(w).shape.size() != 2 ||
        v(h).dim(-1) != v(w).dim(1) || n(lab) * v(w).dim(1) != n(h) ||
        b.i("chunk") <= 0)
      return "hidden, [vocab, dim] head and i64 labels disagree";
    const int64_t d = v(h).dim(-1), rows = n(h) / d, vocab = v(w).dim(0);
    const int64_t chunk = std::min(b.i("chunk"), std::max<int64_t>(rows, 1));
    const int64_t ignore = b.i("ignore_index", -100);
    const double zw = b.f("z_weight");
    Tensor th = t(h), tw = t(w), hf = f32Of(h), wf = f32Of(w);
    const int64_t nh = n(h), nw = n(w);
    const int64_t *labels = ptr<int64_t>(lab);
    ChunkedCeScratch sc{static_cast<float *>(scratch(chunk * vocab * 4)),
                        static_cast<float *>(scratch(chunk * 4)),
                        static_cast<float *>(scratch(rows * 4)),
                        static_cast<float *>(scratch(rows * 4)),
                        static_cast<float *>(scratch(4))};
    cublasHandle_t blas = blas_;
    const std::string what = op;
    if (op == "forge.chunked_cross_entropy") {
      Tensor y = t(b.res[0]);
      fn = [=] {
        widen(th, hf, nh);
        widen(tw, wf, nw);
        chunkedCrossEntropy(blas, static_cast<float *>(hf.p),
                            static_cast<float *>(wf.p), labels, rows, d, vocab,
                            chunk, ignore, zw, y, sc, err, index, s, what);
      };
    } else {
      Tensor dl = t(b.ops[3]), dh = t(b.res[0]), dw = t(b.res[1]);
      Tensor dhf = dh.dt == Dt::f32 ? dh : Tensor{scratch(nh * 4), Dt::f32};
      Tensor dwf = dw.dt == Dt::f32 ? dw : Tensor{scratch(nw * 4), Dt::f32};
      fn = [=] {
        widen(th, hf, nh);
        widen(tw, wf, nw);
        chunkedCrossEntropyGrad(blas, static_cast<float *>(hf.p),
                                static_cast<float *>(wf.p), labels, rows, d,
                                vocab, chunk, ignore, zw, dl,
                                static_cast<float *>(dhf.p),
                                static_cast<float *>(dwf.p), sc, s, what);
        widen(dhf, dh, nh);
        widen(dwf, dw, nw);
      };
    }
    return "";
  }
  if (op == "forge.fp8_cast") {
    const uint32_t x = b.ops[0], y = b.res[0];
    if (n(x) != n(y))
      return "input and result sizes differ";
    const bool e4m3 = b.s("format") == "e4m3";
    if (!e4m3 && b.s("format") != "e5m2")
      return "unknown fp8 format '" + b.s("format") + "'";
    Tensor tx = t(x), ty = t(y);
    const int64_t len = n(x);
    auto *amax = static_cast<float *>(scratch(4));
    fn = [=] { fp8Cast(tx, len, e4m3, ty, amax, s); };
    fp8Sources_[y] = {amax, e4m3};
    return "";
  }
  auto isState = [&](uint32_t i) {
    return v(i).dtype == plan::DType::f32 && n(i) == 4;
  };
  if (op == "forge.schedule_free_count") {
    if (!isState(b.ops[0]) || !isState(b.res[0]))
      return "the state must be f32 [4]";
    const float *st = ptr<float>(b.ops[0]);
    float *ns = ptr<float>(b.res[0]);
    Tensor lr = t(b.ops[1]);
    const double b1 = b.f("beta1");
    const int64_t warmup = b.i("warmup");
    fn = [=] { scheduleFreeCount(st, lr, b1, warmup, ns, s); };
    return "";
  }
  if (op == "forge.schedule_free_adamw_update") {
    for (size_t i = 1; i < 5; ++i)
      if (n(b.ops[i]) != n(b.ops[0]))
        return "parameter, gradient and state differ in size";
    if (!isState(b.ops[7]))
      return "the state must be f32 [4]";
    Tensor p = t(b.ops[0]), g = t(b.ops[1]), z = t(b.ops[2]), vv = t(b.ops[3]),
           x = t(b.ops[4]), lr = t(b.ops[5]), clip = t(b.ops[6]);
    const float *st = ptr<float>(b.ops[7]);
    Tensor np = t(b.res[0]), nz = t(b.res[1]), nv = t(b.res[2]),
           nx = t(b.res[3]);
    const double b1 = b.f("beta1"), b2 = b.f("beta2"), eps = b.f("eps"),
                 wd = b.f("weight_decay");
    const int64_t warmup = b.i("warmup"), len = n(b.ops[0]);
    fn = [=] {
      scheduleFreeUpdate(p, g, z, vv, x, len, lr, clip, st, b1, b2, eps, wd,
                         warmup, np, nz, nv, nx, s);
    };
    return "";
  }
  if (op == "forge.schedule_free_interpolate") {
    const uint32_t p = b.ops[0];
    if (n(b.ops[1]) != n(p) || n(b.ops[2]) != n(p) || n(b.res[0]) != n(p) ||
        !isState(b.ops[3]))
      return "parameter, z and x differ in size, or the state is not f32 [4]";
    Tensor tp = t(p), z = t(b.ops[1]), x = t(b.ops[2]), y = t(b.res[0]);
    const float *st = ptr<float>(b.ops[3]);
    const double w = b.f("weight");
    const int64_t len = n(p);
    fn = [=] { scheduleFreeInterpolate(tp, z, x, len, st, w, y, s); };
    return "";
  }
  if (op == "forge.muon_update") {
    const uint32_t p = b.ops[0];
    if (v(p).shape.size() < 2 || v(p).dim(0) <= 0 || n(b.ops[1]) != n(p) ||
        n(b.ops[2]) != n(p))
      return "needs a parameter of rank >= 2 and a gradient and momentum "
             "buffer of its size";
    // Flattened to [dim 0, the rest], as KempnerForge's view(m, -1).
    const int64_t m = v(p).dim(0), cols = n(p) / m, len = n(p);
    const float mu = static_cast<float>(b.f("momentum"));
    const double wd = b.f("weight_decay");
    const int64_t steps = b.i("ns_steps");
    Tensor tp = t(p), g = t(b.ops[1]), buf = t(b.ops[2]), lr = t(b.ops[3]),
           clip = t(b.ops[4]), np = t(b.res[0]), nb = t(b.res[1]);
    auto *x = static_cast<float *>(scratch(len * 4));
    auto *next = static_cast<float *>(scratch(len * 4));
    auto *aa = static_cast<float *>(scratch(m * m * 4));
    auto *bb = static_cast<float *>(scratch(m * m * 4));
    auto *partial = static_cast<double *>(scratch(kNormPartials * 8));
    const float scale = static_cast<float>(std::sqrt(
        std::max(1.0, static_cast<double>(m) / static_cast<double>(cols))));
    cublasHandle_t blas = blas_;
    const std::string what = op;
    fn = [=] {
      // The norm and Newton-Schulz take the unrounded f32 momentum (x),
      // not the buffer as stored (bf16 in a bf16 plan), as the CPU does.
      muonMomentum(buf, g, clip, len, mu, nb, x, s);
      const Tensor xf{x, Dt::f32};
      const int used = sumSquaresPartials(xf, len, partial, s);
      muonNormalize(xf, len, partial, used, x, s);
      newtonSchulz(blas, x, m, cols, steps, aa, bb, next, s, what);
      muonApply(tp, x, len, lr, wd, scale, np, s);
    };
    return "";
  }
  if (op == "forge.softmax_topk" || op == "forge.sigmoid_topk") {
    const uint32_t l = b.ops[0];
    const int64_t k = b.i("k");
    if (v(l).shape.size() != 2 || v(b.res[1]).dtype != plan::DType::i64 ||
        k < 1 || k > v(l).dim(1) || n(b.res[0]) != v(l).dim(0) * k)
      return "logits, k and results disagree";
    const int64_t tk = v(l).dim(0), e = v(l).dim(1);
    Tensor tl = t(l), w = t(b.res[0]), third = t(b.res[2]);
    int64_t *idx = ptr<int64_t>(b.res[1]);
    if (op == "forge.softmax_topk") {
      fn = [=] { softmaxTopK(tl, tk, e, k, w, idx, third, s); };
    } else {
      Tensor bias = t(b.ops[1]);
      fn = [=] { sigmoidTopK(tl, bias, tk, e, k, w, idx, third, s); };
    }
    return "";
  }
  if (op == "forge.softmax_topk_grad" || op == "forge.sigmoid_topk_grad") {
    const uint32_t p = b.ops[0], idx = b.ops[1];
    if (v(p).shape.size() != 2 || v(idx).dtype != plan::DType::i64 ||
        v(idx).shape.size() != 2)
      return "scores and i64 indices disagree";
    const int64_t tk = v(p).dim(0), e = v(p).dim(1), k = v(idx).dim(1);
    Tensor tp = t(p), dw = t(b.ops[2]), dsc = t(b.ops[3]), dl = t(b.res[0]);
    const int64_t *ip = ptr<int64_t>(idx);
    if (op == "forge.softmax_topk_grad") {
      fn = [=] { softmaxTopKGrad(tp, ip, tk, e, k, dw, dsc, dl, s); };
    } else {
      Tensor db = t(b.res[1]);
      auto *rowScratch = static_cast<float *>(scratch(tk * e * 4));
      fn = [=] {
        sigmoidTopKGrad(tp, ip, tk, e, k, dw, dsc, dl, db, rowScratch, s);
      };
    }
    return "";
  }
  if (op == "forge.moe_capacity" || op == "forge.moe_capacity_grad") {
    const uint32_t idx = b.ops[0];
    if (v(idx).dtype != plan::DType::i64 || v(idx).shape.size() != 2 ||
        n(b.ops[1]) != n(idx) || n(b.res[0]) != n(idx))
      return "indices, weights and result disagree";
    const int64_t tk = v(idx).dim(0), k = v(idx).dim(1), e = b.i("experts");
    const double factor = b.f("factor");
    const int64_t *ip = ptr<int64_t>(idx);
    Tensor in = t(b.ops[1]), out = t(b.res[0]);
    auto *used = static_cast<int64_t *>(scratch(k * e * 8));
    const bool grad = op == "forge.moe_capacity_grad";
    fn = [=] {
      if (grad)
        moeCapacityGrad(ip, tk, k, e, factor, in, out, used, s);
      else
        moeCapacity(ip, in, tk, k, e, factor, out, used, s);
    };
    return "";
  }
  if (op == "forge.moe_dispatch") {
    const uint32_t x = b.ops[0], idx = b.ops[1];
    const int64_t e = b.i("experts");
    if (v(x).shape.size() != 2 || v(idx).dtype != plan::DType::i64 ||
        v(idx).shape.size() != 2 || n(b.res[1]) != e || n(b.res[2]) != n(idx))
      return "tokens, indices and expert count disagree";
    if (e > kMaxExperts)
      return std::to_string(e) + " experts: the CUDA dispatch kernel takes " +
             std::to_string(kMaxExperts) + " at most";
    const int64_t tk = v(x).dim(0), d = v(x).dim(1), k = v(idx).dim(1);
    Tensor tx = t(x), rows = t(b.res[0]);
    const int64_t *ip = ptr<int64_t>(idx);
    int64_t *sizes = ptr<int64_t>(b.res[1]), *order = ptr<int64_t>(b.res[2]);
    const size_t rowBytes = bytes(b.res[0]);
    fn = [=] {
      // Rows past the routed copies (padding) stay zero, as on the CPU.
      cudaMemsetAsync(rows.p, 0, rowBytes, s);
      moeDispatch(tx, ip, tk, d, k, e, rows, sizes, order, s);
    };
    return "";
  }
  if (op == "forge.moe_dispatch_grad") {
    const uint32_t drows = b.ops[0], order = b.ops[1], dx = b.res[0];
    if (v(dx).shape.size() != 2 || v(drows).shape.size() != 2 ||
        v(dx).dim(0) == 0 || v(drows).dim(0) % v(dx).dim(0))
      return "row gradients and token gradients disagree";
    const int64_t tk = v(dx).dim(0), d = v(dx).dim(1), k = v(drows).dim(0) / tk;
    Tensor tdr = t(drows), tdx = t(dx);
    const int64_t *op_ = ptr<int64_t>(order);
    auto *inverse = static_cast<int64_t *>(scratch(tk * k * 8));
    fn = [=] { moeDispatchGrad(op_, tk, d, k, tdr, tdx, inverse, s); };
    return "";
  }
  if (op == "forge.moe_combine" || op == "forge.moe_combine_grad") {
    const uint32_t rows = b.ops[0], order = b.ops[1], w = b.ops[2],
                   sizes = b.ops[3];
    if (v(w).shape.size() != 2 || v(rows).shape.size() != 2)
      return "rows and weights disagree";
    const int64_t tk = v(w).dim(0), k = v(w).dim(1), e = n(sizes),
                  d = v(rows).dim(1);
    const bool gs = b.has("gradient_scale");
    Tensor tr = t(rows), tw = t(w);
    const int64_t *op_ = ptr<int64_t>(order), *sz = ptr<int64_t>(sizes);
    if (op == "forge.moe_combine") {
      Tensor y = t(b.res[0]);
      auto *inverse = static_cast<int64_t *>(scratch(tk * k * 8));
      fn = [=] { moeCombine(tr, op_, tw, sz, tk, d, k, e, gs, y, inverse, s); };
    } else {
      Tensor dy = t(b.ops[4]), drows = t(b.res[0]), dw = t(b.res[1]);
      const size_t rowBytes = bytes(b.res[0]);
      fn = [=] {
        cudaMemsetAsync(drows.p, 0, rowBytes, s);
        moeCombineGrad(tr, op_, tw, sz, tk, d, k, e, gs, dy, drows, dw, s);
      };
    }
    return "";
  }
  if (op == "forge.moe_aux_loss" || op == "forge.moe_aux_loss_grad") {
    const bool grad = op == "forge.moe_aux_loss_grad";
    const uint32_t idx = grad ? b.ops[0] : b.ops[1];
    const uint32_t probs = grad ? b.res[0] : b.ops[0];
    if (v(idx).dtype != plan::DType::i64 || v(idx).shape.size() != 2 ||
        v(probs).shape.size() != 2)
      return "probabilities and i64 indices disagree";
    const int64_t tk = v(probs).dim(0), e = v(probs).dim(1), k = v(idx).dim(1);
    const int64_t *ip = ptr<int64_t>(idx);
    auto *fraction = static_cast<float *>(scratch(e * 4));
    Tensor tp = t(probs);
    if (grad) {
      Tensor dl = t(b.ops[1]);
      fn = [=] { moeAuxLossGrad(ip, tk, e, k, dl, tp, fraction, s); };
    } else {
      Tensor y = t(b.res[0]);
      fn = [=] { moeAuxLoss(tp, ip, tk, e, k, y, fraction, s); };
    }
    return "";
  }
  if (op == "forge.grouped_linear" || op == "forge.grouped_linear_grad_input" ||
      op == "forge.grouped_linear_grad_weight") {
    // Expert e's rows are the sizes[e] after the previous experts'; one
    // matmul per expert once the sizes (device data) are read back.
    const uint32_t a = b.ops[0], wOrX = b.ops[1], sizes = b.ops[2],
                   out = b.res[0];
    const bool outIn = b.s("layout") != "in_out";
    const View &wv =
        op == "forge.grouped_linear_grad_weight" ? v(out) : v(wOrX);
    if (wv.shape.size() != 3 || v(sizes).dtype != plan::DType::i64 ||
        n(sizes) != wv.dim(0))
      return "expert weights [experts, ., .] and i64 sizes disagree";
    const int64_t e = wv.dim(0);
    // k: input features, nOut: output features.
    int64_t k, nOut;
    if (op == "forge.grouped_linear")
      k = v(a).dim(1), nOut = v(out).dim(1);
    else if (op == "forge.grouped_linear_grad_input")
      k = v(out).dim(1), nOut = v(a).dim(1);
    else
      k = v(wOrX).dim(1), nOut = v(a).dim(1);
    if (wv.dim(1) * wv.dim(2) != k * nOut)
      return "expert weight blocks are not [out, in] or [in, out]";
    Tensor ta = t(a), tb = t(wOrX), to = t(out);
    // Operands of one dtype multiply as they are (bf16 on tensor cores);
    // a mix computes in f32 from converted copies.
    const bool direct = ta.dt == tb.dt && (to.dt == ta.dt || to.dt == Dt::f32);
    Tensor af = direct ? ta : f32Of(a), bf = direct ? tb : f32Of(wOrX),
           of = direct || to.dt == Dt::f32
                    ? to
                    : Tensor{scratch(n(out) * 4), Dt::f32};
    const int64_t na = n(a), nb = n(wOrX), no = n(out);
    const int64_t *sz = ptr<int64_t>(sizes);
    auto keep = std::make_shared<std::vector<int64_t>>(e);
    const GroupedKind kind = op == "forge.grouped_linear" ? GroupedKind::Forward
                             : op == "forge.grouped_linear_grad_input"
                                 ? GroupedKind::GradInput
                                 : GroupedKind::GradWeight;
    cublasHandle_t blas = blas_;
    const std::string what = op;
    fn = [=, this] {
      widen(ta, af, na);
      widen(tb, bf, nb);
      check(
          what + ": reading the expert sizes",
          cudaMemcpyAsync(keep->data(), sz, e * 8, cudaMemcpyDeviceToHost, s));
      check(what, cudaStreamSynchronize(s));
      groupedLinear(blas, kind, outIn, *keep, k, nOut, af, bf, of, no, s, what);
      widen(of, to, no);
    };
    return "";
  }
  return "no CUDA kernel for this op yet; run the plan with --device cpu";
}

cudaEvent_t Executor::timingEvent() {
  if (nextTiming_ == timing_.size()) {
    cudaEvent_t e = nullptr;
    check("cudaEventCreate", cudaEventCreate(&e));
    timing_.push_back(e);
  }
  return timing_[nextTiming_++];
}

void Executor::run(const std::string &name) {
  for (Program &p : programs_) {
    if (p.name != name)
      continue;
    const bool traced = tracer_ && tracer_->active();
    const bool timed = traced || profile_;
    // A span of the compute stream, between two of its events.
    struct Span {
      const Step *step; ///< null: the host waiting for a collective
      cudaEvent_t from, to;
    };
    std::vector<Span> spans;
    cudaEvent_t anchor = nullptr;
    double anchorUs = 0;
    if (timed)
      nextTiming_ = 0;
    if (traced) {
      // The tracer's clock is the host's: the stream drains to an event
      // whose time is then "now", and every span is placed from it.
      anchor = timingEvent();
      check("timing " + name, cudaEventRecord(anchor, stream_));
      check("timing " + name, cudaEventSynchronize(anchor));
      anchorUs = tracer_->nowUs();
    }
    // While the compute thread waits for a collective the stream runs dry:
    // the events around the wait time how long it stood idle because of it.
    auto wait = [&](uint64_t ticket) {
      if (!traced) {
        comm_.waitFor(ticket);
        return;
      }
      cudaEvent_t from = timingEvent(), to = timingEvent();
      check("timing " + name, cudaEventRecord(from, stream_));
      comm_.waitFor(ticket);
      check("timing " + name, cudaEventRecord(to, stream_));
      spans.push_back({nullptr, from, to});
    };
    for (uint32_t i : p.uploads)
      check("uploading the inputs of " + name,
            cudaMemcpyAsync(ptr<char>(i), v(i).data, bytes(i),
                            cudaMemcpyHostToDevice, stream_));
    // Collectives go to the communication thread in plan order; a step
    // that touches the bytes of one in flight waits for it first
    // (planCommWaits), so the compute stream only runs ahead of the
    // collectives it does not depend on.
    const uint64_t base = comm_.issued();
    for (size_t i = 0; i < p.steps.size(); ++i) {
      const Step &st = p.steps[i];
      if (p.waitFor[i])
        wait(base + p.waitFor[i]);
      if (st.async) {
        check(st.what, cudaEventRecord(st.ready, stream_));
        comm_.push(st.launch);
        continue;
      }
      cudaEvent_t from = nullptr;
      if (timed) {
        from = timingEvent();
        check(st.what, cudaEventRecord(from, stream_));
      }
      try {
        st.launch();
      } catch (const cpu::CollectiveError &) {
        throw; // names the rank, the collective and its reason
      } catch (const std::exception &e) {
        // Kernels' and matmuls' own messages name the op, not which one.
        throw std::runtime_error(st.what + ": " + e.what());
      }
      // Launch errors (a bad configuration) surface here, with the step.
      check(st.what, cudaGetLastError());
      if (timed) {
        cudaEvent_t to = timingEvent();
        check(st.what, cudaEventRecord(to, stream_));
        spans.push_back({&st, from, to});
      }
    }
    // Nothing is in flight between programs.
    wait(comm_.issued());
    for (uint32_t i : p.downloads)
      check("downloading the outputs of " + name,
            cudaMemcpyAsync(v(i).data, ptr<char>(i), bytes(i),
                            cudaMemcpyDeviceToHost, stream_));
    ErrorSlot slot;
    check("reading the error slot",
          cudaMemcpyAsync(&slot, dError_, sizeof(slot), cudaMemcpyDeviceToHost,
                          stream_));
    check("running " + name, cudaStreamSynchronize(stream_));
    if (slot.kind != 0) {
      // Cleared, so that a caller that goes on is not told again.
      cudaMemsetAsync(dError_, 0, sizeof(ErrorSlot), stream_);
      cudaStreamSynchronize(stream_);
      const std::string what =
          slot.step >= 0 && slot.step < static_cast<long long>(p.steps.size())
              ? p.steps[slot.step].what
              : name;
      throw std::runtime_error(
          what + ": " +
          (slot.kind == kTokenOutOfRange ? "token id " : "label ") +
          std::to_string(slot.value) + " is outside [0, " +
          std::to_string(slot.bound) + ")" +
          (slot.kind == kLabelOutOfRange ? " and is not the ignore index"
                                         : ""));
    }
    double lastUs = anchorUs;
    for (const Span &sp : spans) {
      float ms = 0;
      check("timing " + name, cudaEventElapsedTime(&ms, sp.from, sp.to));
      if (profile_ && sp.step)
        addOpSeconds(sp.step->op, ms * 1e-3);
      if (!traced)
        continue;
      float fromMs = 0;
      check("timing " + name, cudaEventElapsedTime(&fromMs, anchor, sp.from));
      const double u0 = anchorUs + fromMs * 1e3, u1 = u0 + ms * 1e3;
      lastUs = std::max(lastUs, u1);
      if (sp.step)
        tracer_->record(sp.step->op, sp.step->kind, "compute", u0, u1,
                        sp.step->detail, sp.step->flops);
      else if (ms > 1e-3) // a wait that did not hold the stream up
        tracer_->record("wait for a collective", runtime::TraceKind::Wait,
                        "compute", u0, u1);
    }
    // The anchor's host time is a little late (the wake-up after its
    // sync), so the program's span covers its last op explicitly.
    if (traced)
      tracer_->record(p.name, runtime::TraceKind::Program, "compute", anchorUs,
                      std::max(lastUs, tracer_->nowUs()));
  }
}

void Executor::zeroRole(plan::Role role) {
  for (uint32_t i = 0; i < plan_->buffers()->size(); ++i)
    if (plan_->buffers()->Get(i)->role() == role)
      check("zeroing buffers",
            cudaMemsetAsync(ptr<char>(i), 0, bytes(i), stream_));
}

bool Executor::finiteRole(plan::Role role) {
  check("clearing the finite flag", cudaMemsetAsync(dFlag_, 0, 4, stream_));
  for (uint32_t i = 0; i < plan_->buffers()->size(); ++i)
    if (plan_->buffers()->Get(i)->role() == role && isFloat(v(i).dtype))
      checkFinite(t(i), v(i).numel(), dFlag_, stream_);
  int flag = 0;
  check("reading the finite flag",
        cudaMemcpyAsync(&flag, dFlag_, 4, cudaMemcpyDeviceToHost, stream_));
  check("checking gradients", cudaStreamSynchronize(stream_));
  return flag == 0;
}

void Executor::copyState(bool toHost) {
  for (uint32_t i = 0; i < plan_->buffers()->size(); ++i) {
    const plan::Role role = plan_->buffers()->Get(i)->role();
    if (role == plan::Role::activation || role == plan::Role::input)
      continue;
    check(toHost ? "copying the state to the host"
                 : "copying the state to the device",
          toHost ? cudaMemcpyAsync(v(i).data, ptr<char>(i), bytes(i),
                                   cudaMemcpyDeviceToHost, stream_)
                 : cudaMemcpyAsync(ptr<char>(i), v(i).data, bytes(i),
                                   cudaMemcpyHostToDevice, stream_));
  }
  check("copying the state", cudaStreamSynchronize(stream_));
}

} // namespace

std::unique_ptr<runtime::Backend> makeExecutor(int device, std::string &why) {
  auto e = std::make_unique<Executor>(device);
  why = e->open();
  if (!why.empty())
    return nullptr;
  return e;
}

} // namespace forge::cuda

//===- PlanWriter.cpp - Memory planning and plan.bin ----------------------===//

#include "compiler/PlanWriter.h"
#include "dialects/dist/IR/DistDialect.h"
#include "dialects/exec/IR/ExecOps.h"
#include "passes/PipelineSchedule.h"
#include "runtime/core/Plan.h"

#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdio>

using namespace mlir;

namespace forge::compiler {
namespace {

/// A plan buffer: a typed view at an arena offset.
struct BufferEntry {
  std::string name;
  plan::Role role;
  plan::DType dtype;
  std::vector<int64_t> shape;
  uint64_t offset;
  plan::Init init = plan::Init::none;
  double std = 0;
  std::vector<dist::Split> splits; ///< TP / FSDP splits and the full shape
  std::vector<int64_t> globalShape;
};

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<plan::Split>>>
splitsOf(flatbuffers::FlatBufferBuilder &fbb,
         const std::vector<dist::Split> &splits) {
  if (splits.empty())
    return 0;
  std::vector<flatbuffers::Offset<plan::Split>> out;
  for (const dist::Split &sp : splits)
    out.push_back(plan::CreateSplit(fbb, static_cast<int>(sp.dim),
                                    fbb.CreateString(sp.group), sp.size));
  return fbb.CreateVector(out);
}

/// The Hugging Face form of the model (Llama, or Mixtral for MoE), or why
/// there is none: the export must load in transformers and compute the same
/// function, so anything those classes lack is a reason.
flatbuffers::Offset<plan::HfModel> hfModel(flatbuffers::FlatBufferBuilder &fbb,
                                           const config::JobConfig &cfg) {
  const config::ModelConfig &m = cfg.model;
  std::string why;
  if (m.model_type != "transformer")
    why = "model_type '" + m.model_type + "'";
  else if (m.norm_type != "rmsnorm")
    why = "norm_type '" + m.norm_type + "' (Llama and Mixtral use RMSNorm)";
  else if (m.activation != "silu")
    why = "activation '" + m.activation + "' (Llama and Mixtral use SwiGLU)";
  else if (m.qk_norm)
    why = "qk_norm (Llama and Mixtral have no QK-norm)";
  else if (m.isMoe() && m.moe_frequency != 1)
    why = "moe_frequency " + std::to_string(m.moe_frequency) +
          " (Mixtral has an MoE MLP in every layer)";
  else if (m.isMoe() && m.moe_router != "softmax_topk")
    why = "moe_router '" + m.moe_router +
          "' (Mixtral's router is a softmax top-k)";
  else if (m.isMoe() && m.moe_shared_experts > 0)
    why = "moe_shared_experts (Mixtral has none)";
  else if (m.isMoe() && m.moe_packed_experts)
    why = "moe_packed_experts (export the per-expert layout)";
  else if (cfg.vlm)
    why = "a VLM";
  const bool moe = m.isMoe();
  auto str = [&](const char *s) { return fbb.CreateString(s); };
  return plan::CreateHfModel(
      fbb, str(moe ? "MixtralForCausalLM" : "LlamaForCausalLM"),
      str(moe ? "mixtral" : "llama"), fbb.CreateString(why), m.dim,
      moe ? m.expertFfnHiddenDim() : m.ffnHiddenDim(), m.n_layers, m.n_heads,
      m.kvHeads(), m.vocab_size, m.max_seq_len, m.rope_theta, m.norm_eps,
      m.tie_embeddings, moe ? m.num_experts : 0, moe ? m.moe_top_k : 0,
      moe ? m.moe_aux_loss_weight : 0.0,
      fbb.CreateString(cfg.checkpoint.export_dtype));
}

struct StepRec {
  std::string op;
  std::vector<unsigned> operands, results; // buffer indices
  DictionaryAttr attrs;
  Operation *source;
};

struct ProgramRec {
  std::string name;
  std::vector<unsigned> inputs, outputs;
  std::vector<StepRec> steps;
};

/// The plan's training settings.
flatbuffers::Offset<plan::Training>
trainingOf(flatbuffers::FlatBufferBuilder &fbb, const config::JobConfig &cfg,
           const RunSettings &run, const std::string &jobPath) {
  const config::TrainConfig &t = cfg.train;
  std::vector<flatbuffers::Offset<plan::DataSource>> sources;
  for (const DataSourceSpec &s : run.sources)
    sources.push_back(plan::CreateDataSource(
        fbb, fbb.CreateString(s.name), fbb.CreateString(s.path),
        fbb.CreateString(s.pattern), s.weight));
  std::vector<flatbuffers::Offset<plan::Phase>> phases;
  for (const PhaseSpec &ph : run.phases)
    phases.push_back(plan::CreatePhase(
        fbb, ph.startStep, fbb.CreateVector(ph.weights), ph.lrScale));
  return plan::CreateTraining(
      fbb, t.max_steps, t.grad_accum_steps, t.batch_size, t.seq_len,
      cfg.model.vocab_size, t.seed, t.effectiveDataSeed(),
      cfg.metrics.log_interval, fbb.CreateString(cfg.data.dataset_path),
      fbb.CreateString(cfg.data.file_pattern), fbb.CreateString(jobPath),
      fbb.CreateVector(sources), run.temperature, fbb.CreateVector(phases),
      run.pack, run.eosId, run.evalInterval, run.evalSteps,
      fbb.CreateString(run.evalPath), fbb.CreateString(run.evalPattern),
      fbb.CreateString(run.jsonlPath), fbb.CreateString(run.tensorboardDir),
      run.flopsPerToken, cfg.optimizer.lr, fbb.CreateString(cfg.optimizer.name),
      t.z_loss_weight, static_cast<double>(cfg.distributed.nccl_timeout_sec));
}

/// The plan's checkpoint and resilience settings.
flatbuffers::Offset<plan::Checkpoint>
checkpointOf(flatbuffers::FlatBufferBuilder &fbb,
             const config::JobConfig &cfg) {
  const config::CheckpointConfig &c = cfg.checkpoint;
  std::vector<flatbuffers::Offset<flatbuffers::String>> exclude;
  for (const std::string &e : c.exclude_from_loading)
    exclude.push_back(fbb.CreateString(e));
  return plan::CreateCheckpoint(
      fbb, fbb.CreateString(c.dir), c.interval, c.dyn_ckpt_window.has_value(),
      c.dyn_ckpt_window ? c.dyn_ckpt_window->start : 0,
      c.dyn_ckpt_window ? c.dyn_ckpt_window->stop : 0, c.keep_last_n,
      fbb.CreateString(c.load_path ? *c.load_path : std::string()),
      fbb.CreateVector(exclude), c.async_mode != "disabled",
      cfg.train.shutdown_timeout_sec, cfg.train.nccl_health_check_interval);
}

/// The plan's [profiling] window.
flatbuffers::Offset<plan::Profiling>
profilingOf(flatbuffers::FlatBufferBuilder &fbb, const config::JobConfig &cfg) {
  const config::ProfilingConfig &p = cfg.profiling;
  return plan::CreateProfiling(fbb, p.enable, p.start_step, p.end_step,
                               fbb.CreateString(p.trace_dir));
}

/// Serializes exec IR (after convert-forge-to-exec): its buffers in module
/// order, its programs' launches in program order.
class Writer {
public:
  Writer(ModuleOp module, std::string &error)
      : module_(module), error_(error) {}

  bool run(const config::JobConfig &cfg, const RunSettings &run,
           const std::string &jobPath, std::vector<uint8_t> &out,
           MemorySummary &mem);

private:
  bool fail(Operation *op, const std::string &msg) {
    std::string loc;
    llvm::raw_string_ostream os(loc);
    op->getLoc().print(os);
    error_ = os.str() + ": " + msg;
    return false;
  }

  bool dtypeOf(Type t, plan::DType &d) {
    if (t.isF32())
      d = plan::DType::f32;
    else if (t.isBF16())
      d = plan::DType::bf16;
    else if (t.isF16())
      d = plan::DType::f16;
    else if (t.isInteger(64))
      d = plan::DType::i64;
    else if (t.isInteger(32))
      d = plan::DType::i32;
    else
      return false;
    return true;
  }

  /// The plan index of the buffer `ref` names.
  bool indexOf(Operation *where, Attribute ref, unsigned &index) {
    auto symbol = cast<FlatSymbolRefAttr>(ref);
    auto it = bufferIndex_.find(symbol.getAttr());
    if (it == bufferIndex_.end())
      return fail(where, (Twine("'") + symbol.getValue() +
                          "' does not name an exec.buffer")
                             .str());
    index = it->second;
    return true;
  }

  bool indicesOf(Operation *where, ArrayAttr refs, std::vector<unsigned> &out) {
    for (Attribute ref : refs) {
      unsigned index = 0;
      if (!indexOf(where, ref, index))
        return false;
      out.push_back(index);
    }
    return true;
  }

  bool runStaged(const config::JobConfig &cfg, const RunSettings &run,
                 const std::string &jobPath, std::vector<uint8_t> &out,
                 MemorySummary &mem);
  bool collectBuffers(exec::ArenaOp arena, MemorySummary &mem);
  bool collectProgram(exec::ProgramOp program);

  ModuleOp module_;
  std::string &error_;
  std::vector<BufferEntry> buffers_;
  DenseMap<StringAttr, unsigned> bufferIndex_;
  std::vector<ProgramRec> programs_;
  dist::Mesh mesh_;
};

const char kNotExec[] = "run the pass pipeline (it ends with "
                        "convert-forge-to-exec) before writing a plan";

uint64_t alignUp(uint64_t v, uint64_t alignment) {
  return (v + alignment - 1) / alignment * alignment;
}

/// Every exec.buffer becomes a plan buffer, in module order. The memory
/// summary follows from them: bytes by role, and the activations' peak is
/// what the arena holds above the persistent buffers and inputs, which
/// forge-plan-memory places first.
// exec's roles are numbered as the plan's.
static_assert(static_cast<int>(exec::Role::activation) ==
                  static_cast<int>(plan::Role::activation) &&
              static_cast<int>(exec::Role::parameter) ==
                  static_cast<int>(plan::Role::parameter) &&
              static_cast<int>(exec::Role::gradient) ==
                  static_cast<int>(plan::Role::gradient) &&
              static_cast<int>(exec::Role::optimizer_state) ==
                  static_cast<int>(plan::Role::optimizer_state) &&
              static_cast<int>(exec::Role::state) ==
                  static_cast<int>(plan::Role::state) &&
              static_cast<int>(exec::Role::input) ==
                  static_cast<int>(plan::Role::input));

bool Writer::collectBuffers(exec::ArenaOp arena, MemorySummary &mem) {
  uint64_t persistentEnd = 0;
  for (auto b : module_.getOps<exec::BufferOp>()) {
    BufferEntry e;
    e.role = static_cast<plan::Role>(b.getRole());
    // Activations are anonymous in the plan: their symbols only connect
    // launches in the IR.
    if (b.getRole() != exec::Role::activation)
      e.name = b.getSymName().str();
    if (!dtypeOf(b.getDtype(), e.dtype))
      return fail(b, "buffer '" + b.getSymName().str() +
                         "' has a dtype the plan cannot carry");
    e.shape.assign(b.getShape().begin(), b.getShape().end());
    e.offset = static_cast<uint64_t>(b.getOffset());
    if (std::optional<exec::Init> init = b.getInit())
      e.init = *init == exec::Init::normal ? plan::Init::normal
               : *init == exec::Init::ones ? plan::Init::ones
                                           : plan::Init::zeros;
    e.std = b.getStd() ? b.getStd()->convertToDouble() : 0.0;
    if (b.getShardDims() && b.getShardGroups() && b.getGlobalShape()) {
      // Cutting the global shape split by split recovers the extent each
      // split cuts, which the plan records for the uneven (padded) ones.
      e.globalShape.assign(b.getGlobalShape()->begin(),
                           b.getGlobalShape()->end());
      std::vector<int64_t> extent = e.globalShape;
      for (auto [dim, group] :
           llvm::zip(*b.getShardDims(), b.getShardGroups()->getValue())) {
        std::string name = cast<StringAttr>(group).str();
        int64_t n = std::max<int64_t>(mesh_.size(name), 1);
        int64_t size = extent[dim] % n ? extent[dim] : 0;
        extent[dim] = (extent[dim] + n - 1) / n;
        e.splits.push_back({dim, name, size});
      }
    }
    uint64_t bytes = static_cast<uint64_t>(b.getSize());
    switch (b.getRole()) {
    case exec::Role::activation:
      break;
    case exec::Role::parameter:
      mem.parameters += bytes;
      break;
    case exec::Role::gradient:
      mem.gradients += bytes;
      break;
    case exec::Role::optimizer_state:
      mem.optimizerState += bytes;
      break;
    case exec::Role::state:
      mem.otherState += bytes;
      // forge-schedule's per-slot activations of a pipeline stage.
      if (StringRef(e.name).starts_with("pipeline.stash."))
        mem.activationStash += bytes;
      break;
    case exec::Role::input:
      mem.inputs += bytes;
      break;
    }
    if (b.getRole() != exec::Role::activation)
      persistentEnd = std::max(
          persistentEnd, alignUp(e.offset + bytes,
                                 static_cast<uint64_t>(arena.getAlignment())));
    bufferIndex_[b.getSymNameAttr()] = buffers_.size();
    buffers_.push_back(std::move(e));
  }
  mem.total = static_cast<uint64_t>(arena.getSize());
  mem.activationsPeak = mem.total - std::min(mem.total, persistentEnd);
  return true;
}

bool Writer::collectProgram(exec::ProgramOp program) {
  ProgramRec prog;
  prog.name = program.getSymName().str();
  if (!indicesOf(program, program.getInputs(), prog.inputs) ||
      !indicesOf(program, program.getOutputs(), prog.outputs))
    return false;
  for (Operation &op : program.getBody().front()) {
    StepRec rec;
    rec.source = &op;
    ArrayAttr ins, outs;
    if (auto launch = dyn_cast<exec::LaunchOp>(op)) {
      rec.op = launch.getKernel().str();
      ins = launch.getIns();
      outs = launch.getOuts();
      rec.attrs = launch.getKernelAttrsAttr();
    } else if (auto coll = dyn_cast<exec::CollectiveOp>(op)) {
      // The runtime runs the dist op, configured as the dist op was.
      rec.op = (Twine("dist.") + coll.getKind()).str();
      ins = coll.getIns();
      outs = coll.getOuts();
      NamedAttrList attrs(coll.getKernelAttrsAttr());
      attrs.set("group", coll.getGroupAttr());
      attrs.set("group_size", coll.getGroupSizeAttr());
      if (coll.getDimAttr())
        attrs.set("dim", coll.getDimAttr());
      if (coll.getReduceAttr())
        attrs.set("reduce", coll.getReduceAttr());
      rec.attrs = attrs.getDictionary(op.getContext());
    } else {
      return fail(&op, "op " + op.getName().getStringRef().str() +
                           " cannot be written to a plan");
    }
    if (!runtime::findOp(rec.op))
      return fail(&op, "op " + rec.op + " cannot be written to a plan");
    if (!indicesOf(&op, ins, rec.operands) ||
        !indicesOf(&op, outs, rec.results))
      return false;
    prog.steps.push_back(std::move(rec));
  }
  programs_.push_back(std::move(prog));
  return true;
}

/// Converts an MLIR attribute into a plan attribute.
bool attrToPlan(flatbuffers::FlatBufferBuilder &fbb, NamedAttribute a,
                std::vector<flatbuffers::Offset<plan::Attr>> &out,
                std::string &unsupported) {
  Attribute v = a.getValue();
  auto name = fbb.CreateString(a.getName().str());
  if (auto i = dyn_cast<IntegerAttr>(v))
    out.push_back(plan::CreateAttr(fbb, name, i.getInt(), 0, 0));
  else if (auto f = dyn_cast<FloatAttr>(v))
    out.push_back(plan::CreateAttr(fbb, name, 0, f.getValueAsDouble(), 0));
  else if (auto s = dyn_cast<StringAttr>(v))
    out.push_back(plan::CreateAttr(fbb, name, 0, 0,
                                   fbb.CreateString(s.getValue().str())));
  else if (isa<UnitAttr>(v))
    out.push_back(plan::CreateAttr(fbb, name, 1, 0, 0));
  else {
    unsupported = a.getName().str();
    return false;
  }
  return true;
}

bool Writer::run(const config::JobConfig &cfg, const RunSettings &run,
                 const std::string &jobPath, std::vector<uint8_t> &out,
                 MemorySummary &mem) {
  if (!module_.getBody()->getOps<ModuleOp>().empty())
    return runStaged(cfg, run, jobPath, out, mem);
  auto arenas = module_.getOps<exec::ArenaOp>();
  if (arenas.empty()) {
    error_ = std::string("the module has no exec.arena: ") + kNotExec;
    return false;
  }
  if (std::string e; !dist::readMesh(module_, mesh_, e)) {
    error_ = e;
    return false;
  }
  if (!collectBuffers(*arenas.begin(), mem))
    return false;
  const bool staged = module_->hasAttr(dist::kStageAttr);
  const char *first = !staged ? "train_step"
                      : pipeline::virtualStages(cfg.distributed.pp_schedule) > 1
                          ? "forward.0.0"
                          : "forward.0";
  for (const char *name : {first, "optimizer_step"})
    if (!module_.lookupSymbol<exec::ProgramOp>(name)) {
      error_ = std::string("the module has no exec.program @") + name + ": " +
               kNotExec;
      return false;
    }
  // Every program, in module order.
  for (auto program : module_.getOps<exec::ProgramOp>())
    if (!collectProgram(program))
      return false;
  // The CPU runtime's one scratch buffer for the collectives that are not
  // in place (outside the arena).
  for (const ProgramRec &p : programs_)
    for (const StepRec &st : p.steps) {
      if (st.operands.empty() || st.results.empty() || !st.attrs)
        continue;
      auto dim = st.attrs.getAs<IntegerAttr>("dim");
      auto n = st.attrs.getAs<IntegerAttr>("group_size");
      if (!n)
        continue;
      const BufferEntry &in = buffers_[st.operands[0]];
      const BufferEntry &out = buffers_[st.results[0]];
      mem.commBuffers = std::max(mem.commBuffers,
                                 runtime::collectiveScratchBytes(
                                     st.op, dim ? dim.getInt() : 0, n.getInt(),
                                     in.shape, out.shape, in.dtype));
    }

  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::Buffer>> bufs;
  for (const BufferEntry &b : buffers_) {
    uint64_t elems = 1;
    for (int64_t d : b.shape)
      elems *= static_cast<uint64_t>(d);
    bufs.push_back(plan::CreateBuffer(
        fbb, fbb.CreateString(b.name), b.role, b.dtype,
        fbb.CreateVector(b.shape), b.offset,
        elems * runtime::dtypeSize(b.dtype), b.init, b.std,
        b.globalShape.empty() ? 0 : fbb.CreateVector(b.globalShape),
        splitsOf(fbb, b.splits)));
  }
  std::vector<flatbuffers::Offset<plan::Program>> progs;
  for (const ProgramRec &p : programs_) {
    std::vector<flatbuffers::Offset<plan::Step>> steps;
    for (const StepRec &st : p.steps) {
      std::vector<flatbuffers::Offset<plan::Attr>> attrs;
      for (NamedAttribute a :
           st.attrs ? st.attrs.getValue() : ArrayRef<NamedAttribute>()) {
        std::string unsupported;
        if (!attrToPlan(fbb, a, attrs, unsupported))
          return fail(st.source, "attribute '" + unsupported +
                                     "' cannot be carried by the plan");
      }
      std::string loc;
      llvm::raw_string_ostream os(loc);
      st.source->getLoc().print(os);
      steps.push_back(plan::CreateStep(
          fbb, fbb.CreateString(st.op), fbb.CreateVector(st.operands),
          fbb.CreateVector(st.results), fbb.CreateVector(attrs),
          fbb.CreateString(os.str())));
    }
    progs.push_back(plan::CreateProgram(
        fbb, fbb.CreateString(p.name), fbb.CreateVector(p.inputs),
        fbb.CreateVector(p.outputs), fbb.CreateVector(steps)));
  }
  auto memoryTable = plan::CreateMemory(
      fbb, mem.parameters, mem.gradients, mem.optimizerState, mem.otherState,
      mem.inputs, mem.activationsPeak, mem.total, mem.activationStash);
  // A pipeline stage: which one, and its programs in schedule order.
  flatbuffers::Offset<plan::Pipeline> pipe = 0;
  if (staged) {
    auto actions =
        module_->getAttrOfType<DenseI64ArrayAttr>(dist::kPipelineActionsAttr);
    if (!actions || actions.size() % 4)
      return fail(module_, "a pipeline stage needs dist.pipeline_actions "
                           "(forge-schedule)");
    std::vector<plan::Action> acts;
    for (int64_t i = 0; i < actions.size(); i += 4)
      acts.emplace_back(actions[i] != 0, static_cast<uint16_t>(actions[i + 2]),
                        static_cast<int32_t>(actions[i + 1]),
                        static_cast<uint16_t>(actions[i + 3]));
    pipe = plan::CreatePipeline(
        fbb, fbb.CreateString(cfg.distributed.pp_schedule), mesh_.size("pp"),
        cfg.train.grad_accum_steps,
        module_->getAttrOfType<IntegerAttr>(dist::kStageAttr).getInt(),
        fbb.CreateVectorOfStructs(acts), 0,
        pipeline::virtualStages(cfg.distributed.pp_schedule));
  }
  auto training = trainingOf(fbb, cfg, run, jobPath);
  auto mesh = plan::CreateMesh(fbb, fbb.CreateVectorOfStrings(mesh_.dims),
                               fbb.CreateVector(mesh_.sizes));
  auto root = plan::CreatePlan(fbb, runtime::kPlanVersion, mesh, mem.total,
                               fbb.CreateVector(bufs), fbb.CreateVector(progs),
                               memoryTable, training, hfModel(fbb, cfg), pipe,
                               checkpointOf(fbb, cfg), profilingOf(fbb, cfg));
  plan::FinishPlanBuffer(fbb, root);
  out.assign(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  return true;
}

/// A pipeline-parallel job: one complete plan per stage, nested in a plan
/// that holds the mesh, the training settings and no buffers of its own.
/// The memory reported is the largest stage's (each stage is listed).
bool Writer::runStaged(const config::JobConfig &cfg, const RunSettings &run,
                       const std::string &jobPath, std::vector<uint8_t> &out,
                       MemorySummary &mem) {
  if (std::string e; !dist::readMesh(module_, mesh_, e)) {
    error_ = e;
    return false;
  }
  std::vector<std::vector<uint8_t>> stagePlans;
  std::vector<MemorySummary> stageMems;
  for (ModuleOp stage : module_.getBody()->getOps<ModuleOp>()) {
    auto index = stage->getAttrOfType<IntegerAttr>(dist::kStageAttr);
    if (!index || index.getInt() != static_cast<int64_t>(stagePlans.size()))
      return fail(stage, "nested modules must be the pipeline stages, in "
                         "order (dist.stage = 0, 1, ...)");
    std::vector<uint8_t> bytes;
    MemorySummary m;
    Writer w(stage, error_);
    if (!w.run(cfg, run, jobPath, bytes, m))
      return false;
    stagePlans.push_back(std::move(bytes));
    stageMems.push_back(m);
  }
  if (static_cast<int64_t>(stagePlans.size()) != mesh_.size("pp"))
    return fail(module_,
                "the module has " + std::to_string(stagePlans.size()) +
                    " stages for pp = " + std::to_string(mesh_.size("pp")));
  size_t worst = 0;
  for (size_t i = 0; i < stageMems.size(); ++i)
    if (stageMems[i].total > stageMems[worst].total)
      worst = i;
  mem = stageMems[worst];
  mem.stages = stageMems;

  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::StagePlan>> nested;
  for (const std::vector<uint8_t> &bytes : stagePlans) {
    // A nested plan is read in place: align it as a root buffer.
    fbb.ForceVectorAlignment(bytes.size(), 1, 16);
    nested.push_back(plan::CreateStagePlan(fbb, fbb.CreateVector(bytes)));
  }
  auto pipe = plan::CreatePipeline(
      fbb, fbb.CreateString(cfg.distributed.pp_schedule), mesh_.size("pp"),
      cfg.train.grad_accum_steps, -1, 0, fbb.CreateVector(nested),
      pipeline::virtualStages(cfg.distributed.pp_schedule));
  auto memoryTable = plan::CreateMemory(
      fbb, mem.parameters, mem.gradients, mem.optimizerState, mem.otherState,
      mem.inputs, mem.activationsPeak, mem.total, mem.activationStash);
  auto mesh = plan::CreateMesh(fbb, fbb.CreateVectorOfStrings(mesh_.dims),
                               fbb.CreateVector(mesh_.sizes));
  auto root = plan::CreatePlan(
      fbb, runtime::kPlanVersion, mesh, mem.total,
      fbb.CreateVector(std::vector<flatbuffers::Offset<plan::Buffer>>{}),
      fbb.CreateVector(std::vector<flatbuffers::Offset<plan::Program>>{}),
      memoryTable, trainingOf(fbb, cfg, run, jobPath), hfModel(fbb, cfg), pipe,
      checkpointOf(fbb, cfg), profilingOf(fbb, cfg));
  plan::FinishPlanBuffer(fbb, root);
  out.assign(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  return true;
}

std::string mib(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%12llu bytes (%9.2f MiB)",
                static_cast<unsigned long long>(bytes),
                static_cast<double>(bytes) / (1 << 20));
  return buf;
}

} // namespace

bool writePlan(ModuleOp module, const config::JobConfig &cfg,
               const RunSettings &run, const std::string &jobPath,
               std::vector<uint8_t> &out, MemorySummary &memory,
               std::string &error) {
  Writer w(module, error);
  return w.run(cfg, run, jobPath, out, memory);
}

std::string describeMemory(const MemorySummary &m) {
  if (!m.stages.empty()) {
    // Each pipeline stage has its own plan and arena.
    std::string s;
    for (size_t i = 0; i < m.stages.size(); ++i) {
      std::string one = describeMemory(m.stages[i]);
      s += "pipeline stage " + std::to_string(i) + ", " + one;
    }
    return s;
  }
  std::string s = "memory per rank (planned arena):\n";
  s += "  parameters          " + mib(m.parameters) + "\n";
  s += "  gradients           " + mib(m.gradients) + "\n";
  s += "  optimizer state     " + mib(m.optimizerState) + "\n";
  if (m.otherState)
    s += "  other state         " + mib(m.otherState) + "\n";
  s += "  inputs              " + mib(m.inputs) + "\n";
  s += "  activations at peak " + mib(m.activationsPeak) + "\n";
  if (m.activationStash)
    s += "  activation stash    " + mib(m.activationStash) +
         " (in other state: in-flight micro-batches' saved activations)\n";
  s += "  total peak          " + mib(m.total) + "\n";
  if (m.commBuffers)
    s += "  comm buffers        " + mib(m.commBuffers) +
         " (outside the arena: the CPU runtime's collective scratch)\n";
  return s;
}

} // namespace forge::compiler

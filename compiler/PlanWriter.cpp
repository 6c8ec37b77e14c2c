//===- PlanWriter.cpp - Memory planning and plan.bin ----------------------===//

#include "compiler/PlanWriter.h"
#include "dialects/dist/IR/DistDialect.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "runtime/core/Plan.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdio>
#include <map>

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
  int shardDim = -1; ///< FSDP: the sharded dim, its group, the full shape
  std::string shardGroup;
  std::vector<int64_t> globalShape;
};

struct StepRec {
  std::string op;
  std::vector<unsigned> operands, results; // buffer indices
  Operation *source;
};

struct ProgramRec {
  std::string name;
  std::vector<unsigned> inputs, outputs;
  std::vector<StepRec> steps;
};

/// Serializes the layout forge-plan-memory recorded in the IR.
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

  /// A buffer for `v` at `offset`.
  bool addBuffer(Value v, const std::string &name, plan::Role role,
                 int64_t offset, Operation *where, unsigned &index) {
    auto t = dyn_cast<RankedTensorType>(v.getType());
    plan::DType d;
    if (!t || !t.hasStaticShape() || !dtypeOf(t.getElementType(), d))
      return fail(where, "cannot place a value of type " +
                             std::string(llvm::formatv("{0}", v.getType())) +
                             " in the plan");
    index = buffers_.size();
    buffers_.push_back(
        {name, role, d,
         std::vector<int64_t>(t.getShape().begin(), t.getShape().end()),
         static_cast<uint64_t>(offset)});
    valueBuffer_[v] = index;
    return true;
  }

  bool collectParams();
  bool collectProgram(func::FuncOp fn);

  ModuleOp module_;
  std::string &error_;
  std::vector<BufferEntry> buffers_;
  DenseMap<Value, unsigned> valueBuffer_;
  std::map<std::string, unsigned> paramBuffer_;
  std::vector<ProgramRec> programs_;
  dist::Mesh mesh_;
};

const char kNoLayout[] = "has no memory layout: run forge-plan-memory first";

bool Writer::collectParams() {
  for (auto p : module_.getOps<ParamOp>()) {
    std::string name = p.getSymName().str();
    auto offset = p->getAttrOfType<IntegerAttr>("exec.offset");
    if (!offset)
      return fail(p, "parameter '" + name + "' " + kNoLayout);
    plan::Role role = plan::Role::parameter;
    if (p.getBuffer())
      role = name.rfind("grad.", 0) == 0        ? plan::Role::gradient
             : name.rfind("optimizer.", 0) == 0 ? plan::Role::optimizer_state
                                                : plan::Role::state;
    plan::DType d;
    if (!dtypeOf(p.getTensorType().getElementType(), d))
      return fail(p, "parameter element type is not f32, bf16 or f16");
    BufferEntry b{name, role, d,
                  std::vector<int64_t>(p.getTensorType().getShape().begin(),
                                       p.getTensorType().getShape().end()),
                  static_cast<uint64_t>(offset.getInt())};
    b.init = p.getInit() == InitKind::normal ? plan::Init::normal
             : p.getInit() == InitKind::ones ? plan::Init::ones
                                             : plan::Init::zeros;
    b.std = p.getStd() ? p.getStd()->convertToDouble() : 0.0;
    if (auto shard = p->getAttrOfType<DictionaryAttr>(dist::kShardAttr)) {
      auto dim = shard.getAs<IntegerAttr>("dim");
      auto group = shard.getAs<StringAttr>("group");
      int64_t n = group ? mesh_.size(group.str()) : 0;
      if (!dim || !group || n < 1 || dim.getInt() < 0 ||
          dim.getInt() >= static_cast<int64_t>(b.shape.size()))
        return fail(p, "parameter '" + name +
                           "' has a malformed dist.shard (needs dim and a "
                           "group of dist.mesh)");
      b.shardDim = static_cast<int>(dim.getInt());
      b.shardGroup = group.str();
      b.globalShape = b.shape;
      b.globalShape[b.shardDim] *= n;
    }
    paramBuffer_[name] = buffers_.size();
    buffers_.push_back(b);
  }
  return true;
}

bool Writer::collectProgram(func::FuncOp fn) {
  ProgramRec prog;
  prog.name = fn.getSymName().str();
  for (BlockArgument arg : fn.getArguments()) {
    auto offset =
        fn.getArgAttrOfType<IntegerAttr>(arg.getArgNumber(), "exec.offset");
    if (!offset)
      return fail(fn, "@" + prog.name + " argument " + kNoLayout);
    unsigned idx;
    if (!addBuffer(arg, prog.name + ".arg" + std::to_string(arg.getArgNumber()),
                   plan::Role::input, offset.getInt(), fn, idx))
      return false;
    prog.inputs.push_back(idx);
  }
  for (Operation &op : fn.getBody().front()) {
    if (auto get = dyn_cast<GetParamOp>(op)) {
      valueBuffer_[get.getResult()] = paramBuffer_.at(get.getName().str());
      continue;
    }
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (Value v : ret.getOperands())
        prog.outputs.push_back(valueBuffer_.at(v));
      continue;
    }
    ArrayRef<int64_t> offsets;
    if (op.getNumResults()) {
      auto attr = op.getAttrOfType<DenseI64ArrayAttr>("exec.offsets");
      if (!attr || attr.size() != static_cast<int64_t>(op.getNumResults()))
        return fail(&op, std::string("op ") + kNoLayout);
      offsets = attr.asArrayRef();
    }
    if (auto view = dyn_cast<ReshapeOp>(op)) {
      // A view: another shape at its input's offset; no step.
      unsigned idx;
      if (!addBuffer(view.getResult(), "", plan::Role::activation, offsets[0],
                     &op, idx))
        return false;
      continue;
    }
    if (!runtime::findOp(op.getName().getStringRef()))
      return fail(&op, "op " + op.getName().getStringRef().str() +
                           " cannot be written to a plan");
    StepRec rec{op.getName().getStringRef().str(), {}, {}, &op};
    for (Value v : op.getOperands())
      rec.operands.push_back(valueBuffer_.at(v));
    if (auto set = dyn_cast<SetParamOp>(op))
      rec.results.push_back(paramBuffer_.at(set.getName().str()));
    for (auto [i, r] : llvm::enumerate(op.getResults())) {
      unsigned idx;
      if (!addBuffer(r, "", plan::Role::activation, offsets[i], &op, idx))
        return false;
      rec.results.push_back(idx);
    }
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
  // Symbol references are resolved into the step's buffer indices, and the
  // layout into buffer offsets.
  if (isa<SymbolRefAttr>(v) || a.getName().strref().starts_with("exec."))
    return true;
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
  else if (auto l = dyn_cast<WeightLayoutAttr>(v))
    out.push_back(plan::CreateAttr(
        fbb, name, 0, 0,
        fbb.CreateString(stringifyWeightLayout(l.getValue()).str())));
  else {
    unsupported = a.getName().str();
    return false;
  }
  return true;
}

bool Writer::run(const config::JobConfig &cfg, const RunSettings &run,
                 const std::string &jobPath, std::vector<uint8_t> &out,
                 MemorySummary &mem) {
  auto memory = module_->getAttrOfType<DictionaryAttr>("exec.memory");
  if (!memory) {
    error_ = std::string("the module ") + kNoLayout;
    return false;
  }
  auto field = [&](StringRef key) -> uint64_t {
    auto a = memory.getAs<IntegerAttr>(key);
    return a ? static_cast<uint64_t>(a.getInt()) : 0;
  };
  mem.parameters = field("parameters");
  mem.gradients = field("gradients");
  mem.optimizerState = field("optimizer_state");
  mem.otherState = field("other_state");
  mem.inputs = field("inputs");
  mem.activationsPeak = field("activations_peak");
  mem.total = field("total");
  if (std::string e; !dist::readMesh(module_, mesh_, e)) {
    error_ = e;
    return false;
  }
  if (!collectParams())
    return false;
  for (const char *name : {"train_step", "optimizer_step"})
    if (!module_.lookupSymbol<func::FuncOp>(name)) {
      error_ = std::string("the module has no @") + name +
               " (run the pass pipeline before writing a plan)";
      return false;
    }
  // Every function becomes a program, in module order.
  for (auto fn : module_.getOps<func::FuncOp>())
    if (!collectProgram(fn))
      return false;

  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::Buffer>> bufs;
  for (const BufferEntry &b : buffers_) {
    uint64_t elems = 1;
    for (int64_t d : b.shape)
      elems *= static_cast<uint64_t>(d);
    bufs.push_back(plan::CreateBuffer(
        fbb, fbb.CreateString(b.name), b.role, b.dtype,
        fbb.CreateVector(b.shape), b.offset,
        elems * runtime::dtypeSize(b.dtype), b.init, b.std, b.shardDim,
        b.shardGroup.empty() ? 0 : fbb.CreateString(b.shardGroup),
        b.globalShape.empty() ? 0 : fbb.CreateVector(b.globalShape)));
  }
  std::vector<flatbuffers::Offset<plan::Program>> progs;
  for (const ProgramRec &p : programs_) {
    std::vector<flatbuffers::Offset<plan::Step>> steps;
    for (const StepRec &st : p.steps) {
      std::vector<flatbuffers::Offset<plan::Attr>> attrs;
      for (NamedAttribute a : st.source->getAttrDictionary()) {
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
      mem.inputs, mem.activationsPeak, mem.total);
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
  auto training = plan::CreateTraining(
      fbb, t.max_steps, t.grad_accum_steps, t.batch_size, t.seq_len,
      cfg.model.vocab_size, t.seed, t.effectiveDataSeed(),
      cfg.metrics.log_interval, fbb.CreateString(cfg.data.dataset_path),
      fbb.CreateString(cfg.data.file_pattern), fbb.CreateString(jobPath),
      fbb.CreateVector(sources), run.temperature, fbb.CreateVector(phases),
      run.pack, run.eosId, run.evalInterval, run.evalSteps,
      fbb.CreateString(run.evalPath), fbb.CreateString(run.evalPattern),
      fbb.CreateString(run.jsonlPath), fbb.CreateString(run.tensorboardDir),
      run.flopsPerToken, cfg.optimizer.lr, fbb.CreateString(cfg.optimizer.name),
      t.z_loss_weight,
      static_cast<double>(cfg.distributed.nccl_timeout_sec));
  auto mesh = plan::CreateMesh(fbb, fbb.CreateVectorOfStrings(mesh_.dims),
                               fbb.CreateVector(mesh_.sizes));
  auto root = plan::CreatePlan(fbb, runtime::kPlanVersion, mesh, mem.total,
                               fbb.CreateVector(bufs), fbb.CreateVector(progs),
                               memoryTable, training);
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
  std::string s = "memory per rank (planned arena):\n";
  s += "  parameters          " + mib(m.parameters) + "\n";
  s += "  gradients           " + mib(m.gradients) + "\n";
  s += "  optimizer state     " + mib(m.optimizerState) + "\n";
  if (m.otherState)
    s += "  other state         " + mib(m.otherState) + "\n";
  s += "  inputs              " + mib(m.inputs) + "\n";
  s += "  activations at peak " + mib(m.activationsPeak) + "\n";
  s += "  total peak          " + mib(m.total) + "\n";
  return s;
}

} // namespace forge::compiler

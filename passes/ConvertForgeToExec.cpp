//===- ConvertForgeToExec.cpp - Laid-out forge IR to exec IR --------------===//
//
// The last pass of the pipeline: every tensor that forge-plan-memory placed
// becomes an exec.buffer, every program an exec.program of launches in the
// order forge-schedule fixed. Afterwards the module holds what one rank
// executes and nothing else, so the plan writer needs no knowledge of forge
// ops, views or the layout attributes.
//
//===----------------------------------------------------------------------===//

#include "dialects/exec/IR/ExecOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/raw_ostream.h"

namespace forge {
#define GEN_PASS_DEF_CONVERTFORGETOEXECPASS
#include "passes/Passes.h.inc"
} // namespace forge

using namespace mlir;
using namespace forge;

namespace {

/// forge-plan-memory aligns every offset to the runtime's arena alignment.
constexpr int64_t kAlignment = 64;

const char kNoLayout[] = "has no memory layout: run forge-plan-memory first";

class Converter {
public:
  explicit Converter(ModuleOp module)
      : module_(module), ctx_(module.getContext()), b_(ctx_) {}

  LogicalResult run();

private:
  /// Appends a buffer named `name` for a tensor of type `type`.
  FailureOr<FlatSymbolRefAttr>
  addBuffer(Operation *where, Location loc, const Twine &name, Type type,
            exec::Role role, int64_t offset,
            function_ref<void(exec::BufferOp)> extra = {});

  LogicalResult convertParam(ParamOp param);
  LogicalResult convertProgram(func::FuncOp fn, OpBuilder &programs);
  LogicalResult convertOp(Operation &op, StringRef program, OpBuilder &body);
  std::string originOf(Operation *op, Attribute input);

  ModuleOp module_;
  MLIRContext *ctx_;
  OpBuilder b_; ///< inserts the buffers, in order, after the arena
  llvm::StringSet<> names_;
  DenseMap<Value, FlatSymbolRefAttr> bufferOf_;
  DenseMap<StringAttr, FlatSymbolRefAttr> paramBuffer_;
  DenseMap<StringAttr, exec::Role> paramRole_;
  dist::Mesh mesh_;
  unsigned values_ = 0; ///< activation buffers of the current program
};

FailureOr<FlatSymbolRefAttr>
Converter::addBuffer(Operation *where, Location loc, const Twine &name,
                     Type type, exec::Role role, int64_t offset,
                     function_ref<void(exec::BufferOp)> extra) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape())
    return where->emitOpError("convert-forge-to-exec: cannot place a value "
                              "of type ")
           << type << " in a buffer";
  std::string symbol = name.str();
  if (!names_.insert(symbol).second)
    return where->emitOpError("convert-forge-to-exec: buffer name '")
           << symbol << "' is used twice";
  int64_t bytes = t.getNumElements() * t.getElementTypeBitWidth() / 8;
  auto buffer = exec::BufferOp::create(
      b_, loc, b_.getStringAttr(symbol), b_.getDenseI64ArrayAttr(t.getShape()),
      TypeAttr::get(t.getElementType()), exec::RoleAttr::get(ctx_, role),
      b_.getI64IntegerAttr(offset), b_.getI64IntegerAttr(bytes),
      /*init=*/nullptr, /*std=*/nullptr, /*shard_dims=*/nullptr,
      /*shard_groups=*/nullptr, /*global_shape=*/nullptr);
  if (extra)
    extra(buffer);
  return FlatSymbolRefAttr::get(buffer.getSymNameAttr());
}

LogicalResult Converter::convertParam(ParamOp p) {
  StringRef name = p.getSymName();
  auto offset = p->getAttrOfType<IntegerAttr>("exec.offset");
  if (!offset)
    return p.emitOpError("convert-forge-to-exec: parameter '")
           << name << "' " << kNoLayout;
  // The role follows the names forge-build-optimizer gives its buffers.
  exec::Role role = !p.getBuffer()              ? exec::Role::parameter
                    : name.starts_with("grad.") ? exec::Role::gradient
                    : name.starts_with("optimizer.")
                        ? exec::Role::optimizer_state
                        : exec::Role::state;
  std::vector<dist::Split> splits;
  std::string error;
  if (!dist::readShard(p, splits, error))
    return p.emitOpError("convert-forge-to-exec: parameter '")
           << name << "': " << error;
  SmallVector<int64_t> global(p.getTensorType().getShape());
  SmallVector<int64_t> dims;
  SmallVector<StringRef> groups;
  for (const dist::Split &s : splits) {
    if (mesh_.size(s.group) < 1 || s.dim >= static_cast<int64_t>(global.size()))
      return p.emitOpError("convert-forge-to-exec: parameter '")
             << name
             << "' has a malformed dist.shard (each split needs a dim of the "
                "tensor and a group of dist.mesh)";
    dims.push_back(s.dim);
    groups.push_back(s.group);
  }
  // The global shape, undoing the splits from the innermost out: an even
  // split multiplies the block by the group's size, an uneven one (padded)
  // records the extent it split.
  for (const dist::Split &s : llvm::reverse(splits))
    global[s.dim] = s.size ? s.size : global[s.dim] * mesh_.size(s.group);
  exec::Init init = p.getInit() == InitKind::normal ? exec::Init::normal
                    : p.getInit() == InitKind::ones ? exec::Init::ones
                                                    : exec::Init::zeros;
  auto buffer =
      addBuffer(p, p.getLoc(), name, p.getType(), role, offset.getInt(),
                [&](exec::BufferOp buf) {
                  buf.setInitAttr(exec::InitAttr::get(ctx_, init));
                  if (p.getStd())
                    buf.setStdAttr(p.getStdAttr());
                  if (!splits.empty()) {
                    buf.setShardDimsAttr(b_.getDenseI64ArrayAttr(dims));
                    buf.setShardGroupsAttr(b_.getStrArrayAttr(groups));
                    buf.setGlobalShapeAttr(b_.getDenseI64ArrayAttr(global));
                  }
                });
  if (failed(buffer))
    return failure();
  paramBuffer_[p.getSymNameAttr()] = *buffer;
  paramRole_[p.getSymNameAttr()] = role;
  return success();
}

/// The attributes of `op` that configure its kernel: not the layout and
/// schedule (exec.*), not symbol references (they became buffers), and
/// forge's enums as their strings so that exec IR holds builtin values.
NamedAttrList kernelAttrs(Operation *op) {
  NamedAttrList attrs;
  for (NamedAttribute a : op->getAttrDictionary()) {
    if (a.getName().strref().starts_with("exec.") ||
        isa<SymbolRefAttr>(a.getValue()))
      continue;
    if (auto layout = dyn_cast<WeightLayoutAttr>(a.getValue()))
      attrs.append(a.getName(),
                   StringAttr::get(op->getContext(),
                                   stringifyWeightLayout(layout.getValue())));
    else
      attrs.append(a);
  }
  return attrs;
}

/// Why a collective is there (design.md §5.7), from the IR around it: the
/// parameter or buffer it moves (FSDP gathers a parameter's shards before
/// its use), or the parameter whose gradient it produces (the
/// reduce-scatter that autodiff derives from that gather flows into
/// `grad.<fqn>`); otherwise the op whose result it moves, and that result's
/// buffer `input`. It depends on nothing but the IR, so that forge-opt
/// reproduces the pass from a dumped file (which has no locations). The
/// op's location stays on the exec op.
std::string Converter::originOf(Operation *op, Attribute input) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << op->getName().getStringRef();
  auto gradientOf = [](Value v) -> StringRef {
    // Through the scaling and accumulation ops that follow a gradient.
    for (int hops = 0; hops < 8 && v.hasOneUse(); ++hops) {
      Operation *user = *v.getUsers().begin();
      if (auto set = dyn_cast<SetParamOp>(user)) {
        StringRef name = set.getName();
        return name.consume_front("grad.") ? name : StringRef();
      }
      if (user->getNumResults() != 1)
        break;
      v = user->getResult(0);
    }
    return {};
  };
  auto get = op->getNumOperands()
                 ? op->getOperand(0).getDefiningOp<GetParamOp>()
                 : GetParamOp();
  StringRef gradient =
      op->getNumResults() == 1 ? gradientOf(op->getResult(0)) : StringRef();
  if (get)
    os << " of "
       << (paramRole_.lookup(get.getNameAttr().getAttr()) ==
                   exec::Role::parameter
               ? "parameter "
               : "buffer ")
       << get.getName();
  else if (!gradient.empty())
    os << " of the gradient of " << gradient;
  else if (Operation *def = op->getNumOperands()
                                ? op->getOperand(0).getDefiningOp()
                                : nullptr)
    os << " of the result of " << def->getName().getStringRef() << " ("
       << cast<FlatSymbolRefAttr>(input).getValue() << ")";
  return text;
}

LogicalResult Converter::convertOp(Operation &op, StringRef program,
                                   OpBuilder &body) {
  ArrayRef<int64_t> offsets;
  if (op.getNumResults()) {
    auto attr = op.getAttrOfType<DenseI64ArrayAttr>("exec.offsets");
    if (!attr || attr.size() != static_cast<int64_t>(op.getNumResults()))
      return op.emitOpError("convert-forge-to-exec: op ") << kNoLayout;
    offsets = attr.asArrayRef();
  }
  auto result = [&](unsigned i) {
    return addBuffer(&op, op.getLoc(), program + ".v" + Twine(values_++),
                     op.getResult(i).getType(), exec::Role::activation,
                     offsets[i]);
  };
  if (isa<ReshapeOp>(op)) {
    // A view: the same bytes under another shape, nothing to launch.
    FailureOr<FlatSymbolRefAttr> view = result(0);
    if (failed(view))
      return failure();
    bufferOf_[op.getResult(0)] = *view;
    return success();
  }
  auto stream = op.getAttrOfType<IntegerAttr>(exec::ExecDialect::kStreamAttr);
  if (!stream)
    return op.emitOpError("convert-forge-to-exec: op has no exec.stream: run "
                          "forge-schedule first");
  SmallVector<Attribute> ins, outs;
  for (Value v : op.getOperands()) {
    auto it = bufferOf_.find(v);
    if (it == bufferOf_.end())
      return op.emitOpError("convert-forge-to-exec: an operand has no buffer");
    ins.push_back(it->second);
  }
  if (auto set = dyn_cast<SetParamOp>(op)) {
    auto it = paramBuffer_.find(set.getNameAttr().getAttr());
    if (it == paramBuffer_.end())
      return op.emitOpError("convert-forge-to-exec: unknown parameter");
    outs.push_back(it->second);
  }
  for (unsigned i = 0; i < op.getNumResults(); ++i) {
    FailureOr<FlatSymbolRefAttr> r = result(i);
    if (failed(r))
      return failure();
    bufferOf_[op.getResult(i)] = *r;
    outs.push_back(*r);
  }
  NamedAttrList attrs = kernelAttrs(&op);
  auto dictOrNull = [&](NamedAttrList &list) {
    return list.empty() ? DictionaryAttr() : list.getDictionary(ctx_);
  };
  if (op.getDialect() && op.getDialect()->getNamespace() ==
                             dist::DistDialect::getDialectNamespace()) {
    auto group = dyn_cast_or_null<StringAttr>(attrs.erase("group"));
    auto groupSize = dyn_cast_or_null<IntegerAttr>(attrs.erase("group_size"));
    auto dim = dyn_cast_or_null<IntegerAttr>(attrs.erase("dim"));
    auto reduce = dyn_cast_or_null<StringAttr>(attrs.erase("reduce"));
    attrs.erase(dist::kOriginAttr);
    dist::Origin o = dist::originOf(&op);
    std::string origin = o.reason().empty()
                             ? originOf(&op, ins.empty() ? Attribute() : ins[0])
                             : o.reason() + (o.of.empty() ? "" : ": " + o.of);
    if (!group || !groupSize)
      return op.emitOpError(
          "convert-forge-to-exec: a collective needs a group and group_size");
    exec::CollectiveOp::create(
        body, op.getLoc(), b_.getStringAttr(op.getName().stripDialect()),
        b_.getArrayAttr(ins), b_.getArrayAttr(outs), group, groupSize, dim,
        reduce, stream, dictOrNull(attrs), b_.getStringAttr(origin));
    return success();
  }
  exec::LaunchOp::create(
      body, op.getLoc(), b_.getStringAttr(op.getName().getStringRef()),
      b_.getArrayAttr(ins), b_.getArrayAttr(outs), stream, dictOrNull(attrs));
  return success();
}

LogicalResult Converter::convertProgram(func::FuncOp fn, OpBuilder &programs) {
  StringRef name = fn.getSymName();
  if (!fn.getBody().hasOneBlock())
    return fn.emitOpError("convert-forge-to-exec: @")
           << name << " is not one block of straight-line code";
  values_ = 0;
  SmallVector<Attribute> inputs, outputs;
  for (BlockArgument arg : fn.getArguments()) {
    auto offset =
        fn.getArgAttrOfType<IntegerAttr>(arg.getArgNumber(), "exec.offset");
    if (!offset)
      return fn.emitOpError("convert-forge-to-exec: @")
             << name << " argument " << arg.getArgNumber() << " " << kNoLayout;
    FailureOr<FlatSymbolRefAttr> buffer =
        addBuffer(fn, arg.getLoc(), name + ".arg" + Twine(arg.getArgNumber()),
                  arg.getType(), exec::Role::input, offset.getInt());
    if (failed(buffer))
      return failure();
    bufferOf_[arg] = *buffer;
    inputs.push_back(*buffer);
  }
  auto program =
      exec::ProgramOp::create(programs, fn.getLoc(), fn.getSymNameAttr(),
                              b_.getArrayAttr(inputs), b_.getArrayAttr({}));
  OpBuilder body = OpBuilder::atBlockEnd(&program.getBody().emplaceBlock());
  for (Operation &op : fn.getBody().front()) {
    if (auto get = dyn_cast<GetParamOp>(op)) {
      // Reads the parameter in place.
      auto it = paramBuffer_.find(get.getNameAttr().getAttr());
      if (it == paramBuffer_.end())
        return op.emitOpError("convert-forge-to-exec: unknown parameter");
      bufferOf_[get.getResult()] = it->second;
      continue;
    }
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (Value v : ret.getOperands())
        outputs.push_back(bufferOf_.at(v));
      continue;
    }
    if (failed(convertOp(op, name, body)))
      return failure();
  }
  program.setOutputsAttr(b_.getArrayAttr(outputs));
  return success();
}

LogicalResult Converter::run() {
  auto memory = module_->getAttrOfType<DictionaryAttr>("exec.memory");
  auto total = memory ? memory.getAs<IntegerAttr>("total") : IntegerAttr();
  if (!total)
    return module_.emitError("convert-forge-to-exec: the module ") << kNoLayout;
  if (std::string error; !dist::readMesh(module_, mesh_, error))
    return module_.emitError("convert-forge-to-exec: ") << error;
  SmallVector<Operation *> old;
  for (Operation &op : *module_.getBody())
    if (isa<ParamOp, func::FuncOp>(op))
      old.push_back(&op);

  b_.setInsertionPointToStart(module_.getBody());
  exec::ArenaOp::create(b_, module_.getLoc(), total,
                        b_.getI64IntegerAttr(kAlignment));
  // Buffers in the order the plan numbers them: parameters, then each
  // program's arguments and values.
  for (auto p : module_.getOps<ParamOp>())
    if (failed(convertParam(p)))
      return failure();
  auto programs = OpBuilder::atBlockEnd(module_.getBody());
  for (auto fn : module_.getOps<func::FuncOp>())
    if (failed(convertProgram(fn, programs)))
      return failure();

  for (Operation *op : old)
    op->erase();
  module_->removeAttr("exec.memory");
  return success();
}

struct ConvertForgeToExecPass
    : public forge::impl::ConvertForgeToExecPassBase<ConvertForgeToExecPass> {
  void runOnOperation() override {
    if (failed(Converter(getOperation()).run()))
      signalPassFailure();
  }
};

} // namespace

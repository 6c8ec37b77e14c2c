//===- ExecOps.cpp - Arena buffers and launches ---------------------------===//

#include "dialects/exec/IR/ExecOps.h"
#include "dialects/dist/IR/DistDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace forge::exec;

#define GET_OP_CLASSES
#include "dialects/exec/IR/ExecOps.cpp.inc"

namespace {

/// Bytes of one element of a dtype the plan carries, or 0 for any other.
int64_t elementBytes(Type t) {
  if (t.isF32() || t.isInteger(32))
    return 4;
  if (t.isBF16() || t.isF16())
    return 2;
  if (t.isInteger(64))
    return 8;
  return 0;
}

/// The mesh of `op`'s module, or failure (reported) when it is malformed.
FailureOr<forge::dist::Mesh> meshOf(Operation *op) {
  forge::dist::Mesh mesh;
  std::string error;
  auto module = op->getParentOfType<ModuleOp>();
  if (module && !forge::dist::readMesh(module, mesh, error))
    return op->emitOpError(error);
  return mesh;
}

LogicalResult verifyStream(Operation *op, int64_t stream) {
  if (stream != 0 && stream != 1)
    return op->emitOpError("stream must be 0 (compute) or 1 (communication), "
                           "got ")
           << stream;
  return success();
}

/// The buffer `ref` names, or failure (reported on `user`).
FailureOr<BufferOp> lookupBuffer(Operation *user, SymbolTableCollection &table,
                                 Attribute ref) {
  auto sym = cast<FlatSymbolRefAttr>(ref);
  auto buffer = table.lookupNearestSymbolFrom<BufferOp>(user, sym);
  if (!buffer)
    return user->emitOpError("'")
           << sym.getValue() << "' does not name an exec.buffer";
  return buffer;
}

/// Resolves every reference of `refs` to its buffer.
LogicalResult lookupBuffers(Operation *user, SymbolTableCollection &table,
                            ArrayAttr refs, SmallVectorImpl<BufferOp> &out) {
  for (Attribute ref : refs) {
    FailureOr<BufferOp> buffer = lookupBuffer(user, table, ref);
    if (failed(buffer))
      return failure();
    out.push_back(*buffer);
  }
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// ArenaOp
//===----------------------------------------------------------------------===//

LogicalResult ArenaOp::verify() {
  // I64Attr's getters are unsigned; the checks need the signed values.
  int64_t size = getSizeAttr().getInt(),
          alignment = getAlignmentAttr().getInt();
  if (size < 0)
    return emitOpError("size must be non-negative, got ") << size;
  if (alignment < 1 || !llvm::isPowerOf2_64(static_cast<uint64_t>(alignment)))
    return emitOpError("alignment must be a power of two, got ") << alignment;
  // Being first makes the arena unique and lets each buffer find it in
  // constant time.
  if (&(*this)->getBlock()->front() != getOperation())
    return emitOpError(
        "must be the first op of its module (a module has one arena)");
  return success();
}

//===----------------------------------------------------------------------===//
// BufferOp
//===----------------------------------------------------------------------===//

LogicalResult BufferOp::verify() {
  int64_t elementSize = elementBytes(getDtype());
  if (!elementSize)
    return emitOpError("dtype must be f32, bf16, f16, i64 or i32, got ")
           << getDtype();
  std::optional<int64_t> bytes = elementSize;
  for (int64_t d : getShape()) {
    if (d < 0)
      return emitOpError("shape dims must be non-negative, got ") << d;
    bytes = bytes ? llvm::checkedMul(*bytes, d) : std::nullopt;
  }
  if (!bytes)
    return emitOpError("shape is too large");
  int64_t size = getSizeAttr().getInt(), offset = getOffsetAttr().getInt();
  if (size != *bytes)
    return emitOpError("size must be the tensor's ")
           << *bytes << " bytes, got " << size;
  if (offset < 0)
    return emitOpError("offset must be non-negative, got ") << offset;

  auto arena = dyn_cast<ArenaOp>(&(*this)->getBlock()->front());
  if (!arena)
    return emitOpError("needs an exec.arena as the first op of its module");
  int64_t arenaSize = arena.getSizeAttr().getInt();
  int64_t alignment = arena.getAlignmentAttr().getInt();
  if (alignment > 0 && offset % alignment != 0)
    return emitOpError("offset ")
           << offset << " is not a multiple of the arena's alignment ("
           << alignment << ")";
  if (offset > arenaSize - size)
    return emitOpError("bytes [")
           << offset << ", " << offset + size << ") lie outside the arena of "
           << arenaSize << " bytes";

  if (isPersistent() != getInit().has_value())
    return emitOpError(isPersistent()
                           ? "a persistent buffer needs an initializer"
                           : "only persistent buffers have an initializer");
  if (getStd() && getInit() != Init::normal)
    return emitOpError("std is for init(normal) only");

  // Sharded buffers: cutting the global shape by each split in turn, into
  // blocks of ceil(extent / group size), gives the shape.
  bool anySplit = getShardDims() || getShardGroups() || getGlobalShape();
  if (!anySplit)
    return success();
  if (!getShardDims() || !getShardGroups() || !getGlobalShape())
    return emitOpError(
        "a sharded buffer needs shard_dims, shard_groups and global_shape");
  ArrayRef<int64_t> dims = *getShardDims();
  ArrayAttr groups = *getShardGroups();
  if (dims.empty() || dims.size() != groups.size())
    return emitOpError("shard_dims and shard_groups must have one entry per "
                       "split, at least one");
  if (getGlobalShape()->size() != getShape().size())
    return emitOpError("global_shape must have the rank of shape (")
           << getShape().size() << ")";
  FailureOr<forge::dist::Mesh> mesh = meshOf(*this);
  if (failed(mesh))
    return failure();
  SmallVector<int64_t> block(*getGlobalShape());
  for (auto [dim, group] : llvm::zip(dims, groups)) {
    StringRef name = cast<StringAttr>(group).getValue();
    if (dim < 0 || dim >= static_cast<int64_t>(block.size()))
      return emitOpError("shard dim ")
             << dim << " is out of range for rank " << block.size();
    int64_t n = mesh->size(name.str());
    if (n == 0)
      return emitOpError("shard group '")
             << name << "' is not a dim of dist.mesh";
    block[dim] = (block[dim] + n - 1) / n;
  }
  if (ArrayRef<int64_t>(block) != getShape())
    return emitOpError("global_shape [")
           << *getGlobalShape() << "] split by its groups gives blocks of ["
           << block << "], not the shape";
  return success();
}

//===----------------------------------------------------------------------===//
// ProgramOp
//===----------------------------------------------------------------------===//

LogicalResult ProgramOp::verify() {
  for (Operation &op : getBody().front())
    if (!isa<LaunchOp, CollectiveOp>(op))
      return op.emitOpError("cannot be in an exec.program (it holds "
                            "exec.launch and exec.collective ops only)");
  return success();
}

LogicalResult ProgramOp::verifySymbolUses(SymbolTableCollection &table) {
  SmallVector<BufferOp> inputs, outputs;
  if (failed(lookupBuffers(*this, table, getInputs(), inputs)) ||
      failed(lookupBuffers(*this, table, getOutputs(), outputs)))
    return failure();
  for (BufferOp input : inputs)
    if (input.getRole() != Role::input)
      return emitOpError("input '")
             << input.getSymName() << "' must be a buffer of role input, not "
             << stringifyRole(input.getRole());
  return success();
}

//===----------------------------------------------------------------------===//
// LaunchOp
//===----------------------------------------------------------------------===//

LogicalResult LaunchOp::verify() {
  if (getKernel().empty())
    return emitOpError("needs a kernel name");
  return verifyStream(*this, getStreamAttr().getInt());
}

LogicalResult LaunchOp::verifySymbolUses(SymbolTableCollection &table) {
  SmallVector<BufferOp> buffers;
  if (failed(lookupBuffers(*this, table, getIns(), buffers)) ||
      failed(lookupBuffers(*this, table, getOuts(), buffers)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// CollectiveOp
//===----------------------------------------------------------------------===//

LogicalResult CollectiveOp::verify() {
  if (failed(verifyStream(*this, getStreamAttr().getInt())))
    return failure();
  if (getOrigin().empty())
    return emitOpError("needs an origin (design.md §5.7: every collective "
                       "says why it is there)");
  StringRef kind = getKind();
  if (kind.empty())
    return emitOpError("needs a kind");
  // Other kinds are allowed: the parallelism passes add collectives, and
  // the plan writer rejects what the runtime cannot run.
  if ((kind == "all_gather" || kind == "reduce_scatter") && !getDim())
    return emitOpError("'") << kind << "' needs a dim";
  if ((kind == "reduce_scatter" || kind == "all_reduce") && !getReduce())
    return emitOpError("'") << kind << "' needs a reduce";
  if (std::optional<StringRef> reduce = getReduce();
      reduce && *reduce != "sum" && *reduce != "avg" && *reduce != "max")
    return emitOpError("reduce must be sum, avg or max, got '")
           << *reduce << "'";
  int64_t groupSize = getGroupSizeAttr().getInt();
  if (groupSize < 1)
    return emitOpError("group size must be positive, got ") << groupSize;
  FailureOr<forge::dist::Mesh> mesh = meshOf(*this);
  if (failed(mesh))
    return failure();
  if (mesh->dims.empty())
    return emitOpError("needs the module attribute dist.mesh");
  int64_t meshSize = mesh->size(getGroup().str());
  if (meshSize == 0)
    return emitOpError("group '")
           << getGroup() << "' is not a dim of dist.mesh";
  if (meshSize != groupSize)
    return emitOpError("group '") << getGroup() << "' has " << meshSize
                                  << " ranks in dist.mesh, not " << groupSize;
  return success();
}

LogicalResult CollectiveOp::verifySymbolUses(SymbolTableCollection &table) {
  SmallVector<BufferOp> ins, outs;
  if (failed(lookupBuffers(*this, table, getIns(), ins)) ||
      failed(lookupBuffers(*this, table, getOuts(), outs)))
    return failure();
  // The block collectives move whole tensors of one dtype, and their shapes
  // are tied by the group size as the dist ops' are: a block is the whole
  // tensor along `dim` divided by the group size, rounded up (FSDP pads the
  // last blocks of a dim the group does not divide).
  StringRef kind = getKind();
  if (kind != "all_gather" && kind != "reduce_scatter" && kind != "all_reduce")
    return success();
  if (ins.size() != 1 || outs.size() != 1)
    return emitOpError("'") << kind << "' takes one buffer and writes one";
  BufferOp in = ins.front(), out = outs.front();
  if (in.getDtype() != out.getDtype())
    return emitOpError("input and output dtypes differ");
  int64_t n = getGroupSizeAttr().getInt();
  if (n < 1)
    return success(); // reported by the verifier
  ArrayRef<int64_t> block =
      kind == "all_gather" ? in.getShape() : out.getShape();
  ArrayRef<int64_t> whole =
      kind == "all_gather" ? out.getShape() : in.getShape();
  std::optional<int64_t> dim;
  if (kind != "all_reduce" && getDim())
    dim = getDimAttr().getInt();
  bool ok = block.size() == whole.size() &&
            (!dim || (*dim >= 0 && *dim < static_cast<int64_t>(block.size())));
  for (size_t d = 0; ok && d < block.size(); ++d)
    ok = static_cast<int64_t>(d) == dim ? block[d] == (whole[d] + n - 1) / n
                                        : block[d] == whole[d];
  if (!ok)
    return emitOpError("'")
           << kind << "' over " << n << " ranks cannot take [" << in.getShape()
           << "] to [" << out.getShape() << "]"
           << (dim ? " along dim " + std::to_string(*dim) : std::string());
  return success();
}

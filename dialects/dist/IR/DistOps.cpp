//===- DistOps.cpp - Collectives over mesh groups -------------------------===//

#include "dialects/dist/IR/DistOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace forge::dist;

#define GET_OP_CLASSES
#include "dialects/dist/IR/DistOps.cpp.inc"

namespace {

/// `group` must be a dim of the enclosing module's mesh with `size` ranks.
LogicalResult verifyGroup(Operation *op, StringRef group, int64_t size) {
  if (size < 1)
    return op->emitOpError("group size must be positive, got ") << size;
  auto module = op->getParentOfType<ModuleOp>();
  Mesh mesh;
  std::string error;
  if (!module || !readMesh(module, mesh, error))
    return op->emitOpError(error.empty() ? "is not inside a module" : error);
  if (mesh.dims.empty())
    return op->emitOpError("needs the module attribute dist.mesh");
  int64_t meshSize = mesh.size(group.str());
  if (meshSize == 0)
    return op->emitOpError("group '") << group << "' is not a dim of dist.mesh";
  if (meshSize != size)
    return op->emitOpError("group '") << group << "' has " << meshSize
                                      << " ranks in dist.mesh, not " << size;
  return success();
}

LogicalResult verifyReduce(Operation *op, StringRef reduce, bool allowMax) {
  if (reduce == "sum" || reduce == "avg" || (allowMax && reduce == "max"))
    return success();
  return op->emitOpError("reduce must be ")
         << (allowMax ? "sum, avg or max" : "sum or avg") << ", got '" << reduce
         << "'";
}

/// `big` is `small` with dim `dim` multiplied by `n`, or, when n does not
/// divide it, padded: `small`'s size along `dim` is ceil(big's / n) (the
/// blocks of the last ranks then end in, or are all, zero padding, as
/// FSDP2's uneven shards).
LogicalResult verifyBlocks(Operation *op, RankedTensorType small,
                           RankedTensorType big, int64_t dim, int64_t n,
                           StringRef smallName, StringRef bigName) {
  if (small.getElementType() != big.getElementType())
    return op->emitOpError("input and result element types differ");
  if (small.getRank() != big.getRank())
    return op->emitOpError("input and result ranks differ");
  if (dim < 0 || dim >= small.getRank())
    return op->emitOpError("dim ")
           << dim << " is out of range for rank " << small.getRank();
  for (int64_t d = 0; d < small.getRank(); ++d) {
    if (d == dim) {
      int64_t b = big.getDimSize(d), s = small.getDimSize(d);
      if (b < 1 || s != (b + n - 1) / n)
        return op->emitOpError()
               << smallName << " dim " << d << " must be " << bigName << "'s ("
               << b << ") divided by " << n
               << ", rounded up (the last blocks padded), got " << s;
      continue;
    }
    if (big.getDimSize(d) != small.getDimSize(d))
      return op->emitOpError()
             << bigName << " dim " << d << " must be " << small.getDimSize(d)
             << " (" << smallName << "'s), got " << big.getDimSize(d);
  }
  return success();
}

} // namespace

LogicalResult AllGatherOp::verify() {
  if (failed(verifyGroup(*this, getGroup(), getGroupSize())))
    return failure();
  if (std::optional<StringRef> f = getFp8(); f && *f != "e4m3" && *f != "e5m2")
    return emitOpError("fp8 must be \"e4m3\" or \"e5m2\", got \"")
           << *f << "\"";
  return verifyBlocks(*this, getInput().getType(), getResult().getType(),
                      getDim(), getGroupSize(), "the input", "the result");
}

LogicalResult ReduceScatterOp::verify() {
  if (failed(verifyGroup(*this, getGroup(), getGroupSize())) ||
      failed(verifyReduce(*this, getReduce(), /*allowMax=*/false)))
    return failure();
  return verifyBlocks(*this, getResult().getType(), getInput().getType(),
                      getDim(), getGroupSize(), "the result", "the input");
}

LogicalResult AllReduceOp::verify() {
  if (failed(verifyGroup(*this, getGroup(), getGroupSize())))
    return failure();
  return verifyReduce(*this, getReduce(), /*allowMax=*/true);
}

LogicalResult CopyOp::verify() {
  return verifyGroup(*this, getGroup(), getGroupSize());
}

LogicalResult SliceOp::verify() {
  if (failed(verifyGroup(*this, getGroup(), getGroupSize())))
    return failure();
  return verifyBlocks(*this, getResult().getType(), getInput().getType(),
                      getDim(), getGroupSize(), "the result", "the input");
}

namespace {

/// The shapes an expert all-to-all over `n` ranks relates: `sent` rows
/// ([R, D]) grouped by the E experts of `sizes`, `received` rows ([n*R, D]),
/// the [n, E/n] receive counts.
LogicalResult verifyExpertExchange(Operation *op, RankedTensorType sent,
                                   RankedTensorType received,
                                   RankedTensorType sizes,
                                   RankedTensorType counts, int64_t n) {
  if (sent.getRank() != 2 || received.getRank() != 2)
    return op->emitOpError("rows must be 2-D [rows, features]");
  if (sent.getElementType() != received.getElementType() ||
      sent.getDimSize(1) != received.getDimSize(1))
    return op->emitOpError("sent and received rows must have the same "
                           "features and element type");
  if (received.getDimSize(0) != n * sent.getDimSize(0))
    return op->emitOpError("the received rows must be ")
           << n << " x the sent rows (" << sent.getDimSize(0)
           << "), the most a rank can receive; got " << received.getDimSize(0);
  if (sizes.getRank() != 1)
    return op->emitOpError("group sizes must be 1-D [experts]");
  int64_t experts = sizes.getDimSize(0);
  if (experts % n != 0)
    return op->emitOpError("")
           << experts << " experts do not divide over " << n << " ranks";
  if (counts.getRank() != 2 || counts.getDimSize(0) != n ||
      counts.getDimSize(1) != experts / n)
    return op->emitOpError("counts must be [")
           << n << ", " << experts / n << "] (ranks x local experts), got "
           << counts;
  return success();
}

} // namespace

LogicalResult ExpertDispatchOp::verify() {
  if (failed(verifyGroup(*this, getGroup(), getGroupSize())))
    return failure();
  auto counts = getReceived().getType();
  if (getCounts() && getCounts().getType() != counts)
    return emitOpError("the counts operand and result must have one type");
  int64_t n = getGroupSize();
  auto local = getLocalSizes().getType();
  if (local.getRank() != 1 ||
      local.getDimSize(0) * n != getGroupSizes().getType().getDimSize(0))
    return emitOpError("local sizes must be [experts / ") << n << "]";
  return verifyExpertExchange(*this, getRows().getType(), getResult().getType(),
                              getGroupSizes().getType(), counts, n);
}

LogicalResult ExpertCombineOp::verify() {
  if (failed(verifyGroup(*this, getGroup(), getGroupSize())))
    return failure();
  return verifyExpertExchange(*this, getResult().getType(), getRows().getType(),
                              getGroupSizes().getType(), getCounts().getType(),
                              getGroupSize());
}

namespace {

LogicalResult verifyPeer(Operation *op, StringRef group, int64_t size,
                         int64_t peer) {
  if (failed(verifyGroup(op, group, size)))
    return failure();
  if (peer < 0 || peer >= size)
    return op->emitOpError("peer ") << peer << " is not a rank of the " << size
                                    << " of '" << group << "'";
  return success();
}

} // namespace

LogicalResult SendOp::verify() {
  if (getResult().getType().getRank() != 0)
    return emitOpError("result must be a scalar");
  return verifyPeer(*this, getGroup(), getGroupSize(), getPeer());
}

LogicalResult RecvOp::verify() {
  return verifyPeer(*this, getGroup(), getGroupSize(), getPeer());
}

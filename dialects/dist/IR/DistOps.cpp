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

/// `big` is `small` with dim `dim` multiplied by `n`.
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
    int64_t want = small.getDimSize(d) * (d == dim ? n : 1);
    if (big.getDimSize(d) != want)
      return op->emitOpError()
             << bigName << " dim " << d << " must be " << want << " ("
             << smallName << " times " << (d == dim ? n : 1) << "), got "
             << big.getDimSize(d);
  }
  return success();
}

} // namespace

LogicalResult AllGatherOp::verify() {
  if (failed(verifyGroup(*this, getGroup(), getGroupSize())))
    return failure();
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

//===- ExecDialect.cpp - The exec launch dialect --------------------------===//

#include "dialects/exec/IR/ExecDialect.h"
#include "dialects/exec/IR/ExecOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace forge::exec;

#include "dialects/exec/IR/ExecDialect.cpp.inc"
#include "dialects/exec/IR/ExecEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/exec/IR/ExecAttrs.cpp.inc"

void ExecDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/exec/IR/ExecOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/exec/IR/ExecAttrs.cpp.inc"
      >();
}

// The passes before convert-forge-to-exec record their decisions on forge
// IR as exec.* attributes; a malformed one in a hand-edited dump should be
// reported where it is, not when the plan is written.
LogicalResult ExecDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().strref();
  if (name == kStreamAttr) {
    auto stream = dyn_cast<IntegerAttr>(attr.getValue());
    if (!stream || (stream.getInt() != 0 && stream.getInt() != 1))
      return op->emitOpError(
                 "exec.stream must be 0 (compute) or 1 (communication), got ")
             << attr.getValue();
    return success();
  }
  if (name == "exec.offsets") {
    auto offsets = dyn_cast<DenseI64ArrayAttr>(attr.getValue());
    if (!offsets || offsets.size() != static_cast<int64_t>(op->getNumResults()))
      return op->emitOpError("exec.offsets must hold one offset per result (")
             << op->getNumResults() << ")";
    return success();
  }
  if (name == "exec.offset") {
    auto offset = dyn_cast<IntegerAttr>(attr.getValue());
    if (!offset || offset.getInt() < 0)
      return op->emitOpError("exec.offset must be a non-negative integer");
    return success();
  }
  return success();
}

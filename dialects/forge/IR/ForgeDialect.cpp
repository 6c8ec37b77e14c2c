//===- ForgeDialect.cpp - The forge graph dialect -------------------------===//

#include "dialects/forge/IR/ForgeDialect.h"
#include "dialects/dist/IR/DistDialect.h"
#include "dialects/exec/IR/ExecDialect.h"
#include "dialects/forge/IR/ForgeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace forge;

#include "dialects/forge/IR/ForgeDialect.cpp.inc"
#include "dialects/forge/IR/ForgeEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/forge/IR/ForgeAttrs.cpp.inc"

void ForgeDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/forge/IR/ForgeOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/forge/IR/ForgeAttrs.cpp.inc"
      >();
}

void forge::registerForgeDialects(DialectRegistry &registry) {
  registry.insert<ForgeDialect, dist::DistDialect, exec::ExecDialect,
                  func::FuncDialect>();
}

//===- DistOps.h - Collectives over mesh groups -----------------*- C++ -*-===//

#ifndef FORGE_DIALECTS_DIST_IR_DISTOPS_H
#define FORGE_DIALECTS_DIST_IR_DISTOPS_H

#include "dialects/dist/IR/DistDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "dialects/dist/IR/DistOps.h.inc"

#endif // FORGE_DIALECTS_DIST_IR_DISTOPS_H

//===- ExecOps.h - Arena buffers and launches -------------------*- C++ -*-===//

#ifndef FORGE_DIALECTS_EXEC_IR_EXECOPS_H
#define FORGE_DIALECTS_EXEC_IR_EXECOPS_H

#include "dialects/exec/IR/ExecDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"

#include "dialects/exec/IR/ExecEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/exec/IR/ExecAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialects/exec/IR/ExecOps.h.inc"

#endif // FORGE_DIALECTS_EXEC_IR_EXECOPS_H

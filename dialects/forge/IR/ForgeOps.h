//===- ForgeOps.h - forge graph ops ------------------------------*- C++
//-*-===//

#ifndef FORGE_DIALECTS_FORGE_IR_FORGEOPS_H
#define FORGE_DIALECTS_FORGE_IR_FORGEOPS_H

#include "dialects/forge/IR/ForgeDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/forge/IR/ForgeEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/forge/IR/ForgeAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialects/forge/IR/ForgeOps.h.inc"

#endif // FORGE_DIALECTS_FORGE_IR_FORGEOPS_H

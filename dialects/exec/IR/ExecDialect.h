//===- ExecDialect.h - The exec launch dialect ------------------*- C++ -*-===//

#ifndef FORGE_DIALECTS_EXEC_IR_EXECDIALECT_H
#define FORGE_DIALECTS_EXEC_IR_EXECDIALECT_H

#include "mlir/IR/Dialect.h"

#include "dialects/exec/IR/ExecDialect.h.inc"

#endif // FORGE_DIALECTS_EXEC_IR_EXECDIALECT_H

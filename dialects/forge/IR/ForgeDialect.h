//===- ForgeDialect.h - The forge graph dialect ------------------*- C++
//-*-===//

#ifndef FORGE_DIALECTS_FORGE_IR_FORGEDIALECT_H
#define FORGE_DIALECTS_FORGE_IR_FORGEDIALECT_H

#include "mlir/IR/Dialect.h"

#include "dialects/forge/IR/ForgeDialect.h.inc"

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace forge {
/// Registers every forge dialect and the upstream dialects forge IR uses
/// (design.md §5.4: one narrow registration function).
void registerForgeDialects(mlir::DialectRegistry &registry);
} // namespace forge

#endif // FORGE_DIALECTS_FORGE_IR_FORGEDIALECT_H

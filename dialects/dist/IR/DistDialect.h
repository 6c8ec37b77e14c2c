//===- DistDialect.h - The dist collectives dialect -------------*- C++ -*-===//

#ifndef FORGE_DIALECTS_DIST_IR_DISTDIALECT_H
#define FORGE_DIALECTS_DIST_IR_DISTDIALECT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Dialect.h"

#include "dialects/dist/IR/DistDialect.h.inc"

#include <cstdint>
#include <string>
#include <vector>

namespace forge::dist {

/// The module attribute holding the mesh, and a param's shard spec.
constexpr const char kMeshAttr[] = "dist.mesh";
constexpr const char kShardAttr[] = "dist.shard";

/// The mesh of a module: dims in order with their sizes (empty when the
/// module is not sharded).
struct Mesh {
  std::vector<std::string> dims;
  std::vector<int64_t> sizes;

  /// The size of `dim`, or 0 when the mesh has no such dim.
  int64_t size(const std::string &dim) const;
};

/// Reads `dist.mesh` of `module` (an empty mesh when absent). Returns false
/// with `error` set when the attribute is malformed.
bool readMesh(mlir::ModuleOp module, Mesh &mesh, std::string &error);

/// Sets `dist.mesh` on `module`.
void writeMesh(mlir::ModuleOp module, const Mesh &mesh);

} // namespace forge::dist

#endif // FORGE_DIALECTS_DIST_IR_DISTDIALECT_H

//===- DistDialect.cpp - The dist collectives dialect ---------------------===//

#include "dialects/dist/IR/DistDialect.h"
#include "dialects/dist/IR/DistOps.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace forge::dist;

#include "dialects/dist/IR/DistDialect.cpp.inc"

void DistDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/dist/IR/DistOps.cpp.inc"
      >();
}

int64_t Mesh::size(const std::string &dim) const {
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] == dim)
      return sizes[i];
  return 0;
}

bool forge::dist::readMesh(ModuleOp module, Mesh &mesh, std::string &error) {
  mesh = Mesh();
  auto attr = module->getAttrOfType<DictionaryAttr>(kMeshAttr);
  if (!attr)
    return true;
  auto dims = attr.getAs<ArrayAttr>("dims");
  auto sizes = attr.getAs<ArrayAttr>("sizes");
  if (!dims || !sizes || dims.size() != sizes.size()) {
    error = "dist.mesh needs 'dims' (strings) and 'sizes' (integers) of the "
            "same length";
    return false;
  }
  for (auto [d, s] : llvm::zip(dims, sizes)) {
    auto name = dyn_cast<StringAttr>(d);
    auto size = dyn_cast<IntegerAttr>(s);
    if (!name || !size || size.getInt() < 1) {
      error = "dist.mesh dims must be strings and sizes positive integers";
      return false;
    }
    mesh.dims.push_back(name.str());
    mesh.sizes.push_back(size.getInt());
  }
  return true;
}

void forge::dist::writeMesh(ModuleOp module, const Mesh &mesh) {
  Builder b(module.getContext());
  SmallVector<Attribute> dims, sizes;
  for (auto [d, s] : llvm::zip(mesh.dims, mesh.sizes)) {
    dims.push_back(b.getStringAttr(d));
    sizes.push_back(b.getI64IntegerAttr(s));
  }
  module->setAttr(
      kMeshAttr,
      b.getDictionaryAttr({b.getNamedAttr("dims", b.getArrayAttr(dims)),
                           b.getNamedAttr("sizes", b.getArrayAttr(sizes))}));
}

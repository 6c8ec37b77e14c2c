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

bool forge::dist::readShard(Operation *op, std::vector<Split> &splits,
                            std::string &error) {
  splits.clear();
  Attribute attr = op->getAttr(kShardAttr);
  if (!attr)
    return true;
  auto list = dyn_cast<ArrayAttr>(attr);
  if (!list) {
    error = "dist.shard must be a list of {dim, group} splits";
    return false;
  }
  for (Attribute a : list) {
    auto d = dyn_cast<DictionaryAttr>(a);
    auto dim = d ? d.getAs<IntegerAttr>("dim") : IntegerAttr();
    auto group = d ? d.getAs<StringAttr>("group") : StringAttr();
    if (!dim || !group || dim.getInt() < 0) {
      error = "each dist.shard split needs a dim >= 0 and a group";
      return false;
    }
    auto size = d.getAs<IntegerAttr>("size");
    if (size && size.getInt() < 1) {
      error = "a dist.shard split's size must be positive";
      return false;
    }
    splits.push_back({dim.getInt(), group.str(), size ? size.getInt() : 0});
  }
  return true;
}

void forge::dist::appendShard(Operation *op, int64_t dim,
                              const std::string &group, int64_t size) {
  Builder b(op->getContext());
  SmallVector<Attribute> list;
  if (auto old = op->getAttrOfType<ArrayAttr>(kShardAttr))
    list.append(old.begin(), old.end());
  SmallVector<NamedAttribute> fields = {
      b.getNamedAttr("dim", b.getI64IntegerAttr(dim)),
      b.getNamedAttr("group", b.getStringAttr(group))};
  if (size)
    fields.push_back(b.getNamedAttr("size", b.getI64IntegerAttr(size)));
  list.push_back(b.getDictionaryAttr(fields));
  op->setAttr(kShardAttr, b.getArrayAttr(list));
}

void forge::dist::setOrigin(Operation *op, StringRef pass, StringRef what,
                            StringRef of, StringRef phase) {
  Builder b(op->getContext());
  op->setAttr(
      kOriginAttr,
      b.getDictionaryAttr({b.getNamedAttr("pass", b.getStringAttr(pass)),
                           b.getNamedAttr("what", b.getStringAttr(what)),
                           b.getNamedAttr("of", b.getStringAttr(of)),
                           b.getNamedAttr("phase", b.getStringAttr(phase))}));
}

forge::dist::Origin forge::dist::originOf(Operation *op) {
  Origin o;
  auto d = op->getAttrOfType<DictionaryAttr>(kOriginAttr);
  if (!d)
    return o;
  auto get = [&](StringRef key) {
    auto s = d.getAs<StringAttr>(key);
    return s ? s.str() : std::string();
  };
  o.pass = get("pass");
  o.what = get("what");
  o.of = get("of");
  o.phase = get("phase");
  return o;
}

std::string forge::dist::Origin::reason() const {
  if (pass.empty() && what.empty())
    return "";
  return pass + ": " + what + " (" + phase + ")";
}

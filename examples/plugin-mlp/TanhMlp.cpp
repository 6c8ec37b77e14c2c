//===- TanhMlp.cpp - Example plugin: a custom MLP -------------------------===//
//
// The C++ form of KempnerForge's "register your own MLP": building this file
// as a shared library and passing it to `forgec --plugin` registers the MLP
// `tanh_mlp`, which a job then selects with
//
//   [model]
//   activation = "tanh_mlp"
//
// Registration happens in a static initializer, so loading the library is
// all it takes.
//
//===----------------------------------------------------------------------===//

#include "frontends/registry/Registry.h"

#include <cstdio>

namespace {

const bool registered = [] {
  std::string error;
  bool ok = forge::registry::mlps().add(
      {"tanh_mlp",
       "down(tanh(up(x))); 2 matrices (example plugin)",
       {{"up_proj", /*outIsHidden=*/true}, {"down_proj", false}},
       "tanh",
       /*gated=*/false},
      &error);
  if (!ok)
    std::fprintf(stderr, "tanh_mlp plugin: %s\n", error.c_str());
  return ok;
}();

} // namespace

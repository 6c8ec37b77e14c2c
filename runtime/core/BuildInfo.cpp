//===- BuildInfo.cpp - What this runtime was built with -------------------===//

#include "runtime/core/BuildInfo.h"

#if FORGE_HAVE_CUDA
#include "runtime/cuda/Device.h"
#endif

namespace forge::runtime {

bool hasCudaBackend() { return FORGE_HAVE_CUDA; }

int cudaDevices(std::string *why) {
#if FORGE_HAVE_CUDA
  return cuda::deviceCount(why);
#else
  if (why)
    *why = "this forge-run was built without the CUDA backend";
  return 0;
#endif
}

std::string describeBackends() {
  std::string out = "backends: cpu (built in)";
#if FORGE_HAVE_CUDA
  out += ", cuda (built for sm ";
  out += cuda::compiledArchitectures();
  std::string why;
  int n = cuda::deviceCount(&why);
  out += "; " + std::to_string(n) + " device(s) visible";
  if (n == 0 && !why.empty())
    out += ": " + why;
  for (int i = 0; i < n; ++i)
    out += "\n  cuda:" + std::to_string(i) + " " + cuda::deviceDescription(i);
  out += ")";
#else
  out += "; cuda not built (configure with nvcc and FORGE_ENABLE_CUDA=AUTO|ON)";
#endif
  return out;
}

} // namespace forge::runtime

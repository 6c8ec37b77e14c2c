//===- BuildInfo.h - What this runtime was built with ---------------------===//

#ifndef FORGE_RUNTIME_CORE_BUILDINFO_H
#define FORGE_RUNTIME_CORE_BUILDINFO_H

#include <string>

namespace forge::runtime {

/// Whether the CUDA backend is compiled into this binary.
bool hasCudaBackend();

/// CUDA devices this process can use: 0 without the CUDA backend, a
/// driver or a GPU (`why` then says which, when it is known).
int cudaDevices(std::string *why = nullptr);

/// One line per backend: compiled in or not, and for CUDA the devices seen.
std::string describeBackends();

} // namespace forge::runtime

#endif // FORGE_RUNTIME_CORE_BUILDINFO_H

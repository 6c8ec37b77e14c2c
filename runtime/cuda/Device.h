//===- Device.h - CUDA device discovery
//------------------------------------===//

#ifndef FORGE_RUNTIME_CUDA_DEVICE_H
#define FORGE_RUNTIME_CUDA_DEVICE_H

#include <string>

namespace forge::cuda {

/// Number of usable CUDA devices; 0 when there is no driver or no GPU.
/// `why` receives the driver's reason when it is 0.
int deviceCount(std::string *why = nullptr);

/// "name (sm_XY, N GiB)" of device `index`, or empty on error.
std::string deviceDescription(int index);

/// The CUDA architectures this binary carries code for, e.g. "80,90,100".
const char *compiledArchitectures();

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_DEVICE_H

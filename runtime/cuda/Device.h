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

/// Total memory of device `index` in bytes (0 on error).
double deviceMemoryBytes(int index);

/// Dense peak FLOP/s of device `index` for MFU: bf16 tensor cores when
/// `lowPrecision`, else fp32 (no TF32, as forge's fp32 matmuls). From the
/// architecture's SXM data-sheet figure (sm_80 A100, sm_90 H100, sm_100
/// B200); 0 for other devices (MFU is then not reported unless
/// FORGE_PEAK_TFLOPS gives the peak).
double peakFlops(int index, bool lowPrecision);

/// The CUDA architectures this binary carries code for, e.g. "80,90,100".
const char *compiledArchitectures();

} // namespace forge::cuda

#endif // FORGE_RUNTIME_CUDA_DEVICE_H

//===- Metrics.h - MFU, JSONL and TensorBoard metrics sinks -----*- C++ -*-===//
//
// Reference §7.1-§7.3: what a training step reports and where it goes.
//
// - MFU = flops_per_token * tokens_per_sec / (peak_flops_per_rank *
//   world_size). On the CPU the peak is computed from the machine (cores x
//   clock x fp32 FLOPs per cycle per core, cpuPeak()) since KempnerForge's
//   table only knows GPUs; FORGE_PEAK_TFLOPS overrides it.
// - JsonlWriter: one JSON object per line, written with one write(2) each so
//   a crash of the process loses no finished line.
// - TensorBoardWriter: a TensorBoard event file (TFRecord framing around
//   hand-encoded tensorflow.Event protobufs) that TensorBoard reads as is.
// - MetricsSink: fans one step's scalars out to whichever writers are open.
//
// Errors are returned as strings ("" = success) naming the file and the
// errno text; nothing here throws.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_TRAIN_METRICS_H
#define FORGE_RUNTIME_TRAIN_METRICS_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace forge::train {

/// One step's scalars, in the order they are written: (tag, value), e.g.
/// ("train/loss", 2.31). Tags should be unique within one call.
using Scalars = std::vector<std::pair<std::string, double>>;

//===----------------------------------------------------------------------===//
// Peak FLOP/s and MFU
//===----------------------------------------------------------------------===//

/// What the CPU peak was computed from.
struct CpuInfo {
  std::string vendor;    ///< vendor_id, e.g. "GenuineIntel", "AuthenticAMD"
  std::string modelName; ///< "model name"
  int family = 0;        ///< "cpu family" (x86)
  int model = 0;         ///< "model" (x86)
  /// Physical cores this process may run on: distinct (physical id, core id)
  /// among the CPUs of its affinity mask, since SMT siblings share one core's
  /// FMA units.
  int cores = 0;
  double ghz = 0;        ///< max clock (cpufreq max, else the highest cpu MHz)
  int flopsPerCycle = 0; ///< fp32 FLOPs per cycle per core
  std::string isa;       ///< the vector unit that sets flopsPerCycle
  int bf16FlopsPerCycle = 0; ///< bf16 matmul FLOPs per cycle per core
  std::string bf16Isa;       ///< the unit that sets bf16FlopsPerCycle
};

/// fp32 FLOPs per cycle per core from /proc/cpuinfo's vendor, family, model
/// and flags (x86 "flags" or Arm "Features"). Sets `isa` to a short
/// explanation. FMA counts 2 FLOPs; two FMA pipes per core throughout:
///   AVX-512 with a 512-bit datapath:   2 pipes x 16 lanes x 2 = 64
///   AVX-512 on AMD Zen 4 (family 25), which runs 512-bit ops as two 256-bit
///   halves, and AVX2 + FMA:            2 pipes x  8 lanes x 2 = 32
///   AVX2 + FMA on Zen 1 (2 x 128-bit): 2 pipes x  4 lanes x 2 = 16
///   AVX without FMA (one add + one mul pipe, 8 lanes):          16
///   SSE (one add + one mul pipe, 4 lanes):                       8
///   Arm NEON/ASIMD (2 x 128-bit FMA):  2 pipes x  4 lanes x 2 = 16
/// AMX (amx_tile/amx_bf16/amx_int8) is ignored: it has no fp32 path.
int fp32FlopsPerCycle(std::string_view vendor, int family, int model,
                      std::string_view flags, std::string *isa = nullptr);

/// bf16 matmul FLOPs per cycle per core, for runs whose GEMMs use the
/// CPU's bf16 instructions (cpu/Bf16Gemm.h): AMX (amx_bf16) 1024; AVX-512
/// BF16 (avx512_bf16), whose dot products take two bf16 pairs per fp32
/// lane, twice `fp32`; otherwise `fp32` (no bf16 instructions). Sets `isa`.
int bf16FlopsPerCycle(std::string_view flags, int fp32,
                      std::string *isa = nullptr);

/// Parses /proc/cpuinfo text: vendor, model name, family, model, flags, the
/// highest "cpu MHz", and the physical cores among `allowedCpus` (logical
/// processor numbers; all processors when empty). `maxMhz` > 0 (cpufreq's
/// cpuinfo_max_freq / 1000) takes precedence over "cpu MHz", which on a
/// scaling governor is only the current clock.
CpuInfo parseCpuInfo(std::string_view procCpuinfo,
                     const std::vector<int> &allowedCpus, double maxMhz);

/// Reads this machine: /proc/cpuinfo, sched_getaffinity and
/// /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq.
CpuInfo probeCpu();

/// A peak FLOP/s for one rank and where it came from.
struct PeakFlops {
  double flops = 0;   ///< FLOP/s; 0 when unknown
  std::string source; ///< e.g. "FORGE_PEAK_TFLOPS=1.5" or the formula
  std::string error;  ///< non-empty when FORGE_PEAK_TFLOPS is malformed
};

/// The CPU's fp32 peak, peak = cores x GHz x 1e9 x flopsPerCycle (with
/// `bf16`, the bf16 matmul peak: bf16FlopsPerCycle), or FORGE_PEAK_TFLOPS x
/// 1e12 when that variable is set (a positive number). A malformed
/// FORGE_PEAK_TFLOPS sets `error` and leaves flops at 0.
PeakFlops cpuPeak(bool bf16 = false);

/// cpuPeak(bf16).flops: the value MFU divides by (0 when unknown or
/// malformed).
double cpuPeakFlops(bool bf16 = false);

/// MFU as a fraction (0.42 = 42%), reference §7.2:
///   MFU = flops_per_token * tokens_per_sec / (peak_flops * world_size)
/// where tokens_per_sec counts all ranks' tokens and peak_flops is one
/// rank's. Returns 0 when the peak or the world size is not positive.
double computeMfu(double flopsPerToken, double tokensPerSec,
                  double peakFlopsPerRank, int64_t worldSize);

/// The constants of one run's MFU, fixed before the first step.
struct MfuInfo {
  double flopsPerToken = 0;    ///< forgec --report's KempnerForge formula
  double peakFlopsPerRank = 0; ///< cpuPeakFlops() or a GPU's table peak
  int64_t worldSize = 1;
  std::string peakSource;

  double mfu(double tokensPerSec) const {
    return computeMfu(flopsPerToken, tokensPerSec, peakFlopsPerRank, worldSize);
  }
};

//===----------------------------------------------------------------------===//
// JSONL
//===----------------------------------------------------------------------===//

/// Appends `{"step": N, "time": <unix seconds>, "<tag>": <value>, ...}` lines.
/// Numbers use the shortest text that reads back to the same double. NaN and
/// +-Inf, which JSON cannot express, are written as null: Python's json reads
/// None and pandas.read_json(lines=True) reads NaN in a float column (the
/// bare tokens NaN/Infinity would break strict JSON readers, and strings
/// would turn pandas' column into objects).
class JsonlWriter {
public:
  JsonlWriter() = default;
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter &) = delete;
  JsonlWriter &operator=(const JsonlWriter &) = delete;

  /// Opens `path` for appending (a resumed run continues the file), creating
  /// missing parent directories. Returns "" or why not.
  std::string open(const std::string &path);
  bool isOpen() const { return fd_ >= 0; }
  const std::string &path() const { return path_; }

  /// Writes one line. `wallTime` is in unix seconds. Returns "" or why not.
  std::string write(int64_t step, double wallTime, const Scalars &scalars);

  void close();

private:
  int fd_ = -1;
  std::string path_;
};

/// The line JsonlWriter writes, including the trailing '\n'.
std::string formatJsonLine(int64_t step, double wallTime,
                           const Scalars &scalars);

//===----------------------------------------------------------------------===//
// TensorBoard
//===----------------------------------------------------------------------===//

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), continuing from
/// `crc` (0 to start).
uint32_t crc32c(const void *data, size_t size, uint32_t crc = 0);

/// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8. Masking
/// keeps a CRC stored inside CRC'd data from checking itself trivially.
uint32_t maskCrc(uint32_t crc);

/// Protobuf base-128 varint (negative int64 values take 10 bytes).
void appendVarint(std::string &out, uint64_t value);

/// One TFRecord: uint64 length (little-endian), masked CRC32C of those 8
/// bytes, the data, masked CRC32C of the data.
std::string frameRecord(std::string_view data);

/// Event { wall_time = 1; file_version = 3 } — an event file's first record.
std::string encodeFileVersionEvent(double wallTime);

/// Event { wall_time = 1; step = 2; summary = 5 { value = 1 { tag = 1;
/// simple_value = 2 (float) } ... } }.
std::string encodeScalarEvent(double wallTime, int64_t step,
                              const Scalars &scalars);

/// Writes `<dir>/events.out.tfevents.<unix time>.<hostname>.<pid>.<n>` (n = 0
/// unless that name is taken).
class TensorBoardWriter {
public:
  TensorBoardWriter() = default;
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter &) = delete;
  TensorBoardWriter &operator=(const TensorBoardWriter &) = delete;

  /// Creates `dir` if needed and a new event file in it holding the
  /// file_version event. Returns "" or why not.
  std::string open(const std::string &dir);
  bool isOpen() const { return fd_ >= 0; }
  /// The event file's path.
  const std::string &path() const { return path_; }

  /// Appends one Event holding every scalar (as float32) at `step`. Returns
  /// "" or why not.
  std::string write(int64_t step, double wallTime, const Scalars &scalars);

  void close();

private:
  int fd_ = -1;
  std::string path_;
};

//===----------------------------------------------------------------------===//
// Fan-out
//===----------------------------------------------------------------------===//

/// The writers a run enabled; log() stamps one wall time and writes to all.
class MetricsSink {
public:
  /// Enables the JSONL file. Returns "" or why not.
  std::string openJsonl(const std::string &path);
  /// Enables a TensorBoard event file in `dir`. Returns "" or why not.
  std::string openTensorBoard(const std::string &dir);

  bool empty() const { return !jsonl_.isOpen() && !tensorboard_.isOpen(); }
  const JsonlWriter &jsonl() const { return jsonl_; }
  const TensorBoardWriter &tensorboard() const { return tensorboard_; }

  /// Writes `scalars` at `step` to every open writer, stamped with the
  /// current time. Every writer is tried; returns "" or the errors joined by
  /// "; ".
  std::string log(int64_t step, const Scalars &scalars);

private:
  JsonlWriter jsonl_;
  TensorBoardWriter tensorboard_;
};

/// Current unix time in seconds, with sub-second resolution.
double unixTime();

} // namespace forge::train

#endif // FORGE_RUNTIME_TRAIN_METRICS_H

//===- Metrics.cpp - MFU, JSONL and TensorBoard metrics sinks -------------===//

#include "runtime/train/Metrics.h"
#include "runtime/core/JsonString.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sched.h>
#include <set>
#include <sstream>
#include <system_error>
#include <unistd.h>

namespace forge::train {

namespace {

std::string errnoText(int err) { return std::strerror(err); }

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos)
    return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

/// Whole-word membership in a space-separated flag list ("avx512f" must not
/// match "avx512fp16" nor "avx2" match "avx").
bool hasFlag(std::string_view flags, std::string_view flag) {
  size_t pos = 0;
  while ((pos = flags.find(flag, pos)) != std::string_view::npos) {
    bool startOk = pos == 0 || flags[pos - 1] == ' ' || flags[pos - 1] == '\t';
    size_t end = pos + flag.size();
    bool endOk = end == flags.size() || flags[end] == ' ' || flags[end] == '\t';
    if (startOk && endOk)
      return true;
    pos = end;
  }
  return false;
}

int toInt(std::string_view s, int fallback) {
  int v = fallback;
  std::string t = trim(s);
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  return ec == std::errc() && ptr == t.data() + t.size() ? v : fallback;
}

/// Shortest text that parses back to the same double (valid JSON for every
/// finite value: "2.5", "1e-05", "3").
std::string formatDouble(double v) {
  std::array<char, 64> buf;
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return std::string(buf.data(), res.ptr);
}

/// Writes all of `data`, retrying short writes and EINTR. The bytes are in the
/// kernel when this returns, so they survive a crash of this process.
std::string writeAll(int fd, std::string_view data, const std::string &path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return "cannot write '" + path + "': " + errnoText(errno);
    }
    off += static_cast<size_t>(n);
  }
  return "";
}

std::string createDirectories(const std::filesystem::path &dir) {
  if (dir.empty())
    return "";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return "cannot create directory '" + dir.string() + "': " + ec.message();
  return "";
}

void closeFd(int &fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2,
                   kFixed32 = 5;

void appendTag(std::string &out, uint32_t field, uint32_t wireType) {
  appendVarint(out, (static_cast<uint64_t>(field) << 3) | wireType);
}

void appendLittleEndian(std::string &out, uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

void appendDouble(std::string &out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  appendTag(out, field, kFixed64);
  appendLittleEndian(out, bits, 8);
}

void appendFloat(std::string &out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  appendTag(out, field, kFixed32);
  appendLittleEndian(out, bits, 4);
}

void appendBytes(std::string &out, uint32_t field, std::string_view bytes) {
  appendTag(out, field, kLengthDelimited);
  appendVarint(out, bytes.size());
  out.append(bytes);
}

constexpr std::array<uint32_t, 256> makeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = makeCrc32cTable();

} // namespace

//===----------------------------------------------------------------------===//
// Peak FLOP/s and MFU
//===----------------------------------------------------------------------===//

int fp32FlopsPerCycle(std::string_view vendor, int family, int model,
                      std::string_view flags, std::string *isa) {
  auto set = [&](int flops, const char *what) {
    if (isa)
      *isa = what;
    return flops;
  };
  bool amd = vendor == "AuthenticAMD";
  if (hasFlag(flags, "avx512f")) {
    // Zen 4 decodes 512-bit instructions but executes them on its 256-bit
    // FMA pipes, so its fp32 peak equals AVX2's; Zen 5 (family 26) and
    // Intel's server cores have full-width 512-bit FMA units.
    if (amd && family == 25)
      return set(32, "AVX-512 on Zen 4: 2 x 256-bit FMA");
    return set(64, "AVX-512: 2 x 512-bit FMA");
  }
  if (hasFlag(flags, "avx2") && hasFlag(flags, "fma")) {
    // Zen 1 (family 23, models below 0x30) splits 256-bit ops over two
    // 128-bit FMA pipes; Zen 2 widened them.
    if (amd && family == 23 && model < 0x30)
      return set(16, "AVX2 on Zen 1: 2 x 128-bit FMA");
    return set(32, "AVX2: 2 x 256-bit FMA");
  }
  if (hasFlag(flags, "avx"))
    return set(16, "AVX: 256-bit add + mul, no FMA");
  if (hasFlag(flags, "sse2") || hasFlag(flags, "sse"))
    return set(8, "SSE: 128-bit add + mul");
  if (hasFlag(flags, "asimd"))
    return set(16, "Arm ASIMD: 2 x 128-bit FMA");
  return set(0, "unknown vector unit");
}

int bf16FlopsPerCycle(std::string_view flags, int fp32, std::string *isa) {
  auto set = [&](int flops, const char *what) {
    if (isa)
      *isa = what;
    return flops;
  };
  if (hasFlag(flags, "amx_bf16"))
    return set(1024, "AMX: 1024 bf16 FLOPs/cycle");
  if (hasFlag(flags, "avx512_bf16"))
    return set(2 * fp32, "AVX-512 BF16: two bf16 products per fp32 lane");
  return set(fp32, "no bf16 instructions: the fp32 rate");
}

CpuInfo parseCpuInfo(std::string_view text, const std::vector<int> &allowedCpus,
                     double maxMhz) {
  CpuInfo info;
  std::set<int> allowed(allowedCpus.begin(), allowedCpus.end());
  std::string flags;
  double highestMhz = 0;
  std::set<std::pair<std::string, std::string>> physicalCores;

  // One block per logical processor, separated by blank lines.
  struct Block {
    int processor = -1;
    std::string physicalId, coreId;
    double mhz = 0;
  };
  Block block;
  bool blockHasData = false;
  auto finish = [&]() {
    if (!blockHasData)
      return;
    if (allowed.empty() || allowed.count(block.processor)) {
      highestMhz = std::max(highestMhz, block.mhz);
      // Without topology (Arm, some VMs) every logical CPU is its own core.
      if (!block.coreId.empty())
        physicalCores.insert({block.physicalId, block.coreId});
      else
        physicalCores.insert({"cpu", std::to_string(block.processor)});
    }
    block = Block();
    blockHasData = false;
  };

  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t colon = line.find(':');
    if (trim(line).empty() || colon == std::string_view::npos) {
      finish();
      continue;
    }
    blockHasData = true;
    std::string key = trim(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (key == "processor") {
      block.processor = toInt(value, -1);
    } else if (key == "physical id") {
      block.physicalId = value;
    } else if (key == "core id") {
      block.coreId = value;
    } else if (key == "cpu MHz") {
      block.mhz = std::strtod(value.c_str(), nullptr);
    } else if (key == "vendor_id" && info.vendor.empty()) {
      info.vendor = value;
    } else if (key == "model name" && info.modelName.empty()) {
      info.modelName = value;
    } else if (key == "cpu family" && info.family == 0) {
      info.family = toInt(value, 0);
    } else if (key == "model" && info.model == 0) {
      info.model = toInt(value, 0);
    } else if ((key == "flags" || key == "Features") && flags.empty()) {
      flags = value;
    }
  }
  finish();

  info.cores = static_cast<int>(physicalCores.size());
  if (info.cores == 0)
    info.cores = static_cast<int>(allowed.size());
  info.ghz = (maxMhz > 0 ? maxMhz : highestMhz) / 1000.0;
  info.flopsPerCycle =
      fp32FlopsPerCycle(info.vendor, info.family, info.model, flags, &info.isa);
  info.bf16FlopsPerCycle =
      bf16FlopsPerCycle(flags, info.flopsPerCycle, &info.bf16Isa);
  return info;
}

CpuInfo probeCpu() {
  std::string text;
  {
    std::ifstream f("/proc/cpuinfo");
    std::ostringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  std::vector<int> allowed;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set))
        allowed.push_back(cpu);
  }
  double maxMhz = 0;
  {
    // cpufreq reports kHz; absent in most VMs, where "cpu MHz" is all there
    // is.
    std::ifstream f("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    double khz = 0;
    if (f >> khz && khz > 0)
      maxMhz = khz / 1000.0;
  }
  CpuInfo info = parseCpuInfo(text, allowed, maxMhz);
  if (info.cores == 0)
    info.cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return info;
}

PeakFlops cpuPeak(bool bf16) {
  PeakFlops peak;
  if (const char *env = std::getenv("FORGE_PEAK_TFLOPS")) {
    char *end = nullptr;
    errno = 0;
    double tflops = std::strtod(env, &end);
    if (end == env || *end != '\0' || errno == ERANGE ||
        !std::isfinite(tflops) || tflops <= 0) {
      peak.error = std::string("FORGE_PEAK_TFLOPS='") + env +
                   "' is not a positive number of TFLOPS";
      return peak;
    }
    peak.flops = tflops * 1e12;
    peak.source = std::string("FORGE_PEAK_TFLOPS=") + env;
    return peak;
  }
  CpuInfo cpu = probeCpu();
  const int perCycle = bf16 ? cpu.bf16FlopsPerCycle : cpu.flopsPerCycle;
  peak.flops = cpu.cores * cpu.ghz * 1e9 * perCycle;
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "%d cores x %.2f GHz x %d %s FLOPs/cycle (%s) = %.3g TFLOPS",
                cpu.cores, cpu.ghz, perCycle, bf16 ? "bf16" : "fp32",
                (bf16 ? cpu.bf16Isa : cpu.isa).c_str(), peak.flops / 1e12);
  peak.source =
      (cpu.modelName.empty() ? std::string("CPU") : cpu.modelName) + ": " + buf;
  return peak;
}

double cpuPeakFlops(bool bf16) { return cpuPeak(bf16).flops; }

double computeMfu(double flopsPerToken, double tokensPerSec,
                  double peakFlopsPerRank, int64_t worldSize) {
  // MFU = flops_per_token * tok/s / (peak * world_size): the FLOP/s the model
  // needed over the FLOP/s all ranks together could have delivered.
  if (!(peakFlopsPerRank > 0) || worldSize <= 0)
    return 0;
  return flopsPerToken * tokensPerSec /
         (peakFlopsPerRank * static_cast<double>(worldSize));
}

//===----------------------------------------------------------------------===//
// JSONL
//===----------------------------------------------------------------------===//

namespace {

void appendJsonNumber(std::string &out, double v) {
  out += std::isfinite(v) ? formatDouble(v) : "null";
}

} // namespace

std::string formatJsonLine(int64_t step, double wallTime,
                           const Scalars &scalars) {
  std::string line = "{\"step\": " + std::to_string(step) + ", \"time\": ";
  appendJsonNumber(line, wallTime);
  for (const auto &[tag, value] : scalars) {
    line += ", ";
    runtime::appendJsonString(line, tag);
    line += ": ";
    appendJsonNumber(line, value);
  }
  line += "}\n";
  return line;
}

JsonlWriter::~JsonlWriter() { close(); }

void JsonlWriter::close() { closeFd(fd_); }

std::string JsonlWriter::open(const std::string &path) {
  close();
  path_ = path;
  if (std::string err =
          createDirectories(std::filesystem::path(path).parent_path());
      !err.empty())
    return err;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    return "cannot open metrics file '" + path + "': " + errnoText(errno);
  return "";
}

std::string JsonlWriter::write(int64_t step, double wallTime,
                               const Scalars &scalars) {
  if (fd_ < 0)
    return "metrics file '" + path_ + "' is not open";
  // One write(2) per line: with O_APPEND the line lands whole at the end.
  return writeAll(fd_, formatJsonLine(step, wallTime, scalars), path_);
}

//===----------------------------------------------------------------------===//
// TensorBoard
//===----------------------------------------------------------------------===//

uint32_t crc32c(const void *data, size_t size, uint32_t crc) {
  const auto *p = static_cast<const uint8_t *>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i)
    crc = kCrc32cTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t maskCrc(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

void appendVarint(std::string &out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

std::string frameRecord(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  appendLittleEndian(out, data.size(), 8);
  uint32_t lengthCrc = maskCrc(crc32c(out.data(), 8));
  appendLittleEndian(out, lengthCrc, 4);
  out.append(data);
  appendLittleEndian(out, maskCrc(crc32c(data.data(), data.size())), 4);
  return out;
}

// Field numbers of tensorflow.Event, Summary and Summary.Value
// (tensorboard/compat/proto/event.proto, summary.proto).
namespace {
constexpr uint32_t kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3,
                   kEventSummary = 5;
constexpr uint32_t kSummaryValue = 1;
constexpr uint32_t kValueTag = 1, kValueSimpleValue = 2;
} // namespace

std::string encodeFileVersionEvent(double wallTime) {
  std::string event;
  appendDouble(event, kEventWallTime, wallTime);
  appendBytes(event, kEventFileVersion, "brain.Event:2");
  return event;
}

std::string encodeScalarEvent(double wallTime, int64_t step,
                              const Scalars &scalars) {
  std::string summary;
  for (const auto &[tag, value] : scalars) {
    std::string v;
    appendBytes(v, kValueTag, tag);
    appendFloat(v, kValueSimpleValue, static_cast<float>(value));
    appendBytes(summary, kSummaryValue, v);
  }
  std::string event;
  appendDouble(event, kEventWallTime, wallTime);
  appendTag(event, kEventStep, kVarint);
  // int64 is a plain two's-complement varint (not zigzag).
  appendVarint(event, static_cast<uint64_t>(step));
  appendBytes(event, kEventSummary, summary);
  return event;
}

TensorBoardWriter::~TensorBoardWriter() { close(); }

void TensorBoardWriter::close() { closeFd(fd_); }

std::string TensorBoardWriter::open(const std::string &dir) {
  close();
  if (std::string err = createDirectories(dir); !err.empty())
    return err;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
    std::strcpy(host, "localhost");
  double now = unixTime();
  std::string stem =
      (std::filesystem::path(dir) /
       ("events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) +
        "." + host + "." + std::to_string(getpid()) + "."))
          .string();
  // The trailing counter keeps two writers of one process opened within the
  // same second apart; O_EXCL never appends to someone else's file.
  for (int n = 0;; ++n) {
    path_ = stem + std::to_string(n);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ >= 0)
      break;
    if (errno != EEXIST || n == 1000)
      return "cannot create TensorBoard event file '" + path_ +
             "': " + errnoText(errno);
  }
  if (std::string err =
          writeAll(fd_, frameRecord(encodeFileVersionEvent(now)), path_);
      !err.empty()) {
    close();
    return err;
  }
  return "";
}

std::string TensorBoardWriter::write(int64_t step, double wallTime,
                                     const Scalars &scalars) {
  if (fd_ < 0)
    return "TensorBoard event file '" + path_ + "' is not open";
  // The whole record in one write(2), so a reader polling the file (as
  // TensorBoard does) sees whole records, and the step is in the kernel (and
  // survives a crash of this process) when this returns.
  return writeAll(fd_, frameRecord(encodeScalarEvent(wallTime, step, scalars)),
                  path_);
}

//===----------------------------------------------------------------------===//
// Fan-out
//===----------------------------------------------------------------------===//

std::string MetricsSink::openJsonl(const std::string &path) {
  return jsonl_.open(path);
}

std::string MetricsSink::openTensorBoard(const std::string &dir) {
  return tensorboard_.open(dir);
}

std::string MetricsSink::log(int64_t step, const Scalars &scalars) {
  double now = unixTime();
  std::string errors;
  auto add = [&](std::string err) {
    if (err.empty())
      return;
    if (!errors.empty())
      errors += "; ";
    errors += err;
  };
  if (jsonl_.isOpen())
    add(jsonl_.write(step, now, scalars));
  if (tensorboard_.isOpen())
    add(tensorboard_.write(step, now, scalars));
  return errors;
}

double unixTime() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

} // namespace forge::train

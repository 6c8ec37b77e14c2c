//===- Metrics_test.cpp - CRC32C, protobuf, JSONL, event files, MFU -------===//

#include "runtime/train/Metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <unistd.h>

using namespace forge::train;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/forge-metrics-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::string readFile(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string hex(std::string_view bytes) {
  static const char *digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty())
      out += ' ';
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

uint32_t crcOf(std::string_view s) { return crc32c(s.data(), s.size()); }

uint64_t readLE(std::string_view bytes, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i]))
         << (8 * i);
  return v;
}

/// Splits a TFRecord file into its records, checking each length and CRC.
std::vector<std::string> readRecords(const std::string &bytes) {
  std::vector<std::string> records;
  size_t pos = 0;
  while (pos < bytes.size()) {
    EXPECT_LE(pos + 12, bytes.size()) << "truncated header at " << pos;
    if (pos + 12 > bytes.size())
      break;
    uint64_t length = readLE(bytes, pos, 8);
    uint32_t lengthCrc = static_cast<uint32_t>(readLE(bytes, pos + 8, 4));
    EXPECT_EQ(lengthCrc, maskCrc(crc32c(bytes.data() + pos, 8)));
    EXPECT_LE(pos + 12 + length + 4, bytes.size()) << "truncated record";
    if (pos + 12 + length + 4 > bytes.size())
      break;
    std::string data = bytes.substr(pos + 12, length);
    uint32_t dataCrc =
        static_cast<uint32_t>(readLE(bytes, pos + 12 + length, 4));
    EXPECT_EQ(dataCrc, maskCrc(crcOf(data)));
    records.push_back(data);
    pos += 12 + length + 4;
  }
  return records;
}

std::string doubleBytes(double v) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &v, 8); // the tests run on little-endian hosts
  return out;
}

std::string floatBytes(float v) {
  std::string out(4, '\0');
  std::memcpy(out.data(), &v, 4);
  return out;
}

std::string varint(uint64_t v) {
  std::string out;
  appendVarint(out, v);
  return out;
}

//===----------------------------------------------------------------------===//
// CRC32C and protobuf encoding
//===----------------------------------------------------------------------===//

TEST(Crc32c, CheckValue) {
  // The catalogue check value of CRC-32C (iSCSI).
  EXPECT_EQ(crcOf("123456789"), 0xE3069283u);
  EXPECT_EQ(crcOf(""), 0u);
}

TEST(Crc32c, Rfc3720Vectors) {
  // RFC 3720 appendix B.4.
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<char>(i);
    down[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(crcOf(zeros), 0x8A9136AAu);
  EXPECT_EQ(crcOf(ones), 0x62A8AB43u);
  EXPECT_EQ(crcOf(up), 0x46DD794Eu);
  EXPECT_EQ(crcOf(down), 0x113FDB5Cu);
}

TEST(Crc32c, Continues) {
  std::string s = "The quick brown fox jumps over the lazy dog";
  uint32_t whole = crcOf(s);
  EXPECT_EQ(whole, 0x22620404u);
  EXPECT_EQ(crc32c(s.data() + 10, s.size() - 10, crc32c(s.data(), 10)), whole);
}

TEST(Crc32c, Mask) {
  EXPECT_EQ(maskCrc(0), 0xa282ead8u);
  // Rotate right by 15, then add the constant (mod 2^32).
  EXPECT_EQ(maskCrc(0x00008000u), 0x00000001u + 0xa282ead8u);
  EXPECT_EQ(maskCrc(0xE3069283u),
            ((0xE3069283u >> 15) | (0xE3069283u << 17)) + 0xa282ead8u);
}

TEST(Protobuf, Varint) {
  EXPECT_EQ(hex(varint(0)), "00");
  EXPECT_EQ(hex(varint(1)), "01");
  EXPECT_EQ(hex(varint(127)), "7f");
  EXPECT_EQ(hex(varint(128)), "80 01");
  EXPECT_EQ(hex(varint(300)), "ac 02");
  EXPECT_EQ(hex(varint(16384)), "80 80 01");
  EXPECT_EQ(hex(varint(~0ull)), "ff ff ff ff ff ff ff ff ff 01");
  // int64 -1 is sign-extended, not zigzag-encoded: ten bytes.
  EXPECT_EQ(varint(static_cast<uint64_t>(int64_t{-1})), varint(~0ull));
}

TEST(Protobuf, FileVersionEvent) {
  std::string event = encodeFileVersionEvent(1.0);
  // wall_time: field 1, fixed64 (0x09); file_version: field 3, bytes (0x1a).
  EXPECT_EQ(event, "\x09" + doubleBytes(1.0) + "\x1a\x0d" + "brain.Event:2");
}

TEST(Protobuf, ScalarEvent) {
  std::string event = encodeScalarEvent(1.5, 300, {{"a", 0.5}, {"bc", -2.0}});
  // Value { tag = 1 (0x0a), simple_value = 2 (fixed32, 0x15) }.
  std::string v1 = std::string("\x0a\x01") + "a" + "\x15" + floatBytes(0.5f);
  std::string v2 = std::string("\x0a\x02") + "bc" + "\x15" + floatBytes(-2.0f);
  // Summary { value = 1 (0x0a) ... }.
  std::string summary = "\x0a" + std::string(1, char(v1.size())) + v1 + "\x0a" +
                        std::string(1, char(v2.size())) + v2;
  // Event { wall_time = 1, step = 2 (varint, 0x10), summary = 5 (0x2a) }.
  std::string expected = "\x09" + doubleBytes(1.5) + "\x10" + varint(300) +
                         "\x2a" + std::string(1, char(summary.size())) +
                         summary;
  EXPECT_EQ(hex(event), hex(expected));
}

TEST(Protobuf, RecordFraming) {
  std::string record = frameRecord("abc");
  ASSERT_EQ(record.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(readLE(record, 0, 8), 3u);
  EXPECT_EQ(readLE(record, 8, 4), maskCrc(crc32c(record.data(), 8)));
  EXPECT_EQ(record.substr(12, 3), "abc");
  EXPECT_EQ(readLE(record, 15, 4), maskCrc(crcOf("abc")));
}

//===----------------------------------------------------------------------===//
// JSONL
//===----------------------------------------------------------------------===//

TEST(Jsonl, Line) {
  double nan = std::numeric_limits<double>::quiet_NaN();
  double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(formatJsonLine(5, 1700000000.25,
                           {{"train/loss", 2.5},
                            {"train/lr", 3e-4},
                            {"train/tokens_per_sec", 12345},
                            {"train/grad_norm", nan},
                            {"eval/perplexity", inf},
                            {"neg", -inf}}),
            "{\"step\": 5, \"time\": 1700000000.25, \"train/loss\": 2.5, "
            "\"train/lr\": 3e-04, \"train/tokens_per_sec\": 12345, "
            "\"train/grad_norm\": null, \"eval/perplexity\": null, "
            "\"neg\": null}\n");
  EXPECT_EQ(formatJsonLine(0, 1, {}), "{\"step\": 0, \"time\": 1}\n");
}

TEST(Jsonl, ShortestRoundTrip) {
  std::string line = formatJsonLine(1, 0, {{"x", 0.1}, {"y", 1.0 / 3}});
  EXPECT_NE(line.find("\"x\": 0.1,"), std::string::npos) << line;
  size_t at = line.find("\"y\": ") + 5;
  EXPECT_EQ(std::strtod(line.c_str() + at, nullptr), 1.0 / 3);
}

TEST(Jsonl, EscapesTags) {
  EXPECT_EQ(formatJsonLine(1, 2, {{"a\"b\\c\nd\x01", 1}}),
            "{\"step\": 1, \"time\": 2, \"a\\\"b\\\\c\\nd\\u0001\": 1}\n");
}

TEST(Jsonl, WritesAndAppends) {
  TempDir dir;
  std::string path = dir.path + "/sub/dir/metrics.jsonl";
  {
    JsonlWriter w;
    ASSERT_EQ(w.open(path), "");
    EXPECT_EQ(w.path(), path);
    EXPECT_EQ(w.write(1, 10, {{"train/loss", 3}}), "");
    // Flushed per line: visible before the writer closes.
    EXPECT_EQ(readFile(path),
              "{\"step\": 1, \"time\": 10, \"train/loss\": 3}\n");
  }
  JsonlWriter w;
  ASSERT_EQ(w.open(path), "");
  EXPECT_EQ(w.write(2, 11, {{"train/loss", 2}}), "");
  EXPECT_EQ(readFile(path), "{\"step\": 1, \"time\": 10, \"train/loss\": 3}\n"
                            "{\"step\": 2, \"time\": 11, \"train/loss\": 2}\n");
}

TEST(Jsonl, OpenErrorsNameThePath) {
  TempDir dir;
  std::string file = dir.path + "/plain";
  std::ofstream(file) << "x";
  JsonlWriter w;
  std::string err = w.open(file + "/metrics.jsonl");
  EXPECT_NE(err.find(file), std::string::npos) << err;
  EXPECT_NE(err.find("Not a directory"), std::string::npos) << err;
  EXPECT_FALSE(w.isOpen());
  EXPECT_NE(w.write(1, 1, {}), "");

  std::filesystem::create_directory(dir.path + "/isdir");
  err = w.open(dir.path + "/isdir");
  EXPECT_EQ(err, "cannot open metrics file '" + dir.path +
                     "/isdir': Is a directory");
}

//===----------------------------------------------------------------------===//
// TensorBoard event files
//===----------------------------------------------------------------------===//

TEST(TensorBoard, FileNameAndRecords) {
  TempDir dir;
  TensorBoardWriter w;
  ASSERT_EQ(w.open(dir.path + "/tb"), "");
  std::string name = std::filesystem::path(w.path()).filename().string();
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::regex pattern(
      "events\\.out\\.tfevents\\.[0-9]{10}\\.(.*)\\.([0-9]+)\\.0");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(name, m, pattern)) << name;
  EXPECT_EQ(m[1].str(), host);
  EXPECT_EQ(m[2].str(), std::to_string(getpid()));

  // The file_version record is there before any step.
  std::vector<std::string> records = readRecords(readFile(w.path()));
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].substr(9), "\x1a\x0d" + std::string("brain.Event:2"));

  Scalars s1 = {{"train/loss", 2.5}, {"train/lr", 1e-3}};
  Scalars s2 = {{"train/loss", 2.25}};
  ASSERT_EQ(w.write(1, 100.5, s1), "");
  ASSERT_EQ(w.write(2, 101.5, s2), "");
  // Flushed per step: readable while the writer is still open.
  records = readRecords(readFile(w.path()));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1], encodeScalarEvent(100.5, 1, s1));
  EXPECT_EQ(records[2], encodeScalarEvent(101.5, 2, s2));

  // A second writer in the same second gets the next counter, not the file.
  TensorBoardWriter w2;
  ASSERT_EQ(w2.open(dir.path + "/tb"), "");
  EXPECT_NE(w2.path(), w.path());
}

TEST(TensorBoard, OpenErrorNamesThePath) {
  TempDir dir;
  std::string file = dir.path + "/plain";
  std::ofstream(file) << "x";
  TensorBoardWriter w;
  std::string err = w.open(file + "/tb");
  EXPECT_NE(err.find(file + "/tb"), std::string::npos) << err;
  EXPECT_FALSE(w.isOpen());
}

/// Writes a known event file into $FORGE_TB_TEST_DIR for
/// test/forge-run/tensorboard-writer.test, which reads it back with
/// TensorBoard's own reader. Skipped when the variable is unset.
TEST(TensorBoard, WriteForTensorBoard) {
  const char *dir = std::getenv("FORGE_TB_TEST_DIR");
  if (!dir || !*dir)
    GTEST_SKIP() << "FORGE_TB_TEST_DIR is not set";
  MetricsSink sink;
  ASSERT_EQ(sink.openTensorBoard(dir), "");
  ASSERT_EQ(sink.openJsonl(std::string(dir) + "/metrics.jsonl"), "");
  for (int64_t step = 1; step <= 3; ++step) {
    Scalars s = {{"train/loss", 4.0 - 0.5 * step},
                 {"train/lr", 1e-3 * step},
                 {"train/grad_norm", 0.25 * step},
                 {"train/tokens_per_sec", 1000.0 * step},
                 {"train/mfu", 0.125},
                 {"train/step_time_sec", 2.0}};
    ASSERT_EQ(sink.log(step, s), "");
  }
  ASSERT_EQ(sink.log(3, {{"eval/loss", 3.0}, {"eval/perplexity", 20.0}}), "");
  ASSERT_EQ(sink.log(1000000000000, {{"train/loss", 0.0}}), "");
}

//===----------------------------------------------------------------------===//
// Fan-out
//===----------------------------------------------------------------------===//

TEST(MetricsSink, FansOut) {
  TempDir dir;
  MetricsSink sink;
  EXPECT_TRUE(sink.empty());
  EXPECT_EQ(sink.log(1, {{"x", 1}}), ""); // nothing enabled: nothing to do
  ASSERT_EQ(sink.openJsonl(dir.path + "/m.jsonl"), "");
  ASSERT_EQ(sink.openTensorBoard(dir.path + "/tb"), "");
  EXPECT_FALSE(sink.empty());
  ASSERT_EQ(sink.log(7, {{"train/loss", 1.5}}), "");

  std::string line = readFile(dir.path + "/m.jsonl");
  std::regex pattern(
      "\\{\"step\": 7, \"time\": ([0-9.e+]+), \"train/loss\": 1\\.5\\}\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(line, m, pattern)) << line;
  double time = std::strtod(m[1].str().c_str(), nullptr);
  EXPECT_NEAR(time, unixTime(), 60);

  std::vector<std::string> records =
      readRecords(readFile(sink.tensorboard().path()));
  ASSERT_EQ(records.size(), 2u);
  // Both writers got the same wall time.
  EXPECT_EQ(records[1], encodeScalarEvent(time, 7, {{"train/loss", 1.5}}));
}

//===----------------------------------------------------------------------===//
// Peak FLOP/s and MFU
//===----------------------------------------------------------------------===//

TEST(Peak, FlopsPerCycle) {
  std::string isa;
  EXPECT_EQ(fp32FlopsPerCycle("GenuineIntel", 6, 143,
                              "fpu sse avx avx2 fma avx512f amx_tile amx_bf16",
                              &isa),
            64);
  EXPECT_EQ(isa, "AVX-512: 2 x 512-bit FMA");
  EXPECT_EQ(
      fp32FlopsPerCycle("AuthenticAMD", 25, 17, "sse avx avx2 fma avx512f"),
      32);
  EXPECT_EQ(
      fp32FlopsPerCycle("AuthenticAMD", 26, 2, "sse avx avx2 fma avx512f"), 64);
  EXPECT_EQ(fp32FlopsPerCycle("AuthenticAMD", 25, 1, "sse avx avx2 fma"), 32);
  EXPECT_EQ(fp32FlopsPerCycle("AuthenticAMD", 23, 1, "sse avx avx2 fma"), 16);
  EXPECT_EQ(fp32FlopsPerCycle("AuthenticAMD", 23, 49, "sse avx avx2 fma"), 32);
  EXPECT_EQ(fp32FlopsPerCycle("GenuineIntel", 6, 42, "sse sse2 avx"), 16);
  EXPECT_EQ(fp32FlopsPerCycle("GenuineIntel", 6, 15, "sse sse2"), 8);
  EXPECT_EQ(fp32FlopsPerCycle("", 0, 0, "fp asimd evtstrm"), 16);
  // Whole words only: avx512fp16 alone is not avx512f, avx2 is not avx.
  EXPECT_EQ(fp32FlopsPerCycle("GenuineIntel", 6, 1, "sse2 avx512fp16"), 8);
  EXPECT_EQ(fp32FlopsPerCycle("", 0, 0, "nothing"), 0);
}

const char *kCpuinfo = R"(processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 143
model name	: Intel(R) Xeon(R) Platinum 8480+
cpu MHz		: 1900.000
physical id	: 0
core id		: 0
flags		: fpu sse avx avx2 fma avx512f amx_tile

processor	: 1
vendor_id	: GenuineIntel
cpu MHz		: 3800.000
physical id	: 0
core id		: 0
flags		: fpu sse avx avx2 fma avx512f amx_tile

processor	: 2
vendor_id	: GenuineIntel
cpu MHz		: 2000.000
physical id	: 0
core id		: 1
flags		: fpu sse avx avx2 fma avx512f amx_tile

processor	: 3
vendor_id	: GenuineIntel
cpu MHz		: 2000.000
physical id	: 1
core id		: 0
flags		: fpu sse avx avx2 fma avx512f amx_tile
)";

TEST(Peak, ParseCpuInfo) {
  // Processors 0 and 1 are SMT siblings of one core; 3 is another socket.
  CpuInfo all = parseCpuInfo(kCpuinfo, {}, 0);
  EXPECT_EQ(all.vendor, "GenuineIntel");
  EXPECT_EQ(all.modelName, "Intel(R) Xeon(R) Platinum 8480+");
  EXPECT_EQ(all.family, 6);
  EXPECT_EQ(all.model, 143);
  EXPECT_EQ(all.cores, 3);
  EXPECT_DOUBLE_EQ(all.ghz, 3.8);
  EXPECT_EQ(all.flopsPerCycle, 64);

  CpuInfo some = parseCpuInfo(kCpuinfo, {0, 1, 2}, 0);
  EXPECT_EQ(some.cores, 2);
  CpuInfo one = parseCpuInfo(kCpuinfo, {2}, 0);
  EXPECT_EQ(one.cores, 1);
  EXPECT_DOUBLE_EQ(one.ghz, 2.0);
  // cpufreq's maximum wins over the current "cpu MHz".
  EXPECT_DOUBLE_EQ(parseCpuInfo(kCpuinfo, {2}, 3500).ghz, 3.5);

  // No topology (Arm): every logical CPU counts.
  CpuInfo arm = parseCpuInfo("processor\t: 0\nFeatures\t: fp asimd\n\n"
                             "processor\t: 1\nFeatures\t: fp asimd\n",
                             {}, 3000);
  EXPECT_EQ(arm.cores, 2);
  EXPECT_EQ(arm.flopsPerCycle, 16);
}

TEST(Peak, ThisMachine) {
  CpuInfo cpu = probeCpu();
  EXPECT_GT(cpu.cores, 0);
  EXPECT_LE(cpu.cores, sysconf(_SC_NPROCESSORS_ONLN));
  unsetenv("FORGE_PEAK_TFLOPS");
  PeakFlops peak = cpuPeak();
  EXPECT_EQ(peak.error, "");
  EXPECT_DOUBLE_EQ(peak.flops, cpu.cores * cpu.ghz * 1e9 * cpu.flopsPerCycle);
  if (cpu.ghz > 0 && cpu.flopsPerCycle > 0) {
    EXPECT_GT(peak.flops, 0);
  }
  EXPECT_NE(peak.source.find("fp32 FLOPs/cycle"), std::string::npos)
      << peak.source;
}

TEST(Peak, Bf16) {
  std::string isa;
  EXPECT_EQ(
      bf16FlopsPerCycle("fpu avx512f avx512_bf16 amx_bf16 amx_tile", 64, &isa),
      1024);
  EXPECT_EQ(isa, "AMX: 1024 bf16 FLOPs/cycle");
  EXPECT_EQ(bf16FlopsPerCycle("avx2 avx512f avx512_bf16 avx512_vnni", 32), 64);
  EXPECT_EQ(bf16FlopsPerCycle("avx2 fma avx512f", 64, &isa), 64);
  EXPECT_EQ(isa, "no bf16 instructions: the fp32 rate");
  // A flag is matched whole: avx512_bf16x is not avx512_bf16.
  EXPECT_EQ(bf16FlopsPerCycle("avx512_bf16x", 32), 32);

  unsetenv("FORGE_PEAK_TFLOPS");
  CpuInfo cpu = probeCpu();
  PeakFlops peak = cpuPeak(true);
  EXPECT_DOUBLE_EQ(peak.flops,
                   cpu.cores * cpu.ghz * 1e9 * cpu.bf16FlopsPerCycle);
  EXPECT_NE(peak.source.find("bf16 FLOPs/cycle"), std::string::npos)
      << peak.source;
  // FORGE_PEAK_TFLOPS is the peak whatever the precision.
  setenv("FORGE_PEAK_TFLOPS", "2", 1);
  EXPECT_DOUBLE_EQ(cpuPeakFlops(true), 2e12);
  unsetenv("FORGE_PEAK_TFLOPS");
}

TEST(Peak, EnvOverride) {
  setenv("FORGE_PEAK_TFLOPS", "1.5", 1);
  PeakFlops peak = cpuPeak();
  EXPECT_DOUBLE_EQ(peak.flops, 1.5e12);
  EXPECT_EQ(peak.source, "FORGE_PEAK_TFLOPS=1.5");
  EXPECT_DOUBLE_EQ(cpuPeakFlops(), 1.5e12);
  for (const char *bad : {"", "abc", "1.5x", "0", "-2", "inf", "nan"}) {
    setenv("FORGE_PEAK_TFLOPS", bad, 1);
    peak = cpuPeak();
    EXPECT_EQ(peak.flops, 0) << bad;
    EXPECT_EQ(peak.error, std::string("FORGE_PEAK_TFLOPS='") + bad +
                              "' is not a positive number of TFLOPS");
  }
  unsetenv("FORGE_PEAK_TFLOPS");
}

TEST(Mfu, Formula) {
  // 6e9 FLOPs/token x 1000 tok/s over 2 ranks x 10 TFLOPS = 0.3.
  EXPECT_DOUBLE_EQ(computeMfu(6e9, 1000, 1e13, 2), 0.3);
  EXPECT_EQ(computeMfu(6e9, 1000, 0, 2), 0);
  EXPECT_EQ(computeMfu(6e9, 1000, 1e13, 0), 0);
  MfuInfo info{6e9, 1e13, 2, "test"};
  EXPECT_DOUBLE_EQ(info.mfu(1000), 0.3);
}

} // namespace

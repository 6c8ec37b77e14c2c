//===- SafeTensors.cpp - Reading and writing .safetensors files -----------===//

#include "runtime/train/SafeTensors.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <zlib.h>

namespace forge::train {

int64_t safeTensorsDtypeSize(const std::string &dtype) {
  if (dtype == "F32" || dtype == "I32")
    return 4;
  if (dtype == "BF16" || dtype == "F16")
    return 2;
  if (dtype == "I64")
    return 8;
  if (dtype == "U8")
    return 1;
  return 0;
}

namespace {

/// A minimal JSON reader for safetensors headers: objects, arrays, strings
/// (with simple escapes) and integers.
class Json {
public:
  explicit Json(const std::string &s) : s_(s) {}

  std::string error;

  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_])))
      ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool expect(char c) {
    if (eat(c))
      return true;
    error = std::string("expected '") + c + "' at byte " + std::to_string(i_);
    return false;
  }
  bool string(std::string &out) {
    if (!expect('"'))
      return false;
    out.clear();
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size())
        ++i_;
      out.push_back(s_[i_++]);
    }
    return expect('"');
  }
  bool integer(int64_t &out) {
    ws();
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-')
      ++i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_])))
      ++i_;
    if (start == i_) {
      error = "expected a number at byte " + std::to_string(i_);
      return false;
    }
    out = std::stoll(s_.substr(start, i_ - start));
    return true;
  }
  bool intArray(std::vector<int64_t> &out) {
    if (!expect('['))
      return false;
    out.clear();
    if (eat(']'))
      return true;
    do {
      int64_t v;
      if (!integer(v))
        return false;
      out.push_back(v);
    } while (eat(','));
    return expect(']');
  }
  /// Skips a value (the __metadata__ object of string pairs).
  bool skipObject() {
    if (!expect('{'))
      return false;
    if (eat('}'))
      return true;
    do {
      std::string k, v;
      if (!string(k) || !expect(':') || !string(v))
        return false;
    } while (eat(','));
    return expect('}');
  }

private:
  const std::string &s_;
  size_t i_ = 0;
};

} // namespace

std::string readSafeTensorsIndex(const std::string &path, TensorIndex &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return "cannot open " + path;
  in.seekg(0, std::ios::end);
  const uint64_t fileSize = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (fileSize < 8)
    return path + ": too small to be a safetensors file";
  uint8_t size[8];
  in.read(reinterpret_cast<char *>(size), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | size[i];
  if (n > fileSize - 8)
    return path + ": header size " + std::to_string(n) + " exceeds the file";
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  if (!in)
    return path + ": cannot read the header";
  const uint64_t dataStart = 8 + n, dataSize = fileSize - dataStart;
  Json j(header);
  if (!j.expect('{'))
    return path + ": bad header: " + j.error;
  if (j.eat('}'))
    return "";
  do {
    std::string name;
    if (!j.string(name) || !j.expect(':'))
      return path + ": bad header: " + j.error;
    if (name == "__metadata__") {
      if (!j.skipObject())
        return path + ": bad header: " + j.error;
      continue;
    }
    TensorInfo t;
    std::vector<int64_t> offsets;
    if (!j.expect('{'))
      return path + ": bad header: " + j.error;
    do {
      std::string key;
      if (!j.string(key) || !j.expect(':'))
        return path + ": bad header: " + j.error;
      bool ok = key == "dtype"          ? j.string(t.dtype)
                : key == "shape"        ? j.intArray(t.shape)
                : key == "data_offsets" ? j.intArray(offsets)
                                        : false;
      if (!ok)
        return path + ": bad header at tensor '" + name + "' key '" + key +
               "'" + (j.error.empty() ? "" : ": " + j.error);
    } while (j.eat(','));
    if (!j.expect('}'))
      return path + ": bad header: " + j.error;
    int64_t es = safeTensorsDtypeSize(t.dtype);
    if (es == 0)
      return path + ": tensor '" + name + "' has unsupported dtype '" +
             t.dtype + "'";
    int64_t elems = 1;
    for (int64_t d : t.shape) {
      if (d < 0)
        return path + ": tensor '" + name + "' has a negative dimension";
      elems *= d;
    }
    if (offsets.size() != 2 || offsets[0] < 0 || offsets[1] < offsets[0] ||
        static_cast<uint64_t>(offsets[1]) > dataSize ||
        offsets[1] - offsets[0] != elems * es)
      return path + ": tensor '" + name +
             "' has data_offsets that do not match its shape or the file";
    t.begin = dataStart + static_cast<uint64_t>(offsets[0]);
    t.end = dataStart + static_cast<uint64_t>(offsets[1]);
    out[name] = std::move(t);
  } while (j.eat(','));
  if (!j.expect('}'))
    return path + ": bad header: " + j.error;
  return "";
}

std::string readSafeTensorsData(const std::string &path, const TensorInfo &t,
                                std::vector<uint8_t> &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return "cannot open " + path;
  out.resize(t.end - t.begin);
  in.seekg(static_cast<std::streamoff>(t.begin));
  in.read(reinterpret_cast<char *>(out.data()),
          static_cast<std::streamsize>(out.size()));
  if (!in)
    return path + ": cannot read " + std::to_string(out.size()) +
           " bytes at offset " + std::to_string(t.begin) + " (truncated?)";
  return "";
}

std::string readSafeTensors(const std::string &path, TensorMap &out) {
  TensorIndex index;
  if (std::string e = readSafeTensorsIndex(path, index); !e.empty())
    return e;
  for (auto &[name, info] : index) {
    Tensor t{info.dtype, info.shape, {}};
    if (std::string e = readSafeTensorsData(path, info, t.data); !e.empty())
      return e;
    out[name] = std::move(t);
  }
  return "";
}

std::string writeSafeTensors(const std::string &path, const TensorMap &tensors,
                             uint32_t *crc) {
  std::string header = "{";
  uint64_t offset = 0;
  bool first = true;
  for (const auto &[name, t] : tensors) {
    header += first ? "" : ",";
    first = false;
    header += "\"" + name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i)
      header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.data.size()) + "]}";
    offset += t.data.size();
  }
  header += "}";
  while (header.size() % 8)
    header += ' ';
  std::ofstream out(path, std::ios::binary);
  if (!out)
    return "cannot write " + path;
  uint64_t n = header.size();
  char size[8];
  for (int i = 0; i < 8; ++i)
    size[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  uLong sum = crc32(0L, Z_NULL, 0);
  auto put = [&](const void *data, size_t bytes) {
    out.write(static_cast<const char *>(data),
              static_cast<std::streamsize>(bytes));
    if (!crc)
      return;
    // zlib takes at most 4 GiB per call.
    const auto *p = static_cast<const Bytef *>(data);
    for (size_t done = 0; done < bytes;) {
      const uInt chunk =
          static_cast<uInt>(std::min<size_t>(bytes - done, 1u << 30));
      sum = crc32(sum, p + done, chunk);
      done += chunk;
    }
  };
  put(size, 8);
  put(header.data(), header.size());
  for (const auto &[name, t] : tensors)
    put(t.data.data(), t.data.size());
  // A full disk shows at the latest when the file is closed.
  out.close();
  if (!out)
    return "cannot write " + path + ": " + std::strerror(errno);
  if (crc)
    *crc = static_cast<uint32_t>(sum);
  return "";
}

std::string fileCrc32(const std::string &path, uint32_t &crc) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return "cannot read " + path + ": " + std::strerror(errno);
  std::vector<char> buf(1 << 22);
  uLong sum = crc32(0L, Z_NULL, 0);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize got = in.gcount();
    if (got > 0)
      sum = crc32(sum, reinterpret_cast<const Bytef *>(buf.data()),
                  static_cast<uInt>(got));
  }
  if (in.bad())
    return "cannot read " + path + ": " + std::strerror(errno);
  crc = static_cast<uint32_t>(sum);
  return "";
}

} // namespace forge::train

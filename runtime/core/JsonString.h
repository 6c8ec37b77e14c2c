//===- JsonString.h - JSON string literals ----------------------*- C++ -*-===//
//
// The one JSON string escaper of the runtime's writers (metrics JSONL,
// profiler traces): quotes, backslashes and control characters escaped,
// UTF-8 passed through. Header-only, so writers need no extra library.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CORE_JSONSTRING_H
#define FORGE_RUNTIME_CORE_JSONSTRING_H

#include <cstdio>
#include <string>
#include <string_view>

namespace forge::runtime {

/// Appends `s` to `out` as a JSON string literal.
inline void appendJsonString(std::string &out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out.push_back(c); // UTF-8 passes through unchanged
    }
  }
  out.push_back('"');
}

/// `s` as a JSON string literal.
inline std::string jsonString(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

} // namespace forge::runtime

#endif // FORGE_RUNTIME_CORE_JSONSTRING_H

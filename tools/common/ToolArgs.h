//===- ToolArgs.h - Tiny shared command-line helpers for forge's tools ----===//
//
// forge-run must not link LLVM, so the tools share this small helper instead
// of llvm::cl. Misuse is reported as one line, `<tool>: error: <reason>`, plus
// a pointer to --help, and a non-zero exit code (2).
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_TOOLS_TOOLARGS_H
#define FORGE_TOOLS_TOOLARGS_H

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

namespace forge::tools {

constexpr int kExitUsage = 2;

[[noreturn]] inline void usageError(const char *tool, const std::string &why) {
  std::fprintf(stderr, "%s: error: %s (see %s --help)\n", tool, why.c_str(),
               tool);
  std::exit(kExitUsage);
}

/// Parses a whole string as a decimal integer.
inline std::optional<long long> parseInt(const std::string &s) {
  long long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size())
    return std::nullopt;
  return v;
}

/// For `--flag VALUE` and `--flag=VALUE`: returns true when `arg` is `flag`,
/// storing its value (from the same or the next argument) in `value`.
inline bool takeValue(const char *tool, int argc, char **argv, int &i,
                      const std::string &flag, std::string &value) {
  std::string arg = argv[i];
  if (arg == flag) {
    if (i + 1 >= argc)
      usageError(tool, flag + " needs a value");
    value = argv[++i];
    return true;
  }
  if (arg.rfind(flag + "=", 0) == 0) {
    value = arg.substr(flag.size() + 1);
    return true;
  }
  return false;
}

} // namespace forge::tools

#endif // FORGE_TOOLS_TOOLARGS_H

//===- Config.h - Loading, validating and printing job configs ------------===//
//
// The public API of the config frontend. It never throws: every problem is a
// Diagnostic that names where it comes from (`job.toml:12:3`, or the command
// line flag that set the value) and what is allowed instead.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_CONFIG_CONFIG_H
#define FORGE_CONFIG_CONFIG_H

#include "frontends/config/JobConfig.h"

#include <map>
#include <string>
#include <vector>

namespace forge::config {

/// Where a value came from: a position in a TOML file, or a CLI flag.
struct Location {
  std::string file; ///< file name, or empty for a command-line flag
  int line = 0;     ///< 1-based; 0 when only the file is known
  int column = 0;
  std::string flag; ///< the flag as typed, for command-line values

  std::string str() const;
};

struct Diagnostic {
  enum class Severity { Error, Warning };
  Severity severity = Severity::Error;
  Location location;
  std::string message;

  /// `file:line:col: error: message`.
  std::string str() const;
};

/// Loads a job: the file, then command-line overrides, then resolution and
/// validation. Each step returns false once an error has been diagnosed.
class ConfigLoader {
public:
  /// Reads a TOML job file over the defaults.
  bool loadFile(const std::string &path);
  /// Reads TOML text (tests); `name` stands for the file in diagnostics.
  bool loadString(const std::string &text, const std::string &name);
  /// Applies `key.path=value` typed by the schema. `flag` is the argument as
  /// the user wrote it, for diagnostics (`--set model.dim=512`).
  bool applyOverride(const std::string &assignment, const std::string &flag);
  /// Resolves defaults that depend on other keys (n_kv_heads, the adapter of
  /// a VLM) and runs every per-section and cross-section rule (reference
  /// §1.3, §1.4 construction checks, §1.5 config-level checks).
  bool finalize();
  /// The ordered world-size checks of reference §1.4 (first failure wins).
  bool validate(int64_t worldSize);

  /// The world size a job asks for when none is given: the product of the
  /// distributed dimensions, or 1 when dp_shard is -1 (auto).
  int64_t defaultWorldSize() const;

  const JobConfig &config() const { return cfg_; }
  JobConfig &config() { return cfg_; }
  const std::vector<Diagnostic> &diagnostics() const { return diags_; }
  bool hasErrors() const;
  /// Where `path` (a dotted key) was set, or its nearest enclosing table.
  Location locationOf(const std::string &path) const;

  // Used by the implementation files.
  void error(const std::string &path, const std::string &message);
  void error(const Location &loc, const std::string &message);
  void warning(const std::string &path, const std::string &message);
  std::map<std::string, Location> &locations() { return locs_; }

private:
  bool loadTable(const void *table, const std::string &sourceName,
                 const std::string &flag, const std::string &rawCliValue);

  JobConfig cfg_;
  std::map<std::string, Location> locs_;
  std::vector<Diagnostic> diags_;
  std::string mainFile_;
};

/// Resolves dp_shard = -1 for `worldSize` (reference §3.1). Returns 0 when
/// the other dimensions do not divide the world size.
int64_t resolveDpShard(const DistributedConfig &d, int64_t worldSize);

/// The fully resolved config as TOML that loads back to an equal config.
/// Derived values (resolved widths, dp_shard at `worldSize` when > 0) are
/// added as comments.
std::string printConfig(const JobConfig &cfg, int64_t worldSize = 0);

/// docs/config.md, generated from the schema.
std::string generateConfigDocs();

/// The closest of `candidates` to `word`, or empty when none is close.
std::string closestMatch(const std::string &word,
                         const std::vector<std::string> &candidates);

} // namespace forge::config

#endif // FORGE_CONFIG_CONFIG_H

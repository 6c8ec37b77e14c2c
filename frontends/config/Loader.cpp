//===- Loader.cpp - TOML and command-line overlays onto JobConfig ---------===//
//
// The loader is strict where KempnerForge's is lenient: no silent coercion
// (3.7 is not an int, "512" is not a number), unknown keys are errors with a
// suggestion, and every value remembers where it was set.
//
//===----------------------------------------------------------------------===//

#include "frontends/config/Config.h"
#include "frontends/config/Schema.h"
#include "frontends/registry/Registry.h"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

namespace forge::config {

//===----------------------------------------------------------------------===//
// Diagnostics
//===----------------------------------------------------------------------===//

std::string Location::str() const {
  if (!flag.empty())
    return "command line '" + flag + "'";
  if (file.empty())
    return "<defaults>";
  if (line <= 0)
    return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::str() const {
  return location.str() +
         (severity == Severity::Error ? ": error: " : ": warning: ") + message;
}

bool ConfigLoader::hasErrors() const {
  return std::any_of(diags_.begin(), diags_.end(), [](const Diagnostic &d) {
    return d.severity == Diagnostic::Severity::Error;
  });
}

Location ConfigLoader::locationOf(const std::string &path) const {
  std::string p = path;
  while (true) {
    auto it = locs_.find(p);
    if (it != locs_.end())
      return it->second;
    size_t cut = p.find_last_of(".[");
    if (cut == std::string::npos)
      break;
    p.resize(cut);
  }
  Location l;
  l.file = mainFile_;
  return l;
}

void ConfigLoader::error(const std::string &path, const std::string &message) {
  error(locationOf(path), message);
}

void ConfigLoader::error(const Location &loc, const std::string &message) {
  diags_.push_back({Diagnostic::Severity::Error, loc, message});
}

void ConfigLoader::warning(const std::string &path,
                           const std::string &message) {
  diags_.push_back({Diagnostic::Severity::Warning, locationOf(path), message});
}

//===----------------------------------------------------------------------===//
// Suggestions
//===----------------------------------------------------------------------===//

static size_t editDistance(const std::string &a, const std::string &b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1,
                         prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closestMatch(const std::string &word,
                         const std::vector<std::string> &candidates) {
  std::string best;
  size_t bestDist = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string &c : candidates) {
    size_t d = editDistance(word, c);
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  return best;
}

//===----------------------------------------------------------------------===//
// The TOML visitor
//===----------------------------------------------------------------------===//

namespace {

/// Marks `None` on the command line (TOML has no null). It cannot appear in a
/// TOML file because TOML strings cannot hold a raw NUL.
const char kNoneSentinel[] = "\001forge-none\001";

std::string describe(const toml::node &n) {
  std::ostringstream os;
  switch (n.type()) {
  case toml::node_type::integer:
    return "an integer (" + std::to_string(n.as_integer()->get()) + ")";
  case toml::node_type::floating_point:
    os << n.as_floating_point()->get();
    return "a float (" + os.str() + ")";
  case toml::node_type::boolean:
    return std::string("a boolean (") +
           (n.as_boolean()->get() ? "true" : "false") + ")";
  case toml::node_type::string:
    return "the string \"" + n.as_string()->get() + "\"";
  case toml::node_type::array:
    return "an array";
  case toml::node_type::table:
    return "a table";
  default:
    return "a date/time";
  }
}

bool looksNumeric(const std::string &s) {
  if (s.empty())
    return false;
  double d;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  return ec == std::errc() && p == s.data() + s.size();
}

/// Loads one struct from one TOML table, then reports the table's keys that
/// the struct does not declare.
class TableLoader {
public:
  TableLoader(ConfigLoader &owner, const toml::table &table, std::string path,
              std::string display, const std::string &sourceName,
              const std::string &flag, const std::string &rawCliValue)
      : owner_(owner), table_(table), path_(std::move(path)),
        display_(std::move(display)), sourceName_(sourceName), flag_(flag),
        rawCliValue_(rawCliValue) {}

  template <typename S> void run(S &s) {
    s.visit(*this);
    for (auto &&[k, v] : table_) {
      std::string key(k.str());
      if (std::find(keys_.begin(), keys_.end(), key) != keys_.end())
        continue;
      std::string msg = "unknown key '" + key + "' in [" + display_ + "]";
      std::string near = closestMatch(key, keys_);
      if (!near.empty())
        msg += "; did you mean '" + near + "'?";
      msg += (near.empty() ? "; " : " ") + std::string("Valid keys: ") +
             joinNames(keys_);
      owner_.error(locOf(k.source()), msg);
    }
  }

  // Visitor interface.
  template <typename T> void field(const char *key, T &x, const char *) {
    keys_.push_back(key);
    const toml::node *n = table_.get(key);
    if (!n)
      return;
    std::string p = path_ + "." + key;
    owner_.locations()[p] = locOf(n->source());
    read(*n, x, p, "[" + display_ + "] " + key);
  }

  void choice(const char *key, std::string &x, const char *, Choices allowed) {
    keys_.push_back(key);
    const toml::node *n = table_.get(key);
    if (!n)
      return;
    std::string p = path_ + "." + key;
    owner_.locations()[p] = locOf(n->source());
    std::string what = "[" + display_ + "] " + key;
    std::vector<std::string> names = allowed();
    if (isNone(*n)) {
      // `--key=none` on the command line is Python's None (KempnerForge's
      // CLI); for a choice that has a "none" value it means that value.
      if (std::find(names.begin(), names.end(), "none") != names.end()) {
        x = "none";
        return;
      }
      owner_.error(p, what + ": None is not one of: " + joinNames(names));
      return;
    }
    std::string v;
    if (!read(*n, v, p, what))
      return;
    if (std::find(names.begin(), names.end(), v) == names.end()) {
      std::string msg =
          what + ": '" + v + "' is not one of: " + joinNames(names);
      std::string near = closestMatch(v, names);
      if (!near.empty())
        msg += " (did you mean '" + near + "'?)";
      owner_.error(p, msg);
      return;
    }
    x = v;
  }

  template <typename S> void section(const char *key, S &x, const char *doc) {
    field(key, x, doc);
  }

private:
  Location locOf(const toml::source_region &r) const {
    Location l;
    if (!flag_.empty()) {
      l.flag = flag_;
      return l;
    }
    l.file = sourceName_;
    l.line = static_cast<int>(r.begin.line);
    l.column = static_cast<int>(r.begin.column);
    return l;
  }

  bool fail(const std::string &path, const std::string &msg) {
    owner_.error(path, msg);
    return false;
  }

  bool isNone(const toml::node &n) const {
    return n.is_string() && n.as_string()->get() == kNoneSentinel;
  }

  bool read(const toml::node &n, int64_t &x, const std::string &p,
            const std::string &what) {
    if (n.is_integer()) {
      x = n.as_integer()->get();
      return true;
    }
    std::string msg = what + ": expected an integer, got " + describe(n);
    if (n.is_floating_point())
      msg += "; forge does not truncate floats to integers";
    else if (n.is_string() && looksNumeric(n.as_string()->get()))
      msg += "; hint: write the number without quotes";
    return fail(p, msg);
  }

  bool read(const toml::node &n, double &x, const std::string &p,
            const std::string &what) {
    if (n.is_floating_point()) {
      x = n.as_floating_point()->get();
      return true;
    }
    if (n.is_integer()) {
      x = static_cast<double>(n.as_integer()->get());
      return true;
    }
    std::string msg = what + ": expected a number, got " + describe(n);
    if (n.is_string() && looksNumeric(n.as_string()->get()))
      msg += "; hint: write the number without quotes";
    return fail(p, msg);
  }

  bool read(const toml::node &n, bool &x, const std::string &p,
            const std::string &what) {
    if (n.is_boolean()) {
      x = n.as_boolean()->get();
      return true;
    }
    std::string msg =
        what + ": expected a boolean (true or false), got " + describe(n);
    if (n.is_string())
      msg += "; hint: write true or false without quotes";
    return fail(p, msg);
  }

  bool read(const toml::node &n, std::string &x, const std::string &p,
            const std::string &what) {
    if (n.is_string()) {
      x = n.as_string()->get();
      return true;
    }
    // On the command line `--metrics.wandb_run_name=2024` means the text.
    if (!flag_.empty() && !rawCliValue_.empty() && n.is_value()) {
      x = rawCliValue_;
      return true;
    }
    return fail(p, what + ": expected a string, got " + describe(n) +
                       "; hint: quote it");
  }

  bool read(const toml::node &n, std::array<double, 2> &x, const std::string &p,
            const std::string &what) {
    const toml::array *a = n.as_array();
    if (!a || a->size() != 2)
      return fail(
          p, what + ": expected an array of two numbers, got " +
                 (a ? "an array of " + std::to_string(a->size()) + " elements"
                    : describe(n)));
    for (size_t i = 0; i < 2; ++i)
      if (!read(*a->get(i), x[i], p, what + "[" + std::to_string(i) + "]"))
        return false;
    return true;
  }

  template <typename T>
  bool read(const toml::node &n, std::optional<T> &x, const std::string &p,
            const std::string &what) {
    if (isNone(n)) {
      x.reset();
      return true;
    }
    T v = x ? *x : T{};
    if (!read(n, v, p, what))
      return false;
    x = std::move(v);
    return true;
  }

  template <typename T>
  bool read(const toml::node &n, std::vector<T> &x, const std::string &p,
            const std::string &what) {
    const toml::array *a = n.as_array();
    if (!a)
      return fail(p, what + ": expected an array, got " + describe(n));
    std::vector<T> out;
    bool ok = true;
    for (size_t i = 0; i < a->size(); ++i) {
      std::string ep = p + "[" + std::to_string(i) + "]";
      const toml::node &e = *a->get(i);
      owner_.locations()[ep] = locOf(e.source());
      T v{};
      if constexpr (std::is_class_v<T> && !std::is_same_v<T, std::string>) {
        const toml::table *t = e.as_table();
        if (!t) {
          ok = fail(ep, what + "[" + std::to_string(i) +
                            "]: expected a table, got " + describe(e));
          continue;
        }
        TableLoader sub(owner_, *t, ep, ep, sourceName_, flag_, "");
        sub.run(v);
      } else {
        ok = read(e, v, ep, what + "[" + std::to_string(i) + "]") && ok;
      }
      out.push_back(std::move(v));
    }
    if (ok)
      x = std::move(out);
    return ok;
  }

  template <typename T>
  bool read(const toml::node &n, std::map<std::string, T> &x,
            const std::string &p, const std::string &what) {
    const toml::table *t = n.as_table();
    if (!t)
      return fail(p, what + ": expected a table, got " + describe(n));
    std::map<std::string, T> out;
    bool ok = true;
    for (auto &&[k, v] : *t) {
      std::string key(k.str());
      T val{};
      ok = read(v, val, p + "." + key, what + "." + key) && ok;
      out[key] = std::move(val);
    }
    if (ok)
      x = std::move(out);
    return ok;
  }

  /// A nested table (a section, or `dyn_ckpt_window`).
  template <typename S>
  bool read(const toml::node &n, S &x, const std::string &p,
            const std::string &what) {
    const toml::table *t = n.as_table();
    if (!t)
      return fail(p, what + ": expected a table, got " + describe(n));
    TableLoader sub(owner_, *t, p, p, sourceName_, flag_, rawCliValue_);
    sub.run(x);
    return true;
  }

  ConfigLoader &owner_;
  const toml::table &table_;
  std::string path_;
  std::string display_;
  const std::string &sourceName_;
  const std::string &flag_;
  const std::string &rawCliValue_;
  std::vector<std::string> keys_;
};

/// The top level: sections are tables; optional sections are created when
/// the TOML names them.
class RootLoader {
public:
  RootLoader(ConfigLoader &owner, const toml::table &table,
             const std::string &sourceName, const std::string &flag,
             const std::string &rawCliValue)
      : owner_(owner), table_(table), sourceName_(sourceName), flag_(flag),
        rawCliValue_(rawCliValue) {}

  void run(JobConfig &cfg) {
    cfg.visit(*this);
    for (auto &&[k, v] : table_) {
      std::string key(k.str());
      if (std::find(keys_.begin(), keys_.end(), key) != keys_.end())
        continue;
      std::string msg = "unknown table [" + key + "]";
      std::string near = closestMatch(key, keys_);
      if (!near.empty())
        msg += "; did you mean [" + near + "]?";
      msg += (near.empty() ? "; " : " ") + std::string("Valid tables: ") +
             joinNames(keys_);
      if (!v.is_table())
        msg = "key '" + key + "' is outside any table; it belongs in one of: " +
              joinNames(keys_);
      Location l;
      if (!flag_.empty())
        l.flag = flag_;
      else {
        l.file = sourceName_;
        l.line = static_cast<int>(k.source().begin.line);
        l.column = static_cast<int>(k.source().begin.column);
      }
      owner_.error(l, msg);
    }
  }

  template <typename S> void section(const char *key, S &x, const char *) {
    keys_.push_back(key);
    const toml::node *n = table_.get(key);
    if (!n)
      return;
    Location l;
    if (!flag_.empty())
      l.flag = flag_;
    else {
      l.file = sourceName_;
      l.line = static_cast<int>(n->source().begin.line);
      l.column = static_cast<int>(n->source().begin.column);
    }
    const toml::table *t = n->as_table();
    if (!t) {
      owner_.error(l, std::string("'") + key + "' must be a table ([" + key +
                          "]), got " + describe(*n));
      return;
    }
    // A file location of a table without its own header (only dotted
    // sub-tables) is line 0; keep the file then.
    if (flag_.empty() && l.line == 0)
      l.column = 0;
    owner_.locations()[key] = l;
    if constexpr (IsOptional<S>::value) {
      if (!x)
        x.emplace();
      loadSection(*t, key, *x);
    } else {
      loadSection(*t, key, x);
    }
  }

private:
  template <typename S>
  void loadSection(const toml::table &t, const std::string &key, S &s) {
    TableLoader sub(owner_, t, key, key, sourceName_, flag_, rawCliValue_);
    sub.run(s);
  }

  void loadSection(const toml::table &t, const std::string &key, VlmConfig &s) {
    // The arch picks the "subclass": switching it drops the old arch's keys,
    // as KempnerForge rebuilds the arch's dataclass from scratch.
    if (const toml::node *a = t.get("arch"); a && a->is_string()) {
      std::string arch = a->as_string()->get();
      if (arch != s.arch && registry::vlmArchs().find(arch)) {
        VlmConfig fresh;
        fresh.arch = arch;
        fresh.max_text_len = s.max_text_len;
        fresh.freeze = s.freeze;
        fresh.freeze_schedule = s.freeze_schedule;
        fresh.module_patterns = s.module_patterns;
        s = std::move(fresh);
      }
    }
    TableLoader sub(owner_, t, key, key, sourceName_, flag_, rawCliValue_);
    sub.run(s);
  }

  ConfigLoader &owner_;
  const toml::table &table_;
  const std::string &sourceName_;
  const std::string &flag_;
  const std::string &rawCliValue_;
  std::vector<std::string> keys_;
};

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

bool ConfigLoader::loadTable(const void *tablePtr, const std::string &source,
                             const std::string &flag,
                             const std::string &rawCliValue) {
  const auto &table = *static_cast<const toml::table *>(tablePtr);
  size_t errorsBefore = diags_.size();
  RootLoader root(*this, table, source, flag, rawCliValue);
  root.run(cfg_);
  // Report in file order, whatever order the tables were visited in.
  std::stable_sort(diags_.begin() + errorsBefore, diags_.end(),
                   [](const Diagnostic &a, const Diagnostic &b) {
                     return std::make_pair(a.location.line, a.location.column) <
                            std::make_pair(b.location.line, b.location.column);
                   });
  for (size_t i = errorsBefore; i < diags_.size(); ++i)
    if (diags_[i].severity == Diagnostic::Severity::Error)
      return false;
  return true;
}

bool ConfigLoader::loadString(const std::string &text,
                              const std::string &name) {
  mainFile_ = name;
  try {
    toml::table t = toml::parse(text, name);
    return loadTable(&t, name, "", "");
  } catch (const toml::parse_error &e) {
    Location l;
    l.file = name;
    l.line = static_cast<int>(e.source().begin.line);
    l.column = static_cast<int>(e.source().begin.column);
    error(l, "TOML syntax error: " + std::string(e.description()));
    return false;
  }
}

bool ConfigLoader::loadFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    Location l;
    l.file = path;
    error(l, "cannot open the config file");
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return loadString(ss.str(), path);
}

/// Turns a CLI value into TOML text: Python literals (True, False, None,
/// tuples) as KempnerForge's loader accepts them, everything else as TOML.
static std::string cliValueToToml(std::string v) {
  if (v == "True")
    return "true";
  if (v == "False")
    return "false";
  if (v == "None" || v == "none" || v == "null")
    return "\"\\u0001forge-none\\u0001\""; // kNoneSentinel, escaped
  if (v.size() >= 2 && v.front() == '(' && v.back() == ')')
    v = "[" + v.substr(1, v.size() - 2) + "]";
  if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'')
    return v; // TOML literal string
  return v;
}

bool ConfigLoader::applyOverride(const std::string &assignment,
                                 const std::string &flag) {
  Location here;
  here.flag = flag;
  size_t eq = assignment.find('=');
  std::string key = assignment.substr(0, eq);
  // KempnerForge: a flag without '=' means "true".
  std::string value =
      eq == std::string::npos ? "true" : assignment.substr(eq + 1);
  if (key.empty() || key.find('.') == std::string::npos) {
    error(here, "an override must be <table>.<key>=<value>, e.g. "
                "--set model.dim=512");
    return false;
  }
  std::vector<std::string> parts;
  std::string cur;
  for (char c : key) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  parts.push_back(cur);
  for (const std::string &part : parts)
    if (part.empty()) {
      error(here, "empty name in override key '" + key + "'");
      return false;
    }

  toml::table valueTable;
  std::string raw = value;
  try {
    valueTable = toml::parse("v = " + cliValueToToml(value));
  } catch (const toml::parse_error &) {
    // Not a TOML value: keep the text, as KempnerForge keeps `/path`, `async`.
    valueTable = toml::table{};
    valueTable.insert("v", value);
  }
  // Build {a: {b: {c: v}}}; quoted keys keep dots inside map keys out.
  toml::table root;
  toml::table *t = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    t->insert(parts[i], toml::table{});
    t = t->get(parts[i])->as_table();
  }
  t->insert(parts.back(), *valueTable.get("v"));
  return loadTable(&root, "", flag, raw);
}

int64_t ConfigLoader::defaultWorldSize() const {
  const DistributedConfig &d = cfg_.distributed;
  if (d.dp_shard == -1)
    return d.dp_replicate * d.tp * d.pp * d.cp * d.ep;
  return d.dp_shard * d.dp_replicate * d.tp * d.pp * d.cp * d.ep;
}

int64_t resolveDpShard(const DistributedConfig &d, int64_t worldSize) {
  if (d.dp_shard != -1)
    return d.dp_shard;
  int64_t others = d.dp_replicate * d.tp * d.pp * d.cp * d.ep;
  if (others <= 0 || worldSize % others != 0)
    return 0;
  return worldSize / others;
}

} // namespace forge::config

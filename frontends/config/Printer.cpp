//===- Printer.cpp - JobConfig as TOML, and the generated key reference ---===//

#include "frontends/config/Config.h"
#include "frontends/config/Schema.h"

#include <charconv>
#include <cmath>
#include <functional>
#include <sstream>

namespace forge::config {
namespace {

/// True for the structs that declare keys with visit().
template <typename T>
constexpr bool isTable =
    std::is_class_v<T> && !std::is_same_v<T, std::string> &&
    !IsOptional<T>::value && !IsVector<T>::value && !IsMap<T>::value &&
    !std::is_same_v<T, std::array<double, 2>>;

template <typename T> constexpr bool isTableVector = false;
template <typename T> constexpr bool isTableVector<std::vector<T>> = isTable<T>;

std::string formatDouble(double v) {
  if (std::isnan(v))
    return "nan";
  if (std::isinf(v))
    return v > 0 ? "inf" : "-inf";
  char buf[64];
  // Shortest text that reads back to the same double.
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, p);
  if (s.find_first_of(".eEn") == std::string::npos)
    s += ".0";
  // TOML needs a digit before an exponent's mantissa point: 1e-05 is valid.
  return s;
}

std::string quote(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\r':
      out += "\\r";
      break;
    default:
      if (c < 0x20 || c == 0x7f) {
        char buf[8];
        snprintf(buf, sizeof(buf), "\\u%04x", c);
        out += buf;
      } else {
        out.push_back(static_cast<char>(c));
      }
    }
  }
  return out + "\"";
}

/// A key as TOML needs it: bare when possible.
std::string tomlKey(const std::string &k) {
  bool bare = !k.empty();
  for (char c : k)
    bare = bare && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                    c == '-');
  return bare ? k : quote(k);
}

std::string value(int64_t v) { return std::to_string(v); }
std::string value(double v) { return formatDouble(v); }
std::string value(bool v) { return v ? "true" : "false"; }
std::string value(const std::string &v) { return quote(v); }
std::string value(const std::array<double, 2> &v) {
  return "[" + formatDouble(v[0]) + ", " + formatDouble(v[1]) + "]";
}
template <typename T> std::string value(const std::vector<T> &v);
template <typename T> std::string value(const std::map<std::string, T> &m);

/// Inline form of a table (used for tables nested in arrays of tables).
class InlinePrinter {
public:
  template <typename T> void field(const char *key, const T &x, const char *) {
    if constexpr (IsOptional<T>::value) {
      if (!x)
        return;
      add(key, *x);
    } else {
      add(key, x);
    }
  }
  void choice(const char *key, const std::string &x, const char *, Choices) {
    add(key, x);
  }
  std::string str() const { return "{ " + out_ + " }"; }

private:
  template <typename T> void add(const char *key, const T &x) {
    if (!out_.empty())
      out_ += ", ";
    if constexpr (isTable<T>) {
      InlinePrinter sub;
      const_cast<T &>(x).visit(sub);
      out_ += std::string(key) + " = " + sub.str();
    } else {
      out_ += std::string(key) + " = " + value(x);
    }
  }
  std::string out_;
};

template <typename T> std::string value(const std::vector<T> &v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i)
      out += ", ";
    if constexpr (isTable<T>) {
      InlinePrinter p;
      const_cast<T &>(v[i]).visit(p);
      out += p.str();
    } else {
      out += value(v[i]);
    }
  }
  return out + "]";
}

template <typename T> std::string value(const std::map<std::string, T> &m) {
  std::string out = "{";
  bool first = true;
  for (auto &[k, v] : m) {
    out += first ? " " : ", ";
    first = false;
    out += tomlKey(k) + " = " + value(v);
  }
  return out + (m.empty() ? "}" : " }");
}

/// Prints one table: its own keys first, then its sub-tables and arrays of
/// tables under their dotted headers.
class TablePrinter {
public:
  TablePrinter(std::ostringstream &os, std::string path,
               const std::map<std::string, std::string> &notes)
      : os_(os), path_(std::move(path)), notes_(notes) {}

  template <typename S> void run(S &s) {
    s.visit(*this);
    for (auto &later : deferred_)
      later();
  }

  template <typename T> void field(const char *key, T &x, const char *) {
    std::string p = path_ + "." + key;
    if constexpr (IsOptional<T>::value) {
      using Inner = typename T::value_type;
      if (!x) {
        os_ << "# " << key << " = (unset)" << note(p) << "\n";
        return;
      }
      if constexpr (isTable<Inner>) {
        deferred_.push_back([this, p, &x] {
          os_ << "\n[" << p << "]\n";
          TablePrinter sub(os_, p, notes_);
          sub.run(*x);
        });
      } else {
        os_ << key << " = " << value(*x) << note(p) << "\n";
      }
    } else if constexpr (isTableVector<T>) {
      if (x.empty()) {
        os_ << key << " = []\n";
        return;
      }
      deferred_.push_back([this, p, &x] {
        for (auto &e : x) {
          os_ << "\n[[" << p << "]]\n";
          TablePrinter sub(os_, p, notes_);
          sub.run(e);
        }
      });
    } else {
      os_ << key << " = " << value(x) << note(p) << "\n";
    }
  }

  void choice(const char *key, std::string &x, const char *, Choices) {
    std::string p = path_ + "." + key;
    os_ << key << " = " << value(x) << note(p) << "\n";
  }

private:
  std::string note(const std::string &p) const {
    auto it = notes_.find(p);
    return it == notes_.end() ? "" : "  # " + it->second;
  }

  std::ostringstream &os_;
  std::string path_;
  const std::map<std::string, std::string> &notes_;
  std::vector<std::function<void()>> deferred_;
};

class RootPrinter {
public:
  RootPrinter(std::ostringstream &os,
              const std::map<std::string, std::string> &notes)
      : os_(os), notes_(notes) {}
  template <typename S> void section(const char *key, S &x, const char *) {
    if constexpr (IsOptional<S>::value) {
      if (x)
        print(key, *x);
    } else {
      print(key, x);
    }
  }

private:
  template <typename S> void print(const char *key, S &s) {
    os_ << (first_ ? "" : "\n") << "[" << key << "]\n";
    first_ = false;
    TablePrinter p(os_, key, notes_);
    p.run(s);
  }
  std::ostringstream &os_;
  const std::map<std::string, std::string> &notes_;
  bool first_ = true;
};

} // namespace

std::string printConfig(const JobConfig &cfgIn, int64_t worldSize) {
  JobConfig cfg = cfgIn;
  // Derived values, shown next to the keys they come from.
  std::map<std::string, std::string> notes;
  const ModelConfig &m = cfg.model;
  if (!m.ffn_hidden_dim)
    notes["model.ffn_hidden_dim"] =
        "computed: " + std::to_string(m.ffnHiddenDim());
  if (m.isMoe())
    notes["model.moe_expert_ffn_multiplier"] =
        "expert width: " + std::to_string(m.expertFfnHiddenDim());
  if (!cfg.train.data_seed)
    notes["train.data_seed"] =
        "follows seed: " + std::to_string(cfg.train.seed);
  if (cfg.train.ce_chunk_size == 0)
    notes["train.ce_chunk_size"] = "0 means 4096";
  if (cfg.distributed.dp_shard == -1 && worldSize > 0) {
    int64_t s = resolveDpShard(cfg.distributed, worldSize);
    if (s > 0)
      notes["distributed.dp_shard"] = "resolves to " + std::to_string(s) +
                                      " at world size " +
                                      std::to_string(worldSize);
  }
  std::ostringstream os;
  os << "# Resolved by forgec "
     << "(reads back to the same config).\n";
  RootPrinter p(os, notes);
  cfg.visit(p);
  return os.str();
}

//===----------------------------------------------------------------------===//
// docs/config.md
//===----------------------------------------------------------------------===//

namespace {

template <typename T> std::string typeName() {
  if constexpr (std::is_same_v<T, int64_t>)
    return "int";
  else if constexpr (std::is_same_v<T, double>)
    return "float";
  else if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_same_v<T, std::string>)
    return "string";
  else if constexpr (std::is_same_v<T, std::array<double, 2>>)
    return "[float, float]";
  else if constexpr (IsOptional<T>::value)
    return typeName<typename T::value_type>() + " (optional)";
  else if constexpr (IsVector<T>::value) {
    using E = typename IsVector<T>::Elem;
    if constexpr (isTable<E>)
      return "array of tables";
    else
      return "array of " + typeName<E>();
  } else if constexpr (IsMap<T>::value)
    return "table of " + typeName<typename T::mapped_type>();
  else
    return "table";
}

std::string mdEscape(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else
      out.push_back(c);
  }
  return out;
}

class DocTable {
public:
  DocTable(std::ostringstream &os, std::string title)
      : os_(os), title_(std::move(title)) {}

  template <typename S> void run(S &s) {
    os_ << "\n### `" << title_ << "`\n\n| key | type | default | meaning |\n"
        << "|---|---|---|---|\n";
    s.visit(*this);
    for (auto &later : deferred_)
      later();
  }

  template <typename T> void field(const char *key, T &x, const char *doc) {
    std::string def;
    if constexpr (IsOptional<T>::value) {
      using Inner = typename T::value_type;
      if constexpr (isTable<Inner>) {
        std::string sub = title_ + "." + key;
        deferred_.push_back([this, sub] {
          Inner d{};
          DocTable t(os_, sub);
          t.run(d);
        });
        def = "unset";
      } else {
        def = x ? value(*x) : "unset";
      }
    } else if constexpr (isTableVector<T>) {
      using E = typename IsVector<T>::Elem;
      std::string sub = title_ + "." + key;
      deferred_.push_back([this, sub] {
        E d{};
        DocTable t(os_, "[" + sub + "]");
        t.run(d);
      });
      def = value(x);
    } else {
      def = value(x);
    }
    row(key, typeName<T>(), def, doc);
  }

  void choice(const char *key, std::string &x, const char *doc,
              Choices allowed) {
    row(key, "string", value(x),
        std::string(doc) + "; one of: " + joinNames(allowed()));
  }

private:
  void row(const std::string &key, const std::string &type,
           const std::string &def, const std::string &doc) {
    os_ << "| `" << key << "` | " << type << " | `" << mdEscape(def) << "` | "
        << mdEscape(doc) << " |\n";
  }
  std::ostringstream &os_;
  std::string title_;
  std::vector<std::function<void()>> deferred_;
};

class DocRoot {
public:
  explicit DocRoot(std::ostringstream &os) : os_(os) {}
  template <typename S> void section(const char *key, S &, const char *doc) {
    if constexpr (IsOptional<S>::value) {
      typename S::value_type d{};
      emit(key, d, doc);
    } else {
      S d{};
      emit(key, d, doc);
    }
  }

private:
  template <typename S> void emit(const char *key, S &d, const char *doc) {
    os_ << "\n## [" << key << "] — " << doc << "\n";
    if constexpr (std::is_same_v<S, VlmConfig>) {
      // Show every arch's keys: one table per arch.
      for (const char *arch :
           {"joint_decoder", "cross_attention", "mot", "moma"}) {
        VlmConfig v;
        v.arch = arch;
        DocTable t(os_, std::string(key) + "` with `arch = \"" + arch + "\"");
        t.run(v);
      }
    } else {
      DocTable t(os_, key);
      t.run(d);
    }
  }
  std::ostringstream &os_;
};

} // namespace

std::string generateConfigDocs() {
  std::ostringstream os;
  os << "<!-- Generated by `forgec --print-config-docs`; a test fails when "
        "this file is stale. Do not edit by hand. -->\n"
     << "# Job config reference\n\n"
     << "Every table and key forgec accepts, with its type and default. The "
        "schema is KempnerForge's; docs/config-differences.md lists where "
        "forge deliberately differs. Keys marked `[no effect in forge]` are "
        "accepted so KempnerForge config files load unchanged.\n"
     << "Allowed values that come from the registry include entries added by "
        "plugins (`forgec --plugin`); this page lists the built-in ones.\n";
  JobConfig cfg;
  DocRoot root(os);
  cfg.visit(root);
  return os.str();
}

} // namespace forge::config

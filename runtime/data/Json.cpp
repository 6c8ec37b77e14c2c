//===- Json.cpp - A small, strict JSON reader -----------------------------===//

#include "runtime/data/Json.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_set>

namespace forge::data::json {

const Value *Value::find(std::string_view key) const {
  for (const auto &m : members_)
    if (m.first == key)
      return &m.second;
  return nullptr;
}

const char *Value::kindName() const {
  switch (kind_) {
  case Kind::Null:
    return "null";
  case Kind::Bool:
    return "a boolean";
  case Kind::Number:
    return "a number";
  case Kind::String:
    return "a string";
  case Kind::Array:
    return "an array";
  case Kind::Object:
    return "an object";
  }
  return "?";
}

std::string Document::where(size_t offset) const {
  size_t line = 1, col = 1;
  size_t end = std::min(offset, text.size());
  for (size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return source + ":" + std::to_string(line) + ":" + std::to_string(col);
}

std::string Document::error(const Value &v, const std::string &message) const {
  return where(v.offset()) + ": " + message;
}

class Parser {
public:
  Parser(const std::string &text) : s_(text) {}

  /// Returns false with `errorAt`/`message` set on failure.
  bool parseDocument(Value &root) {
    skipSpace();
    if (!parseValue(root, 0))
      return false;
    skipSpace();
    if (pos_ != s_.size())
      return fail("unexpected text after the JSON value");
    return true;
  }

  size_t errorAt = 0;
  std::string message;

private:
  static constexpr int kMaxDepth = 512;

  bool fail(const std::string &why) {
    errorAt = pos_;
    message = why;
    return false;
  }

  void skipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' ||
                                s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool literal(const char *word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(pos_, n, word) != 0)
      return fail("invalid literal (expected a value)");
    pos_ += n;
    return true;
  }

  bool parseValue(Value &v, int depth) {
    if (depth > kMaxDepth)
      return fail("nesting deeper than " + std::to_string(kMaxDepth));
    v.offset_ = pos_;
    if (pos_ >= s_.size())
      return fail("unexpected end of input (expected a value)");
    char c = s_[pos_];
    switch (c) {
    case '{':
      return parseObject(v, depth);
    case '[':
      return parseArray(v, depth);
    case '"':
      v.kind_ = Value::Kind::String;
      return parseString(v.string_);
    case 't':
      v.kind_ = Value::Kind::Bool;
      v.bool_ = true;
      return literal("true");
    case 'f':
      v.kind_ = Value::Kind::Bool;
      v.bool_ = false;
      return literal("false");
    case 'n':
      v.kind_ = Value::Kind::Null;
      return literal("null");
    default:
      if (c == '-' || (c >= '0' && c <= '9'))
        return parseNumber(v);
      return fail(std::string("unexpected character '") + c +
                  "' (expected a value)");
    }
  }

  bool parseObject(Value &v, int depth) {
    v.kind_ = Value::Kind::Object;
    ++pos_; // '{'
    skipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    std::unordered_set<std::string> seen;
    while (true) {
      skipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"')
        return fail("expected a string key");
      size_t keyAt = pos_;
      std::string key;
      if (!parseString(key))
        return false;
      if (!seen.insert(key).second) {
        pos_ = keyAt;
        return fail("duplicate key \"" + key + "\"");
      }
      skipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':')
        return fail("expected ':' after an object key");
      ++pos_;
      skipSpace();
      v.members_.emplace_back(std::move(key), Value());
      if (!parseValue(v.members_.back().second, depth + 1))
        return false;
      skipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}' in an object");
    }
  }

  bool parseArray(Value &v, int depth) {
    v.kind_ = Value::Kind::Array;
    ++pos_; // '['
    skipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      skipSpace();
      v.items_.emplace_back();
      if (!parseValue(v.items_.back(), depth + 1))
        return false;
      skipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']' in an array");
    }
  }

  bool hex4(uint32_t &out) {
    if (pos_ + 4 > s_.size())
      return fail("truncated \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_ + i];
      out <<= 4;
      if (c >= '0' && c <= '9')
        out |= c - '0';
      else if (c >= 'a' && c <= 'f')
        out |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        out |= c - 'A' + 10;
      else
        return fail("invalid \\u escape");
    }
    pos_ += 4;
    return true;
  }

  /// Length of the valid UTF-8 sequence at pos_, or 0.
  size_t utf8Length() const {
    auto b = [&](size_t i) { return static_cast<unsigned char>(s_[i]); };
    unsigned char c = b(pos_);
    size_t left = s_.size() - pos_;
    auto cont = [&](size_t i) { return (b(pos_ + i) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF)
      return left >= 2 && cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
      if (left < 3 || !cont(1) || !cont(2))
        return 0;
      if (c == 0xE0 && b(pos_ + 1) < 0xA0)
        return 0; // overlong
      if (c == 0xED && b(pos_ + 1) >= 0xA0)
        return 0; // surrogate
      return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
      if (left < 4 || !cont(1) || !cont(2) || !cont(3))
        return 0;
      if (c == 0xF0 && b(pos_ + 1) < 0x90)
        return 0; // overlong
      if (c == 0xF4 && b(pos_ + 1) >= 0x90)
        return 0; // above U+10FFFF
      return 4;
    }
    return 0;
  }

  bool parseString(std::string &out) {
    ++pos_; // opening quote
    while (true) {
      // Copy the plain run in one go: vocabularies are mostly plain text.
      size_t runStart = pos_;
      while (pos_ < s_.size()) {
        unsigned char c = static_cast<unsigned char>(s_[pos_]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
          break;
        ++pos_;
      }
      out.append(s_, runStart, pos_ - runStart);
      if (pos_ >= s_.size())
        return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20)
        return fail("control character in a string (must be escaped)");
      if (c >= 0x80) {
        size_t n = utf8Length();
        if (n == 0)
          return fail("invalid UTF-8 in a string");
        out.append(s_, pos_, n);
        pos_ += n;
        continue;
      }
      // A backslash escape.
      if (pos_ + 1 >= s_.size())
        return fail("unterminated string");
      char e = s_[pos_ + 1];
      pos_ += 2;
      switch (e) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        size_t escAt = pos_ - 2;
        uint32_t cp;
        if (!hex4(cp))
          return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') {
            pos_ = escAt;
            return fail("unpaired surrogate in a \\u escape");
          }
          pos_ += 2;
          if (!hex4(lo))
            return false;
          if (lo < 0xDC00 || lo > 0xDFFF) {
            pos_ = escAt;
            return fail("unpaired surrogate in a \\u escape");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          pos_ = escAt;
          return fail("unpaired surrogate in a \\u escape");
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        pos_ -= 2;
        return fail(std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  bool parseNumber(Value &v) {
    v.kind_ = Value::Kind::Number;
    size_t start = pos_;
    auto digit = [&](size_t i) {
      return i < s_.size() && s_[i] >= '0' && s_[i] <= '9';
    };
    if (s_[pos_] == '-')
      ++pos_;
    if (!digit(pos_))
      return fail("invalid number");
    if (s_[pos_] == '0') {
      ++pos_;
      if (digit(pos_))
        return fail("invalid number (leading zero)");
    } else {
      while (digit(pos_))
        ++pos_;
    }
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digit(pos_))
        return fail("invalid number (digit expected after '.')");
      while (digit(pos_))
        ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-'))
        ++pos_;
      if (!digit(pos_))
        return fail("invalid number (digit expected in the exponent)");
      while (digit(pos_))
        ++pos_;
    }
    std::string text = s_.substr(start, pos_ - start);
    errno = 0;
    v.number_ = std::strtod(text.c_str(), nullptr);
    if (integral) {
      errno = 0;
      long long i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == 0) {
        v.isInteger_ = true;
        v.integer_ = i;
      }
    }
    if (!std::isfinite(v.number_)) {
      pos_ = start;
      return fail("number out of range");
    }
    return true;
  }

  const std::string &s_;
  size_t pos_ = 0;
};

std::string parse(std::string text, const std::string &source, Document &doc) {
  doc.source = source;
  doc.text = std::move(text);
  doc.root = Value();
  Parser p(doc.text);
  if (!p.parseDocument(doc.root))
    return doc.where(p.errorAt) + ": invalid JSON: " + p.message;
  return "";
}

std::string parseFile(const std::string &path, Document &doc) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return path + ": cannot open";
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad())
    return path + ": cannot read";
  return parse(buffer.str(), path, doc);
}

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

} // namespace forge::data::json

//===- Json.h - A small, strict JSON reader ---------------------*- C++ -*-===//
//
// The tokenizer reads Hugging Face `tokenizer.json` / `tokenizer_config.json`
// files. The runtime must not depend on LLVM, so this is a self-contained
// RFC 8259 reader: no comments, no trailing commas, no NaN, no duplicate
// object keys, no lone surrogates, nesting at most 512 deep. Every error
// names the source and the line:column where it was found, and every value
// remembers its offset so later (semantic) errors can point at it too.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_DATA_JSON_H
#define FORGE_RUNTIME_DATA_JSON_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace forge::data::json {

class Value {
public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Kind kind() const { return kind_; }
  bool isNull() const { return kind_ == Kind::Null; }
  bool isBool() const { return kind_ == Kind::Bool; }
  bool isNumber() const { return kind_ == Kind::Number; }
  /// A number written without fraction or exponent that fits in int64.
  bool isInteger() const { return kind_ == Kind::Number && isInteger_; }
  bool isString() const { return kind_ == Kind::String; }
  bool isArray() const { return kind_ == Kind::Array; }
  bool isObject() const { return kind_ == Kind::Object; }

  bool asBool() const { return bool_; }
  double asDouble() const { return number_; }
  int64_t asInt() const { return integer_; }
  const std::string &asString() const { return string_; }
  const std::vector<Value> &items() const { return items_; }
  /// Members of an object, in file order.
  const std::vector<std::pair<std::string, Value>> &members() const {
    return members_;
  }
  /// The member named `key` of an object, or null when absent (or when this
  /// is not an object).
  const Value *find(std::string_view key) const;

  /// Byte offset of the value's first character in the source.
  size_t offset() const { return offset_; }
  /// "null", "a boolean", "a number", "a string", "an array", "an object".
  const char *kindName() const;

private:
  friend class Parser;
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  bool isInteger_ = false;
  double number_ = 0;
  int64_t integer_ = 0;
  size_t offset_ = 0;
  std::string string_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

/// A parsed document with what is needed to turn offsets into positions.
struct Document {
  std::string source; ///< a file name (for messages)
  std::string text;
  Value root;

  /// "<source>:<line>:<column>" for a byte offset (1-based, columns count
  /// bytes).
  std::string where(size_t offset) const;
  /// "<source>:<line>:<column>: <message>" at `v`.
  std::string error(const Value &v, const std::string &message) const;
};

/// Parses `text`; returns an empty string or the error (with position).
std::string parse(std::string text, const std::string &source, Document &doc);

/// Reads and parses a file; returns an empty string or the error.
std::string parseFile(const std::string &path, Document &doc);

/// Appends code point `cp` to `out` in UTF-8 (1 to 4 bytes).
void appendUtf8(std::string &out, uint32_t cp);

} // namespace forge::data::json

#endif // FORGE_RUNTIME_DATA_JSON_H

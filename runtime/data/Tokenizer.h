//===- Tokenizer.h - Text to token ids --------------------------*- C++ -*-===//
//
// Two tokenizers turn training text into token ids (tools/forge-data uses
// them to write .npy shards; the runtime only needs the EOS id):
//
// - the built-in byte-level tokenizer: ids 0..255 are the bytes, EOS = 256,
//   vocabulary 257;
// - a Hugging Face `tokenizer.json` holding a byte-level BPE (GPT-2, RoBERTa,
//   Llama-3, Qwen style): the ByteLevel pre-tokenizer (optionally after a
//   Split with the GPT-2, Llama-3 or Qwen2 regex, or Digits), merges by rank,
//   an optional NFC normalizer, non-special added tokens. Anything else
//   (WordPiece, Unigram, Metaspace/SentencePiece BPE, byte_fallback, other
//   normalizers or regexes, dropout, ...) is rejected when the file is
//   loaded, with the file, the position and the feature: a tokenizer that
//   loads encodes exactly as the Hugging Face `tokenizers` library does
//   (tested against it), with two documented choices: special added tokens
//   are never produced from text (text that spells "<|endoftext|>" is
//   tokenized as text), and nothing is added around a document (no BOS; the
//   post-processor does not apply), as KempnerForge tokenizes documents
//   without special tokens.
//
// The EOS id comes from `tokenizer_config.json` beside `tokenizer.json`
// ("eos_token"), else from the first special added token among
// kEosCandidates; see resolveEosId. tools/forge-data/README.md has details.
//
// No LLVM and no global state: a loaded Tokenizer is immutable, and encode()
// may run on many threads at once.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_DATA_TOKENIZER_H
#define FORGE_RUNTIME_DATA_TOKENIZER_H

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace forge::data {

/// Special tokens tried, in this order, as EOS when no tokenizer_config.json
/// names one.
inline constexpr const char *kEosCandidates[] = {
    "<|endoftext|>", "</s>", "<|end_of_text|>", "<|im_end|>", "<eos>"};

class Tokenizer {
public:
  virtual ~Tokenizer();

  /// Token ids of `text` (UTF-8; bytes that are not valid UTF-8 are kept and
  /// encoded as bytes). Never adds EOS or any other special token.
  virtual std::vector<uint32_t> encode(std::string_view text) const = 0;

  /// One more than the largest id the tokenizer knows (model vocabulary and
  /// added tokens).
  uint32_t vocabSize() const { return vocabSize_; }
  uint32_t eosId() const { return eosId_; }
  /// The token EOS stands for ("<eos>" for the byte-level tokenizer).
  const std::string &eosToken() const { return eosToken_; }
  /// "byte-level" or the tokenizer.json path it was loaded from.
  const std::string &name() const { return name_; }

  /// The built-in byte-level tokenizer.
  static std::unique_ptr<Tokenizer> byteLevel();

  /// Loads `spec`: "byte" (the built-in tokenizer), a tokenizer.json file, or
  /// a directory holding tokenizer.json (and maybe tokenizer_config.json).
  /// Returns null and sets `error` when the tokenizer is unusable or its EOS
  /// cannot be resolved.
  static std::unique_ptr<Tokenizer> load(const std::string &spec,
                                         std::string &error);

  /// Builds a BPE tokenizer from tokenizer.json text; `configText` is the
  /// tokenizer_config.json text (none when there is no such file). `source`
  /// and `configSource` name them in messages. For tests and for callers
  /// that hold the files in memory.
  static std::unique_ptr<Tokenizer>
  fromJson(std::string tokenizerJson, const std::string &source,
           std::optional<std::string> configText,
           const std::string &configSource, std::string &error);

protected:
  uint32_t vocabSize_ = 0;
  uint32_t eosId_ = 0;
  std::string eosToken_;
  std::string name_;
};

/// The EOS id of the tokenizer at `tokenizerPath` (data.tokenizer_path): a
/// directory holding tokenizer.json, or the tokenizer.json file itself, or
/// "byte" for the built-in tokenizer (256). Works for any Hugging Face
/// tokenizer.json (WordPiece, Unigram, ... too), since packing only needs the
/// id. Returns an empty string and sets `eos`, or says what is wrong and how
/// to fix it.
std::string resolveEosId(const std::string &tokenizerPath, int64_t &eos);

/// The tokenizer.json and tokenizer_config.json (which may not exist) that
/// `tokenizerPath` names; returns an empty string or why the path is
/// unusable.
std::string locateTokenizerFiles(const std::string &tokenizerPath,
                                 std::string &tokenizerJson,
                                 std::string &tokenizerConfig);

/// Unicode data version the tokenizer's tables come from.
const char *unicodeVersion();

} // namespace forge::data

#endif // FORGE_RUNTIME_DATA_TOKENIZER_H

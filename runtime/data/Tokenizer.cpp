//===- Tokenizer.cpp - Text to token ids ----------------------------------===//
//
// The byte-level BPE follows the Hugging Face `tokenizers` library's
// pipeline step by step, because a tokenizer that loads must encode exactly
// as that library does:
//
//   1. added tokens matched on the raw text (normalized = false), leftmost
//      longest; special ones are skipped, i.e. left in the text;
//   2. the normalizer (none, or NFC) on what is left;
//   3. added tokens with normalized = true matched on the normalized text;
//   4. the pre-tokenizers, each applied to every piece the previous one
//      produced (Split with a known regex, Digits, ByteLevel);
//   5. BPE on every piece: bytes -> their symbols' ids, then merges applied
//      lowest rank first (leftmost among equal ranks).
//
// The regexes are not run by a regex engine: the three patterns real
// byte-level tokenizers use (GPT-2's, Llama-3's and Qwen2's) are matched by
// hand, alternative by alternative, with the same backtracking outcome.
// Letters, numbers and NFC come from generated Unicode tables
// (UnicodeTables.inc); whitespace is Unicode's White_Space, which is what
// `\s` matches in the Oniguruma engine `tokenizers` uses.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/Tokenizer.h"
#include "runtime/data/Json.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <queue>
#include <sstream>
#include <unordered_map>

namespace forge::data {

namespace {

//===----------------------------------------------------------------------===//
// Unicode
//===----------------------------------------------------------------------===//

struct CodeRange {
  uint32_t lo, hi;
};
struct CombiningRun {
  uint32_t lo, hi;
  uint8_t ccc;
};
struct Decomposition {
  uint32_t cp, first, second; ///< second == 0: a singleton decomposition
  uint8_t composes;           ///< first + second compose back to cp
};

#include "runtime/data/UnicodeTables.inc"

/// Stands for a byte that is not part of valid UTF-8; it classifies as
/// "other" (neither letter, number nor space).
constexpr uint32_t kInvalid = 0xFFFFFFFF;

/// Decodes the code point at s[i]; returns its length in bytes (1 for an
/// invalid byte, whose code point is kInvalid).
size_t decodeUtf8(std::string_view s, size_t i, uint32_t &cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  size_t left = s.size() - i;
  auto cont = [&](size_t k) { return (b(k) & 0xC0) == 0x80; };
  cp = kInvalid;
  if (c >= 0xC2 && c <= 0xDF) {
    if (left >= 2 && cont(1)) {
      cp = ((c & 0x1F) << 6) | (b(1) & 0x3F);
      return 2;
    }
  } else if (c >= 0xE0 && c <= 0xEF) {
    if (left >= 3 && cont(1) && cont(2) && !(c == 0xE0 && b(1) < 0xA0) &&
        !(c == 0xED && b(1) >= 0xA0)) {
      cp = ((c & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
      return 3;
    }
  } else if (c >= 0xF0 && c <= 0xF4) {
    if (left >= 4 && cont(1) && cont(2) && cont(3) &&
        !(c == 0xF0 && b(1) < 0x90) && !(c == 0xF4 && b(1) >= 0x90)) {
      cp = ((c & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) |
           (b(3) & 0x3F);
      return 4;
    }
  }
  return 1;
}

using json::appendUtf8;

template <size_t N> bool inRanges(const CodeRange (&table)[N], uint32_t cp) {
  const CodeRange *end = table + N;
  const CodeRange *it = std::upper_bound(
      table, end, cp, [](uint32_t v, const CodeRange &r) { return v < r.lo; });
  return it != table && cp <= (it - 1)->hi;
}

bool isLetter(uint32_t cp) {
  if (cp < 0x80)
    return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return cp != kInvalid && inRanges(kLetterRanges, cp);
}

bool isNumber(uint32_t cp) {
  if (cp < 0x80)
    return cp >= '0' && cp <= '9';
  return cp != kInvalid && inRanges(kNumberRanges, cp);
}

/// Unicode White_Space (PropList.txt; unchanged since Unicode 6.3).
bool isSpace(uint32_t cp) {
  if (cp < 0x80)
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

enum class CharClass : uint8_t { Letter, Number, Space, Other };

CharClass classify(uint32_t cp) {
  if (isLetter(cp))
    return CharClass::Letter;
  if (isNumber(cp))
    return CharClass::Number;
  if (isSpace(cp))
    return CharClass::Space;
  return CharClass::Other;
}

uint8_t combiningClass(uint32_t cp) {
  if (cp < 0x300)
    return 0;
  const CombiningRun *begin = kCombiningRuns,
                     *end = kCombiningRuns + std::size(kCombiningRuns);
  const CombiningRun *it =
      std::upper_bound(begin, end, cp, [](uint32_t v, const CombiningRun &r) {
        return v < r.lo;
      });
  return it != begin && cp <= (it - 1)->hi ? (it - 1)->ccc : 0;
}

// Hangul syllables decompose and compose arithmetically (Unicode §3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161,
                   kTBase = 0x11A7, kLCount = 19, kVCount = 21, kTCount = 28,
                   kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(uint32_t cp, std::vector<uint32_t> &out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount)
      out.push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition *begin = kDecompositions,
                      *end = kDecompositions + std::size(kDecompositions);
  const Decomposition *it =
      std::lower_bound(begin, end, cp, [](const Decomposition &d, uint32_t v) {
        return d.cp < v;
      });
  if (it == end || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  decompose(it->first, out);
  if (it->second)
    decompose(it->second, out);
}

/// The primary composite of (a, b), or 0.
uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase &&
      b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 &&
      b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  // Built once, on first use (thread-safe static initialization).
  static const std::unordered_map<uint64_t, uint32_t> table = [] {
    std::unordered_map<uint64_t, uint32_t> t;
    for (const Decomposition &d : kDecompositions)
      if (d.composes)
        t.emplace((static_cast<uint64_t>(d.first) << 32) | d.second, d.cp);
    return t;
  }();
  auto it = table.find((static_cast<uint64_t>(a) << 32) | b);
  return it == table.end() ? 0 : it->second;
}

/// Unicode Normalization Form C (UAX #15: canonical decomposition,
/// canonical ordering, canonical composition). Bytes that are not valid
/// UTF-8 pass through unchanged and block composition across them.
std::string toNfc(std::string_view text) {
  // Every code point below U+0300 is NFC-stable with combining class 0, and
  // none composes with another: such text (most Latin text) is unchanged.
  bool simple = true;
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0xCC) {
      simple = false;
      break;
    }
  if (simple)
    return std::string(text);
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  std::vector<uint8_t> invalidBytes; // raw value of each kInvalid, in order
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t n = decodeUtf8(text, i, cp);
    if (cp == kInvalid) {
      cps.push_back(kInvalid);
      invalidBytes.push_back(static_cast<uint8_t>(text[i]));
    } else {
      decompose(cp, cps);
    }
    i += n;
  }
  // Canonical ordering: stable-sort each run of non-starters by class.
  for (size_t i = 0; i < cps.size();) {
    if (cps[i] == kInvalid || combiningClass(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && cps[j] != kInvalid && combiningClass(cps[j]) != 0)
      ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](uint32_t a, uint32_t b) {
                       return combiningClass(a) < combiningClass(b);
                     });
    i = j;
  }
  // Canonical composition.
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  int64_t starter = -1; // index in `out` of the last starter, -1: none
  int lastClass = 0;
  for (uint32_t cp : cps) {
    if (cp == kInvalid) {
      out.push_back(cp);
      starter = -1;
      continue;
    }
    int cls = combiningClass(cp);
    if (starter >= 0) {
      // Not blocked: nothing between the starter and cp, or everything in
      // between has a lower, non-zero class.
      bool adjacent = static_cast<size_t>(starter) + 1 == out.size();
      if (adjacent || (lastClass != 0 && lastClass < cls)) {
        if (uint32_t c = compose(out[starter], cp)) {
          out[starter] = c;
          continue;
        }
      }
    }
    if (cls == 0)
      starter = static_cast<int64_t>(out.size());
    lastClass = cls;
    out.push_back(cp);
  }
  std::string result;
  result.reserve(text.size());
  size_t nextInvalid = 0;
  for (uint32_t cp : out) {
    if (cp == kInvalid)
      result += static_cast<char>(invalidBytes[nextInvalid++]);
    else
      appendUtf8(result, cp);
  }
  return result;
}

//===----------------------------------------------------------------------===//
// Pre-tokenization
//===----------------------------------------------------------------------===//

/// A piece of text decoded into code points (with their byte offsets).
struct Decoded {
  std::vector<uint32_t> cps;
  std::vector<CharClass> cls;
  std::vector<size_t> at; ///< byte offset of each code point, plus the end

  explicit Decoded(std::string_view s) {
    cps.reserve(s.size());
    cls.reserve(s.size());
    at.reserve(s.size() + 1);
    for (size_t i = 0; i < s.size();) {
      uint32_t cp;
      size_t n = decodeUtf8(s, i, cp);
      cps.push_back(cp);
      cls.push_back(classify(cp));
      at.push_back(i);
      i += n;
    }
    at.push_back(s.size());
  }
  size_t size() const { return cps.size(); }
};

/// The Split regexes forge knows, by the exact pattern text.
enum class Pattern { Gpt2, Llama3, Qwen2 };

const char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kQwen2Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// Length (in code points) of a contraction at i, or 0. `caseless` follows
/// the `(?i:...)` group: ASCII case plus U+017F (long s), which case-folds
/// to 's'.
size_t contraction(const Decoded &d, size_t i, bool caseless) {
  if (d.cps[i] != '\'' || i + 1 >= d.size())
    return 0;
  auto fold = [&](size_t k) -> uint32_t {
    uint32_t c = d.cps[k];
    if (!caseless)
      return c;
    if (c >= 'A' && c <= 'Z')
      return c | 0x20;
    return c == 0x17F ? 's' : c;
  };
  uint32_t a = fold(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd')
    return 2;
  if (i + 2 < d.size()) {
    uint32_t b = fold(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
        (a == 'l' && b == 'l'))
      return 3;
  }
  return 0;
}

/// Length of the maximal run of code points of class `c` from i.
size_t runOf(const Decoded &d, size_t i, CharClass c) {
  size_t j = i;
  while (j < d.size() && d.cls[j] == c)
    ++j;
  return j - i;
}

bool isCrLf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/// The match at i of `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
/// ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (always at least one code point).
size_t matchGpt2(const Decoded &d, size_t i) {
  if (size_t n = contraction(d, i, /*caseless=*/false))
    return n;
  // " ?X+" for X = letter, number, other: the optional space is taken only
  // when an X follows it.
  bool space = d.cps[i] == ' ' && i + 1 < d.size();
  for (CharClass c : {CharClass::Letter, CharClass::Number, CharClass::Other}) {
    if (space && d.cls[i + 1] == c)
      return 1 + runOf(d, i + 1, c);
    if (d.cls[i] == c)
      return runOf(d, i, c);
  }
  // Whitespace: `\s+(?!\S)` leaves the last space of a run for the next
  // word unless the run ends the text; a lone space falls to `\s+`.
  size_t k = runOf(d, i, CharClass::Space);
  if (i + k == d.size() || k == 1)
    return k;
  return k - 1;
}

/// The match at i of Llama-3's pattern (maxDigits = 3) or Qwen2's (1).
size_t matchLlama3(const Decoded &d, size_t i, size_t maxDigits) {
  if (size_t n = contraction(d, i, /*caseless=*/true))
    return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  CharClass c = d.cls[i];
  if ((c == CharClass::Space || c == CharClass::Other) && !isCrLf(d.cps[i]) &&
      i + 1 < d.size() && d.cls[i + 1] == CharClass::Letter)
    return 1 + runOf(d, i + 1, CharClass::Letter);
  if (c == CharClass::Letter)
    return runOf(d, i, CharClass::Letter);
  // \p{N}{1,maxDigits}
  if (c == CharClass::Number)
    return std::min(maxDigits, runOf(d, i, CharClass::Number));
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  size_t j = i;
  if (d.cps[i] == ' ' && i + 1 < d.size() && d.cls[i + 1] == CharClass::Other)
    j = i + 1;
  if (d.cls[j] == CharClass::Other) {
    j += runOf(d, j, CharClass::Other);
    while (j < d.size() && isCrLf(d.cps[j]))
      ++j;
    return j - i;
  }
  // Whitespace. `\s*[\r\n]+` ends right after the run's last CR or LF.
  size_t k = runOf(d, i, CharClass::Space);
  for (size_t p = i + k; p > i; --p)
    if (isCrLf(d.cps[p - 1]))
      return p - i;
  // `\s+(?!\S)`, then `\s+`.
  if (i + k == d.size() || k == 1)
    return k;
  return k - 1;
}

void splitByPattern(Pattern pattern, const std::string &piece,
                    std::vector<std::string> &out) {
  Decoded d(piece);
  for (size_t i = 0; i < d.size();) {
    size_t n = pattern == Pattern::Gpt2     ? matchGpt2(d, i)
               : pattern == Pattern::Llama3 ? matchLlama3(d, i, 3)
                                            : matchLlama3(d, i, 1);
    out.emplace_back(piece, d.at[i], d.at[i + n] - d.at[i]);
    i += n;
  }
}

/// The Digits pre-tokenizer: numbers (Unicode N) split from the rest, one
/// piece per digit or per run of digits.
void splitDigits(bool individual, const std::string &piece,
                 std::vector<std::string> &out) {
  Decoded d(piece);
  for (size_t i = 0; i < d.size();) {
    size_t n;
    if (d.cls[i] == CharClass::Number) {
      n = individual ? 1 : runOf(d, i, CharClass::Number);
    } else {
      n = 0;
      while (i + n < d.size() && d.cls[i + n] != CharClass::Number)
        ++n;
    }
    out.emplace_back(piece, d.at[i], d.at[i + n] - d.at[i]);
    i += n;
  }
}

struct PreTokenizerStep {
  enum class Kind { Split, ByteLevel, Digits } kind;
  Pattern pattern = Pattern::Gpt2;
  bool addPrefixSpace = false;
  bool useRegex = true;
  bool individualDigits = false;
};

//===----------------------------------------------------------------------===//
// The byte-level alphabet
//===----------------------------------------------------------------------===//

/// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
/// the other 68 bytes for U+0100 onwards, in byte order.
std::array<uint32_t, 256> byteToCodePoint() {
  std::array<uint32_t, 256> map{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) ||
                     (b >= 174 && b <= 255);
    map[b] = printable ? b : next++;
  }
  return map;
}

//===----------------------------------------------------------------------===//
// Tokenizers
//===----------------------------------------------------------------------===//

class ByteTokenizer : public Tokenizer {
public:
  ByteTokenizer() {
    vocabSize_ = 257;
    eosId_ = 256;
    eosToken_ = "<eos>";
    name_ = "byte-level";
  }
  std::vector<uint32_t> encode(std::string_view text) const override {
    std::vector<uint32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i)
      ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }
};

/// Added tokens matched in text, leftmost longest (Aho-Corasick's
/// LeftmostLongest in `tokenizers`).
struct AddedSet {
  struct Entry {
    std::string content;
    uint32_t id;
    bool special, lstrip, rstrip;
  };
  std::vector<Entry> entries;
  /// Entries by first byte, longest first.
  std::array<std::vector<uint32_t>, 256> byFirstByte;

  void finish() {
    for (uint32_t e = 0; e < entries.size(); ++e)
      byFirstByte[static_cast<unsigned char>(entries[e].content[0])].push_back(
          e);
    for (auto &list : byFirstByte)
      std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
        return entries[a].content.size() > entries[b].content.size();
      });
  }

  /// Calls text(piece) and token(id) in order over `s`. Special tokens are
  /// skipped (they stay in the text), as `tokenizers` does with
  /// encode_special_tokens.
  template <typename TextFn, typename TokenFn>
  void split(std::string_view s, TextFn text, TokenFn token) const {
    if (entries.empty()) {
      text(s);
      return;
    }
    size_t emitted = 0; // everything before it has been handed out
    for (size_t p = 0; p < s.size();) {
      const Entry *match = nullptr;
      for (uint32_t e : byFirstByte[static_cast<unsigned char>(s[p])]) {
        const std::string &c = entries[e].content;
        if (s.compare(p, c.size(), c) == 0) {
          match = &entries[e];
          break;
        }
      }
      if (!match) {
        ++p;
        continue;
      }
      size_t start = p, stop = p + match->content.size();
      p = stop;
      if (match->special)
        continue;
      if (match->lstrip)
        while (start > emitted && trailingSpace(s.substr(0, start), start))
          ;
      if (match->rstrip)
        while (stop < s.size() && leadingSpace(s, stop))
          ;
      if (emitted < start)
        text(s.substr(emitted, start - emitted));
      token(match->id);
      emitted = stop;
      p = std::max(p, stop);
    }
    if (emitted < s.size())
      text(s.substr(emitted));
  }

private:
  /// Moves `end` back over one whitespace code point ending s; false when
  /// s does not end with one.
  static bool trailingSpace(std::string_view s, size_t &end) {
    // The last code point starts at most 3 continuation bytes back.
    size_t lead = s.size();
    do {
      if (lead == 0)
        return false;
      --lead;
    } while ((static_cast<unsigned char>(s[lead]) & 0xC0) == 0x80 &&
             s.size() - lead < 4);
    uint32_t cp;
    size_t n = decodeUtf8(s, lead, cp);
    if (lead + n != s.size() || !isSpace(cp))
      return false;
    end = lead;
    return true;
  }
  static bool leadingSpace(std::string_view s, size_t &at) {
    uint32_t cp;
    size_t n = decodeUtf8(s, at, cp);
    if (!isSpace(cp))
      return false;
    at += n;
    return true;
  }
};

class BpeTokenizer : public Tokenizer {
public:
  std::vector<uint32_t> encode(std::string_view text) const override;

  void setIdentity(uint32_t vocabSize, std::string name) {
    vocabSize_ = vocabSize;
    name_ = std::move(name);
  }

  // What buildBpe() fills in.
  bool nfc = false;
  std::vector<PreTokenizerStep> steps;
  AddedSet rawAdded, normalizedAdded;
  std::array<int64_t, 256> byteId{}; ///< -1: the byte's symbol is missing
  std::unordered_map<uint64_t, std::pair<uint32_t, uint32_t>> merges;
  std::unordered_map<std::string, uint32_t> rawVocab; ///< byte strings
  bool ignoreMerges = false;
  int64_t unkId = -1;
  bool fuseUnk = false;

private:
  void preTokenize(std::string_view text, std::vector<std::string> &out) const;
  void bpe(const std::string &piece, std::vector<uint32_t> &out) const;
};

void BpeTokenizer::preTokenize(std::string_view text,
                               std::vector<std::string> &out) const {
  // Like `tokenizers`, each step runs on every piece the previous one
  // produced (ByteLevel's add_prefix_space too), and empty pieces are dropped.
  std::vector<std::string> pieces{std::string(text)}, next;
  for (const PreTokenizerStep &step : steps) {
    next.clear();
    for (std::string &piece : pieces) {
      size_t before = next.size();
      switch (step.kind) {
      case PreTokenizerStep::Kind::Split:
        splitByPattern(step.pattern, piece, next);
        break;
      case PreTokenizerStep::Kind::Digits:
        splitDigits(step.individualDigits, piece, next);
        break;
      case PreTokenizerStep::Kind::ByteLevel:
        if (step.addPrefixSpace && (piece.empty() || piece[0] != ' '))
          piece.insert(piece.begin(), ' ');
        if (step.useRegex)
          splitByPattern(Pattern::Gpt2, piece, next);
        else
          next.push_back(std::move(piece));
        break;
      }
      next.erase(std::remove_if(next.begin() + before, next.end(),
                                [](const std::string &s) { return s.empty(); }),
                 next.end());
    }
    std::swap(pieces, next);
  }
  for (std::string &p : pieces)
    if (!p.empty())
      out.push_back(std::move(p));
}

void BpeTokenizer::bpe(const std::string &piece,
                       std::vector<uint32_t> &out) const {
  if (ignoreMerges) {
    auto it = rawVocab.find(piece);
    if (it != rawVocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // The word's symbols as a doubly linked list over a vector.
  struct Symbol {
    uint32_t id;
    int64_t prev, next;
    bool alive;
  };
  std::vector<Symbol> syms;
  syms.reserve(piece.size());
  bool pendingUnk = false;
  auto add = [&](uint32_t id) {
    int64_t n = static_cast<int64_t>(syms.size());
    syms.push_back({id, n - 1, n + 1, true});
  };
  for (char ch : piece) {
    int64_t id = byteId[static_cast<unsigned char>(ch)];
    if (id >= 0) {
      if (pendingUnk)
        add(static_cast<uint32_t>(unkId));
      pendingUnk = false;
      add(static_cast<uint32_t>(id));
      continue;
    }
    // buildBpe() guarantees an unk token when some byte has no symbol.
    if (pendingUnk && !fuseUnk)
      add(static_cast<uint32_t>(unkId));
    pendingUnk = true;
  }
  if (pendingUnk)
    add(static_cast<uint32_t>(unkId));
  if (syms.empty())
    return;
  syms.back().next = -1;

  struct Candidate {
    uint32_t rank;
    int64_t pos;
    uint32_t newId;
    bool operator>(const Candidate &o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>,
                      std::greater<Candidate>>
      queue;
  auto lookup = [&](uint32_t a, uint32_t b) {
    return merges.find((static_cast<uint64_t>(a) << 32) | b);
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) {
    auto it = lookup(syms[i].id, syms[i + 1].id);
    if (it != merges.end())
      queue.push(
          {it->second.first, static_cast<int64_t>(i), it->second.second});
  }
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol &left = syms[top.pos];
    if (!left.alive || left.next < 0)
      continue;
    Symbol &right = syms[left.next];
    // Skip stale entries: the pair at pos changed since it was queued.
    auto it = lookup(left.id, right.id);
    if (it == merges.end() || it->second.second != top.newId)
      continue;
    left.id = top.newId;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0)
      syms[left.next].prev = top.pos;
    if (left.prev >= 0) {
      auto p = lookup(syms[left.prev].id, left.id);
      if (p != merges.end())
        queue.push({p->second.first, left.prev, p->second.second});
    }
    if (left.next >= 0) {
      auto n = lookup(left.id, syms[left.next].id);
      if (n != merges.end())
        queue.push({n->second.first, top.pos, n->second.second});
    }
  }
  for (const Symbol &s : syms)
    if (s.alive)
      out.push_back(s.id);
}

std::vector<uint32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> ids;
  // `tokenizers` gives nothing for "" (even with add_prefix_space).
  if (text.empty())
    return ids;
  std::vector<std::string> pieces;
  auto model = [&](std::string_view s) {
    pieces.clear();
    preTokenize(s, pieces);
    for (const std::string &p : pieces)
      bpe(p, ids);
  };
  auto token = [&](uint32_t id) { ids.push_back(id); };
  rawAdded.split(
      text,
      [&](std::string_view s) {
        if (!nfc) {
          normalizedAdded.split(s, model, token);
          return;
        }
        std::string normalized = toNfc(s);
        normalizedAdded.split(normalized, model, token);
      },
      token);
  return ids;
}

//===----------------------------------------------------------------------===//
// Loading tokenizer.json
//===----------------------------------------------------------------------===//

using json::Document;
using json::Value;

std::string readFile(const std::string &path, std::string &text) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return path + ": is a directory";
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return path + ": cannot open";
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad())
    return path + ": cannot read";
  text = buffer.str();
  return "";
}

/// Reads tokenizer.json components, rejecting what forge cannot honour
/// with the position and the reason.
class Checker {
public:
  Checker(const Document &doc) : doc_(doc) {}

  /// The error at `v` ("<file>:<line>:<col>: <key>: <message>").
  std::string at(const Value &v, const std::string &key,
                 const std::string &message) const {
    return doc_.error(v, key + ": " + message);
  }

  /// A boolean member; absent or null gives `dflt`.
  bool flag(const Value &obj, const char *key, const std::string &path,
            bool dflt, std::string &err) const {
    const Value *v = obj.find(key);
    if (!v || v->isNull())
      return dflt;
    if (!v->isBool()) {
      err = at(*v, path + "." + key,
               std::string("expected true or false, got ") + v->kindName());
      return dflt;
    }
    return v->asBool();
  }

  /// The "type" member of a component, or an error.
  std::string type(const Value &v, const std::string &path,
                   std::string &err) const {
    if (!v.isObject()) {
      err = at(v, path, std::string("expected an object, got ") + v.kindName());
      return "";
    }
    const Value *t = v.find("type");
    if (!t || !t->isString()) {
      err = at(v, path, "has no \"type\"");
      return "";
    }
    return t->asString();
  }

  std::string normalizer(const Value &v, const std::string &path,
                         bool &nfc) const {
    if (v.isNull())
      return "";
    std::string err;
    std::string t = type(v, path, err);
    if (!err.empty())
      return err;
    if (t == "NFC") {
      nfc = true;
      return "";
    }
    if (t == "Sequence") {
      const Value *list = v.find("normalizers");
      if (!list || !list->isArray())
        return at(v, path, "a Sequence needs a \"normalizers\" array");
      for (size_t i = 0; i < list->items().size(); ++i) {
        std::string e = normalizer(list->items()[i],
                                   path + "[" + std::to_string(i) + "]", nfc);
        if (!e.empty())
          return e;
      }
      return "";
    }
    return at(v, path,
              "the " + t +
                  " normalizer is not supported (forge applies no "
                  "normalizer or NFC; a byte-level BPE needs no other)");
  }

  std::string preTokenizer(const Value &v, const std::string &path,
                           std::vector<PreTokenizerStep> &steps) const {
    if (v.isNull())
      return "";
    std::string err;
    std::string t = type(v, path, err);
    if (!err.empty())
      return err;
    if (t == "Sequence") {
      const Value *list = v.find("pretokenizers");
      if (!list || !list->isArray())
        return at(v, path, "a Sequence needs a \"pretokenizers\" array");
      for (size_t i = 0; i < list->items().size(); ++i) {
        std::string e = preTokenizer(
            list->items()[i], path + "[" + std::to_string(i) + "]", steps);
        if (!e.empty())
          return e;
      }
      return "";
    }
    PreTokenizerStep step;
    if (t == "ByteLevel") {
      step.kind = PreTokenizerStep::Kind::ByteLevel;
      step.addPrefixSpace = flag(v, "add_prefix_space", path, true, err);
      step.useRegex = flag(v, "use_regex", path, true, err);
      if (!err.empty())
        return err;
      steps.push_back(step);
      return "";
    }
    if (t == "Digits") {
      step.kind = PreTokenizerStep::Kind::Digits;
      step.individualDigits = flag(v, "individual_digits", path, false, err);
      if (!err.empty())
        return err;
      steps.push_back(step);
      return "";
    }
    if (t == "Split") {
      step.kind = PreTokenizerStep::Kind::Split;
      const Value *pattern = v.find("pattern");
      const Value *regex =
          pattern && pattern->isObject() ? pattern->find("Regex") : nullptr;
      if (!regex || !regex->isString())
        return at(pattern ? *pattern : v, path + ".pattern",
                  "only {\"Regex\": ...} patterns are supported");
      const std::string &re = regex->asString();
      if (re == kGpt2Pattern)
        step.pattern = Pattern::Gpt2;
      else if (re == kLlama3Pattern)
        step.pattern = Pattern::Llama3;
      else if (re == kQwen2Pattern)
        step.pattern = Pattern::Qwen2;
      else
        return at(*regex, path + ".pattern.Regex",
                  "unsupported split regex \"" + re +
                      "\" (forge implements the GPT-2, Llama-3 and Qwen2 "
                      "patterns exactly and runs no other regex)");
      const Value *behavior = v.find("behavior");
      if (!behavior || !behavior->isString() ||
          behavior->asString() != "Isolated")
        return at(behavior ? *behavior : v, path + ".behavior",
                  "only the Isolated split behavior is supported");
      bool invert = flag(v, "invert", path, false, err);
      if (!err.empty())
        return err;
      if (invert)
        return at(*v.find("invert"), path + ".invert",
                  "inverted splits are not supported");
      steps.push_back(step);
      return "";
    }
    return at(v, path,
              "the " + t +
                  " pre-tokenizer is not supported (forge supports "
                  "ByteLevel, optionally after Split or Digits)");
  }

private:
  const Document &doc_;
};

/// A token of the vocabulary (model.vocab, either an object token -> id or
/// Unigram's [[token, score], ...]) or of added_tokens: its id, or -1.
int64_t findTokenId(const Value &root, const std::string &token) {
  if (const Value *added = root.find("added_tokens"); added && added->isArray())
    for (const Value &t : added->items()) {
      const Value *content = t.find("content"), *id = t.find("id");
      if (content && content->isString() && content->asString() == token &&
          id && id->isInteger())
        return id->asInt();
    }
  const Value *model = root.find("model");
  const Value *vocab = model ? model->find("vocab") : nullptr;
  if (!vocab)
    return -1;
  if (vocab->isObject()) {
    const Value *id = vocab->find(token);
    return id && id->isInteger() ? id->asInt() : -1;
  }
  if (vocab->isArray())
    for (size_t i = 0; i < vocab->items().size(); ++i) {
      const Value &entry = vocab->items()[i];
      if (entry.isArray() && !entry.items().empty() &&
          entry.items()[0].isString() && entry.items()[0].asString() == token)
        return static_cast<int64_t>(i);
    }
  return -1;
}

/// EOS of a tokenizer.json (`doc`) with its tokenizer_config.json (`config`,
/// may be null). Returns an empty string, or what is wrong and how to fix it.
std::string findEos(const Document &doc, const Document *config,
                    std::string &token, int64_t &id) {
  if (config) {
    const Value *eos = config->root.find("eos_token");
    if (eos && !eos->isNull()) {
      const Value *content = eos;
      if (eos->isObject())
        content = eos->find("content");
      if (!content || !content->isString())
        return config->error(*eos, "eos_token: expected a string or an "
                                   "object with a \"content\" string");
      token = content->asString();
      id = findTokenId(doc.root, token);
      // tokenizer_config.json may define the token itself.
      const Value *decoder = config->root.find("added_tokens_decoder");
      if (id < 0 && decoder && decoder->isObject())
        for (const auto &[key, t] : decoder->members()) {
          const Value *c = t.find("content");
          if (c && c->isString() && c->asString() == token) {
            char *end = nullptr;
            long long v = std::strtoll(key.c_str(), &end, 10);
            if (end && *end == '\0' && !key.empty() && v >= 0) {
              id = v;
              break;
            }
          }
        }
      if (id < 0)
        return config->error(*content, "eos_token \"" + token +
                                           "\" is not a token of " +
                                           doc.source);
      return "";
    }
  }
  if (const Value *added = doc.root.find("added_tokens");
      added && added->isArray())
    for (const char *candidate : kEosCandidates)
      for (const Value &t : added->items()) {
        const Value *content = t.find("content"), *tid = t.find("id"),
                    *special = t.find("special");
        if (content && content->isString() &&
            content->asString() == candidate && tid && tid->isInteger() &&
            tid->asInt() >= 0 && special && special->isBool() &&
            special->asBool()) {
          token = candidate;
          id = tid->asInt();
          return "";
        }
      }
  std::string list;
  for (const char *c : kEosCandidates)
    list += std::string(list.empty() ? "" : ", ") + c;
  return doc.source + ": cannot tell the EOS token: " +
         (config ? config->source + " has no \"eos_token\""
                 : std::string("no tokenizer_config.json beside it")) +
         ", and none of the special added tokens is one of " + list +
         "; put a tokenizer_config.json with {\"eos_token\": \"<token>\"} "
         "beside the tokenizer.json";
}

std::string checkId(const Document &doc, const Value &v, const std::string &key,
                    uint32_t &out) {
  if (!v.isInteger() || v.asInt() < 0 || v.asInt() >= (int64_t(1) << 32) - 1)
    return doc.error(v, key +
                            ": expected a token id (an integer in [0, 2^32 "
                            "- 1)), got " +
                            std::string(v.kindName()));
  out = static_cast<uint32_t>(v.asInt());
  return "";
}

std::unique_ptr<BpeTokenizer> buildBpe(const Document &doc, std::string &err) {
  const Value &root = doc.root;
  auto tok = std::make_unique<BpeTokenizer>();
  Checker check(doc);
  if (!root.isObject()) {
    err = doc.error(root, "a tokenizer.json holds an object, got " +
                              std::string(root.kindName()));
    return nullptr;
  }
  const Value *model = root.find("model");
  if (!model || !model->isObject()) {
    err = doc.error(root, "no \"model\" object (not a Hugging Face "
                          "tokenizer.json?)");
    return nullptr;
  }
  // tokenizers omits "type" in some old files; merges say BPE then.
  const Value *type = model->find("type");
  std::string modelType = type && type->isString() ? type->asString()
                          : model->find("merges")  ? "BPE"
                                                   : "unknown";
  if (modelType != "BPE") {
    err = check.at(type ? *type : *model, "model.type",
                   "the " + modelType +
                       " model is not supported (forge encodes byte-level BPE "
                       "only: GPT-2, RoBERTa, Llama-3, Qwen style)");
    return nullptr;
  }
  if (const Value *d = model->find("dropout");
      d && !d->isNull() && !(d->isNumber() && d->asDouble() == 0)) {
    err = check.at(*d, "model.dropout",
                   "BPE dropout is not supported (training data must tokenize "
                   "deterministically)");
    return nullptr;
  }
  for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const Value *v = model->find(key);
        v && !v->isNull() && !(v->isString() && v->asString().empty())) {
      err = check.at(*v, std::string("model.") + key,
                     "is not supported (not a byte-level BPE)");
      return nullptr;
    }
  if (check.flag(*model, "byte_fallback", "model", false, err) ||
      !err.empty()) {
    if (err.empty())
      err =
          check.at(*model->find("byte_fallback"), "model.byte_fallback",
                   "byte_fallback (SentencePiece-style BPE) is not supported; "
                   "forge encodes byte-level BPE only");
    return nullptr;
  }
  tok->ignoreMerges = check.flag(*model, "ignore_merges", "model", false, err);
  tok->fuseUnk = check.flag(*model, "fuse_unk", "model", false, err);
  if (!err.empty())
    return nullptr;

  if (const Value *n = root.find("normalizer"))
    if (std::string e = check.normalizer(*n, "normalizer", tok->nfc);
        !e.empty()) {
      err = e;
      return nullptr;
    }
  const Value *pre = root.find("pre_tokenizer");
  if (pre)
    if (std::string e = check.preTokenizer(*pre, "pre_tokenizer", tok->steps);
        !e.empty()) {
      err = e;
      return nullptr;
    }
  bool byteLevel = false;
  for (const PreTokenizerStep &s : tok->steps)
    byteLevel |= s.kind == PreTokenizerStep::Kind::ByteLevel;
  if (!byteLevel) {
    std::string decoder = "none";
    if (const Value *d = root.find("decoder"); d && d->isObject())
      if (const Value *t = d->find("type"); t && t->isString())
        decoder = t->asString();
    err = doc.error(
        pre ? *pre : root,
        "pre_tokenizer: no ByteLevel pre-tokenizer (decoder: " + decoder +
            "): not a byte-level BPE; SentencePiece-style "
            "(Metaspace) BPE is not supported");
    return nullptr;
  }

  // The vocabulary, keyed by byte-level strings, and back to raw bytes.
  const Value *vocab = model->find("vocab");
  if (!vocab || !vocab->isObject()) {
    err = check.at(vocab ? *vocab : *model, "model.vocab",
                   "expected an object mapping tokens to ids");
    return nullptr;
  }
  std::array<uint32_t, 256> b2c = byteToCodePoint();
  std::unordered_map<uint32_t, uint8_t> c2b;
  for (uint32_t b = 0; b < 256; ++b)
    c2b[b2c[b]] = static_cast<uint8_t>(b);
  std::unordered_map<std::string, uint32_t> tokenId;
  tokenId.reserve(vocab->members().size());
  uint32_t maxId = 0;
  bool anyId = false;
  for (const auto &[token, idValue] : vocab->members()) {
    uint32_t id;
    if ((err = checkId(doc, idValue, "model.vocab[\"" + token + "\"]", id))
            .size())
      return nullptr;
    tokenId.emplace(token, id);
    maxId = std::max(maxId, id);
    anyId = true;
    // The raw bytes the token stands for, when it is made of byte symbols.
    std::string raw;
    bool ok = true;
    for (size_t i = 0; i < token.size() && ok;) {
      uint32_t cp;
      i += decodeUtf8(token, i, cp);
      auto it = c2b.find(cp);
      ok = it != c2b.end();
      if (ok)
        raw += static_cast<char>(it->second);
    }
    if (ok && !raw.empty())
      tok->rawVocab.emplace(std::move(raw), id);
  }
  for (uint32_t b = 0; b < 256; ++b) {
    std::string symbol;
    appendUtf8(symbol, b2c[b]);
    auto it = tokenId.find(symbol);
    tok->byteId[b] =
        it == tokenId.end() ? -1 : static_cast<int64_t>(it->second);
  }
  if (const Value *unk = model->find("unk_token"); unk && !unk->isNull()) {
    if (!unk->isString()) {
      err = check.at(*unk, "model.unk_token", "expected a string");
      return nullptr;
    }
    auto it = tokenId.find(unk->asString());
    if (it == tokenId.end()) {
      err = check.at(*unk, "model.unk_token",
                     "\"" + unk->asString() + "\" is not in model.vocab");
      return nullptr;
    }
    tok->unkId = it->second;
  }
  for (uint32_t b = 0; b < 256; ++b)
    if (tok->byteId[b] < 0 && tok->unkId < 0) {
      std::string symbol;
      appendUtf8(symbol, b2c[b]);
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      err =
          check.at(*vocab, "model.vocab",
                   std::string("byte ") + hex + " has no symbol (\"" + symbol +
                       "\") and there is no unk_token: text holding it cannot "
                       "be encoded (train the BPE with the full ByteLevel "
                       "alphabet)");
      return nullptr;
    }

  // Merges: "a b" strings or [a, b] pairs; the rank is the position (a
  // repeated pair keeps its last rank, as in `tokenizers`).
  const Value *mergeList = model->find("merges");
  if (!mergeList || !mergeList->isArray()) {
    err = check.at(mergeList ? *mergeList : *model, "model.merges",
                   "expected an array");
    return nullptr;
  }
  tok->merges.reserve(mergeList->items().size());
  for (size_t r = 0; r < mergeList->items().size(); ++r) {
    const Value &m = mergeList->items()[r];
    std::string a, b;
    std::string key = "model.merges[" + std::to_string(r) + "]";
    if (m.isString()) {
      const std::string &s = m.asString();
      size_t space = s.find(' ');
      if (space == std::string::npos ||
          s.find(' ', space + 1) != std::string::npos) {
        err =
            check.at(m, key, "expected \"<left> <right>\", got \"" + s + "\"");
        return nullptr;
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (m.isArray() && m.items().size() == 2 &&
               m.items()[0].isString() && m.items()[1].isString()) {
      a = m.items()[0].asString();
      b = m.items()[1].asString();
    } else {
      err = check.at(m, key, "expected \"<left> <right>\" or [left, right]");
      return nullptr;
    }
    auto ia = tokenId.find(a), ib = tokenId.find(b), ic = tokenId.find(a + b);
    for (auto [it, name] : {std::pair{ia, &a}, std::pair{ib, &b}})
      if (it == tokenId.end()) {
        err = check.at(m, key, "\"" + *name + "\" is not in model.vocab");
        return nullptr;
      }
    if (ic == tokenId.end()) {
      err = check.at(
          m, key, "the merged token \"" + a + b + "\" is not in model.vocab");
      return nullptr;
    }
    tok->merges[(static_cast<uint64_t>(ia->second) << 32) | ib->second] = {
        static_cast<uint32_t>(r), ic->second};
  }

  // Added tokens.
  if (const Value *added = root.find("added_tokens");
      added && !added->isNull()) {
    if (!added->isArray()) {
      err = check.at(*added, "added_tokens", "expected an array");
      return nullptr;
    }
    for (size_t i = 0; i < added->items().size(); ++i) {
      const Value &t = added->items()[i];
      std::string key = "added_tokens[" + std::to_string(i) + "]";
      const Value *content = t.find("content"), *idValue = t.find("id");
      if (!t.isObject() || !content || !content->isString() ||
          content->asString().empty() || !idValue) {
        err = check.at(t, key, "expected {\"id\": ..., \"content\": \"...\"}");
        return nullptr;
      }
      AddedSet::Entry e;
      e.content = content->asString();
      if ((err = checkId(doc, *idValue, key + ".id", e.id)).size())
        return nullptr;
      e.special = check.flag(t, "special", key, false, err);
      e.lstrip = check.flag(t, "lstrip", key, false, err);
      e.rstrip = check.flag(t, "rstrip", key, false, err);
      bool normalized = check.flag(t, "normalized", key, !e.special, err);
      bool singleWord = check.flag(t, "single_word", key, false, err);
      if (!err.empty())
        return nullptr;
      if (singleWord && !e.special) {
        err = check.at(*t.find("single_word"), key + ".single_word",
                       "single_word added tokens are not supported");
        return nullptr;
      }
      maxId = std::max(maxId, e.id);
      anyId = true;
      (normalized ? tok->normalizedAdded : tok->rawAdded)
          .entries.push_back(std::move(e));
    }
  }
  tok->rawAdded.finish();
  tok->normalizedAdded.finish();
  if (!anyId) {
    err = check.at(*vocab, "model.vocab", "is empty");
    return nullptr;
  }
  tok->setIdentity(maxId + 1, doc.source);
  return tok;
}

} // namespace

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::byteLevel() {
  return std::make_unique<ByteTokenizer>();
}

std::unique_ptr<Tokenizer>
Tokenizer::fromJson(std::string tokenizerJson, const std::string &source,
                    std::optional<std::string> configText,
                    const std::string &configSource, std::string &error) {
  Document doc;
  if ((error = json::parse(std::move(tokenizerJson), source, doc)).size())
    return nullptr;
  std::unique_ptr<BpeTokenizer> tok = buildBpe(doc, error);
  if (!tok)
    return nullptr;
  Document config;
  bool haveConfig = configText.has_value();
  if (haveConfig &&
      (error = json::parse(std::move(*configText), configSource, config))
          .size())
    return nullptr;
  int64_t eos = -1;
  if ((error =
           findEos(doc, haveConfig ? &config : nullptr, tok->eosToken_, eos))
          .size())
    return nullptr;
  if (eos >= tok->vocabSize_) {
    error = source + ": the EOS token \"" + tok->eosToken_ + "\" has id " +
            std::to_string(eos) + ", outside the vocabulary";
    return nullptr;
  }
  tok->eosId_ = static_cast<uint32_t>(eos);
  return tok;
}

std::string locateTokenizerFiles(const std::string &tokenizerPath,
                                 std::string &tokenizerJson,
                                 std::string &tokenizerConfig) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(tokenizerPath);
  if (fs::is_directory(p, ec)) {
    tokenizerJson = (p / "tokenizer.json").string();
    tokenizerConfig = (p / "tokenizer_config.json").string();
    if (!fs::is_regular_file(tokenizerJson, ec))
      return "'" + tokenizerPath +
             "' holds no tokenizer.json (forge reads Hugging Face "
             "tokenizer.json files)";
    return "";
  }
  if (fs::is_regular_file(p, ec)) {
    tokenizerJson = p.string();
    tokenizerConfig = (p.parent_path() / "tokenizer_config.json").string();
    return "";
  }
  return "tokenizer '" + tokenizerPath +
         "' does not exist (give a tokenizer.json, a directory holding one, "
         "or 'byte'; names on the Hugging Face Hub are not downloaded)";
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string &spec,
                                           std::string &error) {
  if (spec == "byte")
    return byteLevel();
  std::string jsonPath, configPath, text;
  if ((error = locateTokenizerFiles(spec, jsonPath, configPath)).size())
    return nullptr;
  if ((error = readFile(jsonPath, text)).size())
    return nullptr;
  std::optional<std::string> config;
  std::error_code ec;
  if (std::filesystem::is_regular_file(configPath, ec) &&
      (error = readFile(configPath, config.emplace())).size())
    return nullptr;
  return fromJson(std::move(text), jsonPath, std::move(config), configPath,
                  error);
}

std::string resolveEosId(const std::string &tokenizerPath, int64_t &eos) {
  if (tokenizerPath == "byte") {
    eos = 256;
    return "";
  }
  std::string jsonPath, configPath, text;
  if (std::string e = locateTokenizerFiles(tokenizerPath, jsonPath, configPath);
      !e.empty())
    return e;
  Document doc, config;
  if (std::string e = readFile(jsonPath, text); !e.empty())
    return e;
  if (std::string e = json::parse(std::move(text), jsonPath, doc); !e.empty())
    return e;
  std::error_code ec;
  bool haveConfig = std::filesystem::is_regular_file(configPath, ec);
  if (haveConfig)
    if (std::string e = json::parseFile(configPath, config); !e.empty())
      return e;
  std::string token;
  return findEos(doc, haveConfig ? &config : nullptr, token, eos);
}

const char *unicodeVersion() { return kUnicodeVersion; }

} // namespace forge::data

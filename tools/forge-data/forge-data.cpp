//===- forge-data.cpp - Text files to token shards ------------------------===//
//
// forge-data turns text into the pre-tokenized .npy shards forge-run trains
// on (data.dataset_path), with the built-in byte-level tokenizer or a
// Hugging Face byte-level BPE tokenizer.json, EOS after every document. It
// also prints a tokenizer's EOS id (what packing uses) and encodes a string
// (to inspect a tokenizer). See tools/forge-data/README.md.
//
//===----------------------------------------------------------------------===//

#include "forge/Version.h"
#include "runtime/data/NpyWriter.h"
#include "runtime/data/Tokenizer.h"
#include "tools/common/ToolArgs.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace forge;
namespace fs = std::filesystem;

static const char kTool[] = "forge-data";

static void printHelp() {
  std::printf(
      "USAGE: forge-data tokenize [options] -o <dir> <input>...\n"
      "       forge-data eos <tokenizer>\n"
      "       forge-data encode [--tokenizer <tokenizer>] [<text>]\n"
      "\n"
      "Turns text files into pre-tokenized .npy shards for forge-run\n"
      "(data.dataset_path): every file (or paragraph) is one document, "
      "followed\n"
      "by EOS. Inputs are files or directories (searched recursively, in "
      "name\n"
      "order; hidden entries and files that are not UTF-8 text are "
      "skipped).\n"
      "\n"
      "COMMANDS:\n"
      "  tokenize                  write <dir>/train_00000.npy, ... (and\n"
      "                            <dir>/eval/eval_00000.npy, ...)\n"
      "  eos <tokenizer>           print the tokenizer's EOS id (the one\n"
      "                            sequence packing uses for "
      "data.tokenizer_path)\n"
      "  encode [<text>]           print the ids of <text> (or of standard "
      "input)\n"
      "\n"
      "OPTIONS:\n"
      "  --tokenizer <byte|path>   'byte' (built in: ids 0-255 are bytes, EOS "
      "256)\n"
      "                            or a Hugging Face byte-level BPE "
      "tokenizer.json\n"
      "                            or a directory holding one (default: "
      "byte)\n"
      "  -o, --output <dir>        where the shards go (created if missing)\n"
      "  --dtype <uint16|uint32>   token type (default: uint16 when the "
      "vocabulary\n"
      "                            has at most 65536 ids, else uint32)\n"
      "  --shard-tokens <N>        tokens per shard at most (default "
      "100000000)\n"
      "  --eval-fraction <F>       hold out the last F of the documents as "
      "eval\n"
      "                            data in <dir>/eval (0 <= F < 1; default "
      "0)\n"
      "  --split-paragraphs        a blank line ends a document (default: one\n"
      "                            document per file)\n"
      "  --threads <N>             tokenize on N threads (default: all "
      "cores);\n"
      "                            the output does not depend on N\n"
      "  --overwrite               replace the shards of an earlier run in "
      "<dir>\n"
      "  --version                 print the version and exit\n"
      "  -h, --help                print this help and exit\n"
      "\n"
      "Exit codes: 0 success, 1 the data could not be written, 2 misuse.\n");
}

static int fail(const std::string &why) {
  std::fprintf(stderr, "%s: error: %s\n", kTool, why.c_str());
  return 1;
}

/// "12345678" -> "12,345,678".
static std::string withCommas(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

static std::string plural(uint64_t n, const char *word) {
  return withCommas(n) + " " + word + (n == 1 ? "" : "s");
}

/// Offset of the first byte that makes `s` not UTF-8 text (invalid UTF-8
/// or a NUL byte, which only binary files hold), or npos.
static size_t notText(const std::string &s) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  for (size_t i = 0; i < s.size();) {
    unsigned char c = b(i);
    if (c == 0)
      return i;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (n == 0 || i + n > s.size())
      return i;
    for (size_t k = 1; k < n; ++k)
      if ((b(i + k) & 0xC0) != 0x80)
        return i;
    unsigned char c1 = b(i + 1);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) ||
        (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90))
      return i; // overlong, surrogate or above U+10FFFF
    i += n;
  }
  return std::string::npos;
}

static bool readFile(const std::string &path, std::string &text) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream s;
  s << in.rdbuf();
  text = s.str();
  return !in.bad();
}

/// The documents of a file's text: the whole text, or with
/// `paragraphs` the maximal runs of non-blank lines (a blank line holds
/// only spaces, tabs and CR), each without its last line break. Empty
/// documents are dropped.
static std::vector<std::string_view> documents(const std::string &text,
                                               bool paragraphs) {
  std::vector<std::string_view> docs;
  if (!paragraphs) {
    if (!text.empty())
      docs.emplace_back(text);
    return docs;
  }
  size_t docStart = std::string::npos, docEnd = 0;
  for (size_t line = 0; line < text.size();) {
    size_t nl = text.find('\n', line);
    size_t end = nl == std::string::npos ? text.size() : nl;
    bool blank = text.find_first_not_of(" \t\r", line) >= end;
    if (blank) {
      if (docStart != std::string::npos)
        docs.emplace_back(text.data() + docStart, docEnd - docStart);
      docStart = std::string::npos;
    } else {
      if (docStart == std::string::npos)
        docStart = line;
      docEnd = end;
    }
    line = nl == std::string::npos ? text.size() : nl + 1;
  }
  if (docStart != std::string::npos)
    docs.emplace_back(text.data() + docStart, docEnd - docStart);
  return docs;
}

namespace {

struct Options {
  std::string tokenizer = "byte";
  std::string output;
  std::string dtype;
  uint64_t shardTokens = 100000000;
  double evalFraction = 0;
  bool paragraphs = false;
  unsigned threads = 0;
  bool overwrite = false;
  std::vector<std::string> inputs;
};

struct InputFile {
  std::string path;
  uint64_t documents = 0;
};

} // namespace

/// Lists the input files in order. Directory entries that are hidden are
/// not visited; files that are not UTF-8 text are skipped when found in a
/// directory and an error when named.
static bool collectInputs(const Options &opt, std::vector<InputFile> &files,
                          uint64_t &skipped, uint64_t &emptyDocs,
                          std::string &error) {
  std::string text;
  auto consider = [&](const std::string &path, bool named) {
    if (!readFile(path, text)) {
      error = path + ": cannot read";
      return false;
    }
    if (size_t at = notText(text); at != std::string::npos) {
      if (named) {
        error = path + ": not UTF-8 text (byte " + std::to_string(at) + ")";
        return false;
      }
      std::fprintf(stderr, "%s: note: skipping %s: not UTF-8 text (byte %zu)\n",
                   kTool, path.c_str(), at);
      ++skipped;
      return true;
    }
    InputFile f{path, documents(text, opt.paragraphs).size()};
    if (f.documents == 0)
      ++emptyDocs;
    files.push_back(f);
    return true;
  };
  for (const std::string &input : opt.inputs) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      std::vector<std::string> found;
      fs::recursive_directory_iterator it(input, ec), end;
      for (; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory(ec))
            it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file(ec))
          found.push_back(it->path().string());
      }
      if (ec) {
        error = input + ": cannot list (" + ec.message() + ")";
        return false;
      }
      std::sort(found.begin(), found.end());
      for (const std::string &f : found)
        if (!consider(f, false))
          return false;
    } else if (fs::is_regular_file(input, ec)) {
      if (!consider(input, true))
        return false;
    } else {
      error = "input '" + input + "' does not exist";
      return false;
    }
  }
  return true;
}

/// Checks that `dir` holds no shards a dataset would mix in, except, with
/// --overwrite, those of an earlier run (train_*.npy, eval/eval_*.npy), which
/// it removes unless `checkOnly`. Then creates the directories.
static bool prepareOutput(const Options &opt, bool checkOnly,
                          std::string &error) {
  std::error_code ec;
  fs::path dir(opt.output), evalDir = dir / "eval";
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    error = "output '" + opt.output + "' exists and is not a directory";
    return false;
  }
  for (const fs::path &d : {dir, evalDir}) {
    if (!fs::is_directory(d, ec))
      continue;
    std::vector<fs::path> npy;
    fs::directory_iterator it(d, ec), end;
    for (; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".npy")
        npy.push_back(it->path());
    if (ec) {
      error = "cannot list '" + d.string() + "' (" + ec.message() + ")";
      return false;
    }
    std::sort(npy.begin(), npy.end());
    std::string prefix = d == dir ? "train_" : "eval_";
    for (const fs::path &p : npy) {
      std::string name = p.filename().string();
      bool ours = name.rfind(prefix, 0) == 0;
      if (opt.overwrite && ours) {
        if (checkOnly)
          continue;
        if (!fs::remove(p, ec)) {
          error = p.string() + ": cannot remove (" + ec.message() + ")";
          return false;
        }
        continue;
      }
      error = ours ? "'" + d.string() + "' already holds shards (" + name +
                         "); use --overwrite to replace them"
                   : "'" + d.string() + "' holds " + name +
                         ", which a dataset reading *.npy there would mix "
                         "in; use an empty directory";
      return false;
    }
  }
  if (checkOnly)
    return true;
  fs::create_directories(dir, ec);
  if (ec) {
    error = "cannot create '" + opt.output + "' (" + ec.message() + ")";
    return false;
  }
  if (opt.evalFraction > 0) {
    fs::create_directories(evalDir, ec);
    if (ec) {
      error = "cannot create '" + evalDir.string() + "' (" + ec.message() + ")";
      return false;
    }
  }
  return true;
}

static std::string describeShards(const data::ShardSink &sink) {
  const auto &files = sink.files();
  if (files.empty())
    return "0 shards";
  std::string s = plural(files.size(), "shard") + ": " + files.front();
  if (files.size() > 1)
    s += " .. " + files.back();
  return s;
}

static int tokenize(const Options &opt) {
  std::string error;
  std::unique_ptr<data::Tokenizer> tok =
      data::Tokenizer::load(opt.tokenizer, error);
  if (!tok)
    return fail(error);
  int elementBytes = tok->vocabSize() <= 65536 ? 2 : 4;
  if (opt.dtype == "uint16") {
    if (tok->vocabSize() > 65536)
      tools::usageError(kTool, "--dtype uint16 cannot hold the ids of " +
                                   tok->name() + " (vocabulary " +
                                   std::to_string(tok->vocabSize()) +
                                   " > 65536); use uint32");
    elementBytes = 2;
  } else if (opt.dtype == "uint32") {
    elementBytes = 4;
  }

  // Fail on the output before reading every input; remove nothing yet.
  if (!prepareOutput(opt, /*checkOnly=*/true, error))
    return fail(error);
  std::vector<InputFile> files;
  uint64_t skipped = 0, emptyFiles = 0;
  if (!collectInputs(opt, files, skipped, emptyFiles, error))
    return fail(error);
  uint64_t totalDocs = 0;
  for (const InputFile &f : files)
    totalDocs += f.documents;
  if (totalDocs == 0)
    return fail("no documents in the inputs (" + plural(files.size(), "file") +
                " read, " + std::to_string(skipped) + " skipped)");
  uint64_t evalDocs = 0;
  if (opt.evalFraction > 0) {
    if (totalDocs < 2)
      return fail("--eval-fraction needs at least 2 documents, the inputs "
                  "hold 1");
    // At least one document on each side.
    evalDocs = static_cast<uint64_t>(
        std::llround(opt.evalFraction * static_cast<double>(totalDocs)));
    evalDocs = std::clamp<uint64_t>(evalDocs, 1, totalDocs - 1);
  }
  if (!prepareOutput(opt, /*checkOnly=*/false, error))
    return fail(error);

  data::ShardSink train(opt.output, "train", elementBytes, opt.shardTokens);
  data::ShardSink eval((fs::path(opt.output) / "eval").string(), "eval",
                       elementBytes, opt.shardTokens);
  const uint64_t firstEval = totalDocs - evalDocs;
  unsigned threads = opt.threads
                         ? opt.threads
                         : std::max(1u, std::thread::hardware_concurrency());

  // Documents are tokenized in batches, each batch in parallel, and written
  // in document order, so the shards do not depend on the thread count.
  constexpr size_t kBatchBytes = 32 << 20;
  std::deque<std::string> texts; // the files whose documents are batched
  std::vector<std::string_view> batch;
  std::vector<std::vector<uint32_t>> ids;
  uint64_t docIndex = 0;
  auto flush = [&]() -> std::string {
    ids.assign(batch.size(), {});
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next.fetch_add(1)) < batch.size();) {
        ids[i] = tok->encode(batch[i]);
        ids[i].push_back(tok->eosId());
      }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < std::min<size_t>(threads, batch.size()); ++t)
      pool.emplace_back(work);
    work();
    for (std::thread &t : pool)
      t.join();
    for (size_t i = 0; i < batch.size(); ++i, ++docIndex)
      if (std::string e = (docIndex < firstEval ? train : eval).write(ids[i]);
          !e.empty())
        return e;
    batch.clear();
    texts.clear();
    return "";
  };
  size_t batchBytes = 0;
  for (const InputFile &f : files) {
    texts.emplace_back();
    if (!readFile(f.path, texts.back()))
      return fail(f.path + ": cannot read");
    std::vector<std::string_view> docs =
        documents(texts.back(), opt.paragraphs);
    if (docs.size() != f.documents)
      return fail(f.path + ": changed while forge-data was reading it");
    for (std::string_view d : docs)
      batch.push_back(d);
    batchBytes += texts.back().size();
    if (batchBytes >= kBatchBytes) {
      if (std::string e = flush(); !e.empty())
        return fail(e);
      batchBytes = 0;
    }
  }
  if (std::string e = flush(); !e.empty())
    return fail(e);
  if (std::string e = train.finish(); !e.empty())
    return fail(e);
  if (std::string e = eval.finish(); !e.empty())
    return fail(e);

  const char *dtype = elementBytes == 2 ? "uint16" : "uint32";
  std::printf("tokenizer: %s (vocabulary %u, eos %u \"%s\")\n",
              tok->name().c_str(), tok->vocabSize(), tok->eosId(),
              tok->eosToken().c_str());
  std::string notes;
  if (skipped)
    notes += plural(skipped, "file") + " skipped: not UTF-8 text";
  if (emptyFiles)
    notes += std::string(notes.empty() ? "" : "; ") +
             plural(emptyFiles, "file") + " without text";
  if (!notes.empty())
    notes = " (" + notes + ")";
  std::printf("inputs: %s, %s%s\n", plural(files.size(), "file").c_str(),
              plural(totalDocs, "document").c_str(), notes.c_str());
  std::printf("train: %s, %s, %s (%s)\n", plural(firstEval, "document").c_str(),
              plural(train.tokens(), "token").c_str(),
              describeShards(train).c_str(), dtype);
  if (evalDocs)
    std::printf("eval: %s, %s, %s (%s)\n", plural(evalDocs, "document").c_str(),
                plural(eval.tokens(), "token").c_str(),
                describeShards(eval).c_str(), dtype);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2)
    tools::usageError(kTool, "no command given (tokenize, eos or encode)");
  std::string command = argv[1];
  if (command == "-h" || command == "--help") {
    printHelp();
    return 0;
  }
  if (command == "--version") {
    std::printf("forge-data %s\n", FORGE_VERSION_STRING);
    return 0;
  }
  if (command != "tokenize" && command != "eos" && command != "encode") {
    if (!command.empty() && command[0] == '-')
      tools::usageError(kTool, "expected a command (tokenize, eos or encode) "
                               "before the option '" +
                                   command + "'");
    tools::usageError(kTool, "unknown command '" + command +
                                 "' (tokenize, eos or encode)");
  }

  Options opt;
  std::string shardTokens, evalFraction, threads;
  std::vector<std::string> positional;
  bool tokenizerGiven = false;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      printHelp();
      return 0;
    }
    if (arg == "--version") {
      std::printf("forge-data %s\n", FORGE_VERSION_STRING);
      return 0;
    }
    if (tools::takeValue(kTool, argc, argv, i, "--tokenizer", opt.tokenizer)) {
      tokenizerGiven = true;
      continue;
    }
    if (command == "tokenize") {
      if (arg == "--split-paragraphs") {
        opt.paragraphs = true;
        continue;
      }
      if (arg == "--overwrite") {
        opt.overwrite = true;
        continue;
      }
      if (tools::takeValue(kTool, argc, argv, i, "-o", opt.output) ||
          tools::takeValue(kTool, argc, argv, i, "--output", opt.output) ||
          tools::takeValue(kTool, argc, argv, i, "--dtype", opt.dtype) ||
          tools::takeValue(kTool, argc, argv, i, "--shard-tokens",
                           shardTokens) ||
          tools::takeValue(kTool, argc, argv, i, "--eval-fraction",
                           evalFraction) ||
          tools::takeValue(kTool, argc, argv, i, "--threads", threads))
        continue;
    }
    if (arg == "--") {
      for (++i; i < argc; ++i)
        positional.push_back(argv[i]);
      break;
    }
    if (arg.size() > 1 && arg[0] == '-')
      tools::usageError(kTool, "unknown option '" + arg + "' for " + command);
    positional.push_back(arg);
  }

  if (command == "eos") {
    if (tokenizerGiven)
      positional.insert(positional.begin(), opt.tokenizer);
    if (positional.size() != 1)
      tools::usageError(kTool, "eos takes one tokenizer (a tokenizer.json, a "
                               "directory holding one, or 'byte')");
    int64_t eos = -1;
    if (std::string e = data::resolveEosId(positional[0], eos); !e.empty())
      return fail(e);
    std::printf("%lld\n", static_cast<long long>(eos));
    return 0;
  }

  if (command == "encode") {
    if (positional.size() > 1)
      tools::usageError(kTool, "encode takes one text argument (quote it), "
                               "or reads standard input");
    std::string text;
    if (positional.empty())
      text.assign(std::istreambuf_iterator<char>(std::cin),
                  std::istreambuf_iterator<char>());
    else
      text = positional[0];
    std::string error;
    auto tok = data::Tokenizer::load(opt.tokenizer, error);
    if (!tok)
      return fail(error);
    std::string line;
    for (uint32_t id : tok->encode(text))
      line += (line.empty() ? "" : " ") + std::to_string(id);
    std::printf("%s\n", line.c_str());
    return 0;
  }

  // tokenize
  opt.inputs = positional;
  if (opt.output.empty())
    tools::usageError(kTool, "tokenize needs an output directory (-o <dir>)");
  if (opt.inputs.empty())
    tools::usageError(kTool, "tokenize needs at least one input file or "
                             "directory");
  if (!opt.dtype.empty() && opt.dtype != "uint16" && opt.dtype != "uint32")
    tools::usageError(kTool, "--dtype must be uint16 or uint32, got '" +
                                 opt.dtype + "'");
  if (!shardTokens.empty()) {
    auto v = tools::parseInt(shardTokens);
    if (!v || *v < 1)
      tools::usageError(kTool, "--shard-tokens must be a positive integer, "
                               "got '" +
                                   shardTokens + "'");
    opt.shardTokens = static_cast<uint64_t>(*v);
  }
  if (!evalFraction.empty()) {
    char *end = nullptr;
    double f = std::strtod(evalFraction.c_str(), &end);
    if (end == evalFraction.c_str() || *end != '\0' || !(f >= 0 && f < 1))
      tools::usageError(kTool, "--eval-fraction must be a number in [0, 1), "
                               "got '" +
                                   evalFraction + "'");
    opt.evalFraction = f;
  }
  if (!threads.empty()) {
    auto v = tools::parseInt(threads);
    if (!v || *v < 1 || *v > 1024)
      tools::usageError(kTool, "--threads must be an integer in [1, 1024], "
                               "got '" +
                                   threads + "'");
    opt.threads = static_cast<unsigned>(*v);
  }
  return tokenize(opt);
}

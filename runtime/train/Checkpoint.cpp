//===- Checkpoint.cpp - Sharded checkpoints, resharding resume ------------===//

#include "runtime/train/Checkpoint.h"
#include "runtime/comm/Communicator.h"
#include "runtime/core/DType.h"
#include "runtime/core/Plan.h"
#include "runtime/data/Json.h"
#include "runtime/train/SafeTensors.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <unistd.h>

namespace fs = std::filesystem;

namespace forge::train {
namespace {

std::string str(const flatbuffers::String *s) { return s ? s->str() : ""; }

std::string stepDir(const std::string &dir, int64_t step) {
  return dir + "/step_" + std::to_string(step);
}

/// Flushes a file (or directory) to disk, so a rename after it is durable.
bool syncPath(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

/// Writes `text` to `path` through `path.tmp`, fsync and rename.
std::string writeDurably(const std::string &path, const std::string &text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush())
      return "cannot write " + tmp;
  }
  if (!syncPath(tmp))
    return "cannot sync " + tmp;
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    return "cannot rename " + tmp + " to " + path + ": " + ec.message();
  return "";
}

const char *dtypeName(plan::DType d) {
  switch (d) {
  case plan::DType::f32:
    return "F32";
  case plan::DType::bf16:
    return "BF16";
  case plan::DType::f16:
    return "F16";
  case plan::DType::i64:
    return "I64";
  case plan::DType::i32:
    return "I32";
  }
  return "?";
}

float toF32(const std::string &dtype, const uint8_t *p) {
  if (dtype == "F32") {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (dtype == "BF16")
    return runtime::bf16ToF32(h);
  _Float16 x;
  std::memcpy(&x, &h, 2);
  return static_cast<float>(x);
}

void fromF32(plan::DType d, uint8_t *p, float f) {
  switch (d) {
  case plan::DType::f32:
    std::memcpy(p, &f, 4);
    break;
  case plan::DType::bf16: {
    uint16_t h = runtime::f32ToBf16(f);
    std::memcpy(p, &h, 2);
    break;
  }
  case plan::DType::f16: {
    _Float16 x = static_cast<_Float16>(f);
    std::memcpy(p, &x, 2);
    break;
  }
  default:
    break;
  }
}

bool isFloatName(const std::string &d) {
  return d == "F32" || d == "BF16" || d == "F16";
}

/// The tensors a checkpoint holds: every persistent buffer but gradient
/// accumulators (zero between steps) and a pipeline stage's activation
/// stash (empty between steps).
bool saved(const plan::Buffer *b) {
  if (b->role() != plan::Role::parameter &&
      b->role() != plan::Role::optimizer_state &&
      b->role() != plan::Role::state)
    return false;
  return str(b->name()).rfind("pipeline.stash.", 0) != 0;
}

/// One tensor under its checkpoint name: a buffer, or one row of a stacked
/// buffer (forge-shard-experts), whose name is the per-expert FQN.
struct Part {
  std::string name;
  std::vector<int64_t> global; ///< the tensor's full shape
  std::vector<int64_t> lo;     ///< this rank's block: start
  std::vector<int64_t> extent; ///< and the entries that exist (no padding)
  std::vector<int64_t> local;  ///< the shape of the block in the buffer
  int64_t base = 0;            ///< the block's first element in the buffer
};

std::vector<Part> partsOf(const plan::Buffer *b, const runtime::Block &blk) {
  std::string name = str(b->name());
  if (!runtime::isStacked(name))
    return {{name, blk.global, blk.lo, blk.valid, blk.shape, 0}};
  std::vector<Part> parts;
  int64_t per = 1;
  for (size_t d = 1; d < blk.shape.size(); ++d)
    per *= blk.shape[d];
  for (int64_t r = 0; r < blk.valid[0]; ++r)
    parts.push_back({runtime::stackedName(name, blk.lo[0] + r),
                     {blk.global.begin() + 1, blk.global.end()},
                     {blk.lo.begin() + 1, blk.lo.end()},
                     {blk.valid.begin() + 1, blk.valid.end()},
                     {blk.shape.begin() + 1, blk.shape.end()},
                     r * per});
  return parts;
}

/// Calls f(offset) for every multi-index of the box `extent`, with the
/// row-major offsets of that index in two layouts of shapes `a` and `b`
/// starting at `aStart` / `bStart` (in the box's coordinates).
void forBox(const std::vector<int64_t> &extent, const std::vector<int64_t> &a,
            const std::vector<int64_t> &aStart, const std::vector<int64_t> &b,
            const std::vector<int64_t> &bStart,
            const std::function<void(int64_t, int64_t)> &f) {
  const size_t n = extent.size();
  for (int64_t e : extent)
    if (e <= 0)
      return;
  std::vector<int64_t> idx(n, 0);
  for (;;) {
    int64_t oa = 0, ob = 0;
    for (size_t d = 0; d < n; ++d) {
      oa = oa * a[d] + aStart[d] + idx[d];
      ob = ob * b[d] + bStart[d] + idx[d];
    }
    f(oa, ob);
    size_t d = n;
    while (d > 0) {
      --d;
      if (++idx[d] < extent[d])
        break;
      idx[d] = 0;
      if (d == 0)
        return;
    }
    if (n == 0)
      return;
  }
}

std::string joined(const std::vector<int64_t> &v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::string shapeText(const std::vector<int64_t> &v) {
  return "[" + joined(v) + "]";
}

/// A shape for messages: "[96, 64]".
std::string shapeMessage(const std::vector<int64_t> &v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return "[" + s + "]";
}

} // namespace

struct Checkpointer::Pending {
  int64_t step = 0;
  uint32_t crc = 0; ///< of this rank's file, once written
  TrainState state;
  TensorMap tensors; ///< this rank's blocks, copied out of the arena
};

Checkpointer::Checkpointer(const plan::Plan *job, const plan::Plan *plan,
                           runtime::Backend &exec, comm::Comms *comms)
    : job_(job ? job : plan), plan_(plan), cfg_(job_->checkpoint()),
      exec_(exec), comms_(comms) {
  if (comms_) {
    rank_ = comms_->world().rank();
    world_ = comms_->world().size();
  }
}

Checkpointer::~Checkpointer() {
  if (writer_.joinable())
    writer_.join();
}

std::string Checkpointer::blockOf(const plan::Buffer *b,
                                  runtime::Block &blk) const {
  return runtime::localBlock(
      b,
      [&](const std::string &g) -> int64_t {
        comm::Communicator *c = comms_ ? comms_->group(g) : nullptr;
        return c ? c->size() : 1;
      },
      [&](const std::string &g) -> int64_t {
        return comms_ ? comms_->coordinate(g) : 0;
      },
      blk);
}

bool Checkpointer::due(int64_t step) const {
  if (!cfg_ || str(cfg_->dir()).empty())
    return false;
  if (cfg_->window() && step >= cfg_->window_start() &&
      step <= cfg_->window_stop()) {
    int64_t offset = step - cfg_->window_start();
    return offset == 0 || (offset & (offset - 1)) == 0;
  }
  return step > 0 && cfg_->interval() > 0 && step % cfg_->interval() == 0;
}

static bool complete(const std::string &dir) {
  return fs::exists(dir + "/manifest.json");
}

std::string Checkpointer::findResume(std::string &note) const {
  if (!cfg_)
    return "";
  const std::string dir = str(cfg_->dir());
  std::error_code ec;
  if (!dir.empty() && fs::is_directory(dir, ec)) {
    fs::path latest = fs::path(dir) / "latest";
    if (fs::is_symlink(latest, ec)) {
      fs::path target = fs::read_symlink(latest, ec);
      std::string path = (fs::path(dir) / target).string();
      if (!ec && complete(path))
        return path;
      note = "checkpoint " + path + " (latest) is incomplete; ";
    }
    // The newest complete step_N (an interrupted save leaves one without a
    // manifest, which is skipped).
    int64_t best = -1;
    for (const auto &e : fs::directory_iterator(dir, ec)) {
      std::string n = e.path().filename().string();
      if (n.rfind("step_", 0) != 0)
        continue;
      char *end = nullptr;
      long long s = std::strtoll(n.c_str() + 5, &end, 10);
      if (!end || *end || s < 0)
        continue;
      if (complete(e.path().string()))
        best = std::max<int64_t>(best, s);
      else
        note += "skipping incomplete " + e.path().string() + "; ";
    }
    if (best >= 0)
      return stepDir(dir, best);
  }
  return str(cfg_->load_path());
}

std::string Checkpointer::load(const std::string &path, TrainState &st) {
  // Tensors the checkpoint leaves alone (exclude_from_loading) keep their
  // current values: start from the backend's state, and hand it back.
  exec_.pullState();
  std::string e = loadInto(path, st);
  if (e.empty())
    exec_.pushState();
  return e;
}

std::string Checkpointer::loadInto(const std::string &path, TrainState &st) {
  data::json::Document doc;
  if (std::string e = data::json::parseFile(path + "/manifest.json", doc);
      !e.empty())
    return "checkpoint " + path + " has no readable manifest.json (" + e +
           "): it is incomplete or not a forge checkpoint";
  const data::json::Value &root = doc.root;
  const data::json::Value *format = root.find("format");
  if (!format || !format->isString() ||
      format->asString() != "forge checkpoint 1")
    return path + "/manifest.json: not a forge checkpoint (format \"forge "
                  "checkpoint 1\" expected)";
  auto integer = [&](const char *key, int64_t &out) -> std::string {
    const data::json::Value *v = root.find(key);
    if (!v || !v->isInteger())
      return doc.error(v ? *v : root,
                       std::string("'") + key + "' must be an integer");
    out = v->asInt();
    return "";
  };
  std::set<std::string> exclude;
  if (cfg_ && cfg_->exclude_from_loading())
    for (const flatbuffers::String *s : *cfg_->exclude_from_loading())
      exclude.insert(s->str());
  if (!exclude.count("train_state")) {
    for (auto [key, out] :
         {std::pair<const char *, int64_t *>{"step", &st.step},
          {"updates", &st.updates},
          {"epoch", &st.epoch},
          {"batches_yielded", &st.batchesYielded}})
      if (std::string e = integer(key, *out); !e.empty())
        return e;
  }
  // Global shapes, and the shards of every tensor in the rank files.
  const data::json::Value *tensors = root.find("tensors");
  const data::json::Value *files = root.find("files");
  if (!tensors || !tensors->isObject() || !files || !files->isArray())
    return path + "/manifest.json: needs 'tensors' and 'files'";
  std::map<std::string, std::vector<int64_t>> globalShape;
  for (const auto &[name, v] : tensors->members()) {
    const data::json::Value *shape = v.find("shape");
    if (!shape || !shape->isArray())
      return doc.error(v, "tensor '" + name + "' needs a shape");
    for (const data::json::Value &d : shape->items())
      globalShape[name].push_back(d.asInt());
  }
  struct Shard {
    std::string file;
    TensorInfo info;
    std::vector<int64_t> lo;
  };
  // Each file's CRC-32, checked before its bytes are used: a shard with
  // a flipped bit is refused rather than trained on.
  const data::json::Value *crcList = root.find("crc32");
  if (!crcList || !crcList->isArray() ||
      crcList->items().size() != files->items().size())
    return path + "/manifest.json: needs 'crc32', one per file";
  std::map<std::string, uint32_t> expectCrc;
  std::set<std::string> verified;
  auto verify = [&](const std::string &file) -> std::string {
    if (!verified.insert(file).second)
      return "";
    uint32_t crc = 0;
    if (std::string e = fileCrc32(file, crc); !e.empty())
      return "checkpoint " + path + ": " + e;
    if (crc != expectCrc[file])
      return "checkpoint " + path + ": " + file +
             " is corrupted (its CRC-32 is " + std::to_string(crc) +
             ", manifest.json records " + std::to_string(expectCrc[file]) + ")";
    return "";
  };
  std::map<std::string, std::vector<Shard>> shards;
  for (size_t fi = 0; fi < files->items().size(); ++fi) {
    const data::json::Value &f = files->items()[fi];
    std::string file = path + "/" + f.asString();
    expectCrc[file] = static_cast<uint32_t>(crcList->items()[fi].asInt());
    TensorIndex index;
    if (std::string e = readSafeTensorsIndex(file, index); !e.empty())
      return "checkpoint " + path + ": " + e;
    for (auto &[key, info] : index) {
      size_t bar = key.find('|');
      if (bar == std::string::npos)
        continue; // the rank's RNG state
      Shard s{file, info, {}};
      std::string offsets = key.substr(bar + 1);
      for (size_t i = 0; i < offsets.size();) {
        size_t comma = offsets.find(',', i);
        s.lo.push_back(std::stoll(offsets.substr(i, comma - i)));
        i = comma == std::string::npos ? offsets.size() : comma + 1;
      }
      if (s.lo.size() != info.shape.size())
        return file + ": tensor '" + key + "' has " +
               std::to_string(s.lo.size()) + " offsets for rank " +
               std::to_string(info.shape.size());
      // The shards must agree with the manifest: a listed tensor, inside
      // its global shape.
      const std::string name = key.substr(0, bar);
      auto g = globalShape.find(name);
      if (g == globalShape.end())
        return "checkpoint " + path + ": " + file + " holds tensor '" + name +
               "', which manifest.json does not list";
      bool inside = g->second.size() == s.lo.size();
      for (size_t d = 0; inside && d < s.lo.size(); ++d)
        inside = s.lo[d] >= 0 && s.lo[d] + info.shape[d] <= g->second[d];
      if (!inside)
        return "checkpoint " + path + ": " + file + ": the block of '" + name +
               "' at " + shapeMessage(s.lo) + " of shape " +
               shapeMessage(info.shape) +
               " lies outside its shape in manifest.json, " +
               shapeMessage(g->second);
      shards[name].push_back(std::move(s));
    }
  }
  auto excluded = [&](const plan::Buffer *b, const std::string &name) {
    if (exclude.count("model") && b->role() == plan::Role::parameter)
      return true;
    if (exclude.count("optimizer") && b->role() != plan::Role::parameter)
      return true;
    for (const std::string &e : exclude) {
      // A name or prefix, of the tensor or of the parameter whose state it
      // is ("optimizer.exp_avg.<fqn>").
      if (name.rfind(e, 0) == 0)
        return true;
      size_t dot = name.rfind("optimizer.", 0) == 0
                       ? name.find('.', std::string("optimizer.").size())
                       : std::string::npos;
      if (dot != std::string::npos && name.compare(dot + 1, e.size(), e) == 0)
        return true;
    }
    return false;
  };
  std::vector<uint8_t> bytes;
  for (uint32_t i = 0; i < plan_->buffers()->size(); ++i) {
    const plan::Buffer *b = plan_->buffers()->Get(i);
    if (!saved(b))
      continue;
    runtime::Block blk;
    if (std::string e = blockOf(b, blk); !e.empty())
      return e;
    const runtime::View &v = exec_.buffer(i);
    const size_t es = runtime::dtypeSize(v.dtype);
    auto *dst = static_cast<uint8_t *>(v.data);
    for (const Part &part : partsOf(b, blk)) {
      if (excluded(b, part.name))
        continue;
      auto g = globalShape.find(part.name);
      if (g == globalShape.end())
        return "checkpoint " + path + " has no tensor '" + part.name +
               "' (a different model?)";
      if (g->second != part.global)
        return "checkpoint " + path + ": tensor '" + part.name +
               "' has shape " + shapeMessage(g->second) + ", the model needs " +
               shapeMessage(part.global);
      int64_t want = 1, got = 0;
      for (int64_t e : part.extent)
        want *= e;
      for (const Shard &s : shards[part.name]) {
        // The overlap of the saved block and this rank's, in global
        // coordinates.
        const size_t n = part.lo.size();
        std::vector<int64_t> start(n), extent(n), inLocal(n), inShard(n);
        bool empty = false;
        for (size_t d = 0; d < n; ++d) {
          start[d] = std::max(part.lo[d], s.lo[d]);
          int64_t end =
              std::min(part.lo[d] + part.extent[d], s.lo[d] + s.info.shape[d]);
          extent[d] = end - start[d];
          empty |= extent[d] <= 0;
          inLocal[d] = start[d] - part.lo[d];
          inShard[d] = start[d] - s.lo[d];
        }
        if (empty)
          continue;
        if (std::string e = verify(s.file); !e.empty())
          return e;
        if (std::string e = readSafeTensorsData(s.file, s.info, bytes);
            !e.empty())
          return e;
        const bool same = s.info.dtype == dtypeName(v.dtype);
        if (!same &&
            !(isFloatName(s.info.dtype) &&
              (v.dtype == plan::DType::f32 || v.dtype == plan::DType::bf16 ||
               v.dtype == plan::DType::f16)))
          return s.file + ": tensor '" + part.name + "' is " + s.info.dtype +
                 ", the model holds " + dtypeName(v.dtype);
        const size_t ses = safeTensorsDtypeSize(s.info.dtype);
        int64_t count = 0;
        forBox(extent, part.local, inLocal, s.info.shape, inShard,
               [&](int64_t local, int64_t saved) {
                 uint8_t *out = dst + (part.base + local) * es;
                 const uint8_t *in = bytes.data() + saved * ses;
                 if (same)
                   std::memcpy(out, in, es);
                 else
                   fromF32(v.dtype, out, toF32(s.info.dtype, in));
                 ++count;
               });
        got += count;
      }
      if (got != want)
        return "checkpoint " + path + " does not cover tensor '" + part.name +
               "' (" + std::to_string(got) + " of this rank's " +
               std::to_string(want) +
               " elements; shards missing or "
               "overlapping)";
    }
  }
  // The random-token generator continues only on the same layout.
  const data::json::Value *ws = root.find("world_size");
  if (ws && ws->isInteger() && ws->asInt() == world_) {
    std::string file = path + "/rank" + std::to_string(rank_) + ".safetensors";
    TensorIndex index;
    if (std::string e = verify(file); !e.empty())
      return e;
    if (readSafeTensorsIndex(file, index).empty())
      if (auto it = index.find("__rng__"); it != index.end())
        if (readSafeTensorsData(file, it->second, bytes).empty())
          st.rng.assign(bytes.begin(), bytes.end());
  }
  return "";
}

std::string Checkpointer::save(const TrainState &st) {
  if (std::string e = wait(); !e.empty())
    return e;
  exec_.pullState();
  lastState_ = st;
  auto p = std::make_unique<Pending>();
  p->step = st.step;
  p->state = st;
  // This rank's blocks: every tensor block it holds, once per replica
  // group (the rank at coordinate 0 of every mesh dim the tensor is not
  // split over writes it; each pipeline stage writes its own layers).
  for (uint32_t i = 0; i < plan_->buffers()->size(); ++i) {
    const plan::Buffer *b = plan_->buffers()->Get(i);
    if (!saved(b))
      continue;
    bool owner = true;
    if (comms_ && plan_->mesh() && plan_->mesh()->dims())
      for (const flatbuffers::String *dim : *plan_->mesh()->dims()) {
        std::string d = dim->str();
        if (d == "pp" || !comms_->group(d))
          continue;
        bool split = false;
        if (b->splits())
          for (const plan::Split *sp : *b->splits())
            split |= str(sp->group()) == d;
        owner &= split || comms_->coordinate(d) == 0;
      }
    if (!owner)
      continue;
    runtime::Block blk;
    if (std::string e = blockOf(b, blk); !e.empty())
      return e;
    const runtime::View &v = exec_.buffer(i);
    const size_t es = runtime::dtypeSize(v.dtype);
    const auto *src = static_cast<const uint8_t *>(v.data);
    for (const Part &part : partsOf(b, blk)) {
      Tensor t{dtypeName(v.dtype), part.extent, {}};
      int64_t n = 1;
      for (int64_t e : part.extent)
        n *= e;
      if (n == 0)
        continue; // all padding (an uneven split's last blocks)
      t.data.resize(static_cast<size_t>(n) * es);
      std::vector<int64_t> zero(part.extent.size(), 0);
      forBox(part.extent, part.local, zero, part.extent, zero,
             [&](int64_t local, int64_t out) {
               std::memcpy(t.data.data() + out * es,
                           src + (part.base + local) * es, es);
             });
      p->tensors[part.name + "|" + joined(part.lo)] = std::move(t);
    }
  }
  if (!st.rng.empty())
    p->tensors["__rng__"] =
        Tensor{"U8",
               {static_cast<int64_t>(st.rng.size())},
               std::vector<uint8_t>(st.rng.begin(), st.rng.end())};
  if (cfg_->async_save()) {
    // The copies are taken; the files are written while training goes on,
    // and the checkpoint is committed by the next save() or wait().
    std::shared_ptr<Pending> shared(p.release());
    pendingStep_ = shared->step;
    writer_ = std::thread([this, shared] { writerError_ = write(*shared); });
    return "";
  }
  return commit(p->step, write(*p));
}

std::string Checkpointer::write(Pending &p) {
  const std::string dir = stepDir(str(cfg_->dir()), p.step);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return "cannot create " + dir + ": " + ec.message();
  std::string file = dir + "/rank" + std::to_string(rank_) + ".safetensors";
  // Testing hook: FORGE_FAULT_SAVE_KILL=N kills world rank 1 (or 0 on one
  // rank) in the save of step N, after its shards are on disk but before
  // the checkpoint is complete, as a preemption in the middle of a save
  // would.
  if (std::string e = writeSafeTensors(file + ".tmp", p.tensors, &p.crc);
      !e.empty())
    return e;
  pendingCrc_ = p.crc;
  if (!syncPath(file + ".tmp"))
    return "cannot sync " + file + ".tmp";
  fs::rename(file + ".tmp", file, ec);
  if (ec)
    return "cannot rename " + file + ".tmp: " + ec.message();
  if (const char *k = std::getenv("FORGE_FAULT_SAVE_KILL"))
    if (std::atoll(k) == p.step && rank_ == (world_ > 1 ? 1 : 0))
      raise(SIGKILL);
  return "";
}

std::string Checkpointer::wait() {
  if (!writer_.joinable())
    return "";
  writer_.join();
  return commit(pendingStep_, writerError_);
}

std::string Checkpointer::commit(int64_t step, const std::string &failed) {
  // Every rank's file is durable before the manifest says so; gathering
  // the files' checksums (and whether each rank could write its file)
  // waits for all of them, and a rank that failed fails the checkpoint on
  // every rank instead of leaving the others waiting.
  const uint32_t mine[2] = {pendingCrc_, failed.empty() ? 0u : 1u};
  std::vector<uint32_t> all(2 * static_cast<size_t>(world_));
  all[2 * rank_] = mine[0];
  all[2 * rank_ + 1] = mine[1];
  if (comms_)
    if (std::string e = comms_->world().allGather(
            mine, all.data(), sizeof(mine),
            "checkpoint step " + std::to_string(step));
        !e.empty())
      return e;
  if (!failed.empty())
    return failed;
  std::string bad;
  for (int r = 0; r < world_; ++r)
    if (all[2 * r + 1])
      bad += (bad.empty() ? "" : ", ") + std::to_string(r);
  if (!bad.empty())
    return "rank " + bad + " could not write its shards of step " +
           std::to_string(step) +
           " (its message says why); the checkpoint "
           "is incomplete and will not be used";
  std::vector<uint32_t> crcs(world_);
  for (int r = 0; r < world_; ++r)
    crcs[r] = all[2 * r];
  if (rank_ != 0)
    return "";
  const std::string root = str(cfg_->dir());
  const std::string dir = stepDir(root, step);
  // The model's tensors, by checkpoint name, with their global shapes (all
  // stages' with pipeline parallelism).
  std::vector<const plan::Plan *> plans;
  if (job_->pipeline() && job_->pipeline()->stage_plans())
    for (const plan::StagePlan *sp : *job_->pipeline()->stage_plans())
      plans.push_back(sp->plan_nested_root());
  else
    plans.push_back(plan_);
  std::string tensors;
  for (const plan::Plan *pl : plans)
    for (const plan::Buffer *b : *pl->buffers()) {
      if (!saved(b))
        continue;
      std::vector<int64_t> global;
      if (b->global_shape() && b->global_shape()->size())
        global.assign(b->global_shape()->begin(), b->global_shape()->end());
      else if (b->shape())
        global.assign(b->shape()->begin(), b->shape()->end());
      std::string name = str(b->name());
      auto entry = [&](const std::string &n, const std::vector<int64_t> &s) {
        tensors += std::string(tensors.empty() ? "" : ",\n    ") + "\"" + n +
                   "\": {\"shape\": " + shapeText(s) + ", \"dtype\": \"" +
                   dtypeName(b->dtype()) + "\"}";
      };
      if (runtime::isStacked(name) && !global.empty()) {
        std::vector<int64_t> row(global.begin() + 1, global.end());
        for (int64_t r = 0; r < global[0]; ++r)
          entry(runtime::stackedName(name, r), row);
      } else {
        entry(name, global);
      }
    }
  std::string files, checksums;
  for (int r = 0; r < world_; ++r) {
    files += std::string(r ? ", " : "") + "\"rank" + std::to_string(r) +
             ".safetensors\"";
    checksums += std::string(r ? ", " : "") + std::to_string(crcs[r]);
  }
  std::string mesh;
  if (plan_->mesh() && plan_->mesh()->dims())
    for (size_t i = 0; i < plan_->mesh()->dims()->size(); ++i)
      mesh += std::string(i ? ", " : "") + "\"" +
              plan_->mesh()->dims()->Get(i)->str() +
              "\": " + std::to_string(plan_->mesh()->sizes()->Get(i));
  const TrainState &st = lastState_;
  std::string manifest =
      "{\n  \"format\": \"forge checkpoint 1\",\n  \"step\": " +
      std::to_string(step) + ",\n  \"updates\": " + std::to_string(st.updates) +
      ",\n  \"tokens_seen\": " + std::to_string(st.tokensSeen) +
      ",\n  \"epoch\": " + std::to_string(st.epoch) +
      ",\n  \"batches_yielded\": " + std::to_string(st.batchesYielded) +
      ",\n  \"world_size\": " + std::to_string(world_) + ",\n  \"mesh\": {" +
      mesh + "},\n  \"files\": [" + files + "],\n  \"crc32\": [" + checksums +
      "],\n  \"tensors\": {\n    " + tensors + "\n  }\n}\n";
  if (std::string e = writeDurably(dir + "/manifest.json", manifest);
      !e.empty())
    return e;
  syncPath(dir);
  // `latest` moves atomically to the complete checkpoint.
  std::error_code ec;
  fs::path tmp = fs::path(root) / "latest.tmp";
  fs::remove(tmp, ec);
  fs::create_directory_symlink("step_" + std::to_string(step), tmp, ec);
  if (ec)
    return "cannot create " + tmp.string() + ": " + ec.message();
  fs::rename(tmp, fs::path(root) / "latest", ec);
  if (ec)
    return "cannot update " + root + "/latest: " + ec.message();
  syncPath(root);
  retain();
  return "";
}

void Checkpointer::retain() const {
  if (cfg_->keep_last_n() <= 0)
    return;
  const std::string root = str(cfg_->dir());
  std::error_code ec;
  std::vector<int64_t> steps;
  for (const auto &e : fs::directory_iterator(root, ec)) {
    std::string n = e.path().filename().string();
    char *end = nullptr;
    if (n.rfind("step_", 0) != 0)
      continue;
    long long s = std::strtoll(n.c_str() + 5, &end, 10);
    if (end && !*end && complete(e.path().string()))
      steps.push_back(s);
  }
  std::sort(steps.rbegin(), steps.rend());
  for (size_t i = static_cast<size_t>(cfg_->keep_last_n()); i < steps.size();
       ++i) {
    int64_t s = steps[i];
    // Milestones of the dynamic window are kept (reference §6).
    if (cfg_->window() && s >= cfg_->window_start() &&
        s <= cfg_->window_stop()) {
      int64_t offset = s - cfg_->window_start();
      if (offset == 0 || (offset & (offset - 1)) == 0)
        continue;
    }
    fs::remove_all(stepDir(root, s), ec);
  }
}

} // namespace forge::train

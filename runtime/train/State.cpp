//===- State.cpp - Weights, batches and state dumps for forge-run ---------===//

#include "runtime/train/State.h"
#include "runtime/comm/Communicator.h"
#include "runtime/core/DType.h"
#include "runtime/train/HfExport.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace forge::train {
namespace {

float toF32(const Tensor &t, int64_t i) {
  if (t.dtype == "F32") {
    float f;
    std::memcpy(&f, t.data.data() + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, t.data.data() + 2 * i, 2);
  if (t.dtype == "BF16")
    return runtime::bf16ToF32(h);
  _Float16 x;
  std::memcpy(&x, &h, 2);
  return static_cast<float>(x);
}

void fromF32(const runtime::View &v, int64_t i, float f) {
  switch (v.dtype) {
  case plan::DType::f32:
    static_cast<float *>(v.data)[i] = f;
    break;
  case plan::DType::bf16:
    static_cast<uint16_t *>(v.data)[i] = runtime::f32ToBf16(f);
    break;
  case plan::DType::f16:
    static_cast<_Float16 *>(v.data)[i] = static_cast<_Float16>(f);
    break;
  default:
    break;
  }
}

std::string shapeStr(const std::vector<int64_t> &s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

} // namespace

Tensor scalar(float v) {
  Tensor t{"F32", {}, std::vector<uint8_t>(4)};
  std::memcpy(t.data.data(), &v, 4);
  return t;
}

/// The block of `b` this rank holds (the whole tensor without comms).
static std::string blockOf(const plan::Buffer *b, comm::Comms *comms,
                           runtime::Block &block) {
  return runtime::localBlock(
      b,
      [&](const std::string &g) -> int64_t {
        comm::Communicator *c = comms ? comms->group(g) : nullptr;
        return c ? c->size() : 1;
      },
      [&](const std::string &g) -> int64_t {
        return comms ? comms->coordinate(g) : 0;
      },
      block);
}

std::string loadParameters(const plan::Plan *plan, runtime::Backend &exec,
                           const std::string &path, comm::Comms *comms,
                           const plan::Plan *job) {
  TensorMap file;
  if (std::string e = readSafeTensors(path, file); !e.empty())
    return e;
  // A Hugging Face checkpoint (forge-run --export-hf, or Llama/Mixtral from
  // the Hub): its keys name the same tensors.
  if (file.count("model.embed_tokens.weight")) {
    const bool moe =
        plan->hf_model() && plan->hf_model()->num_local_experts() > 0;
    TensorMap renamed;
    for (auto &[key, t] : file) {
      std::string fqn = forgeName(key, moe);
      if (fqn.empty())
        return path + ": tensor '" + key +
               "' has no forge parameter (Hugging Face " +
               (moe ? "Mixtral" : "Llama") + " names expected)";
      renamed[fqn] = std::move(t);
    }
    file = std::move(renamed);
  }
  std::set<std::string> used;
  for (uint32_t i = 0; i < plan->buffers()->size(); ++i) {
    const plan::Buffer *b = plan->buffers()->Get(i);
    if (b->role() != plan::Role::parameter)
      continue;
    std::string name = b->name()->str();
    const runtime::View &v = exec.buffer(i);
    // The file holds global tensors; a shard (TP, FSDP) takes its block.
    runtime::Block block;
    if (std::string e = blockOf(b, comms, block); !e.empty())
      return e;
    std::vector<int64_t> want = block.global;
    Tensor joined;
    if (runtime::isStacked(name)) {
      // A stacked buffer (expert parallelism): the file has one tensor per
      // row, under the row's name.
      std::vector<int64_t> rowShape(want.begin() + 1, want.end());
      joined.dtype = "F32";
      joined.shape = want;
      for (int64_t r = 0; r < want[0]; ++r) {
        std::string rowName = runtime::stackedName(name, r);
        auto it = file.find(rowName);
        if (it == file.end())
          return path + ": no tensor for parameter '" + rowName + "'";
        if (it->second.shape != rowShape)
          return path + ": '" + rowName + "' has shape " +
                 shapeStr(it->second.shape) + ", the model needs " +
                 shapeStr(rowShape);
        if (it->second.dtype != "F32" && it->second.dtype != "BF16" &&
            it->second.dtype != "F16")
          return path + ": '" + rowName + "' is " + it->second.dtype +
                 "; parameters must be F32, BF16 or F16";
        size_t at = joined.data.size(),
               count =
                   it->second.data.size() / (it->second.dtype == "F32" ? 4 : 2);
        joined.data.resize(at + count * 4);
        for (size_t k = 0; k < count; ++k) {
          float f = toF32(it->second, static_cast<int64_t>(k));
          std::memcpy(joined.data.data() + at + 4 * k, &f, 4);
        }
        used.insert(rowName);
      }
    }
    auto it = file.find(name);
    if (joined.shape.empty() && it == file.end())
      return path + ": no tensor for parameter '" + name + "'";
    const Tensor &t = joined.shape.empty() ? it->second : joined;
    if (t.shape != want)
      return path + ": '" + name + "' has shape " + shapeStr(t.shape) +
             ", the model needs " + shapeStr(want);
    if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16")
      return path + ": '" + name + "' is " + t.dtype +
             "; parameters must be F32, BF16 or F16";
    for (int64_t e = 0; e < v.numel(); ++e) {
      int64_t g;
      fromF32(v, e, block.globalIndex(e, g) ? toF32(t, g) : 0.0f);
    }
    used.insert(name);
  }
  // Other pipeline stages' parameters are theirs to load.
  if (job && job->pipeline() && job->pipeline()->stage_plans())
    for (const plan::StagePlan *sp : *job->pipeline()->stage_plans())
      for (const plan::Buffer *b : *sp->plan_nested_root()->buffers()) {
        if (b->role() != plan::Role::parameter)
          continue;
        std::string name = b->name()->str();
        if (!runtime::isStacked(name)) {
          used.insert(name);
          continue;
        }
        for (int64_t r = 0; b->global_shape() && r < b->global_shape()->Get(0);
             ++r)
          used.insert(runtime::stackedName(name, r));
      }
  for (const auto &[name, t] : file)
    if (!used.count(name))
      return path + ": tensor '" + name + "' is not a parameter of this model";
  return "";
}

std::string loadBatch(runtime::Backend &exec, const std::string &path,
                      int64_t dpRank, int64_t dpSize, int64_t accum,
                      std::vector<std::vector<uint8_t>> *micro,
                      const std::string &program) {
  TensorMap file;
  if (std::string e = readSafeTensors(path, file); !e.empty())
    return e;
  const std::vector<runtime::View> &in = exec.inputs(program);
  const char *names[] = {"tokens", "labels"};
  if (micro)
    micro->clear();
  for (int a = 0; a < 2; ++a) {
    auto it = file.find(names[a]);
    if (it == file.end())
      return path + ": no '" + names[a] + "' tensor";
    const Tensor &t = it->second;
    // The file holds the global batch: data-parallel rank r takes rows
    // [r * batch, (r + 1) * batch), or, with a block per micro-step, the
    // blocks r * accum ... r * accum + accum - 1.
    std::vector<int64_t> want = in[a].shape, perMicro = in[a].shape;
    want[0] *= dpSize;
    perMicro[0] *= dpSize * accum;
    const bool blocks = accum > 1 && micro && t.shape == perMicro;
    if (t.dtype != "I64" || (t.shape != want && !blocks))
      return path + ": '" + names[a] + "' must be I64 " + shapeStr(want) +
             (dpSize > 1 ? " (the batch of all " + std::to_string(dpSize) +
                               " data-parallel ranks)"
                         : "") +
             (accum > 1 && micro
                  ? " or " + shapeStr(perMicro) + " (one batch per micro-step)"
                  : "") +
             ", got " + t.dtype + " " + shapeStr(t.shape);
    size_t bytes = static_cast<size_t>(in[a].numel()) * 8;
    if (!blocks) {
      std::memcpy(in[a].data, t.data.data() + dpRank * bytes, bytes);
      continue;
    }
    micro->resize(2 * accum);
    for (int64_t m = 0; m < accum; ++m) {
      const uint8_t *src = t.data.data() + (dpRank * accum + m) * bytes;
      (*micro)[2 * m + a].assign(src, src + bytes);
    }
    std::memcpy(in[a].data, (*micro)[a].data(), bytes);
  }
  if (micro && std::any_of(micro->begin(), micro->end(),
                           [](const auto &v) { return v.empty(); }))
    return path + ": 'tokens' and 'labels' must both have a block per "
                  "micro-step, or neither";
  for (size_t a = 2; a < in.size(); ++a) // document ids: one document
    std::memset(in[a].data, 0, in[a].numel() * 4);
  return "";
}

/// collect() for the buffers of this rank's plan.
static std::string collectLocal(const plan::Plan *plan,
                                const runtime::Backend &exec, plan::Role role,
                                const std::string &prefix, TensorMap &out,
                                comm::Comms *comms) {
  for (uint32_t i = 0; i < plan->buffers()->size(); ++i) {
    const plan::Buffer *b = plan->buffers()->Get(i);
    if (b->role() != role)
      continue;
    const runtime::View &v = exec.buffer(i);
    std::vector<float> local(v.numel());
    for (int64_t e = 0; e < v.numel(); ++e)
      local[e] = runtime::readFloat(v, e);
    Tensor t{"F32", v.shape, {}};
    if (b->splits() && b->splits()->size() && comms) {
      // A shard: gather the global tensor (every rank takes part), undoing
      // the splits from the innermost out.
      std::vector<int64_t> shape = v.shape;
      std::vector<float> cur = std::move(local);
      for (size_t k = b->splits()->size(); k-- > 0;) {
        const plan::Split *sp = b->splits()->Get(k);
        comm::Communicator *group = comms->group(sp->group()->str());
        if (!group)
          return "no communicator for mesh dim '" + sp->group()->str() + "'";
        const int64_t n = group->size();
        std::vector<float> blocks(cur.size() * n);
        if (std::string e = group->allGather(
                cur.data(), blocks.data(), cur.size() * 4,
                "gathering " + b->name()->str() + " for --dump-state");
            !e.empty())
          return e;
        // Rank r's block goes to [r * c, (r + 1) * c) along dim (c the
        // block's length), cut at the split's size when it was uneven:
        // `outer` runs of `row`-element slices.
        const int dim = sp->dim();
        const int64_t c = shape[dim];
        const int64_t full = sp->size() ? sp->size() : c * n;
        int64_t outer = 1, row = 1;
        for (int d = 0; d < dim; ++d)
          outer *= shape[d];
        for (size_t d = dim + 1; d < shape.size(); ++d)
          row *= shape[d];
        std::vector<float> joined(static_cast<size_t>(outer * full * row));
        for (int64_t r = 0; r < n; ++r)
          for (int64_t o = 0; o < outer; ++o)
            for (int64_t j = 0; j < c && r * c + j < full; ++j)
              std::memcpy(joined.data() + (o * full + r * c + j) * row,
                          blocks.data() + r * cur.size() + (o * c + j) * row,
                          row * 4);
        cur = std::move(joined);
        shape[dim] = full;
      }
      t.shape = shape;
      t.data.resize(cur.size() * 4);
      std::memcpy(t.data.data(), cur.data(), t.data.size());
    } else {
      t.data.resize(local.size() * 4);
      std::memcpy(t.data.data(), local.data(), t.data.size());
    }
    if (role == plan::Role::gradient && comms)
      if (comm::Communicator *ep = comms->group("ep")) {
        // As the optimizer step does (forge-build-optimizer): a gradient
        // replicated over ep averages over it; an expert's gradient, summed
        // over the ep ranks' tokens by the all-to-all, is divided by ep.
        bool split = false;
        if (b->splits())
          for (const plan::Split *sp : *b->splits())
            split |= sp->group() && sp->group()->str() == "ep";
        auto *f = reinterpret_cast<float *>(t.data.data());
        const size_t count = t.data.size() / 4;
        if (split) {
          for (size_t k = 0; k < count; ++k)
            f[k] /= static_cast<float>(ep->size());
        } else if (std::string e = ep->allReduce(
                       f, count, comm::ReduceOp::Avg,
                       "averaging " + b->name()->str() + " for --dump-state");
                   !e.empty()) {
          return e;
        }
      }
    if (role == plan::Role::gradient && comms)
      if (comm::Communicator *replicas = comms->group("dp_replicate")) {
        // The optimizer step averages the accumulated gradients over the
        // replicas before it uses them; the dump shows that average.
        if (std::string e = replicas->allReduce(
                reinterpret_cast<float *>(t.data.data()), t.data.size() / 4,
                comm::ReduceOp::Avg,
                "averaging " + b->name()->str() + " for --dump-state");
            !e.empty())
          return e;
      }
    const std::string name = prefix + b->name()->str();
    if (runtime::isStacked(name) && !t.shape.empty()) {
      // One tensor per row, under the row's name (the unstacked FQNs).
      std::vector<int64_t> rowShape(t.shape.begin() + 1, t.shape.end());
      const size_t bytes = t.data.size() / static_cast<size_t>(t.shape[0]);
      for (int64_t r = 0; r < t.shape[0]; ++r) {
        Tensor row{t.dtype, rowShape, {}};
        row.data.assign(t.data.begin() + r * bytes,
                        t.data.begin() + (r + 1) * bytes);
        out[runtime::stackedName(name, r)] = std::move(row);
      }
      continue;
    }
    out[name] = std::move(t);
  }
  return "";
}

namespace {

void put(std::vector<uint8_t> &b, const void *p, size_t n) {
  const auto *c = static_cast<const uint8_t *>(p);
  b.insert(b.end(), c, c + n);
}

/// A TensorMap as bytes: count, then per tensor its name, dtype, shape and
/// data, each length-prefixed.
std::vector<uint8_t> pack(const TensorMap &m) {
  std::vector<uint8_t> b;
  uint64_t n = m.size();
  put(b, &n, 8);
  for (const auto &[name, t] : m) {
    for (const std::string *s : {&name, &t.dtype}) {
      uint64_t len = s->size();
      put(b, &len, 8);
      put(b, s->data(), len);
    }
    uint64_t rank = t.shape.size(), bytes = t.data.size();
    put(b, &rank, 8);
    put(b, t.shape.data(), rank * 8);
    put(b, &bytes, 8);
    put(b, t.data.data(), bytes);
  }
  return b;
}

void unpack(const uint8_t *b, TensorMap &m) {
  auto u64 = [&] {
    uint64_t v;
    std::memcpy(&v, b, 8);
    b += 8;
    return v;
  };
  for (uint64_t n = u64(); n-- > 0;) {
    std::string name, dtype;
    for (std::string *s : {&name, &dtype}) {
      uint64_t len = u64();
      s->assign(reinterpret_cast<const char *>(b), len);
      b += len;
    }
    Tensor t;
    t.dtype = dtype;
    const uint64_t rank = u64();
    t.shape.resize(rank);
    std::memcpy(t.shape.data(), b, t.shape.size() * 8);
    b += t.shape.size() * 8;
    const uint64_t bytes = u64();
    t.data.assign(b, b + bytes);
    b += bytes;
    m[name] = std::move(t);
  }
}

} // namespace

std::string collect(const plan::Plan *plan, const runtime::Backend &exec,
                    plan::Role role, const std::string &prefix, TensorMap &out,
                    comm::Comms *comms) {
  comm::Communicator *pp =
      comms && plan->pipeline() ? comms->group("pp") : nullptr;
  if (!pp)
    return collectLocal(plan, exec, role, prefix, out, comms);
  // A pipeline stage holds its layers only: every stage's tensors are
  // exchanged so the result is the whole model's, as on one rank.
  TensorMap mine;
  if (std::string e = collectLocal(plan, exec, role, prefix, mine, comms);
      !e.empty())
    return e;
  std::vector<uint8_t> bytes = pack(mine);
  const int n = pp->size();
  std::vector<uint64_t> sizes(n);
  uint64_t size = bytes.size();
  if (std::string e =
          pp->allGather(&size, sizes.data(), 8, "sizing the stages' tensors");
      !e.empty())
    return e;
  const uint64_t most = *std::max_element(sizes.begin(), sizes.end());
  bytes.resize(most);
  std::vector<uint8_t> all(most * n);
  if (std::string e = pp->allGather(bytes.data(), all.data(), most,
                                    "gathering the stages' tensors");
      !e.empty())
    return e;
  for (int r = 0; r < n; ++r)
    unpack(all.data() + r * most, out);
  return "";
}
} // namespace forge::train

//===- Plan.cpp - Loading and verifying plan.bin --------------------------===//

#include "runtime/core/Plan.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <limits>
#include <tuple>

namespace forge::runtime {

uint64_t dtypeSize(plan::DType t) {
  switch (t) {
  case plan::DType::f32:
  case plan::DType::i32:
    return 4;
  case plan::DType::bf16:
  case plan::DType::f16:
    return 2;
  case plan::DType::i64:
    return 8;
  }
  return 0;
}

const char *dtypeName(plan::DType t) {
  const char *name = plan::EnumNameDType(t);
  return name && *name ? name : "?";
}

const std::vector<OpInfo> &knownOps() {
  // Operand/result counts of every forge op a plan can contain; -1 for
  // variadic or optional operands (checked by the kernel's prepare step).
  static const std::vector<OpInfo> ops = {
      {"forge.embedding", 2, 1},
      {"forge.linear", 2, 1},
      {"forge.grouped_linear", 3, 1},
      {"forge.stack", -1, 1},
      {"forge.rmsnorm", 2, 1},
      {"forge.layernorm", 3, 1},
      {"forge.reshape", 1, 1},
      {"forge.rope", 1, 1},
      {"forge.attention", -1, 1},
      {"forge.silu", 1, 1},
      {"forge.gelu", 1, 1},
      {"forge.relu", 1, 1},
      {"forge.tanh", 1, 1},
      {"forge.add", 2, 1},
      {"forge.mul", 2, 1},
      {"forge.scale", 1, 1},
      {"forge.fp8_cast", 1, 1},
      {"forge.fp8_grad_cast", 1, 1},
      {"forge.softmax_topk", 1, 3},
      {"forge.sigmoid_topk", 2, 3},
      {"forge.moe_capacity", 2, 1},
      {"forge.moe_dispatch", 2, 3},
      {"forge.moe_combine", 4, 1},
      {"forge.moe_aux_loss", 2, 1},
      {"forge.z_loss", 1, 1},
      {"forge.cross_entropy", 2, 1},
      {"forge.chunked_cross_entropy", 3, 1},
      {"forge.fill", 0, 1},
      {"forge.unstack", 1, -1},
      {"forge.embedding_grad", 2, 1},
      {"forge.linear_grad_input", 2, 1},
      {"forge.linear_grad_weight", 2, 1},
      {"forge.grouped_linear_grad_input", 3, 1},
      {"forge.grouped_linear_grad_weight", 3, 1},
      {"forge.rmsnorm_grad", 3, 2},
      {"forge.layernorm_grad", 3, 3},
      {"forge.rope_grad", 1, 1},
      {"forge.attention_grad", -1, 3},
      {"forge.silu_grad", 2, 1},
      {"forge.gelu_grad", 2, 1},
      {"forge.relu_grad", 2, 1},
      {"forge.tanh_grad", 2, 1},
      {"forge.softmax_topk_grad", 4, 1},
      {"forge.sigmoid_topk_grad", 4, 2},
      {"forge.moe_capacity_grad", 2, 1},
      {"forge.moe_dispatch_grad", 2, 1},
      {"forge.moe_combine_grad", 5, 2},
      {"forge.moe_aux_loss_grad", 2, 1},
      {"forge.z_loss_grad", 2, 1},
      {"forge.cross_entropy_grad", 3, 1},
      {"forge.chunked_cross_entropy_grad", 4, 2},
      {"forge.set_param", 1, 1},
      {"forge.global_norm", -1, 1},
      {"forge.sqrt", 1, 1},
      {"dist.all_gather", 1, 1},
      {"dist.reduce_scatter", 1, 1},
      {"dist.all_reduce", 1, 1},
      {"dist.copy", 1, 1},
      {"dist.slice", 1, 1},
      {"dist.expert_dispatch", -1, 3},
      {"dist.expert_combine", 3, 1},
      {"dist.send", 1, 1},
      {"dist.recv", 0, 1},
      {"forge.clip_coefficient", 1, 1},
      {"forge.lr_factor", 1, 1},
      {"forge.adamw_update", 7, 3},
      {"forge.lion_update", 5, 2},
      {"forge.muon_update", 5, 2},
      {"forge.schedule_free_count", 2, 1},
      {"forge.schedule_free_adamw_update", 8, 4},
      {"forge.schedule_free_interpolate", 4, 1},
  };
  return ops;
}

const OpInfo *findOp(std::string_view name) {
  for (const OpInfo &op : knownOps())
    if (op.name == name)
      return &op;
  return nullptr;
}

namespace {

std::string str(const flatbuffers::String *s) {
  return s ? s->str() : std::string("<unnamed>");
}

std::string checkIndices(const flatbuffers::Vector<uint32_t> *v, size_t count,
                         const std::string &what) {
  if (!v)
    return "";
  for (uint32_t i : *v)
    if (i >= count)
      return what + " refers to buffer " + std::to_string(i) +
             " but the plan has " + std::to_string(count) + " buffers";
  return "";
}

} // namespace

std::string verifyPlan(const uint8_t *data, size_t size) {
  if (size < 8)
    return "file too small to be a plan (" + std::to_string(size) + " bytes)";
  if (!plan::PlanBufferHasIdentifier(data))
    return "not a forge plan (missing the FRGP identifier)";
  flatbuffers::Verifier verifier(data, size);
  if (!plan::VerifyPlanBuffer(verifier))
    return "corrupted or truncated plan (FlatBuffers verification failed)";
  const plan::Plan *p = plan::GetPlan(data);
  if (p->version() != kPlanVersion)
    return "plan format version " + std::to_string(p->version()) +
           ", but this forge-run reads version " +
           std::to_string(kPlanVersion) +
           "; recompile the job with the matching forgec";
  if (!p->buffers() || !p->programs() || !p->memory() || !p->training())
    return "incomplete plan: buffers, programs, memory and training are "
           "required";
  if (const plan::Pipeline *pipe = p->pipeline(); pipe && pipe->stage_plans()) {
    // A pipeline-parallel job: each stage's plan is complete on its own.
    if (static_cast<int64_t>(pipe->stage_plans()->size()) != pipe->stages() ||
        pipe->stages() < 2)
      return "pipeline with " + std::to_string(pipe->stages()) +
             " stages has " + std::to_string(pipe->stage_plans()->size()) +
             " stage plans";
    for (size_t i = 0; i < pipe->stage_plans()->size(); ++i) {
      const auto *bytes = pipe->stage_plans()->Get(i)->plan();
      if (!bytes)
        return "pipeline stage " + std::to_string(i) + " has no plan";
      if (std::string e = verifyPlan(bytes->data(), bytes->size()); !e.empty())
        return "pipeline stage " + std::to_string(i) + ": " + e;
      const plan::Plan *sp = plan::GetPlan(bytes->data());
      if (!sp->pipeline() || sp->pipeline()->stage() != static_cast<int64_t>(i))
        return "pipeline stage plan " + std::to_string(i) +
               " is not marked as that stage";
    }
    return "";
  }
  const uint64_t arena = p->arena_bytes();
  const size_t nbuf = p->buffers()->size();
  for (size_t i = 0; i < nbuf; ++i) {
    const plan::Buffer *b = p->buffers()->Get(i);
    std::string name =
        "buffer " + std::to_string(i) + " (" + str(b->name()) + ")";
    uint64_t elems = 1;
    if (b->shape())
      for (int64_t d : *b->shape()) {
        if (d < 0)
          return name + " has a negative dimension";
        if (d > 0 && elems > std::numeric_limits<uint64_t>::max() / d)
          return name + " has an overflowing shape";
        elems *= static_cast<uint64_t>(d);
      }
    uint64_t es = dtypeSize(b->dtype());
    if (es == 0)
      return name + " has an unknown dtype";
    if (elems * es != b->bytes())
      return name + " holds " + std::to_string(b->bytes()) + " bytes but its " +
             dtypeName(b->dtype()) + " shape needs " +
             std::to_string(elems * es);
    if (b->offset() % kArenaAlignment != 0)
      return name + " is not " + std::to_string(kArenaAlignment) +
             "-byte aligned (offset " + std::to_string(b->offset()) + ")";
    if (b->offset() > arena || b->bytes() > arena - b->offset())
      return name + " [" + std::to_string(b->offset()) + ", +" +
             std::to_string(b->bytes()) + ") lies outside the arena of " +
             std::to_string(arena) + " bytes";
  }
  // The mesh, and each sharded buffer's block of its global tensor.
  std::vector<std::pair<std::string, int64_t>> mesh;
  if (p->mesh() && p->mesh()->dims() && p->mesh()->sizes()) {
    if (p->mesh()->dims()->size() != p->mesh()->sizes()->size())
      return "mesh dims and sizes differ in length";
    for (size_t i = 0; i < p->mesh()->dims()->size(); ++i) {
      int64_t n = p->mesh()->sizes()->Get(i);
      if (n < 1)
        return "mesh dim " + str(p->mesh()->dims()->Get(i)) +
               " has a non-positive size";
      mesh.push_back({str(p->mesh()->dims()->Get(i)), n});
    }
  }
  for (size_t i = 0; i < nbuf; ++i) {
    const plan::Buffer *b = p->buffers()->Get(i);
    if (!b->splits() || b->splits()->size() == 0) {
      if (b->global_shape())
        return "buffer " + std::to_string(i) + " (" + str(b->name()) +
               ") has a global shape but no splits";
      continue;
    }
    std::string name =
        "buffer " + std::to_string(i) + " (" + str(b->name()) + ")";
    if (!b->shape() || !b->global_shape() ||
        b->shape()->size() != b->global_shape()->size() ||
        b->shape()->size() == 0)
      return name + " is sharded but its global shape does not match its rank";
    std::vector<int64_t> want(b->shape()->begin(), b->shape()->end());
    std::vector<std::tuple<int, int64_t, int64_t>> padded;
    for (const plan::Split *sp : *b->splits()) {
      int64_t n = 0;
      for (auto &[dim, size] : mesh)
        if (sp->group() && dim == sp->group()->str())
          n = size;
      if (n == 0)
        return name + " is split over '" + str(sp->group()) +
               "', which is not a dim of the plan's mesh";
      if (sp->dim() < 0 || static_cast<size_t>(sp->dim()) >= want.size())
        return name + " is split along dim " + std::to_string(sp->dim()) +
               ", which it does not have";
      padded.push_back({sp->dim(), n, sp->size()});
    }
    // Undo the splits from the innermost out: an even split multiplies the
    // block by n, an uneven one records its extent (whose rounded-up n-th
    // must be the block).
    for (size_t k = padded.size(); k-- > 0;) {
      auto [dim, n, size] = padded[k];
      if (size == 0) {
        want[dim] *= n;
        continue;
      }
      if ((size + n - 1) / n != want[dim])
        return name + " is split unevenly along dim " + std::to_string(dim) +
               " from " + std::to_string(size) + " over " + std::to_string(n) +
               " ranks, but its block is " + std::to_string(want[dim]) +
               " long";
      want[dim] = size;
    }
    for (size_t d = 0; d < want.size(); ++d)
      if (b->global_shape()->Get(d) != want[d])
        return name + "'s global shape is not its shape times its splits";
  }
  for (const plan::Program *prog : *p->programs()) {
    std::string pname = "program " + str(prog->name());
    if (std::string e = checkIndices(prog->inputs(), nbuf, pname + " input");
        !e.empty())
      return e;
    if (std::string e = checkIndices(prog->outputs(), nbuf, pname + " output");
        !e.empty())
      return e;
    if (!prog->steps())
      continue;
    for (size_t s = 0; s < prog->steps()->size(); ++s) {
      const plan::Step *st = prog->steps()->Get(s);
      std::string where =
          pname + " step " + std::to_string(s) + " (" + str(st->op()) + ")";
      const OpInfo *info = st->op() ? findOp(st->op()->string_view()) : nullptr;
      if (!info)
        return where + ": op unknown to this forge-run";
      size_t nops = st->operands() ? st->operands()->size() : 0;
      size_t nres = st->results() ? st->results()->size() : 0;
      if ((info->operands >= 0 &&
           nops != static_cast<size_t>(info->operands)) ||
          (info->results >= 0 && nres != static_cast<size_t>(info->results)))
        return where + ": has " + std::to_string(nops) + " operands and " +
               std::to_string(nres) + " results";
      if (std::string e =
              checkIndices(st->operands(), nbuf, where + " operand");
          !e.empty())
        return e;
      if (std::string e = checkIndices(st->results(), nbuf, where + " result");
          !e.empty())
        return e;
    }
  }
  // The programs forge-run drives, with the interface it relies on.
  auto program = [&](const char *name) -> const plan::Program * {
    for (const plan::Program *prog : *p->programs())
      if (prog->name() && prog->name()->str() == name)
        return prog;
    return nullptr;
  };
  auto bufferOf = [&](const flatbuffers::Vector<uint32_t> *v, size_t i) {
    return p->buffers()->Get(v->Get(i));
  };
  const plan::Training *t = p->training();
  if (t->batch_size() <= 0 || t->seq_len() <= 0 || t->vocab_size() <= 0 ||
      t->grad_accum_steps() <= 0 || t->max_steps() <= 0)
    return "training settings must have positive batch_size, seq_len, "
           "vocab_size, grad_accum_steps and max_steps";
  // A pipeline stage runs forward.K / backward.K per activation slot K
  // (forward.J.K per model chunk J with virtual stages).
  const plan::Pipeline *stage = p->pipeline();
  const int64_t chunks = stage ? stage->virtual_stages() : 1;
  if (chunks < 1 || chunks > 64)
    return "pipeline stage with " + std::to_string(chunks) + " model chunks";
  const std::string microName =
      stage ? pipelineProgram(false, 0, 0, chunks) : "train_step";
  const plan::Program *micro = program(microName.c_str());
  if (!micro || !micro->inputs() || micro->inputs()->size() < 2 ||
      !micro->outputs() || micro->outputs()->size() != 1)
    return "the plan needs a " + microName +
           " program with token and label inputs and one loss output";
  if (stage) {
    if (!stage->actions() || stage->micro_batches() != t->grad_accum_steps())
      return "pipeline stage without its actions for grad_accum_steps "
             "micro-batches";
    // Each micro-batch's forward and backward through each chunk, once.
    std::vector<int> seen(2 * t->grad_accum_steps() * chunks, 0);
    for (const plan::Action *a : *stage->actions()) {
      std::string name =
          pipelineProgram(a->backward(), a->chunk(), a->slot(), chunks);
      if (!program(name.c_str()))
        return "pipeline action runs " + name + ", which the plan lacks";
      if (a->micro() < 0 || a->micro() >= t->grad_accum_steps())
        return "pipeline action for micro-batch " + std::to_string(a->micro()) +
               " of " + std::to_string(t->grad_accum_steps());
      if (a->chunk() >= chunks)
        return "pipeline action for model chunk " + std::to_string(a->chunk()) +
               " of " + std::to_string(chunks);
      ++seen[(2 * a->micro() + (a->backward() ? 1 : 0)) * chunks + a->chunk()];
    }
    for (int n : seen)
      if (n != 1)
        return "pipeline actions must run each micro-batch's forward and "
               "backward once per model chunk";
  }
  for (size_t i = 0; i < micro->inputs()->size(); ++i) {
    const plan::Buffer *b = bufferOf(micro->inputs(), i);
    plan::DType want = i < 2 ? plan::DType::i64 : plan::DType::i32;
    if (b->dtype() != want || !b->shape() || b->shape()->size() != 2 ||
        b->shape()->Get(0) != t->batch_size() ||
        b->shape()->Get(1) != t->seq_len())
      return std::string(microName) + " input " + std::to_string(i) +
             " must be " + dtypeName(want) + " [batch_size, seq_len] = [" +
             std::to_string(t->batch_size()) + ", " +
             std::to_string(t->seq_len()) + "]";
  }
  if (bufferOf(micro->outputs(), 0)->bytes() != 4 ||
      bufferOf(micro->outputs(), 0)->dtype() != plan::DType::f32)
    return std::string(microName) + " must output an f32 scalar loss";
  if (t->eval_interval() < 0 ||
      (t->eval_interval() > 0 && t->eval_steps() <= 0))
    return "eval settings must have a non-negative interval and, when on, a "
           "positive number of steps";
  if (const plan::Program *eval = program("eval_step")) {
    if (t->eval_interval() == 0)
      return "the plan has an eval_step program but evaluation is off";
    if (!eval->inputs() || !eval->outputs() ||
        eval->inputs()->size() != micro->inputs()->size() ||
        eval->outputs()->size() != 1)
      return "eval_step must take train_step's inputs and output the loss";
    for (size_t i = 0; i < eval->inputs()->size(); ++i) {
      const plan::Buffer *a = bufferOf(eval->inputs(), i),
                         *b = bufferOf(micro->inputs(), i);
      if (a->dtype() != b->dtype() || a->bytes() != b->bytes())
        return "eval_step input " + std::to_string(i) +
               " differs from train_step's";
    }
  } else if (t->eval_interval() > 0) {
    return "evaluation is on but the plan has no eval_step program";
  }
  if (const plan::Program *lg = program("logits_step")) {
    // forgec --logits-program: train_step's inputs without the labels,
    // the logits [batch, seq, vocab] out.
    const size_t want = micro->inputs()->size() - 1;
    if (!lg->inputs() || !lg->outputs() || lg->inputs()->size() != want ||
        lg->outputs()->size() != 1)
      return "logits_step must take the tokens (and doc ids) and output the "
             "logits";
    for (size_t i = 0; i < want; ++i) {
      const plan::Buffer *a = bufferOf(lg->inputs(), i),
                         *b = bufferOf(micro->inputs(), i ? i + 1 : 0);
      if (a->dtype() != b->dtype() || a->bytes() != b->bytes())
        return "logits_step input " + std::to_string(i) +
               " differs from train_step's";
    }
    const plan::Buffer *out = bufferOf(lg->outputs(), 0);
    if (!out->shape() || out->shape()->size() != 3 ||
        out->shape()->Get(0) != t->batch_size() ||
        out->shape()->Get(1) != t->seq_len() ||
        out->shape()->Get(2) != t->vocab_size())
      return "logits_step must output [batch_size, seq_len, vocab_size]";
  }
  const size_t nsources = t->datasets() ? t->datasets()->size() : 0;
  if (t->datasets())
    for (const plan::DataSource *d : *t->datasets())
      if (!d->path() || d->path()->size() == 0 || !(d->weight() >= 0))
        return "data source '" + str(d->name()) +
               "' needs a path and a non-negative weight";
  if (t->phases()) {
    int64_t last = -1;
    for (const plan::Phase *ph : *t->phases()) {
      size_t nw = ph->weights() ? ph->weights()->size() : 0;
      if (nw != nsources)
        return "phase at step " + std::to_string(ph->start_step()) + " has " +
               std::to_string(nw) + " weights for " + std::to_string(nsources) +
               " data sources";
      if (ph->start_step() <= last || !(ph->lr_scale() > 0))
        return "phases must have increasing start steps and positive lr "
               "scales";
      last = ph->start_step();
    }
  }
  if (t->pack_sequences() &&
      (t->eos_id() < 0 || t->eos_id() >= t->vocab_size()))
    return "pack_sequences needs an EOS id in [0, vocab_size), got " +
           std::to_string(t->eos_id());
  if (t->pack_sequences() && micro->inputs()->size() != 3)
    return "pack_sequences needs train_step's document-id input";
  const plan::Program *opt = program("optimizer_step");
  if (!opt || !opt->inputs() || opt->inputs()->size() != 2 || !opt->outputs() ||
      opt->outputs()->size() != 2 ||
      bufferOf(opt->inputs(), 0)->dtype() != plan::DType::i64 ||
      bufferOf(opt->inputs(), 0)->bytes() != 8 ||
      bufferOf(opt->inputs(), 1)->dtype() != plan::DType::f32 ||
      bufferOf(opt->inputs(), 1)->bytes() != 4 ||
      bufferOf(opt->outputs(), 0)->dtype() != plan::DType::f32 ||
      bufferOf(opt->outputs(), 1)->dtype() != plan::DType::f32)
    return "the plan needs an optimizer_step program taking the i64 step "
           "and the f32 lr scale and returning the f32 gradient norm and "
           "learning rate";
  if (p->memory()->total() != arena)
    return "memory total (" + std::to_string(p->memory()->total()) +
           ") differs from the arena size (" + std::to_string(arena) + ")";
  return "";
}

std::string localBlock(const plan::Buffer *b,
                       const std::function<int64_t(const std::string &)> &size,
                       const std::function<int64_t(const std::string &)> &coord,
                       Block &out) {
  out = Block();
  if (!b->shape())
    return "buffer has no shape";
  out.shape.assign(b->shape()->begin(), b->shape()->end());
  out.lo.assign(out.shape.size(), 0);
  if (!b->splits() || b->splits()->size() == 0 || !b->global_shape()) {
    out.global = out.valid = out.shape;
    return "";
  }
  if (out.shape.size() > 16)
    return "buffer " + str(b->name()) + " has more than 16 dims";
  out.global.assign(b->global_shape()->begin(), b->global_shape()->end());
  out.valid = out.shape;
  // The rank's box, split by split: a block of `extent` entries from `lo`,
  // of which the first `avail` exist (the rest is padding of uneven splits).
  std::vector<int64_t> extent = out.global, avail = out.global;
  for (const plan::Split *sp : *b->splits()) {
    std::string g = sp->group() ? sp->group()->str() : "";
    const int d = sp->dim();
    const int64_t n = size(g);
    if (n < 1 || (sp->size() == 0 && extent[d] % n != 0) ||
        (sp->size() != 0 && sp->size() != extent[d]))
      return "buffer " + str(b->name()) + ": group '" + g + "' of " +
             std::to_string(n) + " ranks does not split its dim " +
             std::to_string(d) + " as the plan says";
    const int64_t block = (extent[d] + n - 1) / n, start = coord(g) * block;
    out.lo[d] += start;
    avail[d] = std::clamp<int64_t>(avail[d] - start, 0, block);
    extent[d] = block;
  }
  if (extent != out.shape)
    return "buffer " + str(b->name()) + ": its splits do not give its shape";
  out.valid = avail;
  return "";
}

uint64_t collectiveScratchBytes(std::string_view op, int64_t dim, int64_t n,
                                const std::vector<int64_t> &in,
                                const std::vector<int64_t> &out,
                                plan::DType dtype) {
  // The expert all-to-alls stage the n * R received (or returned) rows.
  auto numel = [](const std::vector<int64_t> &s) {
    int64_t e = 1;
    for (int64_t d : s)
      e *= d;
    return static_cast<uint64_t>(e);
  };
  if (op == "dist.expert_dispatch")
    return numel(out) * dtypeSize(dtype);
  if (op == "dist.expert_combine")
    return numel(in) * dtypeSize(dtype);
  const bool gather = op == "dist.all_gather",
             scatter = op == "dist.reduce_scatter";
  if (!gather && !scatter)
    return 0;
  const std::vector<int64_t> &small = gather ? in : out,
                             &big = gather ? out : in;
  if (dim < 0 || static_cast<size_t>(dim) >= small.size() ||
      small.size() != big.size())
    return 0;
  int64_t outer = 1, elems = 1;
  for (size_t d = 0; d < small.size(); ++d) {
    if (static_cast<int64_t>(d) < dim)
      outer *= small[d];
    elems *= small[d];
  }
  if (outer == 1 && big[dim] == n * small[dim])
    return 0; // in place
  return static_cast<uint64_t>(n * elems) *
         (gather ? dtypeSize(dtype) : sizeof(float));
}

std::string loadPlan(const std::string &path, LoadedPlan &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return "cannot open the plan";
  out.bytes.assign(std::istreambuf_iterator<char>(in),
                   std::istreambuf_iterator<char>());
  return verifyPlan(out.bytes.data(), out.bytes.size());
}

} // namespace forge::runtime

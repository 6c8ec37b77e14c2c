//===- BuildModel.cpp - JobConfig -> forge IR -----------------------------===//
//
// Follows reference §2: pre-norm blocks, GQA attention with RoPE (and
// optional QK-norm before RoPE), dense or MoE MLPs, final norm, (tied) head,
// then the configured loss with z-loss and MoE auxiliary terms. Every op's
// location is the config key that shaped it, wrapped in the name of the
// module it belongs to (`layers.3.attention`), so a diagnostic in any later
// pass leads back to the TOML line.
//
//===----------------------------------------------------------------------===//

#include "frontends/model/ir/BuildModel.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "frontends/model/ModelSummary.h"
#include "frontends/registry/Registry.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Location.h"

#include <cmath>
#include <map>

using namespace mlir;

namespace forge::model {
namespace {

class Builder {
public:
  Builder(MLIRContext &ctx, const config::ConfigLoader &loader,
          const BuildOptions &options)
      : ctx_(ctx), loader_(loader), cfg_(loader.config()), m_(cfg_.model),
        options_(options), b_(&ctx) {}

  OwningOpRef<ModuleOp> build(std::string &error);

private:
  /// `name` wrapped around the location of config key `key`.
  Location loc(const std::string &name, const std::string &key) {
    config::Location l = loader_.locationOf(key);
    Location inner = UnknownLoc::get(&ctx_);
    if (!l.flag.empty())
      inner =
          NameLoc::get(StringAttr::get(&ctx_, "command line '" + l.flag + "'"));
    else if (!l.file.empty())
      inner = FileLineColLoc::get(&ctx_, l.file, std::max(l.line, 0),
                                  std::max(l.column, 0));
    return NameLoc::get(StringAttr::get(&ctx_, name), inner);
  }

  RankedTensorType tensor(ArrayRef<int64_t> shape, Type elt) {
    return RankedTensorType::get(shape, elt);
  }
  RankedTensorType act(ArrayRef<int64_t> shape) { return tensor(shape, dt_); }
  RankedTensorType scalar() { return tensor({}, b_.getF32Type()); }
  ArrayRef<int64_t> shapeOf(Value v) {
    return cast<RankedTensorType>(v.getType()).getShape();
  }

  Value param(const std::string &fqn, Location l) {
    auto it = paramTypes_.find(fqn);
    assert(it != paramTypes_.end() && "parameter list and graph disagree");
    return forge::GetParamOp::create(b_, l, it->second,
                                     FlatSymbolRefAttr::get(&ctx_, fqn));
  }

  Value linear(Value x, Value w, Location l) {
    SmallVector<int64_t> shape(shapeOf(x));
    shape.back() = cast<RankedTensorType>(w.getType()).getDimSize(0);
    return forge::LinearOp::create(b_, l, act(shape), x, w);
  }

  Value reshape(Value x, ArrayRef<int64_t> shape, Location l) {
    return forge::ReshapeOp::create(b_, l, act(shape), x);
  }

  Value add(Value a, Value c, Location l) {
    return forge::AddOp::create(b_, l, a.getType(), a, c);
  }

  Value norm(Value x, const std::string &prefix, double eps) {
    Location l = loc(prefix, "model.norm_type");
    Value w = param(prefix + ".weight", l);
    const registry::NormEntry *e = registry::norms().find(m_.norm_type);
    if (e && e->hasBias)
      return forge::LayerNormOp::create(b_, l, x.getType(), x, w,
                                        param(prefix + ".bias", l),
                                        b_.getF64FloatAttr(eps));
    return forge::RMSNormOp::create(b_, l, x.getType(), x, w,
                                    b_.getF64FloatAttr(eps));
  }

  Value activation(const std::string &kind, Value x, Location l) {
    if (kind == "silu")
      return forge::SiluOp::create(b_, l, x.getType(), x);
    if (kind == "gelu")
      return forge::GeluOp::create(b_, l, x.getType(), x);
    if (kind == "relu")
      return forge::ReluOp::create(b_, l, x.getType(), x);
    if (kind == "tanh")
      return forge::TanhOp::create(b_, l, x.getType(), x);
    return nullptr;
  }

  /// A dense MLP from its registry entry: in-projections ([hidden, dim]),
  /// the activation (on the first, times the second when gated), the
  /// out-projection ([dim, hidden]).
  Value mlp(Value x, const std::string &prefix, const registry::MlpEntry &e,
            const std::string &key) {
    Location l = loc(prefix, key);
    SmallVector<const registry::MlpProjection *> ins, outs;
    for (const registry::MlpProjection &p : e.projections)
      (p.outIsHidden ? ins : outs).push_back(&p);
    Value h = linear(x, param(prefix + "." + ins[0]->name + ".weight", l), l);
    h = activation(e.activation, h, l);
    if (e.gated)
      h = forge::MulOp::create(
          b_, l, h.getType(), h,
          linear(x, param(prefix + "." + ins[1]->name + ".weight", l), l));
    return linear(h, param(prefix + "." + outs[0]->name + ".weight", l), l);
  }

  Value attention(Value x, int64_t i);
  Value moe(Value x, int64_t i);
  Value loss(Value h, Value labels);
  /// Builds @name: token ids (and doc ids) to the loss. The training step's
  /// loss has every configured term; the eval step's is the plain loss.
  /// With `logits`, no labels and the head's output instead of a loss.
  void buildStep(StringRef name, bool training, bool logits = false);
  /// Checks the registry entries the graph needs, before building anything.
  bool checkEntries(std::string &error);
  /// The settings later passes need (forge-build-optimizer), as module
  /// attributes, so a dumped IR file reproduces the job on its own.
  void recordTrainingSettings(ModuleOp module);

  MLIRContext &ctx_;
  const config::ConfigLoader &loader_;
  const config::JobConfig &cfg_;
  const config::ModelConfig &m_;
  BuildOptions options_;
  OpBuilder b_;
  Type dt_;
  int64_t B_ = 0, S_ = 0;
  Value docIds_;
  bool training_ = true;
  std::map<std::string, RankedTensorType> paramTypes_;
  SmallVector<Value> aux_, routerZ_;
};

Value Builder::attention(Value x, int64_t i) {
  const std::string p = "layers." + std::to_string(i) + ".attention";
  Location l = loc(p, "model.n_heads");
  const int64_t H = m_.n_heads, KV = m_.kvHeads(), hd = m_.headDim();
  Value q =
      reshape(linear(x, param(p + ".q_proj.weight", l), l), {B_, S_, H, hd}, l);
  Value k = reshape(linear(x, param(p + ".k_proj.weight", l), l),
                    {B_, S_, KV, hd}, l);
  Value v = reshape(linear(x, param(p + ".v_proj.weight", l), l),
                    {B_, S_, KV, hd}, l);
  if (m_.qk_norm) {
    // Always RMSNorm with eps 1e-5, before RoPE (reference §2.2).
    Location ln = loc(p, "model.qk_norm");
    q = forge::RMSNormOp::create(b_, ln, q.getType(), q,
                                 param(p + ".q_norm.weight", ln),
                                 b_.getF64FloatAttr(1e-5));
    k = forge::RMSNormOp::create(b_, ln, k.getType(), k,
                                 param(p + ".k_norm.weight", ln),
                                 b_.getF64FloatAttr(1e-5));
  }
  Location lr = loc(p, "model.rope_theta");
  FloatAttr theta = b_.getF64FloatAttr(m_.rope_theta);
  q = forge::RopeOp::create(b_, lr, q.getType(), q, theta);
  k = forge::RopeOp::create(b_, lr, k.getType(), k, theta);
  Value o = forge::AttentionOp::create(
      b_, l, q.getType(), q, k, v, docIds_, b_.getUnitAttr(),
      b_.getF64FloatAttr(1.0 / std::sqrt(static_cast<double>(hd))));
  o = reshape(o, {B_, S_, H * hd}, l);
  return linear(o, param(p + ".o_proj.weight", l), l);
}

Value Builder::moe(Value x, int64_t i) {
  const std::string p = "layers." + std::to_string(i) + ".mlp";
  Location l = loc(p, "model.num_experts");
  const int64_t T = B_ * S_, D = m_.dim, E = m_.num_experts, K = m_.moe_top_k,
                Fe = m_.expertFfnHiddenDim();
  Value flat = reshape(x, {T, D}, l);
  Location lr = loc(p + ".router", "model.moe_router");
  Value logits = linear(flat, param(p + ".router.gate.weight", lr), lr);
  Type f32 = b_.getF32Type(), i64 = b_.getI64Type();
  SmallVector<Type> routed = {tensor({T, K}, f32), tensor({T, K}, i64),
                              tensor({T, E}, f32)};
  Value weights, indices, perExpert;
  const registry::RouterEntry *r = registry::routers().find(m_.moe_router);
  if (r->hasExpertBias) {
    auto op = forge::SigmoidTopKOp::create(
        b_, lr, routed, logits, param(p + ".router.expert_bias", lr),
        b_.getI64IntegerAttr(K), b_.getStringAttr(m_.moe_bias_schedule));
    weights = op.getWeights();
    indices = op.getIndices();
    perExpert = op.getScores();
    // The sigmoid router's balance loss is the sequence-aux loss.
    if (m_.moe_sequence_aux_loss_weight > 0) {
      Value a =
          forge::MoeAuxLossOp::create(b_, lr, scalar(), perExpert, indices);
      aux_.push_back(forge::ScaleOp::create(
          b_, lr, scalar(), a,
          b_.getF64FloatAttr(m_.moe_sequence_aux_loss_weight)));
    }
  } else {
    auto op = forge::SoftmaxTopKOp::create(b_, lr, routed, logits,
                                           b_.getI64IntegerAttr(K));
    weights = op.getWeights();
    indices = op.getIndices();
    perExpert = op.getProbs();
    aux_.push_back(
        forge::MoeAuxLossOp::create(b_, lr, scalar(), perExpert, indices));
  }
  if (m_.moe_router_z_loss_weight > 0)
    routerZ_.push_back(forge::ZLossOp::create(
        b_, loc(p + ".router", "model.moe_router_z_loss_weight"), scalar(),
        logits));
  if (m_.moe_capacity_factor > 0)
    weights = forge::MoeCapacityOp::create(
        b_, loc(p, "model.moe_capacity_factor"), weights.getType(), indices,
        weights, b_.getI64IntegerAttr(E),
        b_.getF64FloatAttr(m_.moe_capacity_factor));

  auto dispatch = forge::MoeDispatchOp::create(
      b_, l, TypeRange{act({T * K, D}), tensor({E}, i64), tensor({T * K}, i64)},
      flat, indices, b_.getI64IntegerAttr(E));
  Value rows = dispatch.getRows(), sizes = dispatch.getGroupSizes();

  // Expert weights: stacked [E, out, in] Linear weights, or packed
  // [E, in, out] tensors.
  auto expertWeight =
      [&](const std::string &name, const std::string &packed,
          bool outIsHidden) -> std::pair<Value, forge::WeightLayout> {
    Location le = loc(p + ".experts", "model.moe_packed_experts");
    if (m_.moe_packed_experts)
      return {param(p + "." + packed, le), forge::WeightLayout::in_out};
    SmallVector<Value> ws;
    for (int64_t j = 0; j < E; ++j)
      ws.push_back(param(
          p + ".experts." + std::to_string(j) + "." + name + ".weight", le));
    int64_t out = outIsHidden ? Fe : D, in = outIsHidden ? D : Fe;
    return {forge::StackOp::create(b_, le, act({E, out, in}), ws),
            forge::WeightLayout::out_in};
  };
  auto grouped = [&](Value in, std::pair<Value, forge::WeightLayout> w,
                     int64_t out) -> Value {
    return forge::GroupedLinearOp::create(
        b_, l, act({T * K, out}), in, w.first, sizes,
        forge::WeightLayoutAttr::get(&ctx_, w.second));
  };
  Value g = grouped(rows, expertWeight("gate_proj", "gate_w", true), Fe);
  Value u = grouped(rows, expertWeight("up_proj", "up_w", true), Fe);
  Value h = forge::MulOp::create(
      b_, l, g.getType(), forge::SiluOp::create(b_, l, g.getType(), g), u);
  Value y = grouped(h, expertWeight("down_proj", "down_w", false), D);
  Value out = forge::MoeCombineOp::create(
      b_, l, act({T, D}), y, dispatch.getOrder(), weights, sizes,
      m_.moe_gradient_scale ? b_.getUnitAttr() : UnitAttr());
  if (m_.moe_shared_experts > 0)
    out = add(out,
              mlp(flat, p + ".shared_expert", *registry::mlps().find("swiglu"),
                  "model.moe_shared_experts"),
              loc(p + ".shared_expert", "model.moe_shared_experts"));
  return reshape(out, {B_, S_, D}, l);
}

Value Builder::loss(Value h, Value labels) {
  const config::TrainConfig &t = cfg_.train;
  Location lh = loc("output_head", "model.tie_embeddings");
  Value head = param(m_.tie_embeddings ? "token_embedding.embedding.weight"
                                       : "output_head.proj.weight",
                     lh);
  Location ll = loc("loss", "train.loss_fn");
  Value total;
  if (t.loss_fn == "chunked_cross_entropy") {
    total = forge::ChunkedCrossEntropyOp::create(
        b_, ll, scalar(), h, head, labels,
        b_.getI64IntegerAttr(t.effectiveCeChunkSize()),
        b_.getI64IntegerAttr(-100),
        b_.getF64FloatAttr(training_ ? t.z_loss_weight : 0.0));
  } else {
    Value logits = linear(h, head, lh);
    total = forge::CrossEntropyOp::create(b_, ll, scalar(), logits, labels,
                                          b_.getI64IntegerAttr(-100));
    if (training_ && t.z_loss_weight > 0) {
      Location lz = loc("loss", "train.z_loss_weight");
      Value flat = reshape(logits, {B_ * S_, m_.vocab_size}, lz);
      Value z = forge::ZLossOp::create(b_, lz, scalar(), flat);
      total = add(total,
                  forge::ScaleOp::create(b_, lz, scalar(), z,
                                         b_.getF64FloatAttr(t.z_loss_weight)),
                  lz);
    }
  }
  auto addTerms = [&](ArrayRef<Value> terms, double weight,
                      const std::string &key) {
    if (!training_ || terms.empty() || weight == 0)
      return;
    Location l = loc("loss", key);
    Value sum = terms.front();
    for (Value v : terms.drop_front())
      sum = add(sum, v, l);
    total = add(total,
                forge::ScaleOp::create(b_, l, scalar(), sum,
                                       b_.getF64FloatAttr(weight)),
                l);
  };
  addTerms(aux_, m_.moe_aux_loss_weight, "model.moe_aux_loss_weight");
  addTerms(routerZ_, m_.moe_router_z_loss_weight,
           "model.moe_router_z_loss_weight");
  return total;
}

bool Builder::checkEntries(std::string &error) {
  auto fail = [&](const std::string &key, const std::string &msg) {
    error = loader_.locationOf(key).str() + ": error: " + msg;
    return false;
  };
  if (cfg_.isVlm())
    return fail("vlm", "VLM models are not supported yet: forgec builds text "
                       "transformers only (remove [vlm] to compile the text "
                       "model)");
  const registry::MlpEntry *e =
      registry::mlps().find(registry::mlpKeyForActivation(m_.activation));
  if (!e)
    return fail("model.activation",
                "[model] activation '" + m_.activation + "' has no mlp entry");
  size_t ins = 0, outs = 0;
  for (const registry::MlpProjection &p : e->projections)
    (p.outIsHidden ? ins : outs) += 1;
  if (outs != 1 || ins != (e->gated ? 2u : 1u))
    return fail("model.activation",
                "mlp '" + e->name + "' has " + std::to_string(ins) +
                    " in- and " + std::to_string(outs) +
                    " out-projections; the graph builder supports a gated "
                    "MLP (2 in, 1 out) or a plain one (1 in, 1 out)");
  for (const char *kind : {"silu", "gelu", "relu", "tanh"})
    if (e->activation == kind)
      return true;
  return fail("model.activation",
              "mlp '" + e->name + "' uses activation '" + e->activation +
                  "'; the graph builder knows silu, gelu, relu, tanh");
}

void Builder::recordTrainingSettings(ModuleOp module) {
  const config::TrainConfig &t = cfg_.train;
  const config::OptimizerConfig &o = cfg_.optimizer;
  const config::SchedulerConfig &s = cfg_.scheduler;
  auto i64 = [&](int64_t v) { return b_.getI64IntegerAttr(v); };
  auto f64 = [&](double v) { return b_.getF64FloatAttr(v); };
  module->setAttr(
      "forge.train",
      b_.getDictionaryAttr(
          {b_.getNamedAttr("grad_accum_steps", i64(t.grad_accum_steps)),
           b_.getNamedAttr("grad_clip_norm", f64(t.grad_clip_norm)),
           b_.getNamedAttr("max_steps", i64(t.max_steps)),
           b_.getNamedAttr("seed", i64(t.seed))}));
  // forge-checkpoint-activations reads it (passes/Passes.h's name).
  // forge-convert-fp8 reads it: fp8 matmuls on bf16 parameters.
  if (t.mixed_precision == "fp8")
    module->setAttr("forge.fp8", b_.getUnitAttr());
  if (t.activation_checkpointing != "none")
    module->setAttr("forge.activation_checkpointing",
                    b_.getStringAttr(t.activation_checkpointing));
  SmallVector<NamedAttribute> optimizer = {
      b_.getNamedAttr("name", b_.getStringAttr(o.name)),
      b_.getNamedAttr("lr", f64(o.lr)),
      b_.getNamedAttr("weight_decay", f64(o.weight_decay)),
      b_.getNamedAttr("beta1", f64(o.betas[0])),
      b_.getNamedAttr("beta2", f64(o.betas[1])),
      b_.getNamedAttr("eps", f64(o.eps)),
      b_.getNamedAttr("muon_momentum", f64(o.muon_momentum)),
      b_.getNamedAttr("muon_ns_steps", i64(o.muon_ns_steps)),
      b_.getNamedAttr("schedule_free_warmup",
                      i64(o.schedule_free_warmup_steps))};
  // Unset means "the same as lr"; forge-build-optimizer resolves it.
  if (o.muon_adam_lr)
    optimizer.push_back(b_.getNamedAttr("muon_adam_lr", f64(*o.muon_adam_lr)));
  module->setAttr("forge.optimizer", b_.getDictionaryAttr(optimizer));
  module->setAttr(
      "forge.schedule",
      b_.getDictionaryAttr(
          {b_.getNamedAttr("name", b_.getStringAttr(s.name)),
           b_.getNamedAttr("warmup", i64(s.warmup_steps)),
           b_.getNamedAttr("decay", i64(s.decay_steps.value_or(0))),
           b_.getNamedAttr("stable", i64(s.stable_steps.value_or(0))),
           b_.getNamedAttr("min_lr_ratio", f64(s.min_lr_ratio)),
           b_.getNamedAttr("wsd_decay", b_.getStringAttr(s.wsd_decay_type)),
           b_.getNamedAttr("rex_alpha", f64(s.rex_alpha))}));
}

void Builder::buildStep(StringRef name, bool training, bool logits) {
  training_ = training;
  aux_.clear();
  routerZ_.clear();
  docIds_ = nullptr;
  Type i64 = b_.getI64Type();
  // A logits program takes no labels.
  SmallVector<Type> inputs = {tensor({B_, S_}, i64)};
  if (!logits)
    inputs.push_back(tensor({B_, S_}, i64));
  bool packed = cfg_.data.pack_sequences;
  if (packed)
    inputs.push_back(tensor({B_, S_}, b_.getI32Type()));
  Type result = logits ? Type(act({B_, S_, m_.vocab_size})) : Type(scalar());
  OpBuilder::InsertionGuard guard(b_);
  auto fn = func::FuncOp::create(b_, loc(name.str(), "train"), name,
                                 b_.getFunctionType(inputs, {result}));
  Block *entry = fn.addEntryBlock();
  b_.setInsertionPointToStart(entry);
  Value tokens = entry->getArgument(0);
  Value labels = logits ? Value() : entry->getArgument(1);
  if (packed)
    docIds_ = entry->getArgument(logits ? 1 : 2);

  Location le = loc("token_embedding", "model.vocab_size");
  Value h = forge::EmbeddingOp::create(
      b_, le, act({B_, S_, m_.dim}),
      param("token_embedding.embedding.weight", le), tokens);
  const registry::MlpEntry *dense =
      registry::mlps().find(registry::mlpKeyForActivation(m_.activation));
  for (int64_t i = 0; i < m_.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i);
    Location l = loc(p, "model.n_layers");
    h = add(h, attention(norm(h, p + ".attention_norm", m_.norm_eps), i), l);
    Value x = norm(h, p + ".mlp_norm", m_.norm_eps);
    h = add(h,
            m_.isMoeLayer(i) ? moe(x, i)
                             : mlp(x, p + ".mlp", *dense, "model.activation"),
            l);
  }
  h = norm(h, "norm", m_.norm_eps);
  Value out;
  if (logits) {
    Location lh = loc("output_head", "model.tie_embeddings");
    out = linear(h,
                 param(m_.tie_embeddings ? "token_embedding.embedding.weight"
                                         : "output_head.proj.weight",
                       lh),
                 lh);
  } else {
    out = loss(h, labels);
  }
  func::ReturnOp::create(b_, loc(name.str(), "train"), ValueRange{out});
}

OwningOpRef<ModuleOp> Builder::build(std::string &error) {
  if (!checkEntries(error))
    return nullptr;
  const std::string &precision = cfg_.train.mixed_precision;
  // fp8 keeps bf16 parameters; the fp8 pass converts eligible matmuls.
  dt_ = precision == "fp32"   ? Type(b_.getF32Type())
        : precision == "fp16" ? Type(b_.getF16Type())
                              : Type(b_.getBF16Type());
  B_ = cfg_.train.batch_size;
  S_ = cfg_.train.seq_len;

  OwningOpRef<ModuleOp> module = ModuleOp::create(loc("model", "model"));
  recordTrainingSettings(*module);
  b_.setInsertionPointToEnd(module->getBody());
  for (const ParamInfo &p : textModelParams(m_)) {
    auto type = tensor(p.shape, dt_);
    paramTypes_[p.fqn] = type;
    forge::InitKind kind = p.init == Init::Ones    ? forge::InitKind::ones
                           : p.init == Init::Zeros ? forge::InitKind::zeros
                                                   : forge::InitKind::normal;
    FloatAttr std = kind == forge::InitKind::normal ? b_.getF64FloatAttr(p.std)
                                                    : FloatAttr();
    std::string key =
        p.init == Init::ResidualNormal ? "model.n_layers" : "model.init_std";
    forge::ParamOp::create(
        b_, loc(p.fqn, key), b_.getStringAttr(p.fqn), TypeAttr::get(type),
        forge::InitKindAttr::get(&ctx_, kind), std, UnitAttr());
  }

  buildStep("train_step", /*training=*/true);
  // Evaluation runs the same forward on its own inputs with the plain
  // configured loss (reference §4.8: no z-loss, no MoE terms), no backward.
  if (cfg_.eval.enabled)
    buildStep("eval_step", /*training=*/false);
  // The model's output for a batch of tokens (forge-run --dump-logits):
  // the same forward, ending at the head.
  if (options_.logitsProgram)
    buildStep("logits_step", /*training=*/false, /*logits=*/true);
  return module;
}

} // namespace

OwningOpRef<ModuleOp> buildModel(MLIRContext &ctx,
                                 const config::ConfigLoader &loader,
                                 std::string &error,
                                 const BuildOptions &options) {
  ctx.loadDialect<forge::ForgeDialect, func::FuncDialect>();
  Builder builder(ctx, loader, options);
  return builder.build(error);
}

} // namespace forge::model

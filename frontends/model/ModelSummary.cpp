//===- ModelSummary.cpp - Parameters and shape facts of a job's model -----===//

#include "frontends/model/ModelSummary.h"
#include "frontends/registry/Registry.h"

#include <cmath>
#include <sstream>

namespace forge::model {

int64_t ParamInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

const char *initName(Init i) {
  switch (i) {
  case Init::Normal:
    return "normal";
  case Init::ResidualNormal:
    return "normal_residual";
  case Init::Ones:
    return "ones";
  case Init::Zeros:
    return "zeros";
  }
  return "?";
}

namespace {

struct Builder {
  const config::ModelConfig &m;
  std::vector<ParamInfo> out;
  double residualStd() const {
    return m.init_std / std::sqrt(2.0 * static_cast<double>(m.n_layers));
  }

  void matrix(const std::string &fqn, int64_t rows, int64_t cols) {
    // o_proj / down_proj write into the residual stream: scaled init.
    bool residual =
        fqn.ends_with("o_proj.weight") || fqn.ends_with("down_proj.weight");
    out.push_back({fqn,
                   {rows, cols},
                   residual ? Init::ResidualNormal : Init::Normal,
                   residual ? residualStd() : m.init_std});
  }
  void tensor(const std::string &fqn, std::vector<int64_t> shape) {
    out.push_back({fqn, std::move(shape), Init::Normal, m.init_std});
  }
  void vector(const std::string &fqn, int64_t n, Init init) {
    out.push_back({fqn, {n}, init, 0});
  }
  void norm(const std::string &prefix, int64_t n) {
    const registry::NormEntry *e = registry::norms().find(m.norm_type);
    vector(prefix + ".weight", n, Init::Ones);
    if (e && e->hasBias)
      vector(prefix + ".bias", n, Init::Zeros);
  }
  void mlp(const std::string &prefix, const registry::MlpEntry &e,
           int64_t hidden) {
    for (const registry::MlpProjection &p : e.projections) {
      if (p.outIsHidden)
        matrix(prefix + "." + p.name + ".weight", hidden, m.dim);
      else
        matrix(prefix + "." + p.name + ".weight", m.dim, hidden);
    }
  }
};

} // namespace

std::vector<ParamInfo> textModelParams(const config::ModelConfig &m) {
  Builder b{m, {}};
  const int64_t hd = m.headDim(), H = m.n_heads, KV = m.kvHeads(), D = m.dim;
  const registry::MlpEntry *dense =
      registry::mlps().find(registry::mlpKeyForActivation(m.activation));
  // Experts are SwiGLU in KempnerForge whatever the activation.
  const registry::MlpEntry *expert = registry::mlps().find("swiglu");
  b.matrix("token_embedding.embedding.weight", m.vocab_size, D);
  for (int64_t i = 0; i < m.n_layers; ++i) {
    std::string l = "layers." + std::to_string(i);
    b.norm(l + ".attention_norm", D);
    b.matrix(l + ".attention.q_proj.weight", H * hd, D);
    b.matrix(l + ".attention.k_proj.weight", KV * hd, D);
    b.matrix(l + ".attention.v_proj.weight", KV * hd, D);
    b.matrix(l + ".attention.o_proj.weight", D, H * hd);
    if (m.qk_norm) {
      b.vector(l + ".attention.q_norm.weight", hd, Init::Ones);
      b.vector(l + ".attention.k_norm.weight", hd, Init::Ones);
    }
    b.norm(l + ".mlp_norm", D);
    if (!m.isMoeLayer(i)) {
      if (dense)
        b.mlp(l + ".mlp", *dense, m.ffnHiddenDim());
      continue;
    }
    const int64_t E = m.num_experts, Fe = m.expertFfnHiddenDim();
    b.matrix(l + ".mlp.router.gate.weight", E, D);
    const registry::RouterEntry *r = registry::routers().find(m.moe_router);
    if (r && r->hasExpertBias)
      b.vector(l + ".mlp.router.expert_bias", E, Init::Zeros);
    if (m.moe_packed_experts) {
      // Stored [E, in, out]; KempnerForge gives down_w the unscaled std.
      b.tensor(l + ".mlp.up_w", {E, D, Fe});
      b.tensor(l + ".mlp.gate_w", {E, D, Fe});
      b.tensor(l + ".mlp.down_w", {E, Fe, D});
    } else {
      for (int64_t j = 0; j < E; ++j)
        b.mlp(l + ".mlp.experts." + std::to_string(j), *expert, Fe);
    }
    if (m.moe_shared_experts > 0)
      b.mlp(l + ".mlp.shared_expert", *expert, Fe);
  }
  b.norm("norm", D);
  if (!m.tie_embeddings)
    b.matrix("output_head.proj.weight", m.vocab_size, D);
  return b.out;
}

int64_t numParamsEstimate(const config::ModelConfig &m) {
  const int64_t D = m.dim, H = m.n_heads, KV = m.kvHeads(), hd = m.headDim();
  const int64_t attn = D * (H * hd) + 2 * D * (KV * hd) + (H * hd) * D;
  const int64_t mlp = 3 * D * m.ffnHiddenDim();
  int64_t total = 0;
  for (int64_t i = 0; i < m.n_layers; ++i) {
    if (m.isMoeLayer(i)) {
      const int64_t Fe = m.expertFfnHiddenDim(), E = m.num_experts;
      total += attn + E * 3 * D * Fe + D * E +
               m.moe_shared_experts * 3 * D * Fe + 2 * D;
    } else {
      total += attn + mlp + 2 * D;
    }
  }
  total += m.vocab_size * D + (m.tie_embeddings ? 0 : m.vocab_size * D) + D;
  return total;
}

static std::string human(int64_t n) {
  std::ostringstream os;
  os.precision(4);
  if (n >= 1000000000)
    os << static_cast<double>(n) / 1e9 << "B";
  else if (n >= 1000000)
    os << static_cast<double>(n) / 1e6 << "M";
  else if (n >= 1000)
    os << static_cast<double>(n) / 1e3 << "K";
  else
    os << n;
  return os.str();
}

std::string summarize(const config::JobConfig &cfg) {
  const config::ModelConfig &m = cfg.model;
  std::vector<ParamInfo> params = textModelParams(m);
  int64_t exact = 0;
  for (const ParamInfo &p : params)
    exact += p.numel();
  std::ostringstream os;
  os << "model: " << m.model_type << ", " << m.n_layers << " layers, dim "
     << m.dim << ", heads " << m.n_heads << " (kv " << m.kvHeads()
     << ", head_dim " << m.headDim() << "), vocab " << m.vocab_size << "\n";
  os << "  mlp: " << registry::mlpKeyForActivation(m.activation) << ", hidden "
     << m.ffnHiddenDim() << "; norm: " << m.norm_type
     << (m.qk_norm ? " (+ qk_norm)" : "")
     << (m.tie_embeddings ? "; tied embeddings" : "") << "\n";
  if (m.isMoe()) {
    std::string layers;
    int64_t count = 0;
    for (int64_t i = 0; i < m.n_layers; ++i)
      if (m.isMoeLayer(i)) {
        layers += (count++ ? "," : "") + std::to_string(i);
      }
    os << "  moe: " << m.num_experts << " experts, top-" << m.moe_top_k
       << ", router " << m.moe_router << ", expert hidden "
       << m.expertFfnHiddenDim() << ", shared " << m.moe_shared_experts
       << (m.moe_packed_experts ? ", packed" : "") << "; " << count
       << " MoE layers: [" << layers << "]\n";
  }
  os << "  parameters: " << exact << " (" << human(exact) << ") in "
     << params.size() << " tensors; KempnerForge num_params_estimate "
     << numParamsEstimate(m) << " (" << human(numParamsEstimate(m)) << ")\n";
  if (cfg.isVlm())
    os << "  vlm: arch " << cfg.vlm->arch << ", encoder "
       << cfg.vision_encoder->type << ", adapter "
       << (cfg.adapter ? cfg.adapter->type : "mlp_2layer")
       << " (counts above are the text transformer only)\n";
  const config::TrainConfig &t = cfg.train;
  os << "train: " << t.max_steps << " steps, micro-batch " << t.batch_size
     << " x " << t.seq_len << " tokens, grad_accum " << t.grad_accum_steps
     << " -> " << t.batch_size * t.seq_len * t.grad_accum_steps
     << " tokens per step per data-parallel rank; " << t.mixed_precision
     << ", AC " << t.activation_checkpointing << "\n";
  os << "optimizer: " << cfg.optimizer.name << " lr " << cfg.optimizer.lr
     << ", schedule " << cfg.scheduler.name << " (warmup "
     << cfg.scheduler.warmup_steps << ")\n";
  return os.str();
}

} // namespace forge::model

//===- HfExport.cpp - Hugging Face Llama/Mixtral checkpoints --------------===//

#include "runtime/train/HfExport.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

namespace forge::train {
namespace {

/// Renames the part after "layers.<i>." (forge) / "model.layers.<i>."
/// (Hugging Face): forge's module paths and the HF ones, in pairs.
const std::vector<std::pair<std::string, std::string>> &layerNames(bool moe) {
  static const std::vector<std::pair<std::string, std::string>> dense = {
      {"attention_norm.weight", "input_layernorm.weight"},
      {"mlp_norm.weight", "post_attention_layernorm.weight"},
      {"attention.q_proj.weight", "self_attn.q_proj.weight"},
      {"attention.k_proj.weight", "self_attn.k_proj.weight"},
      {"attention.v_proj.weight", "self_attn.v_proj.weight"},
      {"attention.o_proj.weight", "self_attn.o_proj.weight"},
      {"mlp.gate_proj.weight", "mlp.gate_proj.weight"},
      {"mlp.up_proj.weight", "mlp.up_proj.weight"},
      {"mlp.down_proj.weight", "mlp.down_proj.weight"}};
  static const std::vector<std::pair<std::string, std::string>> mixtral = {
      {"attention_norm.weight", "input_layernorm.weight"},
      {"mlp_norm.weight", "post_attention_layernorm.weight"},
      {"attention.q_proj.weight", "self_attn.q_proj.weight"},
      {"attention.k_proj.weight", "self_attn.k_proj.weight"},
      {"attention.v_proj.weight", "self_attn.v_proj.weight"},
      {"attention.o_proj.weight", "self_attn.o_proj.weight"},
      {"mlp.router.gate.weight", "block_sparse_moe.gate.weight"}};
  return moe ? mixtral : dense;
}

/// Expert projections: forge's gate/up/down_proj are Mixtral's w1/w3/w2.
const std::pair<const char *, const char *> kExpert[] = {
    {"gate_proj.weight", "w1.weight"},
    {"down_proj.weight", "w2.weight"},
    {"up_proj.weight", "w3.weight"}};

/// Splits "<prefix><i>.<rest>" into i and rest.
bool splitIndex(const std::string &s, const std::string &prefix, int64_t &i,
                std::string &rest) {
  if (s.rfind(prefix, 0) != 0)
    return false;
  size_t dot = s.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size())
    return false;
  std::string num = s.substr(prefix.size(), dot - prefix.size());
  if (num.find_first_not_of("0123456789") != std::string::npos)
    return false;
  i = std::stoll(num);
  rest = s.substr(dot + 1);
  return true;
}

uint16_t toBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000)
    return static_cast<uint16_t>((u >> 16) | 0x40); // quiet NaN
  u += 0x7fff + ((u >> 16) & 1);                    // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

} // namespace

std::string hfName(const std::string &fqn, bool moe) {
  if (fqn == "token_embedding.embedding.weight")
    return "model.embed_tokens.weight";
  if (fqn == "output_head.proj.weight")
    return "lm_head.weight";
  if (fqn == "norm.weight")
    return "model.norm.weight";
  int64_t i;
  std::string rest;
  if (!splitIndex(fqn, "layers.", i, rest))
    return "";
  const std::string layer = "model.layers." + std::to_string(i) + ".";
  for (const auto &[f, h] : layerNames(moe))
    if (rest == f)
      return layer + h;
  int64_t j;
  std::string proj;
  if (moe && splitIndex(rest, "mlp.experts.", j, proj))
    for (const auto &[f, h] : kExpert)
      if (proj == f)
        return layer + "block_sparse_moe.experts." + std::to_string(j) + "." +
               h;
  return "";
}

std::string forgeName(const std::string &key, bool moe) {
  if (key == "model.embed_tokens.weight")
    return "token_embedding.embedding.weight";
  if (key == "lm_head.weight")
    return "output_head.proj.weight";
  if (key == "model.norm.weight")
    return "norm.weight";
  int64_t i;
  std::string rest;
  if (!splitIndex(key, "model.layers.", i, rest))
    return "";
  const std::string layer = "layers." + std::to_string(i) + ".";
  for (const auto &[f, h] : layerNames(moe))
    if (rest == h)
      return layer + f;
  int64_t j;
  std::string proj;
  if (moe && splitIndex(rest, "block_sparse_moe.experts.", j, proj))
    for (const auto &[f, h] : kExpert)
      if (proj == h)
        return layer + "mlp.experts." + std::to_string(j) + "." + f;
  return "";
}

std::string writeHfExport(const plan::HfModel *m, const TensorMap &params,
                          const std::string &dir) {
  if (!m)
    return "the plan has no model description; recompile it with this "
           "forgec";
  if (m->not_exportable() && m->not_exportable()->size())
    return "this model has no Hugging Face Llama/Mixtral form: " +
           m->not_exportable()->str();
  const bool moe = m->num_local_experts() > 0;
  const bool bf16 = !m->export_dtype() || m->export_dtype()->str() != "float32";
  TensorMap out;
  for (const auto &[fqn, t] : params) {
    std::string key = hfName(fqn, moe);
    if (key.empty())
      return "parameter '" + fqn + "' has no Hugging Face name";
    Tensor e{bf16 ? "BF16" : "F32", t.shape, {}};
    const size_t n = t.data.size() / 4;
    if (bf16) {
      e.data.resize(n * 2);
      for (size_t k = 0; k < n; ++k) {
        float f;
        std::memcpy(&f, t.data.data() + 4 * k, 4);
        uint16_t h = toBf16(f);
        std::memcpy(e.data.data() + 2 * k, &h, 2);
      }
    } else {
      e.data = t.data;
    }
    out[key] = std::move(e);
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return "cannot create " + dir + ": " + ec.message();
  if (std::string e = writeSafeTensors(dir + "/model.safetensors", out);
      !e.empty())
    return e;
  auto s = [](const flatbuffers::String *x) {
    return "\"" + (x ? x->str() : std::string()) + "\"";
  };
  std::ostringstream js;
  js << "{\n"
     << "  \"architectures\": [" << s(m->architecture()) << "],\n"
     << "  \"model_type\": " << s(m->model_type()) << ",\n"
     << "  \"hidden_size\": " << m->hidden_size() << ",\n"
     << "  \"intermediate_size\": " << m->intermediate_size() << ",\n"
     << "  \"num_hidden_layers\": " << m->num_hidden_layers() << ",\n"
     << "  \"num_attention_heads\": " << m->num_attention_heads() << ",\n"
     << "  \"num_key_value_heads\": " << m->num_key_value_heads() << ",\n"
     << "  \"vocab_size\": " << m->vocab_size() << ",\n"
     << "  \"max_position_embeddings\": " << m->max_position_embeddings()
     << ",\n"
     << "  \"rope_theta\": " << number(m->rope_theta()) << ",\n"
     << "  \"rms_norm_eps\": " << number(m->rms_norm_eps()) << ",\n"
     << "  \"hidden_act\": \"silu\",\n"
     << "  \"attention_bias\": false,\n"
     << "  \"tie_word_embeddings\": "
     << (m->tie_word_embeddings() ? "true" : "false") << ",\n";
  if (moe)
    js << "  \"num_local_experts\": " << m->num_local_experts() << ",\n"
       << "  \"num_experts_per_tok\": " << m->num_experts_per_tok() << ",\n"
       << "  \"router_aux_loss_coef\": " << number(m->router_aux_loss_coef())
       << ",\n";
  else
    js << "  \"mlp_bias\": false,\n";
  js << "  \"torch_dtype\": \"" << (bf16 ? "bfloat16" : "float32") << "\"\n"
     << "}\n";
  std::ofstream f(dir + "/config.json");
  f << js.str();
  if (!f)
    return "cannot write " + dir + "/config.json";
  return "";
}

} // namespace forge::train

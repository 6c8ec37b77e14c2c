//===- HfExport.h - Hugging Face Llama/Mixtral checkpoints ------*- C++ -*-===//
//
// forge-run --export-hf writes the trained weights as a consolidated
// Hugging Face checkpoint (model.safetensors + config.json) that
// transformers' LlamaForCausalLM or MixtralForCausalLM loads; --init-from
// reads one back. Names follow reference §6, except that MoE experts and
// routers take Mixtral's names (block_sparse_moe.gate, experts.j.w1/w2/w3):
// KempnerForge keeps its own names under model_type "mixtral", which
// transformers cannot load.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_TRAIN_HFEXPORT_H
#define FORGE_RUNTIME_TRAIN_HFEXPORT_H

#include "runtime/core/Plan.h"
#include "runtime/train/SafeTensors.h"

#include <string>

namespace forge::train {

/// The Hugging Face key of forge parameter `fqn`, or "" when it has none.
std::string hfName(const std::string &fqn, bool moe);

/// The forge parameter of Hugging Face key `key`, or "" when it has none.
std::string forgeName(const std::string &key, bool moe);

/// Writes `dir`/model.safetensors (every parameter of `params`, global F32
/// tensors keyed by FQN, renamed and cast to the export dtype) and
/// `dir`/config.json. Returns why it cannot, or "".
std::string writeHfExport(const plan::HfModel *model, const TensorMap &params,
                          const std::string &dir);

} // namespace forge::train

#endif // FORGE_RUNTIME_TRAIN_HFEXPORT_H

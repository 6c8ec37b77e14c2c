//===- RunSettings.cpp - What forge-run needs besides the programs --------===//

#include "compiler/RunSettings.h"
#include "compiler/Analysis.h"
#include "runtime/data/Tokenizer.h"

namespace forge::compiler {

namespace {

const char kPretokenize[] =
    "forge does not download from the Hugging Face hub; pre-tokenize the "
    "text into .npy shards (e.g. `forge-data tokenize --tokenizer "
    "<tokenizer.json> -o <dir> <text files>`, or KempnerForge's "
    "prepare-tokenized-data) and set ";

} // namespace

bool resolveRunSettings(const config::ConfigLoader &loader, RunSettings &out,
                        std::string &error) {
  const config::JobConfig &cfg = loader.config();
  const config::DataConfig &d = cfg.data;
  auto fail = [&](const std::string &key, const std::string &msg) {
    error = loader.locationOf(key).str() + ": error: " + msg;
    return false;
  };
  if (d.hf_dataset_name && !d.hf_dataset_name->empty())
    return fail("data.hf_dataset_name",
                std::string("[data] hf_dataset_name '") + *d.hf_dataset_name +
                    "' is not supported: " + kPretokenize +
                    "data.dataset_path to that directory");
  if (cfg.eval.enabled && cfg.eval.hf_dataset_name &&
      !cfg.eval.hf_dataset_name->empty())
    return fail("eval.hf_dataset_name",
                std::string("[eval] hf_dataset_name '") +
                    *cfg.eval.hf_dataset_name + "' is not supported: " +
                    kPretokenize + "eval.dataset_path to that directory");
  if (cfg.metrics.enable_wandb)
    return fail("metrics.enable_wandb",
                "[metrics] enable_wandb is not supported: forge does not "
                "reach Weights & Biases; use TensorBoard "
                "(enable_tensorboard = true) or the JSONL file "
                "(metrics.jsonl_path)");
  out.mixture = !d.datasets.empty();
  if (out.mixture) {
    for (size_t i = 0; i < d.datasets.size(); ++i) {
      const config::DatasetSource &s = d.datasets[i];
      std::string key = "data.datasets[" + std::to_string(i) + "]";
      if (s.path.empty())
        return fail(key + ".hf_name",
                    "[[data.datasets]] #" + std::to_string(i) + " hf_name '" +
                        s.hf_name + "' is not supported: " + kPretokenize +
                        "its path to that directory");
      out.sources.push_back(
          {s.name.empty() ? "dataset" + std::to_string(i) : s.name, s.path,
           d.file_pattern, s.weight});
    }
  } else if (!d.dataset_path.empty()) {
    out.sources.push_back({"train", d.dataset_path, d.file_pattern, 1.0});
  }
  out.temperature = d.mix_temperature;

  // Phases (reference §4.5): data.phases, or one phase for the anneal. A
  // source a phase does not name keeps its configured weight.
  auto addPhase = [&](int64_t start, const std::map<std::string, double> &w,
                      double lrScale) {
    PhaseSpec ph;
    ph.startStep = start;
    ph.lrScale = lrScale;
    for (size_t i = 0; i < out.sources.size(); ++i) {
      auto it = out.mixture ? w.find(d.datasets[i].name) : w.end();
      ph.weights.push_back(it != w.end() ? it->second : out.sources[i].weight);
    }
    out.phases.push_back(ph);
  };
  for (const config::TrainingPhase &ph : d.phases)
    addPhase(ph.start_step, ph.dataset_weights, ph.lr_scale);
  if (d.phases.empty() && d.anneal_start_step > 0 && !d.anneal_weights.empty())
    addPhase(d.anneal_start_step, d.anneal_weights, 1.0);
  for (const PhaseSpec &ph : out.phases) {
    double sum = 0;
    for (double w : ph.weights)
      sum += w;
    if (!out.sources.empty() && !(sum > 0))
      return fail(d.phases.empty() ? "data.anneal_weights" : "data.phases",
                  "the phase starting at step " + std::to_string(ph.startStep) +
                      " gives every dataset weight 0; at least one must be "
                      "positive");
  }

  out.pack = d.pack_sequences;
  if (out.pack) {
    if (std::string why = data::resolveEosId(d.tokenizer_path, out.eosId);
        !why.empty())
      return fail("data.tokenizer_path", "[data] pack_sequences: " + why);
    if (out.eosId >= cfg.model.vocab_size)
      return fail("data.tokenizer_path",
                  "[data] the tokenizer's EOS id " + std::to_string(out.eosId) +
                      " is outside the model's vocabulary (vocab_size " +
                      std::to_string(cfg.model.vocab_size) + ")");
  }

  if (cfg.eval.enabled) {
    out.evalInterval = cfg.eval.interval;
    out.evalSteps = cfg.eval.steps;
    out.evalPath = cfg.eval.dataset_path;
    out.evalPattern = cfg.eval.file_pattern;
  }
  out.jsonlPath = cfg.metrics.jsonl_path;
  if (cfg.metrics.enable_tensorboard)
    out.tensorboardDir = cfg.metrics.tensorboard_dir;
  out.flopsPerToken = kempnerForgeFlopsPerToken(cfg);
  return true;
}

} // namespace forge::compiler

//===- Registry.h - Named, pluggable model and training components -------===//
//
// The C++ form of KempnerForge's component registry: every swappable part of
// a job (MLP, router, norm, model, optimizer, scheduler, loss, VLM arch,
// vision encoder, adapter, checkpoint-window strategy, video dataset and
// sampling policy) is an entry looked up by the name a config gives.
//
// The registry lives in its own shared library so that a plugin loaded with
// `forgec --plugin libmine.so` and the tools resolve the very same tables: a
// plugin's static initializer calls `add()` and the new name is then valid in
// configs, exactly like importing a module before training in KempnerForge.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_REGISTRY_REGISTRY_H
#define FORGE_REGISTRY_REGISTRY_H

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace forge::registry {

/// One weight matrix of an MLP, described by which of its two dimensions is
/// the model width and which the hidden width. KempnerForge's Linear layout is
/// [out, in], and FQNs are `<prefix>.<name>.weight`.
struct MlpProjection {
  std::string name; ///< e.g. "gate_proj"
  bool outIsHidden; ///< true: [hidden, dim] (dim -> hidden); false: [dim,
                    ///< hidden]
};

/// A dense MLP variant. `activation` names the element-wise function applied
/// to the hidden layer; `gated` means hidden = act(gate(x)) * up(x).
struct MlpEntry {
  std::string name;
  std::string description;
  std::vector<MlpProjection> projections;
  std::string activation;
  bool gated = false;
};

/// A MoE router. `hasExpertBias` adds the trainable `router.expert_bias`.
struct RouterEntry {
  std::string name;
  std::string description;
  bool hasExpertBias = false;
};

/// A normalization layer. `hasBias` adds a `.bias` next to `.weight`.
struct NormEntry {
  std::string name;
  std::string description;
  bool hasBias = false;
};

/// Entries that carry only a name and what it means (model families,
/// optimizers, schedulers, losses, video datasets and sampling policies).
struct NamedEntry {
  std::string name;
  std::string description;
};

/// A VLM architecture. Cross-attention keeps image tokens out of the residual
/// stream; the others prepend them to the text.
struct VlmArchEntry {
  std::string name;
  std::string description;
  bool imageTokensInResidual = true;
};

/// A vision encoder. HF-backed encoders probe their feature size and token
/// count from the checkpoint, so explicit overrides only warn.
struct VisionEncoderEntry {
  std::string name;
  std::string description;
  bool hfBacked = false;
};

/// Result of an adapter's token-count rule: a count, or why there is none.
struct TokenCount {
  int64_t count = 0;
  std::string error; ///< non-empty when the encoder's token count is invalid
};

/// A vision adapter. `outputNumTokens(n, poolWindow)` is the number of tokens
/// it emits for `n` encoder tokens.
struct AdapterEntry {
  std::string name;
  std::string description;
  std::function<TokenCount(int64_t numTokens, int64_t poolWindow)>
      outputNumTokens;
};

/// A dynamic-checkpoint-window strategy: inside [start, stop], save at step
/// iff `saveAt(step - start)`.
struct CheckpointWindowEntry {
  std::string name;
  std::string description;
  std::function<bool(int64_t offset)> saveAt;
};

/// One category of entries, kept in registration order for stable listings.
template <typename Entry> class Category {
public:
  explicit Category(std::string name) : name_(std::move(name)) {}

  /// Registers `entry`. Returns false and sets `error` when the name is
  /// already taken (KempnerForge: "... is already registered").
  bool add(Entry entry, std::string *error = nullptr) {
    if (find(entry.name)) {
      if (error)
        *error = name_ + " '" + entry.name + "' is already registered";
      return false;
    }
    entries_.push_back(std::move(entry));
    return true;
  }

  /// Returns the entry called `name`, or null.
  const Entry *find(const std::string &name) const {
    for (const Entry &e : entries_)
      if (e.name == name)
        return &e;
    return nullptr;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const Entry &e : entries_)
      out.push_back(e.name);
    return out;
  }

  const std::vector<Entry> &entries() const { return entries_; }
  const std::string &name() const { return name_; }

private:
  std::string name_;
  std::vector<Entry> entries_;
};

/// The categories. Each accessor returns the process-wide table, with the
/// built-in entries already registered.
Category<MlpEntry> &mlps();
Category<RouterEntry> &routers();
Category<NormEntry> &norms();
Category<NamedEntry> &models();
Category<NamedEntry> &optimizers();
Category<NamedEntry> &schedulers();
Category<NamedEntry> &losses();
Category<VlmArchEntry> &vlmArchs();
Category<VisionEncoderEntry> &visionEncoders();
Category<AdapterEntry> &adapters();
Category<CheckpointWindowEntry> &checkpointWindows();
Category<NamedEntry> &videoDatasets();
Category<NamedEntry> &videoSamplingPolicies();

/// KempnerForge maps `model.activation` to an MLP key: silu -> swiglu,
/// gelu -> standard_gelu, relu -> standard_relu; any other string is looked
/// up in the mlp category directly (how a plugin MLP is selected).
std::string mlpKeyForActivation(const std::string &activation);

/// Every value `model.activation` accepts: the three aliases, then every
/// registered MLP name.
std::vector<std::string> activationChoices();

/// Loads a plugin shared library; its static initializers register entries.
/// Returns an empty string on success, otherwise the reason it failed.
std::string loadPlugin(const std::string &path);

} // namespace forge::registry

#endif // FORGE_REGISTRY_REGISTRY_H

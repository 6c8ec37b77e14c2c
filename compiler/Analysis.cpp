//===- Analysis.cpp - Facts about a forge module --------------------------===//

#include "compiler/Analysis.h"
#include "dialects/dist/IR/DistDialect.h"
#include "dialects/dist/IR/DistOps.h"
#include "dialects/exec/IR/ExecOps.h"
#include "dialects/forge/IR/ForgeOps.h"
#include "frontends/model/ModelSummary.h"
#include "passes/PipelineSchedule.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cstdio>
#include <map>
#include <sstream>

using namespace mlir;

namespace forge::compiler {

static int64_t numel(Type t) {
  return cast<RankedTensorType>(t).getNumElements();
}

ParamStats countParams(ModuleOp module) {
  ParamStats s;
  for (auto p : module.getOps<forge::ParamOp>()) {
    RankedTensorType t = p.getTensorType();
    (p.getBuffer() ? s.buffers : s.trainable) += t.getNumElements();
    s.tensors += 1;
    s.bytes += t.getNumElements() * t.getElementTypeBitWidth() / 8;
  }
  return s;
}

double forwardFlops(ModuleOp module) {
  double flops = 0;
  // The training step's forward only (eval_step repeats it).
  auto fn = module.lookupSymbol<func::FuncOp>("train_step");
  if (!fn)
    return 0;
  fn.walk([&](Operation *op) {
    llvm::TypeSwitch<Operation *>(op)
        .Case([&](forge::LinearOp l) {
          auto w = cast<RankedTensorType>(l.getWeight().getType());
          double rows = static_cast<double>(numel(l.getInput().getType())) /
                        static_cast<double>(w.getDimSize(1));
          flops += 2.0 * rows * w.getDimSize(0) * w.getDimSize(1);
        })
        .Case([&](forge::GroupedLinearOp g) {
          auto x = cast<RankedTensorType>(g.getInput().getType());
          auto y = cast<RankedTensorType>(g.getResult().getType());
          flops += 2.0 * x.getDimSize(0) * x.getDimSize(1) * y.getDimSize(1);
        })
        .Case([&](forge::ChunkedCrossEntropyOp c) {
          auto w = cast<RankedTensorType>(c.getWeight().getType());
          double rows = static_cast<double>(numel(c.getHidden().getType())) /
                        static_cast<double>(w.getDimSize(1));
          flops += 2.0 * rows * w.getDimSize(0) * w.getDimSize(1);
        })
        .Case([&](forge::AttentionOp a) {
          auto q = cast<RankedTensorType>(a.getQ().getType());
          double B = q.getDimSize(0), S = q.getDimSize(1), H = q.getDimSize(2),
                 hd = q.getDimSize(3);
          double pairs = a.getCausal() ? S * (S + 1) / 2 : S * S;
          // q k^T and p v: 2 flops per multiply-add, two matmuls.
          flops += 2.0 * 2.0 * B * H * pairs * hd;
        });
  });
  return flops;
}

/// Σ_layers(attn + mlp) + V·D, with MoE layers' expert width chosen by
/// `expertWidth`.
static double activeParams(const config::ModelConfig &m, bool expertWidth) {
  const double D = m.dim, H = m.n_heads, KV = m.kvHeads(), hd = m.headDim();
  const double attn = D * (H * hd) + 2 * D * (KV * hd) + (H * hd) * D;
  const double F = m.ffnHiddenDim();
  const double Fe = expertWidth ? m.expertFfnHiddenDim() : F;
  double total = 0;
  for (int64_t i = 0; i < m.n_layers; ++i) {
    if (m.isMoeLayer(i))
      total +=
          attn + m.moe_top_k * 3 * D * Fe +
          (m.moe_shared_experts > 0 ? m.moe_shared_experts : 0) * 3 * D * Fe;
    else
      total += attn + 3 * D * F;
  }
  return total + static_cast<double>(m.vocab_size) * D;
}

double kempnerForgeFlopsPerToken(const config::JobConfig &cfg) {
  const config::ModelConfig &m = cfg.model;
  return 6 * activeParams(m, false) +
         12.0 * m.n_layers * m.dim * cfg.train.seq_len;
}

double correctedFlopsPerToken(const config::JobConfig &cfg) {
  const config::ModelConfig &m = cfg.model;
  return 6 * activeParams(m, true) +
         12.0 * m.n_layers * m.dim * cfg.train.seq_len;
}

static std::string fmt(const char *f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

std::string report(ModuleOp module, const config::JobConfig &cfg) {
  const config::ModelConfig &m = cfg.model;
  ParamStats ps = countParams(module);
  std::ostringstream os;
  os << "parameters (from the IR): " << ps.trainable << " ("
     << fmt("%.4g", ps.trainable / 1e9) << " B) in " << ps.tensors
     << " tensors, " << fmt("%.2f", ps.bytes / double(1 << 20)) << " MiB\n";
  if (ps.buffers)
    os << "buffers: " << ps.buffers << " elements\n";
  os << "num_params_estimate (KempnerForge): " << model::numParamsEstimate(m)
     << " (" << fmt("%.4g", model::numParamsEstimate(m) / 1e9) << " B)\n";
  double tokens = static_cast<double>(cfg.train.batch_size) * cfg.train.seq_len;
  double fwd = forwardFlops(module);
  os << "FLOPs per token (training = 3 x forward):\n"
     << "  KempnerForge MFU formula 6*P_active + 12*L*D*S: "
     << fmt("%.6g", kempnerForgeFlopsPerToken(cfg)) << "\n"
     << "  same, MoE layers at the expert width:            "
     << fmt("%.6g", correctedFlopsPerToken(cfg)) << "\n"
     << "  exact from the graph (causal attention):         "
     << fmt("%.6g", 3 * fwd / tokens) << "\n";
  os << "layers: " << m.n_layers << " (";
  int64_t moe = 0;
  for (int64_t i = 0; i < m.n_layers; ++i)
    moe += m.isMoeLayer(i);
  os << m.n_layers - moe << " dense, " << moe << " MoE)\n";
  for (int64_t i = 0; i < m.n_layers; ++i) {
    // Runs of identical layers print as one line.
    int64_t j = i;
    while (j + 1 < m.n_layers && m.isMoeLayer(j + 1) == m.isMoeLayer(i))
      ++j;
    os << "  layers " << i << (j > i ? ".." + std::to_string(j) : "") << ": "
       << (m.isMoeLayer(i)
               ? "attention + MoE (" + std::to_string(m.num_experts) +
                     " experts, top-" + std::to_string(m.moe_top_k) + ", " +
                     m.moe_router + ")"
               : "attention + dense MLP")
       << "\n";
    i = j;
  }
  return os.str();
}

std::string describeCollectives(ModuleOp module) {
  // A pipeline-parallel job: each stage's ranks have their own programs.
  if (!module.getBody()->getOps<ModuleOp>().empty()) {
    std::string out;
    for (ModuleOp stage : module.getBody()->getOps<ModuleOp>()) {
      auto index = stage->getAttrOfType<IntegerAttr>(dist::kStageAttr);
      std::string one = describeCollectives(stage);
      if (!one.empty())
        out += "pipeline stage " + std::to_string(index ? index.getInt() : -1) +
               ", " + one;
    }
    return out;
  }
  // Per program: (kind, group) -> (calls, bytes of this rank's input), and
  // the same split by the reason each collective is there.
  using Key = std::pair<std::string, std::string>;
  using Row = std::pair<int64_t, double>;
  std::string totals, reasons;
  SymbolTable symbols(module);
  for (auto program : module.getOps<exec::ProgramOp>()) {
    std::map<Key, Row> rows;
    std::map<std::pair<Key, std::string>, Row> byReason;
    for (auto coll : program.getBody().getOps<exec::CollectiveOp>()) {
      // dist.copy and dist.slice move nothing (only their VJPs do).
      if (coll.getKind() == "copy" || coll.getKind() == "slice")
        continue;
      // A pipeline receive has no input: count what it receives.
      ArrayAttr moved = coll.getIns().empty() ? coll.getOuts() : coll.getIns();
      if (moved.empty())
        continue;
      auto input = symbols.lookup<exec::BufferOp>(
          cast<FlatSymbolRefAttr>(moved[0]).getValue());
      double bytes = input ? static_cast<double>(input.getSize()) : 0.0;
      // An fp8 all-gather moves one byte per element of its input.
      if (input && coll.getKernelAttrs() &&
          coll.getKernelAttrs()->contains("fp8")) {
        bytes = 1;
        for (int64_t d : input.getShape())
          bytes *= static_cast<double>(d);
      }
      Key key{coll.getKind().str(), coll.getGroup().str()};
      rows[key].first += 1;
      rows[key].second += bytes;
      // An origin reads "pass: what (phase): subject"; the reason is the
      // part before the subject.
      std::string origin = coll.getOrigin().str();
      size_t cut = origin.find("): ");
      std::string reason =
          cut == std::string::npos ? origin : origin.substr(0, cut + 1);
      Row &r = byReason[{key, reason}];
      r.first += 1;
      r.second += bytes;
    }
    std::string name = "@";
    name += program.getSymName();
    char buf[320];
    for (auto &[key, row] : rows) {
      std::snprintf(buf, sizeof(buf),
                    "  %-15s %-15s over %-13s %5lld calls %12.0f bytes in\n",
                    name.c_str(), key.first.c_str(), key.second.c_str(),
                    static_cast<long long>(row.first), row.second);
      totals += buf;
    }
    for (auto &[key, row] : byReason) {
      std::snprintf(buf, sizeof(buf),
                    "  %-15s %-15s over %-13s %5lld calls %12.0f bytes  %s\n",
                    name.c_str(), key.first.first.c_str(),
                    key.first.second.c_str(), static_cast<long long>(row.first),
                    row.second, key.second.c_str());
      reasons += buf;
    }
  }
  if (totals.empty())
    return "";
  return "collectives per rank (forgec --dump-ir shows each with the "
         "parameter or value it moves):\n" +
         totals +
         "collectives per rank by origin (pass: what it does (phase)):\n" +
         reasons;
}

std::string describePipeline(ModuleOp module) {
  auto pipe = module->getAttrOfType<DictionaryAttr>(dist::kPipelineAttr);
  dist::Mesh mesh;
  std::string error;
  if (!pipe || !dist::readMesh(module, mesh, error) || mesh.size("pp") <= 1)
    return "";
  auto kind = pipe.getAs<StringAttr>("schedule");
  auto micro = pipe.getAs<IntegerAttr>("micro_batches");
  std::vector<std::vector<pipeline::Action>> actions;
  pipeline::Timeline timeline;
  if (!kind || !micro ||
      !pipeline::schedule(kind.str(), mesh.size("pp"), micro.getInt(), actions,
                          error) ||
      !pipeline::simulate(actions, timeline, error))
    return "pipeline: " + error + "\n";
  std::string out = pipeline::render(kind.str(), actions, timeline);
  const int64_t chunks = pipeline::virtualStages(kind.str());
  out += chunks > 1 ? "  activation slots per stage and chunk (micro-batches "
                      "in flight):"
                    : "  activation slots per stage (micro-batches in flight):";
  for (const std::vector<pipeline::Action> &a : actions) {
    out += " ";
    for (int64_t j = 0; j < chunks; ++j)
      out += (j ? "+" : "") + std::to_string(pipeline::slotsOf(a, j));
  }
  return out + "\n";
}

} // namespace forge::compiler

//===- Trace.cpp - Per-rank op timeline for [profiling] -------------------===//

#include "runtime/core/Trace.h"
#include "runtime/core/JsonString.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

namespace forge::runtime {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", v);
  return buf;
}

bool startsWith(const std::string &s, const char *prefix) {
  return s.rfind(prefix, 0) == 0;
}

} // namespace

TraceKind traceKindOfOp(const std::string &op) {
  if (startsWith(op, "forge.linear") || startsWith(op, "forge.grouped_linear"))
    return TraceKind::MatMul;
  if (startsWith(op, "forge.attention"))
    return TraceKind::Attention;
  // dist.copy and dist.slice move bytes within the rank.
  if (startsWith(op, "dist.") && op != "dist.copy" && op != "dist.slice")
    return TraceKind::Communication;
  return TraceKind::Compute;
}

std::string opSecondsTable(const std::map<std::string, double> &opSeconds,
                           const std::string &title) {
  std::vector<std::pair<double, std::string>> rows;
  double total = 0;
  for (auto &[op, sec] : opSeconds) {
    rows.push_back({sec, op});
    total += sec;
  }
  std::sort(rows.rbegin(), rows.rend());
  std::string out = title + ":\n";
  char buf[160];
  for (auto &[sec, op] : rows) {
    std::snprintf(buf, sizeof(buf), "  %-36s %9.3f s %5.1f%%\n", op.c_str(),
                  sec, total > 0 ? 100 * sec / total : 0.0);
    out += buf;
  }
  return out;
}

const char *traceKindName(TraceKind kind) {
  switch (kind) {
  case TraceKind::MatMul:
    return "matmul";
  case TraceKind::Attention:
    return "attention";
  case TraceKind::Compute:
    return "other compute";
  case TraceKind::Communication:
    return "communication";
  case TraceKind::Wait:
    return "communication wait";
  case TraceKind::Program:
    return "program";
  case TraceKind::Host:
    return "host";
  case TraceKind::Step:
    return "step";
  }
  return "?";
}

Tracer::Tracer(int rank)
    : rank_(rank), origin_(std::chrono::steady_clock::now()) {}

int Tracer::threadIndex(const char *thread) {
  for (size_t i = 0; i < threads_.size(); ++i)
    if (threads_[i] == thread)
      return static_cast<int>(i);
  threads_.emplace_back(thread);
  return static_cast<int>(threads_.size() - 1);
}

void Tracer::record(const std::string &name, TraceKind kind, const char *thread,
                    double startUs, double endUs, const std::string &detail,
                    double flops) {
  if (!active())
    return;
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(
      {name, detail, kind, threadIndex(thread), startUs, endUs, flops});
}

bool Tracer::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_.empty();
}

std::string Tracer::writeChromeTrace(const std::string &path) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty())
    std::filesystem::create_directories(parent, ec);
  if (ec)
    return "cannot create " + parent.string() + ": " + ec.message();
  // Written next to the target and renamed: a reader never sees half a
  // trace.
  const std::string tmp = path + ".tmp";
  std::FILE *f = std::fopen(tmp.c_str(), "w");
  if (!f)
    return "cannot write " + tmp + ": " + std::strerror(errno);
  const std::string pid = std::to_string(rank_);
  std::string out = "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  out += "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": " + pid +
         ", \"tid\": 0, \"args\": {\"name\": " +
         jsonString("rank " + std::to_string(rank_)) + "}},\n";
  out += "{\"name\": \"process_sort_index\", \"ph\": \"M\", \"pid\": " + pid +
         ", \"tid\": 0, \"args\": {\"sort_index\": " + pid + "}}";
  for (size_t i = 0; i < threads_.size(); ++i) {
    out += ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": " + pid +
           ", \"tid\": " + std::to_string(i) +
           ", \"args\": {\"name\": " + jsonString(threads_[i]) + "}}";
    out +=
        ",\n{\"name\": \"thread_sort_index\", \"ph\": \"M\", \"pid\": " + pid +
        ", \"tid\": " + std::to_string(i) +
        ", \"args\": {\"sort_index\": " + std::to_string(i) + "}}";
  }
  for (const Event &e : events_) {
    out += ",\n{\"name\": " + jsonString(e.name) +
           ", \"cat\": " + jsonString(traceKindName(e.kind)) +
           ", \"ph\": \"X\", \"ts\": " + number(e.start) +
           ", \"dur\": " + number(e.end - e.start) + ", \"pid\": " + pid +
           ", \"tid\": " + std::to_string(e.thread);
    if (!e.detail.empty() || e.flops > 0) {
      out += ", \"args\": {";
      if (!e.detail.empty())
        out += "\"detail\": " + jsonString(e.detail);
      if (e.flops > 0)
        out += std::string(e.detail.empty() ? "" : ", ") +
               "\"flops\": " + number(e.flops);
      out += "}";
    }
    out += "}";
    if (out.size() > (1 << 20)) {
      std::fwrite(out.data(), 1, out.size(), f);
      out.clear();
    }
  }
  out += "\n]}\n";
  std::fwrite(out.data(), 1, out.size(), f);
  bool ok = std::fflush(f) == 0 && !std::ferror(f);
  ok = std::fclose(f) == 0 && ok;
  if (!ok)
    return "cannot write " + tmp + ": " + std::strerror(errno);
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return "cannot rename " + tmp + " to " + path + ": " + ec.message();
  return "";
}

TraceBreakdown Tracer::breakdown() const {
  std::lock_guard<std::mutex> lock(mu_);
  TraceBreakdown b;
  // Only what happens inside a step counts: evaluation and saving run
  // between steps, as in the log line's step_time.
  std::vector<std::pair<double, double>> steps;
  for (const Event &e : events_)
    if (e.kind == TraceKind::Step) {
      steps.push_back({e.start, e.end});
      b.wall += (e.end - e.start) * 1e-6;
      ++b.steps;
    }
  std::sort(steps.begin(), steps.end());
  auto inStep = [&](const Event &e) {
    auto it = std::upper_bound(
        steps.begin(), steps.end(),
        std::make_pair(e.start, std::numeric_limits<double>::infinity()));
    return it != steps.begin() && e.end <= std::prev(it)->second;
  };
  int compute = -1;
  for (size_t i = 0; i < threads_.size(); ++i)
    if (threads_[i] == "compute")
      compute = static_cast<int>(i);
  for (const Event &e : events_) {
    if (!inStep(e))
      continue;
    const double s = (e.end - e.start) * 1e-6;
    if (e.thread != compute) {
      if (e.kind == TraceKind::Communication)
        b.commStream += s;
      continue;
    }
    switch (e.kind) {
    case TraceKind::MatMul:
      b.matmulFlops += e.flops;
      b.matmul += s;
      break;
    case TraceKind::Attention:
      b.attention += s;
      break;
    case TraceKind::Compute:
      b.compute += s;
      break;
    case TraceKind::Communication:
    case TraceKind::Wait:
      b.exposedComm += s;
      break;
    default:
      break;
    }
  }
  b.idle = std::max(0.0, b.wall - b.matmul - b.attention - b.compute -
                             b.exposedComm);
  return b;
}

std::vector<TraceOpTotal> Tracer::opTotals() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, TraceOpTotal> by;
  for (const Event &e : events_) {
    if (e.kind > TraceKind::Communication)
      continue;
    TraceOpTotal &t = by[e.name];
    t.op = e.name;
    t.kind = e.kind;
    ++t.calls;
    t.seconds += (e.end - e.start) * 1e-6;
  }
  std::vector<TraceOpTotal> out;
  for (auto &[name, t] : by)
    out.push_back(t);
  std::stable_sort(out.begin(), out.end(),
                   [](const TraceOpTotal &a, const TraceOpTotal &b) {
                     return a.seconds > b.seconds;
                   });
  return out;
}

std::string traceSummaryMarkdown(const std::vector<TraceBreakdown> &ranks,
                                 const std::vector<TraceOpTotal> &ops,
                                 int opsRank, const std::string &window) {
  char buf[512];
  auto pct = [](double part, double whole) {
    return whole > 0 ? 100.0 * part / whole : 0.0;
  };
  std::string md = "# forge profile\n\n" + window + "\n\n";
  md += "## Where the step time went\n\n"
        "Each rank's compute thread, over the profiled steps (milliseconds "
        "per step, and share of the step time). *Communication* is the "
        "time the compute thread ran or waited for a collective; the "
        "communication stream's own time, mostly hidden behind compute, is "
        "the next column. *Idle* is everything else inside the step: "
        "reading data, the runtime's bookkeeping, waiting at the "
        "non-finite check. The last column is the matmuls' achieved rate "
        "(2 m n k per dense linear; grouped expert matmuls are not "
        "counted).\n\n";
  md += "| rank | step ms | matmul | attention | other compute | "
        "communication | idle | comm stream ms | matmul GFLOP/s |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (size_t r = 0; r < ranks.size(); ++r) {
    const TraceBreakdown &b = ranks[r];
    const double n = static_cast<double>(std::max<int64_t>(1, b.steps));
    auto cell = [&](double v) {
      char c[64];
      std::snprintf(c, sizeof(c), "%.2f (%.1f%%)", 1e3 * v / n, pct(v, b.wall));
      return std::string(c);
    };
    std::snprintf(buf, sizeof(buf),
                  "| %zu | %.2f | %s | %s | %s | %s | %s | %.2f | %.1f |\n", r,
                  1e3 * b.wall / n, cell(b.matmul).c_str(),
                  cell(b.attention).c_str(), cell(b.compute).c_str(),
                  cell(b.exposedComm).c_str(), cell(b.idle).c_str(),
                  1e3 * b.commStream / n,
                  b.matmul > 0 ? b.matmulFlops / b.matmul / 1e9 : 0.0);
    md += buf;
  }
  double total = 0;
  for (const TraceOpTotal &t : ops)
    total += t.seconds;
  md += "\n## Ops of rank " + std::to_string(opsRank) +
        "\n\nEvery executed op and collective, longest "
        "total first (all threads; % of the ops' total time).\n\n"
        "| op | category | calls | total ms | mean us | % |\n"
        "|---|---|---:|---:|---:|---:|\n";
  for (const TraceOpTotal &t : ops) {
    std::snprintf(buf, sizeof(buf), "| %s | %s | %lld | %.3f | %.1f | %.1f |\n",
                  t.op.c_str(), traceKindName(t.kind),
                  static_cast<long long>(t.calls), 1e3 * t.seconds,
                  1e6 * t.seconds / static_cast<double>(t.calls),
                  pct(t.seconds, total));
    md += buf;
  }
  return md;
}

} // namespace forge::runtime

//===- PipelineSchedule.cpp - Pipeline schedules --------------------------===//

#include "passes/PipelineSchedule.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace forge::pipeline {

int64_t virtualStages(const std::string &kind) {
  return kind == "interleaved_1f1b" ? 2 : 1;
}

namespace {

/// Interleaved 1F1B (Megatron-LM's virtual pipeline): each rank holds v
/// model chunks and runs micro-batches in groups of `stages` through one
/// chunk after the other; the k-th forward of a rank is chunk
/// (k / stages) % v of micro-batch (k / (stages v)) stages + k % stages,
/// the k-th backward the same with the chunks in reverse. A rank warms up
/// with 2 (stages - r - 1) + (v - 1) stages forwards (all of them when
/// there are only `stages` micro-batches), alternates, then drains. Slots
/// are taken per chunk, the lowest free one at a forward and given back at
/// its backward.
void interleaved(int64_t stages, int64_t micro, int64_t v,
                 std::vector<std::vector<Action>> &out) {
  const int64_t total = micro * v;
  for (int64_t r = 0; r < stages; ++r) {
    auto chunkOf = [&](int64_t k, bool backward) {
      const int64_t j = (k / stages) % v;
      return backward ? v - 1 - j : j;
    };
    auto microOf = [&](int64_t k) {
      return (k / (stages * v)) * stages + k % stages;
    };
    const int64_t warm =
        micro == stages
            ? total
            : std::min(total, 2 * (stages - r - 1) + (v - 1) * stages);
    std::vector<std::vector<bool>> busy(v);
    std::map<std::pair<int64_t, int64_t>, int64_t> slotOf;
    auto forward = [&](int64_t k) {
      const int64_t j = chunkOf(k, false), m = microOf(k);
      int64_t s = 0;
      while (s < static_cast<int64_t>(busy[j].size()) && busy[j][s])
        ++s;
      if (s == static_cast<int64_t>(busy[j].size()))
        busy[j].push_back(false);
      busy[j][s] = true;
      slotOf[{j, m}] = s;
      out[r].push_back({false, m, s, j});
    };
    auto backward = [&](int64_t k) {
      const int64_t j = chunkOf(k, true), m = microOf(k);
      const int64_t s = slotOf.at({j, m});
      busy[j][s] = false;
      out[r].push_back({true, m, s, j});
    };
    for (int64_t k = 0; k < warm; ++k)
      forward(k);
    for (int64_t i = 0; i < total - warm; ++i) {
      forward(warm + i);
      backward(i);
    }
    for (int64_t k = total - warm; k < total; ++k)
      backward(k);
  }
}

} // namespace

bool schedule(const std::string &kind, int64_t stages, int64_t micro,
              std::vector<std::vector<Action>> &out, std::string &error) {
  out.assign(stages, {});
  if (stages < 1 || micro < 1) {
    error = "a pipeline needs at least one stage and one micro-batch";
    return false;
  }
  if (kind == "gpipe") {
    // All forwards, then all backwards: every micro-batch in flight.
    for (int64_t s = 0; s < stages; ++s) {
      for (int64_t m = 0; m < micro; ++m)
        out[s].push_back({false, m, m});
      for (int64_t m = 0; m < micro; ++m)
        out[s].push_back({true, m, m});
    }
    return true;
  }
  if (kind == "1f1b") {
    // PipeDream-flush: stage s runs min(stages - s - 1, micro) warm-up
    // forwards, then alternates one forward and one backward, then drains;
    // at most warm-up + 1 micro-batches are in flight, so slot m mod that.
    for (int64_t s = 0; s < stages; ++s) {
      const int64_t warm = std::min(stages - s - 1, micro);
      const int64_t slots = std::min(warm + 1, micro);
      int64_t f = 0, b = 0;
      for (; f < warm; ++f)
        out[s].push_back({false, f, f % slots});
      while (f < micro) {
        out[s].push_back({false, f, f % slots});
        ++f;
        out[s].push_back({true, b, b % slots});
        ++b;
      }
      for (; b < micro; ++b)
        out[s].push_back({true, b, b % slots});
    }
    return true;
  }
  if (kind == "interleaved_1f1b") {
    if (micro % stages != 0) {
      error = "distributed.pp_schedule = \"interleaved_1f1b\" runs the "
              "micro-batches in groups of pp: train.grad_accum_steps (" +
              std::to_string(micro) + ") must be a multiple of pp (" +
              std::to_string(stages) + ")";
      return false;
    }
    interleaved(stages, micro, virtualStages(kind), out);
    return true;
  }
  error = "unknown pipeline schedule '" + kind +
          "' (allowed: 1f1b, gpipe, interleaved_1f1b)";
  return false;
}

int64_t slotsOf(const std::vector<Action> &actions, int64_t chunk) {
  int64_t n = 0;
  for (const Action &a : actions)
    if (a.chunk == chunk)
      n = std::max(n, a.slot + 1);
  return n;
}

bool simulate(const std::vector<std::vector<Action>> &actions, Timeline &tl,
              std::string &error) {
  const int64_t stages = static_cast<int64_t>(actions.size());
  tl.start.assign(stages, {});
  int64_t chunks = 0; // model chunks: stages x virtual stages
  for (const std::vector<Action> &rank : actions)
    for (const Action &a : rank)
      chunks = std::max(chunks, (a.chunk + 1) * stages);
  // When the forward / backward of (model chunk, micro) ends.
  std::map<std::pair<int64_t, int64_t>, double> fwdEnd, bwdEnd;
  std::vector<size_t> next(stages, 0);
  std::vector<double> free(stages, 0.0);
  double busy = 0;
  for (bool progress = true; progress;) {
    progress = false;
    for (int64_t s = 0; s < stages; ++s) {
      while (next[s] < actions[s].size()) {
        const Action &a = actions[s][next[s]];
        const int64_t c = a.chunk * stages + s;
        double ready = free[s];
        // A forward receives from the chunk before, a backward from the
        // chunk after (the last chunk's backward starts from its loss).
        if (!a.backward && c > 0) {
          auto it = fwdEnd.find({c - 1, a.micro});
          if (it == fwdEnd.end())
            break;
          ready = std::max(ready, it->second);
        }
        if (a.backward) {
          auto own = fwdEnd.find({c, a.micro});
          if (own == fwdEnd.end())
            break;
          if (c + 1 < chunks) {
            auto it = bwdEnd.find({c + 1, a.micro});
            if (it == bwdEnd.end())
              break;
            ready = std::max(ready, it->second);
          }
        }
        const double cost = a.backward ? 2.0 : 1.0;
        tl.start[s].push_back(ready);
        (a.backward ? bwdEnd : fwdEnd)[{c, a.micro}] = ready + cost;
        free[s] = ready + cost;
        busy += cost;
        ++next[s];
        progress = true;
      }
    }
  }
  for (int64_t s = 0; s < stages; ++s)
    if (next[s] < actions[s].size()) {
      const Action &a = actions[s][next[s]];
      error = "pipeline stage " + std::to_string(s) +
              " would wait forever at " +
              (a.backward ? "the backward" : "the forward") +
              " of micro-batch " + std::to_string(a.micro) +
              ": its receive has no matching send before it";
      return false;
    }
  // Each direction of each edge between model chunks must carry its
  // micro-batches in the same order at both ends: NCCL matches
  // point-to-point messages in issue order (the CUDA backend gives each
  // direction of each edge a communicator of its own), where gloo matches
  // them by tag. Every schedule above has the property; this keeps a new
  // one from breaking it unnoticed.
  std::map<std::pair<int64_t, bool>, std::vector<int64_t>> order;
  for (int64_t s = 0; s < stages; ++s)
    for (const Action &a : actions[s])
      order[{a.chunk * stages + s, a.backward}].push_back(a.micro);
  auto list = [](const std::vector<int64_t> &v) {
    std::string out;
    for (int64_t m : v)
      out += (out.empty() ? "" : " ") + std::to_string(m);
    return out;
  };
  for (int64_t c = 0; c + 1 < chunks; ++c)
    for (bool backward : {false, true}) {
      // Forward: chunk c sends, c + 1 receives; backward the other way.
      const int64_t from = backward ? c + 1 : c, to = backward ? c : c + 1;
      const std::vector<int64_t> &sent = order[{from, backward}],
                                 &received = order[{to, backward}];
      if (sent != received) {
        error = "pipeline stage " + std::to_string(from % stages) + " sends " +
                (backward ? "gradients" : "activations") + " to stage " +
                std::to_string(to % stages) + " (model chunk " +
                std::to_string(from) + " to " + std::to_string(to) +
                ") for micro-batches " + list(sent) +
                ", but the receiver takes them in the order " + list(received) +
                ": NCCL delivers one edge's messages in order";
        return false;
      }
    }
  tl.makespan = *std::max_element(free.begin(), free.end());
  tl.bubble = tl.makespan > 0
                  ? 1.0 - busy / (static_cast<double>(stages) * tl.makespan)
                  : 0.0;
  return true;
}

std::string render(const std::string &kind,
                   const std::vector<std::vector<Action>> &actions,
                   const Timeline &tl) {
  const int64_t stages = static_cast<int64_t>(actions.size());
  int64_t micro = 0, chunks = 1;
  for (const Action &a : actions.empty() ? std::vector<Action>() : actions[0]) {
    micro = std::max(micro, a.micro + 1);
    chunks = std::max(chunks, a.chunk + 1);
  }
  char head[200];
  std::snprintf(head, sizeof(head),
                "pipeline schedule %s: %lld stages x %lld micro-batches%s, "
                "bubble %.1f%% (forward 1 unit, backward 2%s)\n",
                kind.c_str(), static_cast<long long>(stages),
                static_cast<long long>(micro),
                chunks > 1 ? (", " + std::to_string(chunks) +
                              " model chunks per rank (a, b, ...)")
                                 .c_str()
                           : "",
                100.0 * tl.bubble, chunks > 1 ? ", per chunk" : "");
  std::string out = head;
  // One fixed-width cell per time unit: "F3" a forward, "B3" and "~~" a
  // backward's two units, "." an idle unit; with several chunks per rank
  // the chunk's letter follows ("F3b").
  const size_t width = std::to_string(std::max<int64_t>(micro - 1, 0)).size() +
                       2 + (chunks > 1 ? 1 : 0);
  auto cell = [&](const std::string &text) {
    return text + std::string(width - std::min(width - 1, text.size()), ' ');
  };
  for (int64_t s = 0; s < stages; ++s) {
    std::string line = "  stage " + std::to_string(s) + ": ";
    double t = 0;
    for (size_t i = 0; i < actions[s].size(); ++i) {
      const Action &a = actions[s][i];
      for (; t + 0.5 < tl.start[s][i]; t += 1)
        line += cell(".");
      line +=
          cell((a.backward ? "B" : "F") + std::to_string(a.micro) +
               (chunks > 1 ? std::string(1, static_cast<char>('a' + a.chunk))
                           : std::string()));
      if (a.backward)
        line += cell(std::string(width - 1, '~'));
      t = tl.start[s][i] + (a.backward ? 2.0 : 1.0);
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + "\n";
  }
  return out;
}

} // namespace forge::pipeline

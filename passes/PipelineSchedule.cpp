//===- PipelineSchedule.cpp - Pipeline schedules --------------------------===//

#include "passes/PipelineSchedule.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace forge::pipeline {

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
  if (kind == "interleaved_1f1b")
    error = "distributed.pp_schedule = \"interleaved_1f1b\" (virtual "
            "stages) is not implemented yet; use \"1f1b\" or \"gpipe\"";
  else
    error = "unknown pipeline schedule '" + kind +
            "' (allowed: 1f1b, gpipe, interleaved_1f1b)";
  return false;
}

int64_t slotsOf(const std::vector<Action> &actions) {
  int64_t n = 0;
  for (const Action &a : actions)
    n = std::max(n, a.slot + 1);
  return n;
}

bool simulate(const std::vector<std::vector<Action>> &actions, Timeline &tl,
              std::string &error) {
  const int64_t stages = static_cast<int64_t>(actions.size());
  tl.start.assign(stages, {});
  // When the forward / backward of (stage, micro) ends.
  std::map<std::pair<int64_t, int64_t>, double> fwdEnd, bwdEnd;
  std::vector<size_t> next(stages, 0);
  std::vector<double> free(stages, 0.0);
  double busy = 0;
  for (bool progress = true; progress;) {
    progress = false;
    for (int64_t s = 0; s < stages; ++s) {
      while (next[s] < actions[s].size()) {
        const Action &a = actions[s][next[s]];
        double ready = free[s];
        // A forward receives from the stage before, a backward from the
        // stage after (the last stage's backward starts from its loss).
        if (!a.backward && s > 0) {
          auto it = fwdEnd.find({s - 1, a.micro});
          if (it == fwdEnd.end())
            break;
          ready = std::max(ready, it->second);
        }
        if (a.backward) {
          auto own = fwdEnd.find({s, a.micro});
          if (own == fwdEnd.end())
            break;
          if (s + 1 < stages) {
            auto it = bwdEnd.find({s + 1, a.micro});
            if (it == bwdEnd.end())
              break;
            ready = std::max(ready, it->second);
          }
        }
        const double cost = a.backward ? 2.0 : 1.0;
        tl.start[s].push_back(ready);
        (a.backward ? bwdEnd : fwdEnd)[{s, a.micro}] = ready + cost;
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
  int64_t micro = 0;
  for (const Action &a : actions.empty() ? std::vector<Action>() : actions[0])
    micro = std::max(micro, a.micro + 1);
  char head[160];
  std::snprintf(head, sizeof(head),
                "pipeline schedule %s: %lld stages x %lld micro-batches, "
                "bubble %.1f%% (forward 1 unit, backward 2)\n",
                kind.c_str(), static_cast<long long>(stages),
                static_cast<long long>(micro), 100.0 * tl.bubble);
  std::string out = head;
  // One fixed-width cell per time unit: "F3" a forward, "B3" and "~~" a
  // backward's two units, "." an idle unit.
  const size_t width =
      std::to_string(std::max<int64_t>(micro - 1, 0)).size() + 2;
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
      line += cell((a.backward ? "B" : "F") + std::to_string(a.micro));
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

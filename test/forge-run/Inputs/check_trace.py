"""Validates a forge-run profiler trace: the JSON schema of the trace-event
format (trace-event.schema.json, with jsonschema), then what the viewers
assume: complete events on one thread nest, every thread is named, and each
op lies inside a step (or the evaluation). Prints what the test checks:

  check_trace.py TRACE -> "valid: rank R, threads T, steps S, ops N, ..."
"""
import json
import os
import sys
from collections import Counter, defaultdict

import jsonschema

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "trace-event.schema.json")) as f:
    schema = json.load(f)
with open(sys.argv[1]) as f:
    trace = json.load(f)
jsonschema.validate(trace, schema)

events = trace["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in events
         if e["ph"] == "M" and e["name"] == "thread_name"}
pids = {e["pid"] for e in events}
assert len(pids) == 1, f"one process per rank file, found {sorted(pids)}"
spans = [e for e in events if e["ph"] == "X"]
for e in spans:
    assert e["tid"] in names, f"unnamed thread {e['tid']}"

# Complete events on a thread must nest (a span inside another ends before
# it); the timestamps are printed to 1 ns, hence the tolerance.
eps = 0.002
by_thread = defaultdict(list)
for e in spans:
    by_thread[e["tid"]].append(e)
for tid, evs in by_thread.items():
    evs.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack = []
    for e in evs:
        while stack and e["ts"] >= stack[-1]["ts"] + stack[-1]["dur"] - eps:
            stack.pop()
        if stack:
            outer = stack[-1]
            assert e["ts"] + e["dur"] <= outer["ts"] + outer["dur"] + eps, (
                f"{e['name']} overlaps {outer['name']} on {names[tid]}")
        stack.append(e)

step_spans = [e for e in spans if e["cat"] == "step"]
# Evaluation runs between steps, inside its own host span.
outer_spans = step_spans + [e for e in spans if e["cat"] == "host"]
ops = [e for e in spans
       if e["cat"] in ("matmul", "attention", "other compute",
                       "communication")]
for e in ops:
    assert any(s["ts"] - eps <= e["ts"] and
               e["ts"] + e["dur"] <= s["ts"] + s["dur"] + eps
               for s in outer_spans), f"{e['name']} outside every step"
cats = Counter(e["cat"] for e in ops)
print(f"valid: rank {pids.pop()}, threads {', '.join(sorted(names.values()))}, "
      f"steps {' '.join(s['name'].split()[1] for s in sorted(step_spans, key=lambda s: s['ts']))}, "
      f"ops {len(ops)}")
for cat in sorted(cats):
    print(f"category {cat}: {cats[cat]}")
for name in sorted({e["name"] for e in ops if e["cat"] == "communication"}):
    print(f"collective {name}")

"""The log line, the JSONL file and the TensorBoard events of metrics.test
agree: the same loss and grad_norm at every step (to the log's precision)."""
import json
import re
import sys

log, jsonl, events = sys.argv[1:4]
logged = {int(m.group(1)): (float(m.group(2)), float(m.group(3)))
          for m in re.finditer(r"^\[step (\d+)\] loss=([0-9.]+) \| lr=\S+ \| grad_norm=([0-9.]+)",
                               open(log).read(), re.M)}
rows = {r["step"]: r for r in map(json.loads, open(jsonl))}
tb = {}
for line in open(events):
    parts = line.split()
    if len(parts) == 3 and "/" in parts[0]:
        tb[(parts[0], int(parts[1]))] = float(parts[2])
assert sorted(logged) == [1, 2, 3] == sorted(rows), (sorted(logged), sorted(rows))
for step, (loss, norm) in logged.items():
    assert abs(rows[step]["train/loss"] - loss) < 6e-5, (step, rows[step]["train/loss"], loss)
    assert abs(rows[step]["train/grad_norm"] - norm) < 6e-4
    assert abs(tb[("train/loss", step)] - rows[step]["train/loss"]) < 1e-5 * max(1, loss)
    assert abs(tb[("train/grad_norm", step)] - rows[step]["train/grad_norm"]) < 1e-5 * max(1, norm)
print("log, JSONL and TensorBoard agree at steps", sorted(logged))

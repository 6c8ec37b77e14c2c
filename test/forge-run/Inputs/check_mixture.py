"""Checks mixing.test's metrics: both datasets feed steps 1-5 (a about twice
as often as b), only b feeds steps 6-8, the lr halves from update 6 on, and
evaluation ran at steps 4 and 8."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
train = {r["step"]: r for r in rows if "train/loss" in r}
evals = {r["step"]: r for r in rows if "eval/loss" in r}
assert sorted(train) == list(range(1, 9)), sorted(train)
assert sorted(evals) == [4, 8], sorted(evals)
a5, b5 = train[5]["data/a/tokens"], train[5]["data/b/tokens"]
assert a5 + b5 == 5 * 4 * 32, (a5, b5)
assert a5 > b5 > 0, f"before the phase a should dominate: a {a5}, b {b5}"
assert train[8]["data/a/tokens"] == a5, "dataset a was sampled after the phase"
assert train[8]["data/b/tokens"] == b5 + 3 * 4 * 32
for s in range(1, 6):
    assert abs(train[s]["train/lr"] - 1e-3) < 1e-9, (s, train[s]["train/lr"])
for s in range(6, 9):
    assert abs(train[s]["train/lr"] - 5e-4) < 1e-9, (s, train[s]["train/lr"])
print(f"steps 1-5: a {a5 // 32} windows, b {b5 // 32}; steps 6-8: b only; lr 1e-3 -> 5e-4")

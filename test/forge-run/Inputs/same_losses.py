"""Checks that two forge-run logs trained to the same losses.

    same_losses.py A.log B.log REL_TOL

Every `[step N] loss=X` of A must have a B line for the same step whose
loss is within REL_TOL (relative) of A's; both logs need at least one step.
Prints the largest relative difference.
"""
import re
import sys


def losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = re.search(r"\[step (\d+)\] loss=([-+0-9.eE]+|nan|inf)", line)
            if m:
                out[int(m.group(1))] = float(m.group(2))
    if not out:
        sys.exit(f"{path}: no [step N] loss= lines")
    return out


a, b, tol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
if sorted(a) != sorted(b):
    sys.exit(f"steps differ: {sorted(a)} vs {sorted(b)}")
worst = 0.0
for step in sorted(a):
    rel = abs(a[step] - b[step]) / max(abs(b[step]), 1e-12)
    worst = max(worst, rel)
    if rel > tol:
        sys.exit(f"step {step}: loss {a[step]} vs {b[step]} (relative {rel:.2e} > {tol})")
print(f"{len(a)} steps: largest relative loss difference {worst:.2e}")

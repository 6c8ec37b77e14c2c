"""Checks a forge-run log: `steps` log lines, finite losses, the last loss
below `ratio` times the first (a run that memorizes its batch), and no step
more than `bump` (default 10%) above the best loss so far (MoE routing
switches make small bumps)."""
import math
import re
import sys

log, steps, ratio = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
bump = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1
losses = [float(m.group(1)) for m in
          re.finditer(r"^\[step \d+\] loss=([-0-9.naif]+) ", open(log).read(), re.M)]
if len(losses) != steps:
    sys.exit(f"expected {steps} step lines, got {len(losses)}")
if not all(math.isfinite(x) for x in losses):
    sys.exit(f"non-finite loss: {losses}")
if not losses[-1] < ratio * losses[0]:
    sys.exit(f"loss did not fall enough: first {losses[0]}, last {losses[-1]}")
# Steady: no step more than `bump` above the running minimum.
best = losses[0]
for i, x in enumerate(losses[2:], start=3):
    if x > (1 + bump) * best:
        sys.exit(f"loss rose at step {i}: {x} after a minimum of {best}")
    best = min(best, x)
print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} over {steps} steps")

#!/usr/bin/env bash
# Step time of a 2-rank FSDP run (debug model, 2 layers) with the CPU
# runtime's communication thread (the default) and without it
# (FORGE_COMM_OVERLAP=0: collectives on the compute thread), median of steps
# 2-5, and the losses of both, which must be equal.
#   bash bench/comm_overlap.sh [build-dir]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$build/bin/forgec" "$root/configs/train/debug.toml" --world-size 2 \
  --model.n_layers=2 --metrics.log_interval=1 -o "$tmp/plan.bin" >/dev/null
for overlap in 1 0; do
  FORGE_COMM_OVERLAP=$overlap "$build/bin/forge-run" --nproc-per-node 2 \
    "$tmp/plan.bin" --steps 5 --repeat-batch --no-checkpoint >"$tmp/log.$overlap" 2>&1
  python3 - "$tmp/log.$overlap" "$overlap" <<'PY'
import re, statistics, sys
times, losses = [], []
for line in open(sys.argv[1]):
    m = re.search(r"\[step (\d+)\] loss=([0-9.]+).*step_time=([0-9.]+)s", line)
    if m and int(m.group(1)) >= 2:
        losses.append(m.group(2))
        times.append(float(m.group(3)))
mode = "comm thread" if sys.argv[2] == "1" else "no overlap "
print(f"{mode}: median step {statistics.median(times):.2f} s, losses {' '.join(losses)}")
PY
done

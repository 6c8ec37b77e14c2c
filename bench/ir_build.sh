#!/usr/bin/env bash
# Time to build and verify the forge IR of large jobs (issue target: well
# under a second for 70B). Prints one line per config: the time forgec
# reports for building + verifying the IR, and the whole process wall time
# (best of 5 runs each).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
forgec="${FORGEC:-$root/build/bin/forgec}"
[ -x "$forgec" ] || { echo "bench: build first (bash scripts/setup.sh)" >&2; exit 1; }
printf "%-34s %12s %12s %14s\n" config "ir+verify s" "process s" "parameters"
for cfg in 7b_16gpu_adamw.toml 13b_32gpu_tp4_pp2.toml 70b_32gpu_tp4.toml moe_24gpu.toml moe_ep_32gpu.toml; do
  path="$root/configs/train/$cfg"
  best_ir=999; best_wall=999
  for _ in 1 2 3 4 5; do
    start=$(date +%s.%N)
    out=$("$forgec" "$path" --report)
    end=$(date +%s.%N)
    ir=$(sed -n 's/^IR built and verified in \([0-9.]*\) s$/\1/p' <<<"$out")
    wall=$(echo "$end - $start" | bc -l)
    best_ir=$(echo "if ($ir < $best_ir) $ir else $best_ir" | bc -l)
    best_wall=$(echo "if ($wall < $best_wall) $wall else $best_wall" | bc -l)
  done
  params=$(sed -n 's/^parameters (from the IR): \([0-9]*\).*/\1/p' <<<"$out")
  printf "%-34s %12.4f %12.4f %14s\n" "$cfg" "$best_ir" "$best_wall" "$params"
done

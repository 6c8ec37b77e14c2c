#!/usr/bin/env bash
# The CUDA backend's training speed and memory next to the CPU's: compiles a
# job (default configs/train/debug.toml, fp32, and its bf16 variant), runs
# 20 steps on the GPU with forge-run --device cuda and prints the last log
# line (tokens/s, MFU against the GPU's data-sheet peak, arena / GPU memory)
# and nvidia-smi's view of the process's memory. Prints why and exits 0 on a
# machine without a GPU.
#
#   bash bench/cuda_step.sh [job.toml] [steps]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FORGE_BUILD_DIR:-$root/build}"
job="${1:-$root/configs/train/debug.toml}"
steps="${2:-20}"
run="$build/bin/forge-run"
if ! "$run" --backends | grep -q "cuda (built"; then
  echo "cuda_step: this forge-run was built without the CUDA backend"; exit 0
fi
if "$run" --backends | grep -q " 0 device(s) visible"; then
  echo "cuda_step: no GPU visible: $("$run" --backends | head -1)"; exit 0
fi
"$run" --backends
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for precision in fp32 bf16; do
  "$build/bin/forgec" "$job" --train.mixed_precision="$precision" \
    -o "$tmp/$precision.plan" > /dev/null
  echo "== $precision, $steps steps on cuda"
  "$run" --device cuda --no-checkpoint --progress off "$tmp/$precision.plan" \
    --steps "$steps" | grep '^\[step' | tail -1
done

#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the main job: compiles
# configs/train/debug.toml (or the job given as $1), reports on it, writes
# its plan and trains it for a few steps on the CPU (FORGE_RUN_STEPS, default
# 3; the job's own max_steps with FORGE_RUN_STEPS=all).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
build="${FORGE_BUILD_DIR:-build}"
job="${1:-configs/train/debug.toml}"
shift || true
steps="${FORGE_RUN_STEPS:-3}"
echo "== forgec $job --print-config"
"$build/bin/forgec" "$job" --print-config "$@"
echo
echo "== forgec $job"
"$build/bin/forgec" "$job" "$@"
echo
echo "== forgec $job --report"
"$build/bin/forgec" "$job" --report "$@"
echo
echo "== forgec $job -o $build/main.plan && forge-run $build/main.plan"
"$build/bin/forgec" "$job" "$@" -o "$build/main.plan"
if [ "$steps" = all ]; then
  "$build/bin/forge-run" "$build/main.plan"
else
  "$build/bin/forge-run" "$build/main.plan" --steps "$steps"
fi

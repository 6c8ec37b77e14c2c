#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh: packages, build, and the main job's
# corpus), then runs the main job end to end: compiles
# configs/train/default.toml (or the job given as $1, extra arguments are
# forgec overrides), reports on it, writes its plan and trains it on the
# CPU for the job's max_steps (or FORGE_RUN_STEPS steps), with evaluation,
# the log line and metrics files (logs/default/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
build="${FORGE_BUILD_DIR:-build}"
job="${1:-configs/train/default.toml}"
shift || true
steps="${FORGE_RUN_STEPS:-all}"
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

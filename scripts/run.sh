#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the main job: compiles
# configs/train/debug.toml (or the job given as $1) and reports on it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
build="${FORGE_BUILD_DIR:-build}"
job="${1:-configs/train/debug.toml}"
shift || true
echo "== forgec $job --print-config"
"$build/bin/forgec" "$job" --print-config "$@"
echo
echo "== forgec $job"
"$build/bin/forgec" "$job" "$@"

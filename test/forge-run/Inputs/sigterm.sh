#!/bin/bash
# Usage: sigterm.sh <plan> <log> <ranks>: runs forge-run, sends SIGTERM to
# the launcher once step 3 is logged, and prints its exit code.
plan=$1 log=$2 ranks=$3
forge-run --nproc-per-node "$ranks" "$plan" > "$log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  grep -q '^\[step 3\]' "$log" 2>/dev/null && break
  sleep 0.05
done
kill -TERM "$pid"
wait "$pid"
echo "exit code $?"

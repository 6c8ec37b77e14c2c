#!/usr/bin/env bash
# Starts two forge-run processes the way torchrun would (no forge launcher,
# no shared directory): torchrun_like.sh <plan> <batch> <dump dir>.
set -euo pipefail
plan=$1 batch=$2 dump=$3
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
common=(--init-from "$(dirname "$0")/../../golden/dense/init.safetensors" --batch-from "$batch" --steps 3 --dump-state "$dump")
env -u FORGE_STORE_PATH RANK=1 LOCAL_RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  FORGE_GLOO_HOST=127.0.0.1 forge-run "$plan" "${common[@]}" > /dev/null &
other=$!
env -u FORGE_STORE_PATH RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  FORGE_GLOO_HOST=127.0.0.1 forge-run "$plan" "${common[@]}" > /dev/null
wait $other

#!/usr/bin/env bash
# Starts two forge-run processes the way torchrun would (no forge launcher,
# no shared directory): torchrun_like.sh <plan> <batch> <dump dir>.
set -euo pipefail
plan=$1 batch=$2 dump=$3
# A free port below the kernel's ephemeral range (32768 up): a port the
# kernel hands out for bind(0) could be taken again, before rank 0 binds it,
# by any of the many sockets that concurrent multi-rank tests open.
port=$(python3 -c '
import random, socket
for _ in range(1000):
    port = random.randrange(10000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); print(port); break
    except OSError:
        pass
    finally:
        s.close()')
common=(--init-from "$(dirname "$0")/../../golden/dense/init.safetensors" --batch-from "$batch" --steps 3 --dump-state "$dump")
env -u FORGE_STORE_PATH RANK=1 LOCAL_RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  FORGE_GLOO_HOST=127.0.0.1 forge-run "$plan" "${common[@]}" > /dev/null &
other=$!
env -u FORGE_STORE_PATH RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  FORGE_GLOO_HOST=127.0.0.1 forge-run "$plan" "${common[@]}" > /dev/null
wait $other

#!/usr/bin/env bash
# Starts two forge-run processes the way `srun forge-run plan.bin` would:
# only Slurm's variables, no MASTER_ADDR/MASTER_PORT (the rendezvous is the
# first host of SLURM_JOB_NODELIST and a port derived from SLURM_JOB_ID):
# slurm_like.sh <plan> <batch> <dump dir>.
set -euo pipefail
plan=$1 batch=$2 dump=$3
# A job id whose derived port (20000 + id % 10000) is free right now.
job=$(python3 -c '
import socket
for job in range(4242, 4242 + 10000, 97):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 20000 + job % 10000)); print(job); break
    except OSError:
        pass
    finally:
        s.close()')
common=(--init-from "$(dirname "$0")/../../golden/dense/init.safetensors" --batch-from "$batch" --steps 3 --dump-state "$dump")
slurm=(SLURM_NTASKS=2 SLURM_JOB_ID=$job SLURM_JOB_NODELIST=localhost FORGE_GLOO_HOST=127.0.0.1)
env -u FORGE_STORE_PATH -u MASTER_ADDR -u MASTER_PORT -u RANK -u WORLD_SIZE "${slurm[@]}" \
  SLURM_PROCID=1 SLURM_LOCALID=1 forge-run "$plan" "${common[@]}" > /dev/null &
other=$!
env -u FORGE_STORE_PATH -u MASTER_ADDR -u MASTER_PORT -u RANK -u WORLD_SIZE "${slurm[@]}" \
  SLURM_PROCID=0 SLURM_LOCALID=0 forge-run "$plan" "${common[@]}" > /dev/null
wait $other

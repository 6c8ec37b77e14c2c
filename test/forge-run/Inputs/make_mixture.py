"""Writes two token datasets that can be told apart (a: tokens < 500,
b: tokens >= 500), an eval set, and a job mixing them at temperature 2 with
a phase that switches to b alone and halves the lr from step 5:
  make_mixture.py <dir>  ->  <dir>/{a,b,eval}/*.npy, <dir>/job.toml"""
import os
import random
import struct
import sys


def npy(path, values):
    header = "{'descr': '<u2', 'fortran_order': False, 'shape': (%d,), }" % len(values)
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) +
                header.encode() + struct.pack(f"<{len(values)}H", *values))


root = sys.argv[1]
rng = random.Random(0)
for name, lo, n in (("a", 0, 400 * 33), ("b", 500, 100 * 33), ("eval", 0, 20 * 33)):
    os.makedirs(f"{root}/{name}", exist_ok=True)
    npy(f"{root}/{name}/x.npy", [lo + rng.randrange(500) for _ in range(n)])
open(f"{root}/job.toml", "w").write(f"""
[model]
dim = 64
n_layers = 2
n_heads = 2
vocab_size = 1000
max_seq_len = 32

[train]
batch_size = 4
seq_len = 32
max_steps = 8
mixed_precision = "fp32"

[optimizer]
lr = 1e-3

[scheduler]
name = "constant"
warmup_steps = 0

[data]
mix_temperature = 2.0

[[data.datasets]]
name = "a"
path = "{root}/a"
weight = 4.0

[[data.datasets]]
name = "b"
path = "{root}/b"
weight = 1.0

[[data.phases]]
start_step = 5
dataset_weights = {{ a = 0.0 }}
lr_scale = 0.5

[eval]
enabled = true
interval = 4
steps = 2
dataset_path = "{root}/eval"

[metrics]
log_interval = 1
jsonl_path = "{root}/metrics.jsonl"
""")

"""Writes token shards for the data tests: `good/` (two .npy files of a
repeating 50-token pattern) and one directory per kind of bad data."""
import os
import random
import struct
import sys


def npy(path, values, descr="<u2", fmt="H", shape=None):
    shape = shape or f"({len(values)},)"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    data = struct.pack(f"<{len(values)}{fmt}", *values)
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) +
                header.encode() + data)


root = sys.argv[1]
random.seed(0)
pattern = [random.randrange(1000) for _ in range(50)]
for d in ("good", "float", "matrix", "short", "ext", "bin", "empty"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
npy(f"{root}/good/a.npy", (pattern * 40)[:2000])
npy(f"{root}/good/b.npy", (pattern * 40)[7:1507], "<u4", "I")
npy(f"{root}/float/a.npy", [0.5] * 100, "<f4", "f")
npy(f"{root}/matrix/a.npy", list(range(100)), shape="(10, 10)")
npy(f"{root}/short/a.npy", list(range(10)))
open(f"{root}/ext/a.txt", "w").write("hello")
open(f"{root}/bin/a.bin", "wb").write(b"\x01\x02\x03")

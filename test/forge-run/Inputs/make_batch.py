"""Writes a batch file for --batch-from: I64 tokens and labels [rows, seq]
drawn from a seeded generator: make_batch.py <out> <rows> <seq> <vocab>
[--same-rows] (every row a copy of the first: data-parallel ranks then see
the same tensors as one rank, e.g. the same fp8 activation scales)."""
import json
import random
import struct
import sys

path, rows, seq, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
same = "--same-rows" in sys.argv[5:]
rng = random.Random(1234)
header, data = {}, b""
for name in ("tokens", "labels"):
    values = [rng.randrange(vocab) for _ in range((1 if same else rows) * seq)]
    if same:
        values *= rows
    raw = struct.pack(f"<{len(values)}q", *values)
    header[name] = {"dtype": "I64", "shape": [rows, seq],
                    "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)

"""Packing test helper.
  packing.py batch <out.safetensors> <variant>   writes a batch: per row,
      document A (positions 0-11), EOS (id 1) at 12, document B (13-31);
      labels only on document B. Variant 1 changes every token of A.
  packing.py compare <p0> <p1> <u0> <u1>        the step-1 losses of the
      packed runs (equal) and of the unpacked runs (different)."""
import json
import random
import struct
import sys


def write(path, tensors):
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}q", *values)
        header[name] = {"dtype": "I64", "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)


def read_loss(path):
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    meta = json.loads(blob[8:8 + n])["loss"]
    start = 8 + n + meta["data_offsets"][0]
    return struct.unpack("<f", blob[start:start + 4])[0]


if sys.argv[1] == "compare":
    p0, p1, u0, u1 = (read_loss(d + "/step1.safetensors") for d in sys.argv[2:6])
    assert p0 == p1, f"packed: document A changed B's loss: {p0} vs {p1}"
    assert abs(u0 - u1) > 1e-4, f"unpacked: B's loss ignores A ({u0} vs {u1})"
    print(f"packed: {p0:.6f} == {p1:.6f}; unpacked: {u0:.6f} != {u1:.6f}")
    sys.exit()
path, variant = sys.argv[2], int(sys.argv[3])
B, S, EOS = 2, 32, 1
rng = random.Random(5)
tokens, labels = [], []
for b in range(B):
    row = [rng.randrange(2, 128) for _ in range(S + 1)]
    row[12] = EOS
    if variant:
        alt = random.Random(100 + b)
        for i in range(12):
            row[i] = alt.randrange(2, 128)
    tokens += row[:S]
    labels += [row[i + 1] if i >= 13 else -100 for i in range(S)]
write(path, {"tokens": ([B, S], tokens), "labels": ([B, S], labels)})

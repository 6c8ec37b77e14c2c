"""Writes a batch whose first label is outside the vocabulary (500 >= 128)."""
import json
import struct
import sys

tensors = {"tokens": ([2, 16], [1] * 32), "labels": ([2, 16], [500] + [1] * 31)}
header, blob, offset = {}, b"", 0
for name, (shape, values) in tensors.items():
    raw = struct.pack(f"<{len(values)}q", *values)
    header[name] = {"dtype": "I64", "shape": shape,
                    "data_offsets": [offset, offset + len(raw)]}
    offset += len(raw)
    blob += raw
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + blob)

"""Reads forge-data's .npy shards independently of forge (NumPy format 1.0
by hand, no NumPy needed) and prints, per file,
`<name>: <descr> <length> tokens, header <bytes>`; with --ids also the ids.

    npy.py [--ids] FILE...
    npy.py --golden EXPECTED.json NAME EOS FILE...   (see golden_corpus.py)
"""
import ast
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", f"{path}: bad magic"
    assert data[6:8] == b"\x01\x00", f"{path}: not format version 1.0"
    (hlen,) = struct.unpack("<H", data[8:10])
    start = 10 + hlen
    assert start % 64 == 0, f"{path}: header not 64-byte aligned"
    header = ast.literal_eval(data[10:start].decode("latin1"))
    assert header["fortran_order"] is False
    (n,) = header["shape"]
    fmt = {"<u2": "H", "<u4": "I"}[header["descr"]]
    size = struct.calcsize(fmt)
    assert len(data) == start + n * size, f"{path}: size mismatch"
    ids = list(struct.unpack(f"<{n}{fmt}", data[start:]))
    return header["descr"], ids, start


def main(argv):
    show = argv and argv[0] == "--ids"
    if show:
        argv = argv[1:]
    for path in argv:
        descr, ids, start = read(path)
        print(f"{path.split('/')[-1]}: {descr} {len(ids)} tokens, "
              f"header {start}")
        if show:
            print("ids:", " ".join(map(str, ids)))


if __name__ == "__main__":
    main(sys.argv[1:])

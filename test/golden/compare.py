"""Compares forge-run's --dump-state output with the PyTorch golden files.

For each step file and each tensor (loss, grad_norm, grad.<fqn>,
param.<fqn>) the error is max|forge - torch| / max(max|torch|, tiny): a
per-tensor relative error. The first step's loss, norm and gradients (at
the very same parameters) must be within `tol`; everything after an
optimizer update within `param_tol` (Adam normalizes each element's step, so
a gradient element near zero turns a tiny difference into an lr-sized one,
which later losses and gradients inherit). Reads safetensors with the standard library only (CI has no
numpy or torch).

    compare.py FORGE_DIR GOLDEN_DIR STEPS TOL PARAM_TOL
    compare.py --files A.safetensors B.safetensors TOL
        two files with the same tensors (F32, or I64 compared exactly):
        the largest per-tensor relative error must be <= TOL
"""
import json
import struct
import sys


def read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] not in ("F32", "I64"):
            sys.exit(f"{path}: {name} is {t['dtype']}, expected F32 or I64")
        b, e = t["data_offsets"]
        raw = data[8 + n + b:8 + n + e]
        if t["dtype"] == "I64":
            out[name] = struct.unpack(f"<{len(raw) // 8}q", raw)
        else:
            out[name] = struct.unpack(f"<{len(raw) // 4}f", raw)
    return out


def compare_files(a_path, b_path, tol):
    a, b = read(a_path), read(b_path)
    if set(a) != set(b):
        sys.exit(f"tensors differ: only in {a_path} {sorted(set(a) - set(b))[:5]}, "
                 f"only in {b_path} {sorted(set(b) - set(a))[:5]}")
    if not a:
        sys.exit(f"{a_path} holds no tensors")
    worst, where = 0.0, ""
    for name in sorted(a):
        x, y = a[name], b[name]
        if len(x) != len(y):
            sys.exit(f"{name}: {len(x)} vs {len(y)} elements")
        scale = max(max(abs(v) for v in y), 1e-12)
        err = max(abs(u - v) for u, v in zip(x, y)) / scale
        if err >= worst:
            worst, where = err, name
        if err > tol:
            sys.exit(f"{name}: relative error {err:.3e} > {tol}")
    print(f"{len(a)} tensors: max relative error {worst:.3e} ({where})")


def main(forge_dir, golden_dir, steps, tol, param_tol):
    worst = {"grads": (0.0, ""), "params": (0.0, "")}
    for step in range(1, steps + 1):
        got = read(f"{forge_dir}/step{step}.safetensors")
        want = read(f"{golden_dir}/step{step}.safetensors")
        if set(got) != set(want):
            sys.exit(f"step {step}: tensors differ: only forge "
                     f"{sorted(set(got) - set(want))[:5]}, only torch "
                     f"{sorted(set(want) - set(got))[:5]}")
        for name in sorted(want):
            a, b = got[name], want[name]
            if len(a) != len(b):
                sys.exit(f"step {step} {name}: {len(a)} vs {len(b)} elements")
            scale = max(max(abs(x) for x in b), 1e-12)
            err = max(abs(x - y) for x, y in zip(a, b)) / scale
            first = step == 1 and not name.startswith("param.")
            kind = "grads" if first else "params"
            limit = param_tol if kind == "params" else tol
            if err > worst[kind][0]:
                worst[kind] = (err, f"step {step} {name}")
            if err > limit:
                sys.exit(f"step {step} {name}: relative error {err:.3e} > {limit}")
    names = {"grads": "step 1 loss and gradients",
             "params": "after updates (parameters, later losses and gradients)"}
    for kind, (err, where) in worst.items():
        print(f"{names[kind]}: max relative error {err:.3e} ({where})")


if __name__ == "__main__":
    if sys.argv[1] == "--files":
        compare_files(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        sys.exit(0)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
         float(sys.argv[5]))

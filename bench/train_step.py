#!/usr/bin/env python3
"""Times one training step of forge-run against plain PyTorch eager.

Same model, shapes and optimizer on this CPU: fp32 (or, with --dtype bf16,
bf16 parameters, activations and optimizer state on both sides, as forge's
train.mixed_precision = "bf16"), 2 threads, AdamW, random tokens; the median
step time after warm-up. Prints ms/step, tokens/s,
achieved GFLOP/s (6 * N_matmul + 12 * L * D * S per token, N_matmul = the
parameters that take part in matmuls, head included, input embedding not)
and each side's peak RSS. Then, per shape, the floor that forge's
fp32 matmuls set: the step's linear-layer GEMMs (forward, input gradient,
weight gradient), each timed alone with the OpenBLAS that forge-run links,
against the step time that 1.5x PyTorch's tokens/s would take. Needs PyTorch (pip install torch) and a forge
build (bash scripts/setup.sh):

    python3 bench/train_step.py [--steps 6] [--forge-build build] [--dtype fp32|bf16]
"""
import argparse
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = {
    "a": dict(dim=256, layers=4, heads=4, kv=4, vocab=8192, seq=256, batch=8),
    "b": dict(dim=512, layers=8, heads=8, kv=4, vocab=32000, seq=512, batch=4),
}

TORCH_CHILD = r'''
import math, statistics, sys, time, resource
import torch, torch.nn.functional as F
torch.set_num_threads(2)
d, L, H, KV, V, S, B, steps = map(int, sys.argv[1:9])
dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[sys.argv[9]]
hd, f = d // H, 256 * ((int(4 * d * 2 / 3) + 255) // 256)
g = torch.Generator().manual_seed(0)
def P(*shape, std=0.02):
    return torch.nn.Parameter((torch.randn(*shape, generator=g) * std).to(dt))
def ones(n):
    return torch.nn.Parameter(torch.ones(n, dtype=dt))
p = {"emb": P(V, d), "out": P(V, d), "norm": ones(d)}
for i in range(L):
    p.update({f"{i}.an": ones(d), f"{i}.mn": ones(d),
              f"{i}.q": P(H * hd, d), f"{i}.k": P(KV * hd, d), f"{i}.v": P(KV * hd, d),
              f"{i}.o": P(d, H * hd), f"{i}.g": P(f, d), f"{i}.u": P(f, d), f"{i}.dn": P(d, f)})
inv = 10000.0 ** (-(torch.arange(0, hd, 2).float() / hd))
ang = torch.arange(S).float()[:, None] * inv[None]
cos, sin = ang.cos()[None, :, None].to(dt), ang.sin()[None, :, None].to(dt)
def rope(x):
    a, b = x[..., :hd // 2], x[..., hd // 2:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)
def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
def step(tok, lab):
    x = p["emb"][tok]
    for i in range(L):
        a = rms(x, p[f"{i}.an"])
        q = rope(F.linear(a, p[f"{i}.q"]).view(B, S, H, hd)).transpose(1, 2)
        k = rope(F.linear(a, p[f"{i}.k"]).view(B, S, KV, hd)).transpose(1, 2)
        v = F.linear(a, p[f"{i}.v"]).view(B, S, KV, hd).transpose(1, 2)
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, S, d)
        x = x + F.linear(o, p[f"{i}.o"])
        m = rms(x, p[f"{i}.mn"])
        x = x + F.linear(F.silu(F.linear(m, p[f"{i}.g"])) * F.linear(m, p[f"{i}.u"]), p[f"{i}.dn"])
    logits = F.linear(rms(x, p["norm"]), p["out"])
    return F.cross_entropy(logits.view(-1, V), lab.view(-1))
opt = torch.optim.AdamW(p.values(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
times = []
for s in range(steps):
    tok = torch.randint(0, V, (B, S)); lab = torch.randint(0, V, (B, S))
    t0 = time.perf_counter()
    opt.zero_grad(); loss = step(tok, lab); loss.backward()
    torch.nn.utils.clip_grad_norm_(list(p.values()), 1.0); opt.step()
    times.append(time.perf_counter() - t0)
print(statistics.median(times[2:]), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


def flops_per_token(c):
    d, L, H, KV, V, S = c["dim"], c["layers"], c["heads"], c["kv"], c["vocab"], c["seq"]
    hd, f = d // H, 256 * ((int(4 * d * 2 / 3) + 255) // 256)
    n = L * (d * H * hd + 2 * d * KV * hd + H * hd * d + 3 * d * f) + V * d
    return 6 * n + 12 * L * d * S


def gemm_floor(c, threads=2, passes=3, tries=3):
    """Seconds per step of forge's fp32 linear-layer GEMMs, each timed alone.

    Every linear layer runs three sgemms a step, in the layouts forge-run's
    CPU kernels use: y = x W^T, dx = dy W and dW = dy^T x. Each distinct shape
    is timed on its own (its best try, warm caches, OpenBLAS threads
    awake): the sum is what the matmul part of a step costs at OpenBLAS's
    best rate on this machine. Attention's GEMMs and every other kernel come
    on top.
    """
    blas = ctypes.CDLL("libopenblas.so.0")
    blas.openblas_set_num_threads(threads)
    f32p = ctypes.POINTER(ctypes.c_float)
    i, f = ctypes.c_int, ctypes.c_float
    blas.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, f32p, i, f32p, i, f, f32p, i]
    row, no, tr = 101, 111, 112  # CblasRowMajor, CblasNoTrans, CblasTrans
    d, L, H, KV, V = c["dim"], c["layers"], c["heads"], c["kv"], c["vocab"]
    hd, ffn, rows = d // H, 256 * ((int(4 * d * 2 / 3) + 255) // 256), c["batch"] * c["seq"]
    count = {}
    for shape in [(H * hd, d), (KV * hd, d), (KV * hd, d), (d, H * hd),
                  (ffn, d), (ffn, d), (d, ffn)] * L + [(V, d)]:
        count[shape] = count.get(shape, 0) + 1
    largest = rows * max(max(n, k) for n, k in count) + V * d
    bufs = [(ctypes.c_float * largest)() for _ in range(3)]
    for x in bufs:  # real pages (not the shared zero page) of ordinary floats
        ctypes.memset(x, 0x3C, ctypes.sizeof(x))  # 0x3c3c3c3c = 0.0115
    a, b, out = (ctypes.cast(x, f32p) for x in bufs)
    gemms = [(times, ta, tb, m, nn, kk, lda, ldb)
             for (n, k), times in count.items()
             for ta, tb, m, nn, kk, lda, ldb in ((no, tr, rows, n, k, k, k),   # y = x W^T
                                                 (no, no, rows, k, n, n, k),   # dx = dy W
                                                 (tr, no, n, k, rows, n, k))]  # dW = dy^T x
    # Each shape runs `tries` times back to back (its operands warm in the
    # caches), in `passes` passes over all shapes: a slow spell of this
    # shared machine spoils one pass, not every try of one shape.
    best = [float("inf")] * len(gemms)
    for _ in range(passes):
        for g, (_, ta, tb, m, nn, kk, lda, ldb) in enumerate(gemms):
            for _ in range(tries):
                t0 = time.perf_counter()
                blas.cblas_sgemm(row, ta, tb, m, nn, kk, 1.0, a, lda, b, ldb, 0.0, out, nn)
                best[g] = min(best[g], time.perf_counter() - t0)
    total = sum(g[0] * t for g, t in zip(gemms, best))
    return total


def run_forge(c, build, steps, dtype):
    with tempfile.TemporaryDirectory() as tmp:
        plan = os.path.join(tmp, "bench.plan")
        args = [f"--model.dim={c['dim']}", f"--model.n_layers={c['layers']}",
                f"--model.n_heads={c['heads']}", f"--model.n_kv_heads={c['kv']}",
                f"--model.vocab_size={c['vocab']}", f"--model.max_seq_len={c['seq']}",
                f"--train.seq_len={c['seq']}", f"--train.batch_size={c['batch']}",
                f"--train.mixed_precision={dtype}", "--scheduler.warmup_steps=0"]
        subprocess.run([f"{build}/bin/forgec", "configs/train/debug.toml", *args,
                        "-o", plan], check=True, capture_output=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = subprocess.run([f"{build}/bin/forge-run", plan, "--steps", str(steps),
                              "--no-checkpoint"],
                             check=True, capture_output=True, text=True).stdout
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    times = [float(line.rsplit("step_time=", 1)[1].rstrip("s"))
             for line in out.splitlines() if "step_time=" in line]
    return statistics.median(times[2:]), max(rss, before)


def run_torch(c, steps, dtype):
    out = subprocess.run([sys.executable, "-c", TORCH_CHILD] +
                         [str(c[k]) for k in ("dim", "layers", "heads", "kv", "vocab",
                                              "seq", "batch")] + [str(steps), dtype],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--forge-build", default="build")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    a = ap.parse_args()
    print(f"dtype {a.dtype}")
    print(f"{'shape':6} {'impl':8} {'ms/step':>9} {'tokens/s':>10} {'GFLOP/s':>8} {'peak RSS MiB':>13}")
    torch_sec = {}
    for name, c in SHAPES.items():
        tokens = c["batch"] * c["seq"]
        for impl, (sec, rss) in (("forge", run_forge(c, a.forge_build, a.steps, a.dtype)),
                                 ("pytorch", run_torch(c, a.steps, a.dtype))):
            print(f"{name:6} {impl:8} {sec * 1e3:9.1f} {tokens / sec:10.0f} "
                  f"{flops_per_token(c) * tokens / sec / 1e9:8.2f} {rss / 1024:13.1f}")
            if impl == "pytorch":
                torch_sec[name] = sec
    if a.dtype == "fp32":
        for name, c in SHAPES.items():
            print(f"{name}: forge's linear GEMMs alone (OpenBLAS, 2 threads, each at its best): "
                  f"{gemm_floor(c) * 1e3:.1f} ms/step; 1.5x PyTorch's tokens/s: "
                  f"{torch_sec[name] / 1.5 * 1e3:.1f} ms/step")


if __name__ == "__main__":
    main()

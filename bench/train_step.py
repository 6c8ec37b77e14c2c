#!/usr/bin/env python3
"""Times one training step of forge-run against plain PyTorch eager.

Same model, shapes and optimizer on this CPU: fp32 (or, with --dtype bf16,
bf16 parameters, activations and optimizer state on both sides, as forge's
train.mixed_precision = "bf16"), 2 threads, AdamW, random tokens; the median
step time after warm-up. Prints ms/step, tokens/s,
achieved GFLOP/s (6 * N_matmul + 12 * L * D * S per token, N_matmul = the
parameters that take part in matmuls, head included, input embedding not)
and each side's peak RSS. Needs PyTorch (pip install torch) and a forge
build (bash scripts/setup.sh):

    python3 bench/train_step.py [--steps 6] [--forge-build build] [--dtype fp32|bf16]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

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
    for name, c in SHAPES.items():
        tokens = c["batch"] * c["seq"]
        for impl, (sec, rss) in (("forge", run_forge(c, a.forge_build, a.steps, a.dtype)),
                                 ("pytorch", run_torch(c, a.steps, a.dtype))):
            print(f"{name:6} {impl:8} {sec * 1e3:9.1f} {tokens / sec:10.0f} "
                  f"{flops_per_token(c) * tokens / sec / 1e9:8.2f} {rss / 1024:13.1f}")


if __name__ == "__main__":
    main()

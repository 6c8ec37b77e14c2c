#!/usr/bin/env python3
"""Writes the golden fixtures of test/golden with PyTorch.

An independent, plain PyTorch implementation of KempnerForge's model and
training step (reference §2, §3.10, §4.1-4.4): RMSNorm in f32, rotate-half
RoPE, causal SDPA with GQA by repeat_interleave, SwiGLU, softmax top-k MoE
with the load-balancing loss, cross-entropy with ignore index -100,
clip_grad_norm_, torch.optim.AdamW with KempnerForge's decay groups and a
LambdaLR warmup + cosine schedule. For each case it writes, next to the job
file forge compiles:

  init.safetensors   the initial parameters (KempnerForge FQNs)
  batch.safetensors  tokens and labels (I64 [batch, seq])
  step1.safetensors, step2.safetensors, step3.safetensors
                     loss, grad.<fqn> (before clipping), grad_norm, and
                     param.<fqn> after the optimizer step (the first
                     update has lr 0 under warmup; the third step's
                     gradients are taken at updated parameters)

Run it with PyTorch installed (pip install torch); CI never needs PyTorch:
the fixtures are committed.

    python3 tools/golden/make_golden.py test/golden
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

CASES = {
    "dense": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=128,
                  ffn=96, seq=16, batch=2, experts=0, top_k=2),
    "moe": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=128,
                ffn=96, seq=16, batch=2, experts=4, top_k=2),
    "lion": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=128,
                 ffn=96, seq=16, batch=2, experts=0, top_k=2, opt="lion",
                 betas=(0.9, 0.99)),
}
LR, WD, BETAS, EPS, CLIP = 1e-3, 0.1, (0.9, 0.95), 1e-8, 1.0
WARMUP, MAX_STEPS, MIN_LR, THETA, INIT_STD, AUX = 1, 10, 0.1, 10000.0, 0.02, 0.01


def make_params(c, gen):
    d, h, kv, v = c["dim"], c["n_heads"], c["n_kv_heads"], c["vocab"]
    hd = d // h
    f = c["ffn"]  # explicit ffn_hidden_dim: no rounding (reference §2.5)
    fe = max(16, 16 * round(int(f * 1.0) / 16))
    resid = INIT_STD / math.sqrt(2 * c["n_layers"])
    p = {}

    def normal(name, shape, std=INIT_STD):
        p[name] = torch.randn(shape, generator=gen) * std

    normal("token_embedding.embedding.weight", (v, d))
    for i in range(c["n_layers"]):
        pre = f"layers.{i}"
        p[f"{pre}.attention_norm.weight"] = torch.ones(d)
        normal(f"{pre}.attention.q_proj.weight", (h * hd, d))
        normal(f"{pre}.attention.k_proj.weight", (kv * hd, d))
        normal(f"{pre}.attention.v_proj.weight", (kv * hd, d))
        normal(f"{pre}.attention.o_proj.weight", (d, h * hd), resid)
        p[f"{pre}.mlp_norm.weight"] = torch.ones(d)
        if c["experts"]:
            normal(f"{pre}.mlp.router.gate.weight", (c["experts"], d))
            for j in range(c["experts"]):
                normal(f"{pre}.mlp.experts.{j}.gate_proj.weight", (fe, d))
                normal(f"{pre}.mlp.experts.{j}.up_proj.weight", (fe, d))
                normal(f"{pre}.mlp.experts.{j}.down_proj.weight", (d, fe), resid)
        else:
            normal(f"{pre}.mlp.gate_proj.weight", (f, d))
            normal(f"{pre}.mlp.up_proj.weight", (f, d))
            normal(f"{pre}.mlp.down_proj.weight", (d, f), resid)
    p["norm.weight"] = torch.ones(d)
    normal("output_head.proj.weight", (v, d))
    return p


def rmsnorm(x, w, eps=1e-5):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * w


def rope(x, theta):  # x: [B, S, H, hd]
    hd, s = x.shape[-1], x.shape[1]
    inv = theta ** (-(torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.arange(s, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def swiglu(x, gate, up, down):
    return F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)


def forward(c, p, tokens, labels):
    b, s = tokens.shape
    d, h, kv = c["dim"], c["n_heads"], c["n_kv_heads"]
    hd = d // h
    x = p["token_embedding.embedding.weight"][tokens]
    aux_total = 0.0
    for i in range(c["n_layers"]):
        pre = f"layers.{i}"
        a = rmsnorm(x, p[f"{pre}.attention_norm.weight"])
        q = F.linear(a, p[f"{pre}.attention.q_proj.weight"]).view(b, s, h, hd)
        k = F.linear(a, p[f"{pre}.attention.k_proj.weight"]).view(b, s, kv, hd)
        v = F.linear(a, p[f"{pre}.attention.v_proj.weight"]).view(b, s, kv, hd)
        q, k = rope(q, THETA), rope(k, THETA)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        k = k.repeat_interleave(h // kv, dim=1)
        v = v.repeat_interleave(h // kv, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(b, s, h * hd)
        x = x + F.linear(o, p[f"{pre}.attention.o_proj.weight"])
        m = rmsnorm(x, p[f"{pre}.mlp_norm.weight"])
        if c["experts"]:
            e, kk = c["experts"], c["top_k"]
            flat = m.reshape(-1, d)
            logits = F.linear(flat, p[f"{pre}.mlp.router.gate.weight"])
            probs = torch.softmax(logits.float(), dim=-1)
            topv, topi = torch.topk(probs, kk, dim=-1)
            weights = topv / topv.sum(-1, keepdim=True)
            counts = torch.zeros(e).index_add_(0, topi.reshape(-1),
                                               torch.ones(topi.numel()))
            frac = (counts / topi.numel()).detach()
            aux_total = aux_total + e * (frac * probs.mean(0)).sum()
            out = torch.zeros_like(flat)
            for j in range(e):
                hit = topi == j  # [T, k]
                tok = hit.any(-1)
                if not tok.any():
                    continue
                w = (weights * hit).sum(-1)[tok]
                y = swiglu(flat[tok], p[f"{pre}.mlp.experts.{j}.gate_proj.weight"],
                           p[f"{pre}.mlp.experts.{j}.up_proj.weight"],
                           p[f"{pre}.mlp.experts.{j}.down_proj.weight"])
                out = out.index_add(0, tok.nonzero().squeeze(-1), w[:, None] * y)
            x = x + out.view(b, s, d)
        else:
            x = x + swiglu(m, p[f"{pre}.mlp.gate_proj.weight"],
                           p[f"{pre}.mlp.up_proj.weight"],
                           p[f"{pre}.mlp.down_proj.weight"])
    x = rmsnorm(x, p["norm.weight"])
    logits = F.linear(x, p["output_head.proj.weight"])
    loss = F.cross_entropy(logits.view(-1, c["vocab"]).float(), labels.view(-1),
                           ignore_index=-100)
    if c["experts"]:
        loss = loss + AUX * aux_total
    return loss


def lr_factor(step):
    if WARMUP > 0 and step < WARMUP:
        return step / WARMUP
    total = MAX_STEPS - WARMUP
    prog = min(1.0, (step - WARMUP) / total)
    return MIN_LR + 0.5 * (1 - MIN_LR) * (1 + math.cos(math.pi * prog))


def job_toml(c):
    lines = ["# Golden-test job: written by tools/golden/make_golden.py.",
             "# world size: 1", "", "[model]",
             f"dim = {c['dim']}", f"n_layers = {c['n_layers']}",
             f"n_heads = {c['n_heads']}", f"n_kv_heads = {c['n_kv_heads']}",
             f"vocab_size = {c['vocab']}", f"ffn_hidden_dim = {c['ffn']}",
             f"max_seq_len = {c['seq']}",
             f"rope_theta = {THETA}", f"init_std = {INIT_STD}"]
    if c["experts"]:
        lines += [f"num_experts = {c['experts']}", f"moe_top_k = {c['top_k']}",
                  "moe_frequency = 1", f"moe_aux_loss_weight = {AUX}"]
    lines += ["", "[train]", f"batch_size = {c['batch']}", f"seq_len = {c['seq']}",
              f"max_steps = {MAX_STEPS}", "grad_accum_steps = 1",
              f"grad_clip_norm = {CLIP}", 'mixed_precision = "fp32"',
              "compile_model = false", "", "[optimizer]",
              f'name = "{c.get("opt", "adamw")}"', f"lr = {LR}",
              f"weight_decay = {WD}",
              f"betas = [{c.get('betas', BETAS)[0]}, {c.get('betas', BETAS)[1]}]",
              f"eps = {EPS}", "", "[scheduler]", 'name = "cosine"',
              f"warmup_steps = {WARMUP}", f"min_lr_ratio = {MIN_LR}", ""]
    return "\n".join(lines)


class Lion:
    """Lion as reference §4.3 states it (PyTorch has no built-in Lion):
    u = sign(b1*m + (1-b1)*g); p = p*(1-lr*wd) - lr*u; m = b2*m + (1-b2)*g."""

    def __init__(self, groups, lr, betas):
        self.groups, self.lr, self.betas = groups, lr, betas
        self.m = {id(p): torch.zeros_like(p) for g in groups for p in g["params"]}
        self.param_groups = [{"lr": lr, "initial_lr": lr} for _ in groups]

    @torch.no_grad()
    def step(self):
        b1, b2 = self.betas
        for group, pg in zip(self.groups, self.param_groups):
            lr, wd = pg["lr"], group["weight_decay"]
            for p in group["params"]:
                m = self.m[id(p)]
                u = torch.sign(b1 * m + (1 - b1) * p.grad)
                p.mul_(1 - lr * wd).add_(u, alpha=-lr)
                m.mul_(b2).add_(p.grad, alpha=1 - b2)

    def zero_grad(self):
        for g in self.groups:
            for p in g["params"]:
                p.grad = None


def main(out_dir):
    torch.manual_seed(0)
    for name, c in CASES.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        gen = torch.Generator().manual_seed(1234)
        params = make_params(c, gen)
        tokens = torch.randint(0, c["vocab"], (c["batch"], c["seq"]), generator=gen)
        labels = torch.randint(0, c["vocab"], (c["batch"], c["seq"]), generator=gen)
        labels[0, :3] = -100  # some ignored positions
        with open(os.path.join(d, "job.toml"), "w") as f:
            f.write(job_toml(c))
        save_file({k: v.contiguous() for k, v in params.items()},
                  os.path.join(d, "init.safetensors"))
        save_file({"tokens": tokens, "labels": labels},
                  os.path.join(d, "batch.safetensors"))
        p = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
        decay = [t for k, t in p.items() if t.ndim >= 2 and "bias" not in k]
        other = [t for k, t in p.items() if not (t.ndim >= 2 and "bias" not in k)]
        groups = [{"params": decay, "weight_decay": WD},
                  {"params": other, "weight_decay": 0.0}]
        if c.get("opt") == "lion":
            opt = Lion(groups, LR, c["betas"])
            factor = [lr_factor(0)]
            for pg in opt.param_groups:
                pg["lr"] = LR * factor[0]

            class Sched:  # LambdaLR's semantics: lr = base * f(completed steps)
                steps = 0

                def step(self):
                    Sched.steps += 1
                    for pg in opt.param_groups:
                        pg["lr"] = LR * lr_factor(Sched.steps)

            sched = Sched()
        else:
            opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS,
                                    foreach=False)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        for step in (1, 2, 3):
            opt.zero_grad()
            loss = forward(c, p, tokens, labels)
            loss.backward()
            out = {"loss": loss.detach().reshape(())}
            for k, t in p.items():
                out["grad." + k] = t.grad.detach().clone()
            norm = torch.nn.utils.clip_grad_norm_(list(p.values()), CLIP)
            out["grad_norm"] = norm.detach().reshape(())
            opt.step()
            sched.step()
            for k, t in p.items():
                out["param." + k] = t.detach().clone()
            save_file(out, os.path.join(d, f"step{step}.safetensors"))
        print(f"{name}: loss {out['loss'].item():.6f} after 3 steps -> {d}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/golden")

#!/usr/bin/env python3
"""Writes the golden fixtures of test/golden with PyTorch.

An independent, plain PyTorch implementation of KempnerForge's model and
training step (reference §2, §3.10, §4.1-4.4): RMSNorm in f32, rotate-half
RoPE, causal SDPA with GQA by repeat_interleave, SwiGLU, softmax top-k MoE
with the load-balancing loss, cross-entropy with ignore index -100,
clip_grad_norm_, torch.optim.AdamW with KempnerForge's decay groups and a
LambdaLR warmup + cosine schedule; Lion, Muon and schedule-free AdamW (no
PyTorch built-ins) are plain PyTorch written from reference §4.3, under
other warmup schedules. For each case it writes, next to the job file forge
compiles:

  init.safetensors   the initial parameters (KempnerForge FQNs)
  batch.safetensors  tokens and labels (I64 [batch, seq])
  step1.safetensors, step2.safetensors, step3.safetensors
                     loss, grad.<fqn> (before clipping), grad_norm, the
                     update's lr, and param.<fqn> after it (the first
                     update has lr 0 under warmup; the third step's
                     gradients are taken at updated parameters)
  logits.safetensors the batch's tokens and the logits at the initial
                     parameters (forge-run --dump-logits)

Run it with PyTorch installed (pip install torch); CI never needs PyTorch:
the fixtures are committed.

    python3 tools/golden/make_golden.py test/golden
    python3 tools/golden/make_golden.py --logits-only test/golden
                     (only adds logits.safetensors to the fixtures there)
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

CASES = {
    "dense": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=128,
                  ffn=96, seq=16, batch=2, experts=0, top_k=2),
    "moe": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=128,
                ffn=96, seq=16, batch=2, experts=4, top_k=2),
    "lion": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=128,
                 ffn=96, seq=16, batch=2, experts=0, top_k=2, opt="lion",
                 betas=(0.9, 0.99)),
    # Muon: the 512 x 32 embedding and head (aspect 16) and the norms fall
    # back to AdamW at muon_adam_lr; attention (aspect 1-2) and the 320 x 32
    # MLP matrices (aspect 10, the eligibility bound; m > n for gate/up) get
    # Newton-Schulz. Linear warmup over 2 steps, so the updates use lr
    # factors 0, 0.5, 1.
    "muon": dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab=512,
                 ffn=320, seq=16, batch=2, experts=0, top_k=2, opt="muon",
                 lr=0.02, muon_momentum=0.95, muon_ns_steps=5,
                 muon_adam_lr=3e-3,
                 sched=dict(name="linear", warmup=2, min_lr=0.1)),
    # Schedule-free AdamW with its own warmup (3 steps) under a scheduler
    # warmup (1 step): the updates use lr factors 0, 1, 0.9 times 1/3, 2/3,
    # 1; the first has lr 0 (weight_sum stays 0).
    "schedule_free": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                          vocab=128, ffn=96, seq=16, batch=2, experts=0,
                          top_k=2, opt="schedule_free_adamw", lr=3e-3,
                          betas=(0.9, 0.999), sf_warmup=3,
                          sched=dict(name="linear", warmup=1, min_lr=0.1)),
}
LR, WD, BETAS, EPS, CLIP = 1e-3, 0.1, (0.9, 0.95), 1e-8, 1.0
WARMUP, MAX_STEPS, MIN_LR, THETA, INIT_STD, AUX = 1, 10, 0.1, 10000.0, 0.02, 0.01
NS_COEFFS = (3.4445, -4.7750, 2.0315)


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


def forward(c, p, tokens, labels, want_logits=False):
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
    if want_logits:
        return logits
    loss = F.cross_entropy(logits.view(-1, c["vocab"]).float(), labels.view(-1),
                           ignore_index=-100)
    if c["experts"]:
        loss = loss + AUX * aux_total
    return loss


def sched_of(c):
    return c.get("sched", dict(name="cosine", warmup=WARMUP, min_lr=MIN_LR))


def lr_factor(step, sched=None):
    """Cosine or linear decay to min_lr after linear warmup (§4.4)."""
    sched = sched or sched_of({})
    warmup, min_lr = sched["warmup"], sched["min_lr"]
    if warmup > 0 and step < warmup:
        return step / warmup
    total = MAX_STEPS - warmup
    prog = min(1.0, (step - warmup) / total)
    if sched["name"] == "linear":
        return 1 - (1 - min_lr) * prog
    return min_lr + 0.5 * (1 - min_lr) * (1 + math.cos(math.pi * prog))


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
              f'name = "{c.get("opt", "adamw")}"', f"lr = {c.get('lr', LR)}",
              f"weight_decay = {WD}",
              f"betas = [{c.get('betas', BETAS)[0]}, {c.get('betas', BETAS)[1]}]",
              f"eps = {EPS}"]
    for key in ("muon_momentum", "muon_ns_steps", "muon_adam_lr"):
        if key in c:
            lines.append(f"{key} = {c[key]}")
    if "sf_warmup" in c:
        lines.append(f"schedule_free_warmup_steps = {c['sf_warmup']}")
    sched = sched_of(c)
    lines += ["", "[scheduler]", f'name = "{sched["name"]}"',
              f"warmup_steps = {sched['warmup']}",
              f"min_lr_ratio = {sched['min_lr']}", ""]
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


def muon_eligible(p):
    """>= 2-D with max(m, n) / min(m, n) <= 10, m = dim 0, n = the rest."""
    if p.ndim < 2:
        return False
    m, n = p.shape[0], p.numel() // p.shape[0]
    return max(m, n) / max(min(m, n), 1) <= 10


def newton_schulz(g, steps):
    """Reference §4.3, fp32, never transposed: X = G / (||G||_F + 1e-7),
    then A = X X^T, B = b A + c A^2, X = a X + B X."""
    a, b, c = NS_COEFFS
    x = g.float() / (g.float().norm() + 1e-7)
    for _ in range(steps):
        A = x @ x.T
        B = b * A + c * (A @ A)
        x = a * x + B @ x
    return x


class Muon:
    """Muon as reference §4.3 states it (PyTorch has no built-in Muon).

    Eligible parameters: buf = mu*buf + g (no Nesterov); the update is
    newton_schulz(buf flattened to dim 0 x rest) * sqrt(max(1, m/n));
    p = p*(1 - lr*wd) - lr*update. The others: torch.optim.AdamW with the
    same betas and eps at muon_adam_lr times the schedule's current/initial
    lr, in the same decay groups."""

    def __init__(self, groups, lr, momentum, ns_steps, betas, eps, adam_lr):
        self.lr, self.momentum, self.ns_steps = lr, momentum, ns_steps
        self.adam_lr = adam_lr
        self.muon_groups, adam_groups = [], []
        for g in groups:
            mu = [p for p in g["params"] if muon_eligible(p)]
            ad = [p for p in g["params"] if not muon_eligible(p)]
            self.muon_groups.append({"params": mu,
                                     "weight_decay": g["weight_decay"]})
            adam_groups.append({"params": ad,
                                "weight_decay": g["weight_decay"]})
        self.adam = torch.optim.AdamW(adam_groups, lr=adam_lr, betas=betas,
                                      eps=eps, foreach=False)
        self.buf = {id(p): torch.zeros_like(p)
                    for g in self.muon_groups for p in g["params"]}
        self.param_groups = [{"lr": lr}]

    @torch.no_grad()
    def step(self):
        lr = self.param_groups[0]["lr"]
        for group in self.muon_groups:
            wd = group["weight_decay"]
            for p in group["params"]:
                buf = self.buf[id(p)]
                buf.mul_(self.momentum).add_(p.grad)
                g2 = buf.reshape(buf.shape[0], -1)
                m, n = g2.shape
                update = newton_schulz(g2, self.ns_steps).reshape(p.shape)
                update = update * max(1.0, m / n) ** 0.5
                p.mul_(1 - lr * wd).add_(update, alpha=-lr)
        for pg in self.adam.param_groups:  # the schedule drives both
            pg["lr"] = self.adam_lr * lr / self.lr
        self.adam.step()

    def zero_grad(self):
        for g in self.muon_groups:
            for p in g["params"]:
                p.grad = None
        self.adam.zero_grad()


class ScheduleFreeAdamW:
    """Schedule-free AdamW as reference §4.3 states it (PyTorch has no
    built-in): k += 1; eta = lr * min(1, k/warmup); v = b2 v + (1-b2) g^2;
    z -= eta g / (sqrt(v / (1-b2^k)) + eps); z *= 1 - eta wd;
    weight_sum += eta (1-b1); c = eta (1-b1) / weight_sum; x = z on the
    first step, else lerp(x, z, c); p = (1-b1) z + b1 x. z starts from the
    parameter. With a zero lr on the first step (a scheduler warmup)
    weight_sum is 0: c is then 0 (unused, x = z), where KempnerForge would
    divide by zero."""

    def __init__(self, groups, lr, betas, eps, warmup):
        self.groups, self.betas, self.eps, self.warmup = groups, betas, eps, warmup
        self.param_groups = [{"lr": lr}]
        self.k, self.weight_sum = 0, 0.0
        self.z, self.v, self.x = {}, {}, {}

    @torch.no_grad()
    def step(self):
        b1, b2 = self.betas
        self.k += 1
        k = self.k
        warm = min(1.0, k / self.warmup) if self.warmup > 0 else 1.0
        eta = self.param_groups[0]["lr"] * warm
        self.weight_sum += eta * (1 - b1)
        c = eta * (1 - b1) / self.weight_sum if self.weight_sum > 0 else 0.0
        for group in self.groups:
            wd = group["weight_decay"]
            for p in group["params"]:
                if id(p) not in self.z:
                    self.z[id(p)] = p.detach().clone()
                    self.v[id(p)] = torch.zeros_like(p)
                z, v, g = self.z[id(p)], self.v[id(p)], p.grad
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v / (1 - b2 ** k)).sqrt().add_(self.eps)
                z.addcdiv_(g, denom, value=-eta)
                z.mul_(1 - eta * wd)
                if id(p) not in self.x:
                    self.x[id(p)] = z.clone()
                else:
                    self.x[id(p)].lerp_(z, c)
                p.copy_((1 - b1) * z + b1 * self.x[id(p)])

    def zero_grad(self):
        for g in self.groups:
            for p in g["params"]:
                p.grad = None


# The optimizer cases share the dense model: its logits are checked once.
LOGITS_CASES = ("dense", "moe")


def write_logits(c, d, params, tokens):
    """logits.safetensors: the model's logits for the batch's tokens at the
    initial weights (forge-run --dump-logits)."""
    with torch.no_grad():
        logits = forward(c, params, tokens, None, want_logits=True)
    save_file({"tokens": tokens, "logits": logits.contiguous()},
              os.path.join(d, "logits.safetensors"))


def logits_only(out_dir):
    """Adds logits.safetensors to existing fixtures, from their own
    init.safetensors and batch.safetensors (the rest stays as it is)."""
    for name, c in CASES.items():
        if name not in LOGITS_CASES:
            continue
        d = os.path.join(out_dir, name)
        params = load_file(os.path.join(d, "init.safetensors"))
        tokens = load_file(os.path.join(d, "batch.safetensors"))["tokens"]
        if name in LOGITS_CASES:
            write_logits(c, d, params, tokens)
        print(f"{name}: logits -> {d}/logits.safetensors")


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
        write_logits(c, d, params, tokens)
        p = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
        decay = [t for k, t in p.items() if t.ndim >= 2 and "bias" not in k]
        other = [t for k, t in p.items() if not (t.ndim >= 2 and "bias" not in k)]
        groups = [{"params": decay, "weight_decay": WD},
                  {"params": other, "weight_decay": 0.0}]
        lr, sched_cfg = c.get("lr", LR), sched_of(c)
        if c.get("opt") in ("lion", "muon", "schedule_free_adamw"):
            if c["opt"] == "lion":
                opt = Lion(groups, lr, c["betas"])
            elif c["opt"] == "muon":
                opt = Muon(groups, lr, c["muon_momentum"], c["muon_ns_steps"],
                           BETAS, EPS, c["muon_adam_lr"])
            else:
                opt = ScheduleFreeAdamW(groups, lr, c["betas"], EPS,
                                        c["sf_warmup"])
            for pg in opt.param_groups:
                pg["lr"] = lr * lr_factor(0, sched_cfg)

            class Sched:  # LambdaLR's semantics: lr = base * f(completed steps)
                steps = 0

                def step(self):
                    Sched.steps += 1
                    for pg in opt.param_groups:
                        pg["lr"] = lr * lr_factor(Sched.steps, sched_cfg)

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
            # The scheduled lr this update uses (the logged one: Muon's
            # matrix lr; schedule-free before its own warmup).
            out["lr"] = torch.tensor(opt.param_groups[0]["lr"],
                                     dtype=torch.float32)
            opt.step()
            sched.step()
            for k, t in p.items():
                out["param." + k] = t.detach().clone()
            save_file(out, os.path.join(d, f"step{step}.safetensors"))
        print(f"{name}: loss {out['loss'].item():.6f} after 3 steps -> {d}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--logits-only"]
    out = args[0] if args else "test/golden"
    logits_only(out) if "--logits-only" in sys.argv else main(out)

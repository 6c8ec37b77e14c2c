"""Checks a forge-run --export-hf directory against the forge weights it
came from, with its own copy of the key mapping (reference §6; Mixtral's
names for MoE): every forge tensor appears under its Hugging Face name with
the same shape and the same values (rounded to bf16 when the export is
bf16), and nothing else does. Prints one line per check.
check_hf.py <export dir> <forge .safetensors> <llama|mixtral>"""
import json
import re
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
        b, e = t["data_offsets"]
        raw = data[8 + n + b:8 + n + e]
        if t["dtype"] == "F32":
            vals = struct.unpack(f"<{len(raw) // 4}f", raw)
        elif t["dtype"] == "BF16":
            vals = [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0]
                    for i in range(0, len(raw), 2)]
        else:
            sys.exit(f"{path}: {name} is {t['dtype']}")
        out[name] = (t["dtype"], t["shape"], vals)
    return out


def bf16(x):
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", u))[0]


def hf_name(fqn, moe):
    fixed = {"token_embedding.embedding.weight": "model.embed_tokens.weight",
             "output_head.proj.weight": "lm_head.weight",
             "norm.weight": "model.norm.weight"}
    if fqn in fixed:
        return fixed[fqn]
    m = re.fullmatch(r"layers\.(\d+)\.(.*)", fqn)
    i, rest = m.group(1), m.group(2)
    rest = rest.replace("attention_norm", "input_layernorm")
    rest = rest.replace("mlp_norm", "post_attention_layernorm")
    rest = rest.replace("attention.", "self_attn.")
    if moe:
        rest = rest.replace("mlp.router.gate", "block_sparse_moe.gate")
        e = re.fullmatch(r"mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight", rest)
        if e:
            w = {"gate": "w1", "down": "w2", "up": "w3"}[e.group(2)]
            rest = f"block_sparse_moe.experts.{e.group(1)}.{w}.weight"
    return f"model.layers.{i}.{rest}"


export, source, family = sys.argv[1], sys.argv[2], sys.argv[3]
moe = family == "mixtral"
got = read(f"{export}/model.safetensors")
want = read(source)
config = json.load(open(f"{export}/config.json"))
dtype = "BF16" if config["torch_dtype"] == "bfloat16" else "F32"
names = {hf_name(k, moe): k for k in want}
if set(names) != set(got):
    sys.exit(f"keys differ: only export {sorted(set(got) - set(names))[:4]}, "
             f"only forge {sorted(set(names) - set(got))[:4]}")
for key, fqn in sorted(names.items()):
    d, shape, vals = got[key]
    _, wshape, wvals = want[fqn]
    if d != dtype or shape != wshape:
        sys.exit(f"{key}: {d} {shape}, expected {dtype} {wshape}")
    ref = [bf16(v) for v in wvals] if dtype == "BF16" else list(wvals)
    if list(vals) != ref:
        sys.exit(f"{key}: values differ from {fqn}")
print(f"{len(got)} tensors match ({dtype}, {config['model_type']})")

"""Loads a forge-run --export-hf checkpoint with Hugging Face transformers
and checks that it computes the logits forge computed for the same tokens
(run by hand; CI has no torch):

  forgec job.toml --logits-program --checkpoint.export_dtype=float32 -o p.bin
  forge-run p.bin --export-hf E --dump-logits L.safetensors
  python tools/hf/check_transformers.py E L.safetensors [--tolerance T]

forge-run writes the export and the logits from the same final weights; L
holds the batch's tokens (I64 [batch, seq]) and forge's logits (F32 [batch,
seq, vocab]). The script runs transformers' LlamaForCausalLM (or
MixtralForCausalLM) on those tokens in float32 and prints the largest
absolute difference of the logits, relative to their largest magnitude, and
how often the two agree on the most likely next token. With an fp32 job
(train.mixed_precision = "fp32") and a float32 export the two agree to
float32 rounding; a bf16 job stores bf16 activations and differs by bf16
rounding (pass a larger --tolerance).

Needs: pip install torch transformers safetensors."""
import argparse
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("export", help="the --export-hf directory")
parser.add_argument("logits", help="the --dump-logits file")
parser.add_argument("--tolerance", type=float, default=1e-4,
                    help="largest allowed |difference| / max |logit| "
                         "(default 1e-4)")
args = parser.parse_args()

model = AutoModelForCausalLM.from_pretrained(args.export, dtype=torch.float32)
model.eval()
dump = load_file(args.logits)
tokens, forge = dump["tokens"], dump["logits"].float()
with torch.no_grad():
    # KempnerForge's attention is causal over the whole window and the
    # positions start at 0 per row: transformers' defaults without a mask.
    hf = model(input_ids=tokens).logits.float()
if hf.shape != forge.shape:
    sys.exit(f"shape: transformers {tuple(hf.shape)}, forge "
             f"{tuple(forge.shape)}")
diff = (hf - forge).abs()
scale = forge.abs().max().item()
rel = diff.max().item() / scale
agree = (hf.argmax(-1) == forge.argmax(-1)).float().mean().item()
print(f"{model.config.architectures[0]}: logits {tuple(forge.shape)}, "
      f"max |logit| {scale:.4f}")
print(f"max |transformers - forge| {diff.max().item():.3e} "
      f"(relative {rel:.3e}), mean {diff.mean().item():.3e}")
print(f"next-token argmax agrees at {100 * agree:.2f}% of positions")
ok = rel <= args.tolerance
print("match" if ok else f"MISMATCH (tolerance {args.tolerance:g})")
sys.exit(0 if ok else 1)

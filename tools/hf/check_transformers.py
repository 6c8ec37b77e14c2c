"""Loads a forge-run --export-hf checkpoint with Hugging Face transformers
and checks that it computes what forge computed (run by hand; CI has no
torch): the cross-entropy of the batch in --batch-from, next to the loss of
forge-run's first step on the same weights and batch.

  forge-run plan.bin --steps 1 --init-from W --batch-from B --dump-state D \
      --export-hf E      (E holds the weights before the step's update:
                          use --steps 0 --init-from W --export-hf E for them)
  python tools/hf/check_transformers.py E B D/step1.safetensors

Needs: pip install torch transformers safetensors. With a float32 export
(checkpoint.export_dtype = "float32") the two agree to float32 rounding."""
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

export, batch_path, dump = sys.argv[1], sys.argv[2], sys.argv[3]
model = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
model.eval()
batch = load_file(batch_path)
tokens, labels = batch["tokens"], batch["labels"]
with torch.no_grad():
    logits = model(input_ids=tokens).logits
# forge's labels are already the next tokens (no shift), ignore index -100.
loss = torch.nn.functional.cross_entropy(
    logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
    ignore_index=-100)
forge_loss = load_file(dump)["loss"].item()
rel = abs(loss.item() - forge_loss) / abs(forge_loss)
print(f"transformers loss {loss.item():.7f}, forge loss {forge_loss:.7f}, "
      f"relative difference {rel:.2e}")
print(f"logits {tuple(logits.shape)}, finite: {bool(torch.isfinite(logits).all())}")
sys.exit(0 if rel < 1e-4 else 1)

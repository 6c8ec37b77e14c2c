#!/usr/bin/env python3
"""Compares `forge-data encode` with the Hugging Face `tokenizers` library on
random tricky strings (and, optionally, the lines of text files), for any
tokenizer.json. Use it to check a real tokenizer (a Llama-3 or Qwen
tokenizer.json) before tokenizing a corpus with it; CI does not run it.

    /tmp/tokvenv/bin/python tools/golden/compare_tokenizer.py \\
        build/bin/forge-data path/to/tokenizer.json [--cases 500] [files...]

Special tokens are compared as text (forge never produces them from text),
so the reference encodes with encode_special_tokens = True and without
special tokens around the text. Exits 1 on the first few mismatches.
"""
import argparse
import random
import subprocess
import sys

from tokenizers import Tokenizer

POOLS = [
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    list("0123456789"),
    [" ", " ", "  ", "\t", "\n", "\r\n", "\n\n", " \n", "\r"],
    list(".,;:!?-_()[]{}<>\"'`~@#$%^&*/\\|+="),
    ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "'\u017f",
     "n't", "'x"],
    list("éèêëàâäôöûüçñßøåæœÉÀÖÜ"),
    list("東京日本語中文한국어テキストのアイ"),
    list("привет мир ΓειάσουκόσμεαβγδΩ"),
    ["\u0301", "\u0327", "\u0323", "\u0308", "\u093f", "\u094d", "\u0915",
     "\u0928", "\u0938", "\u0924", "\u05b8", "\u0651", "\u0300\u0316"],
    ["\u1100", "\u1161", "\u11a8", "\uac00", "\ud55c", "\u1112\u1161\u11ab"],
    list("٣٤٥Ⅻ½¾²³₄"),
    ["\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\u200b", "\ufeff",
     "\u1680", "\u202f", "\u205f", "\u180e", "\x0b", "\x0c", "\x1c"],
    ["🙂", "🚀", "👨\u200d👩\u200d👧", "👍🏽", "🇫🇷", "\U0001d400", "\U00010400"],
    ["<|endoftext|>", "<|end_of_text|>", "<|im_end|>", "<tool>", "[R]", "</s>",
     "<unk>"],
    ["\u212b", "\u2126", "\u1e0b\u0323", "e\u0301\u0327", "A\u030a",
     "\u0041\u0300\u0301", "\u0f73", "\u0344"],
]


def random_text(rng):
    n = rng.randint(1, 40)
    parts = []
    for _ in range(n):
        pool = rng.choice(POOLS)
        parts.append(rng.choice(pool) * (rng.randint(1, 4)
                                         if rng.random() < 0.15 else 1))
    return "".join(parts)


def forge_encode(forge_data, tokenizer, text):
    out = subprocess.run([forge_data, "encode", "--tokenizer", tokenizer],
                         input=text.encode("utf-8"), capture_output=True,
                         check=True)
    return [int(t) for t in out.stdout.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("forge_data")
    ap.add_argument("tokenizer")
    ap.add_argument("files", nargs="*")
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = args.tokenizer
    if not path.endswith(".json"):
        path = path.rstrip("/") + "/tokenizer.json"
    ref = Tokenizer.from_file(path)
    ref.encode_special_tokens = True
    rng = random.Random(args.seed)
    texts = [random_text(rng) for _ in range(args.cases)]
    for f in args.files:
        with open(f, encoding="utf-8") as fh:
            texts.extend(line for line in fh.read().split("\n\n") if line)
    bad = 0
    for text in texts:
        want = ref.encode(text, add_special_tokens=False).ids
        got = forge_encode(args.forge_data, args.tokenizer, text)
        if got != want:
            bad += 1
            print(f"MISMATCH {text!r}\n  forge: {got}\n  hf:    {want}")
            if bad >= 5:
                break
    print(f"{len(texts)} texts, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

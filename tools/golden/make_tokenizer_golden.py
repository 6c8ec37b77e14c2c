#!/usr/bin/env python3
"""Regenerates test/golden/tokenizer/: tiny byte-level BPE tokenizers trained
with the Hugging Face `tokenizers` library, and the ids that library gives
for tricky strings. runtime/data/Tokenizer_test.cpp checks that forge's
tokenizer produces exactly these ids; CI never runs this script.

    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers
    /tmp/tokvenv/bin/python tools/golden/make_tokenizer_golden.py test/golden/tokenizer

Fixtures (each tokenizer.json is written compactly to keep them small):

  gpt2/        GPT-2 / RoBERTa style: ByteLevel pre-tokenizer (its own regex),
               merges as [a, b] pairs; tokenizer_config.json names the EOS
               ({"content": "<|eot|>"}, not the first candidate).
  prefix/      the gpt2 model behind Sequence[Digits(individual),
               ByteLevel(add_prefix_space=True)].
  llama3/      Llama-3 style: Split(Llama-3 regex) + ByteLevel(use_regex=False),
               ignore_merges, non-special added tokens (one with lstrip/rstrip
               and normalized); no tokenizer_config.json, so EOS falls back
               to the special token <|end_of_text|>.
  qwen2/       Qwen2 style: NFC normalizer, Split(Qwen2 regex), merges as
               legacy "a b" strings; tokenizer_config.json with a plain
               string eos_token.
  tiny_ignore/ a hand-made vocabulary where ignore_merges changes the result,
               with an unk_token standing for bytes without a symbol.
  tiny_fuse/   the same with fuse_unk and without ignore_merges.
  expected.json  {"cases": [{"tokenizer", "text", "ids"}], "eos": {name: id},
                  "vocab_size": {name: n}}
"""
import glob
import json
import os
import sys

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,
                        normalizers, pre_tokenizers, trainers)

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Text with multi-byte characters, so that some merges join UTF-8 bytes.
MULTILINGUAL = """naïve café résumé déjà vu, Ünïcödé — “quotes” ‘single’ …
東京 京都 日本語のテキスト。中文文本。한국어 텍스트. Привет, мир! Γειά σου κόσμε.
नमस्ते दुनिया. مرحبا بالعالم. 🙂🙂 🚀 ½ ¾ Ⅻ ٣٤٥ 1,000,000 3.14159
"""

CASES = [
    "",
    " ",
    "\n",
    "Hello world",
    "Hello, World! HELLO world.",
    "I'm can't we've they'll she'd you're it's",
    "I'M DON'T WE'VE THEY'LL x'ſx 'tis rock'n'roll",
    "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 2024-01-31 0x1F",
    "٣٤٥ Ⅻ ½ ²³ 10½",
    "Punctuation!!! ??? ... --- (a) [b] {c} ;;; ''' \"\"\" ``` @#$%^&*",
    "  leading spaces and   multiple   spaces",
    "line1\nline2\n\nline3\r\n\r\n  indented\n\t\ttabs\n",
    "trailing whitespace   ",
    "trailing newlines\n\n\n",
    "  \n  \n",
    "naïve café 東京 🙂",
    "Ünïcödé — “quotes” ‘single’ … déjà vu",
    "cafe\u0301 n\u0303o A\u030a \u1100\u1161\u11a8 e\u0301\u0327 \u212b \u1e0b\u0323",
    "नमस्ते दुनिया, 한국어 텍스트, Привет мир",
    "a\u00a0b\u3000c\u2028d\u0085e\u200bf\ufeffg",
    "supercalifragilisticexpialidocious aaaaaaaaaaaaaaaaaaaaa",
    "def f(x):\n    return x**2  # comment\n",
    "Mr.Smith's 2nd-place, 100%!",
    "special <|endoftext|> and <|end_of_text|> and <|im_end|> stay text",
    "tool<tool>call <tool> [R]  spaced  [R] x[R]y",
    "GNU General Public License, version 3 or (at your option) any later version.",
]


def training_text():
    text = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                text.append(f.read())
    text.extend([MULTILINGUAL] * 20)
    return text


def train(pre_tokenizer, specials, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    return tok


def byte_symbols():
    # GPT-2's bytes_to_unicode, to hand-make vocabularies.
    bs = (list(range(33, 127)) + list(range(161, 173)) +
          list(range(174, 256)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def hand_made(ignore_merges, fuse_unk):
    sym = byte_symbols()
    vocab = {"<unk>": 0, "</s>": 1}
    # Only the printable ASCII bytes and the space get symbols: other bytes
    # (newlines, UTF-8) are unknown.
    for b in list(range(32, 127)):
        vocab[sym[b]] = len(vocab)
    merges = [("a", "b"), ("a", "bc"), ("b", "c"), ("Ġ", "a"), ("Ġa", "b"),
              ("x", "x"), ("xx", "x")]
    for a, b in merges:
        for t in (a, b, a + b):
            if t not in vocab:
                vocab[t] = len(vocab)
    spec = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": False,
             "lstrip": False, "rstrip": False, "normalized": False,
             "special": True},
            {"id": 1, "content": "</s>", "single_word": False,
             "lstrip": False, "rstrip": False, "normalized": False,
             "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                    "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": fuse_unk,
                  "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": vocab, "merges": [list(m) for m in merges]},
    }
    return Tokenizer.from_str(json.dumps(spec))


def save(tok, out, name, config=None, legacy_merges=False):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    spec = json.loads(tok.to_str())
    if legacy_merges:
        spec["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                                   for m in spec["model"]["merges"]]
    text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
    # Reload what is written, so the ids come from the file itself.
    tok = Tokenizer.from_str(text)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w",
                  encoding="utf-8") as f:
            json.dump(config, f, indent=1)
    return tok


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "test/golden/tokenizer"
    os.makedirs(out, exist_ok=True)
    toks, eos = {}, {}

    gpt2 = train(pre_tokenizers.ByteLevel(add_prefix_space=False),
                 ["<|endoftext|>", "<|eot|>"], 480)
    toks["gpt2"] = save(gpt2, out, "gpt2", config={
        "eos_token": {"content": "<|eot|>", "lstrip": False,
                      "normalized": False, "rstrip": False,
                      "single_word": False},
        "model_max_length": 1024})
    eos["gpt2"] = toks["gpt2"].token_to_id("<|eot|>")

    prefix = Tokenizer.from_str(gpt2.to_str())
    prefix.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    toks["prefix"] = save(prefix, out, "prefix",
                          config={"eos_token": "<|endoftext|>"})
    eos["prefix"] = toks["prefix"].token_to_id("<|endoftext|>")

    llama3 = Tokenizer(models.BPE(ignore_merges=True))
    llama3.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    llama3.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=480, min_frequency=2,
        special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    llama3.train_from_iterator(training_text(), trainer)
    llama3.add_tokens([
        AddedToken("<tool>", special=False, normalized=False),
        AddedToken("[R]", special=False, normalized=True, lstrip=True,
                   rstrip=True)])
    toks["llama3"] = save(llama3, out, "llama3")
    eos["llama3"] = toks["llama3"].token_to_id("<|end_of_text|>")

    qwen2 = Tokenizer(models.BPE())
    qwen2.normalizer = normalizers.NFC()
    qwen2.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    qwen2.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=480, min_frequency=2,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    qwen2.train_from_iterator(training_text(), trainer)
    toks["qwen2"] = save(qwen2, out, "qwen2", legacy_merges=True,
                         config={"eos_token": "<|im_end|>"})
    eos["qwen2"] = toks["qwen2"].token_to_id("<|im_end|>")

    toks["tiny_ignore"] = save(hand_made(True, False), out, "tiny_ignore")
    eos["tiny_ignore"] = 1
    toks["tiny_fuse"] = save(hand_made(False, True), out, "tiny_fuse")
    eos["tiny_fuse"] = 1

    tiny_cases = ["abc", "abcabc ab abc", "xxxxx", "a\u00e9b\u00e9\u00e9c",
                  "caf\u00e9\n\nab", "\u6771\u4eac abc"]
    cases = []
    for name, tok in toks.items():
        # Special tokens are text to forge: match that in the reference.
        tok.encode_special_tokens = True
        texts = tiny_cases if name.startswith("tiny") else CASES
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            cases.append({"tokenizer": name, "text": text, "ids": ids})
    sizes = {name: tok.get_vocab_size(with_added_tokens=True)
             for name, tok in toks.items()}
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": cases, "eos": eos, "vocab_size": sizes}, f,
                  ensure_ascii=False, indent=0)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(dp, fn))
                for dp, _, fns in os.walk(out) for fn in fns)
    print(f"wrote {len(cases)} cases for {len(toks)} tokenizers to {out} "
          f"({total} bytes)")


if __name__ == "__main__":
    main()

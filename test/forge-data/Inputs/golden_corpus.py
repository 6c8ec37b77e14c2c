"""The golden tokenizer cases as a corpus, and the check of its shards.

    golden_corpus.py make EXPECTED.json NAME DIR
        writes the non-empty texts of tokenizer NAME's cases as
        DIR/case_000.txt, ... (one document each, bytes exactly)
    golden_corpus.py check EXPECTED.json NAME SHARD...
        checks the shards hold each case's ids (from the Hugging Face
        tokenizers library) followed by the EOS id, in order
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import npy  # noqa: E402


def cases(expected, name):
    with open(expected, encoding="utf-8") as f:
        d = json.load(f)
    return ([c for c in d["cases"] if c["tokenizer"] == name and c["text"]],
            d["eos"][name])


def main(mode, expected, name, *rest):
    texts, eos = cases(expected, name)
    if mode == "make":
        os.makedirs(rest[0], exist_ok=True)
        for i, c in enumerate(texts):
            with open(os.path.join(rest[0], f"case_{i:03d}.txt"), "wb") as f:
                f.write(c["text"].encode("utf-8"))
        print(f"{len(texts)} documents")
        return
    want = []
    for c in texts:
        want += c["ids"] + [eos]
    got = []
    for shard in rest:
        got += npy.read(shard)[1]
    if got != want:
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                sys.exit(f"token {i}: got {g}, want {w}")
        sys.exit(f"got {len(got)} tokens, want {len(want)}")
    print(f"{len(texts)} documents, {len(got)} tokens match")


if __name__ == "__main__":
    main(*sys.argv[1:])

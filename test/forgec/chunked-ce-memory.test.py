import re
import sys


def peak(path):
    return int(re.search(r"activations at peak\s+(\d+) bytes", open(path).read()).group(1))


plain, chunked = peak(sys.argv[1]), peak(sys.argv[2])
logits = 4 * 512 * 32000 * 2
drop = plain - chunked
assert drop >= logits, f"peak {plain} -> {chunked}: drop {drop} < one logits tensor {logits}"
print(f"activation peak drops by {drop / 2**20:.2f} MiB, at least one full logits tensor ({logits / 2**20:.2f} MiB)")

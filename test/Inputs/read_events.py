"""Prints the scalars of a TensorBoard log directory, read by TensorBoard.

usage: read_events.py DIR

The independent check of forge's event files (runtime/train/Metrics.cpp): the
records are read with TensorBoard's own TFRecord reader, which raises on a bad
length or data CRC, and decoded with TensorBoard's own Event proto; then the
scalars are loaded the way TensorBoard loads them (EventAccumulator). Prints

    files N
    file_version brain.Event:2
    <tag> <step> <value>        (sorted by tag, then in file order)

and exits non-zero on any framing or CRC error, or on bytes left over.
"""

import os
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow


def strict_records(path):
    """Yields every record; a CRC or truncation error propagates (the
    EventAccumulator would stop at it silently, as it waits for writers)."""
    reader = pywrap_tensorflow.PyRecordReader_New(path)
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return
        yield reader.record()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: read_events.py DIR")
    logdir = sys.argv[1]
    files = sorted(f for f in os.listdir(logdir) if "tfevents" in f)
    print(f"files {len(files)}")
    for name in files:
        path = os.path.join(logdir, name)
        size = 0
        for i, record in enumerate(strict_records(path)):
            size += 8 + 4 + len(record) + 4
            event = event_pb2.Event.FromString(record)
            if i == 0:
                print(f"file_version {event.file_version}")
        if size != os.path.getsize(path):
            sys.exit(f"{path}: {os.path.getsize(path) - size} bytes after the last record")

    acc = event_accumulator.EventAccumulator(
        logdir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    for tag in sorted(acc.Tags()["scalars"]):
        for event in acc.Scalars(tag):
            print(f"{tag} {event.step} {event.value:.6g}")


if __name__ == "__main__":
    main()

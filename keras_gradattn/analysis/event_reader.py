"""Reads TensorBoard event files back, with no TensorFlow import.

Both forms of scalar are understood: `simple_value` (TensorBoard's own and
PyTorch's writers, and this package's pure-Python writer) and scalar tensors
with the "scalars" plugin (what `tf.summary.scalar` writes). Histograms are
returned as their bucket tables.
"""

import dataclasses
import os
import struct

import numpy as np

EVENT_FILE_MARKER = "tfevents"


@dataclasses.dataclass
class RunEvents:
    """Everything read from the event files under one directory.

    `scalars[tag]` is a pair of arrays `(steps, values)` sorted by step (a
    step written twice keeps its last value); `histograms[tag]` a list of
    `(step, buckets)` with buckets an array of (left, right, count) rows.
    """

    scalars: dict
    histograms: dict
    event_files: list

    def scalar_tags(self, prefix=""):
        return sorted(tag for tag in self.scalars if tag.startswith(prefix))


def find_event_files(directory):
    found = []
    for root, _, files in os.walk(directory):
        for name in files:
            if EVENT_FILE_MARKER in name and not name.startswith("."):
                found.append(os.path.join(root, name))
    return sorted(found)


def read_events(directory):
    """Reads all event files below `directory` (recursively)."""
    from tensorboard.util import tensor_util

    raw_scalars = {}
    histograms = {}
    event_files = find_event_files(directory)
    for path in event_files:
        for event in _iterate_events(path):
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                plugin = value.metadata.plugin_data.plugin_name
                if kind == "simple_value":
                    raw_scalars.setdefault(value.tag, {})[event.step] = float(value.simple_value)
                elif kind == "tensor" and plugin == "scalars":
                    number = float(tensor_util.make_ndarray(value.tensor))
                    raw_scalars.setdefault(value.tag, {})[event.step] = number
                elif kind == "histo":
                    histograms.setdefault(value.tag, []).append((event.step, _legacy_buckets(value.histo)))
                elif kind == "tensor" and plugin == "histograms":
                    buckets = np.asarray(tensor_util.make_ndarray(value.tensor), dtype="float64")
                    histograms.setdefault(value.tag, []).append((event.step, buckets))
    scalars = {}
    for tag, by_step in raw_scalars.items():
        steps = np.array(sorted(by_step), dtype="int64")
        scalars[tag] = (steps, np.array([by_step[step] for step in steps], dtype="float64"))
    return RunEvents(scalars=scalars, histograms=histograms, event_files=event_files)


def _iterate_events(path):
    from tensorboard.compat.proto import event_pb2

    # TFRecord framing: length (uint64), its CRC (uint32), data, data CRC.
    with open(path, "rb") as file:
        data = file.read()
    position = 0
    while position + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        end = position + 12 + length + 4
        if end > len(data):
            break  # a record still being written
        yield event_pb2.Event.FromString(data[position + 12 : position + 12 + length])
        position = end


def _legacy_buckets(histo):
    limits = list(histo.bucket_limit)
    lefts = [histo.min] + limits[:-1]
    return np.array(
        [[left, right, count] for left, right, count in zip(lefts, limits, histo.bucket)],
        dtype="float64",
    ).reshape(-1, 3)

#!/usr/bin/env python
"""Where a TensorFlow training step spends its time on the CPU, beside plain PyTorch's same model.

Prints, for a model (default ResNet-18; 28x28x1, batch 128, float32, Keras'
default `jit_compile="auto"`, which on a machine without a GPU is
TensorFlow's graph executor with its oneDNN kernels, no XLA):

- the milliseconds per training step (median of timed `fit` calls), and
  plain PyTorch's for the same model (plain_torch/, eager,
  torch.optim.Adam) in the same run;
- TensorFlow's profiler trace of one `fit` epoch, summed per op type: the
  kernel time per step and calls per step of each type and its share of the
  summed kernel time;
- both sides' op time per step in three kinds: convolutions (forward and
  both gradients), matrix products (Linear layers, attention) and
  everything else, beside plain PyTorch's torch.profiler self time (from
  `profile_jax_step.py --worker plain_torch`), and plain PyTorch's
  costliest ops.

With two cores TensorFlow may run two ops at once, so the summed kernel time
can exceed the step's wall time; the shares are of that sum.

    python scripts/profile_tensorflow_step.py > results/benchmarks/tensorflow_profile_cpu.txt
"""

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs from a checkout without installing the package.
sys.path.insert(0, REPOSITORY)

BATCH, INPUT_SHAPE, NUM_CLASSES = 128, (28, 28, 1), 10


# "op_name:OpType", as the executor names each kernel's event; the op name
# is a scope path, the type an identifier (oneDNN's kernels start with "_").
_KERNEL_EVENT = re.compile(r"^[^:\s]+:([A-Z_][A-Za-z0-9_]*)$")
# Ops that run a function body: their events span the kernels inside them.
_CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf", "Case"}


def op_type(event_name):
    """The op type of a TensorFlow profiler event, or None for events that are
    not single op kernels (the profiler's own spans, such as
    "ExecutorState::Process" or "EagerLocalExecute: ...", and function calls,
    whose time is their kernels')."""
    match = _KERNEL_EVENT.match(event_name)
    if match is None or match.group(1) in _CALL_OPS:
        return None
    return match.group(1)


def is_convolution(kind):
    return "Conv2D" in kind


def tensorflow_op_kind(kind):
    """The category of a TensorFlow op type: "convolution", "matrix product" or "other"."""
    if is_convolution(kind):
        return "convolution"
    if "MatMul" in kind:
        return "matrix product"
    return "other"


OP_KINDS = ("convolution", "matrix product", "other")


def kernel_times(space_bytes, steps):
    """`{op type: [ms per step, calls per step]}` from a serialized XSpace (the host plane's op events)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(space_bytes)
    picoseconds = collections.defaultdict(int)
    calls = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            for event in line.events:
                kind = op_type(plane.event_metadata[event.metadata_id].name)
                if kind is not None:
                    picoseconds[kind] += event.duration_ps
                    calls[kind] += 1
    return {kind: [picoseconds[kind] / 1e9 / steps, calls[kind] / steps] for kind in picoseconds}


def tensorflow_worker(model_name, steps, repeats):
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import tensorflow as tf

    import keras_gradattn
    from keras_gradattn.benchmarks import median_call_seconds
    from keras_gradattn.benchmarks import training_function

    rng = np.random.default_rng(0)
    images = rng.random((BATCH, *INPUT_SHAPE), dtype="float32")
    labels = (np.arange(BATCH) % NUM_CLASSES).astype("int32")
    model = keras_gradattn.create_model(model_name, num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)
    model.compile()
    # One `fit` epoch of `steps` batches, timed up to its on_train_end (`call_seconds`).
    train = training_function(model, images, labels, steps)

    step_seconds = median_call_seconds(train, repeats) / steps
    with tempfile.TemporaryDirectory() as logdir:
        with tf.profiler.experimental.Profile(logdir):
            train()
        (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        with open(path, "rb") as file:
            kernels = kernel_times(file.read(), steps)
    return {"step_ms": 1000 * step_seconds, "jit_compile": bool(model.jit_compile), "kernels": kernels}


def main(argv=None):
    from keras_gradattn.cli.arguments import OneLineErrorParser
    from keras_gradattn.cli.arguments import parse_command_line
    from keras_gradattn.cli.arguments import positive_int
    from keras_gradattn.utils.dependencies import with_package_on_path
    from plain_torch.models import MODEL_NAMES

    parser = OneLineErrorParser(prog="profile_tensorflow_step.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18", choices=MODEL_NAMES, metavar="NAME",
                        help=f"a model plain_torch/ has too: {', '.join(MODEL_NAMES)} (default: resnet18)")  # fmt: skip
    parser.add_argument("--steps", type=positive_int, default=5, help="training steps per timed call")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed calls")
    parser.add_argument("--rows", type=positive_int, default=15, help="op types listed")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args, status = parse_command_line(parser, sys.argv[1:] if argv is None else argv)
    if args is None:
        return status
    if args.worker:
        print(json.dumps(tensorflow_worker(args.model, args.steps, args.repeats)))
        return 0

    # One process each: the two runtimes' thread pools would share the cores.
    commands = {
        "plain_torch": [os.path.join(REPOSITORY, "scripts", "profile_jax_step.py"), "--worker", "plain_torch",
                        "--worker-model", args.model],
        "tensorflow": [os.path.abspath(__file__), "--worker", "--model", args.model],
    }
    reports = {}
    for side, command in commands.items():
        print(f"profile_tensorflow_step.py: measuring {side}", file=sys.stderr, flush=True)
        environment = with_package_on_path(
            dict(os.environ, KERAS_BACKEND="torch" if side == "plain_torch" else "tensorflow")
        )
        output = subprocess.run(
            [sys.executable, *command, "--steps", str(args.steps), "--repeats", str(args.repeats)],
            env=environment, stdout=subprocess.PIPE, text=True, check=True,
        ).stdout  # fmt: skip
        reports[side] = json.loads(output.strip().splitlines()[-1])
    tf_report, torch_report = reports["tensorflow"], reports["plain_torch"]
    kernels = tf_report["kernels"]
    total = sum(ms for ms, _ in kernels.values())
    tf_kinds = collections.defaultdict(float)
    for kind, (ms, _) in kernels.items():
        tf_kinds[tensorflow_op_kind(kind)] += ms

    print(f"{args.model}, {'x'.join(map(str, INPUT_SHAPE))}, batch {BATCH}, float32, training step = forward, "
          f"backward, Adam; TensorFlow jit_compile={tf_report['jit_compile']}; load average (1 min) "
          f"{os.getloadavg()[0]:.2f} at the end")  # fmt: skip
    print()
    print("| ms per step | step | convolutions | matrix products | everything else | summed op time |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    label = "TensorFlow (XLA)" if tf_report["jit_compile"] else "TensorFlow (graph, oneDNN; kernel time)"
    rows = ((label, tf_report["step_ms"], tf_kinds),
            ("plain PyTorch (eager, oneDNN; self time)", torch_report["step_ms"], torch_report["kinds_ms"]))  # fmt: skip
    for name, step_ms, kinds in rows:
        print(f"| {name} | {step_ms:.1f} | " + " | ".join(f"{kinds.get(kind, 0.0):.1f}" for kind in OP_KINDS)
              + f" | {sum(kinds.values()):.1f} |")  # fmt: skip
    print()
    print("TensorFlow, kernel time per step by op type (profiler trace of one epoch):")
    print("| op type | ms / step | calls / step | share of kernel time |")
    print("| --- | ---: | ---: | ---: |")
    for kind, (ms, calls) in sorted(kernels.items(), key=lambda item: -item[1][0])[: args.rows]:
        print(f"| {kind} | {ms:.1f} | {calls:g} | {ms / total:.1%} |")
    print()
    print("Plain PyTorch, torch.profiler self time per step (ms, calls), the costliest ops:")
    for key, (ms, calls) in list(torch_report["ops"].items())[: args.rows]:
        print(f"  {ms:7.1f} ms  {calls:4d}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

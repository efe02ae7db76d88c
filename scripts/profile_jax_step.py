#!/usr/bin/env python
"""Where a JAX training step of ResNet-18 spends its time on the CPU, beside plain PyTorch's.

Prints, for ResNet-18 (28x28x1, batch 128, float32, Keras' default XLA
compilation against plain_torch/'s eager model with torch.optim.Adam):

- the milliseconds per training step of each (median of timed `fit` calls;
  plain PyTorch's own loop);
- the convolutions' share of it: on JAX, every convolution of the step's
  jaxpr (forward, and the input and kernel gradients of the backward pass)
  compiled and timed alone with XLA's CPU kernels; on PyTorch,
  torch.profiler's self time of its oneDNN convolution kernels;
- how XLA compiled the step's convolutions (the optimized HLO's
  instructions: plain `convolution`s run XLA's own CPU kernels, custom calls
  run a library's).

Its output on the development machine is results/benchmarks/jax_profile_cpu.txt:

    python scripts/profile_jax_step.py > results/benchmarks/jax_profile_cpu.txt

XLA_FLAGS set in the environment apply to the JAX side (for example
`XLA_FLAGS=--xla_cpu_use_onednn=true`).
"""

import argparse
import collections
import json
import os
import subprocess
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs from a checkout without installing the package.
sys.path.insert(0, REPOSITORY)

BATCH, INPUT_SHAPE, NUM_CLASSES = 128, (28, 28, 1), 10


def _convolutions(jaxpr):
    """Every conv_general_dilated equation of `jaxpr`, nested calls included."""
    found = []
    for equation in jaxpr.eqns:
        if equation.primitive.name == "conv_general_dilated":
            found.append(equation)
        for parameter in equation.params.values():
            inner = getattr(parameter, "jaxpr", parameter)  # ClosedJaxpr or Jaxpr
            if hasattr(inner, "eqns"):
                found.extend(_convolutions(inner))
    return found


def _time_alone(equations, repeats):
    """Seconds of each convolution compiled and run on its own, and their shapes."""
    import jax
    import jax.numpy as jnp

    from keras_gradattn.benchmarks import median_call_seconds

    rows = []
    for equation in equations:
        operands = [jnp.ones(variable.aval.shape, variable.aval.dtype) for variable in equation.invars]
        alone = jax.jit(lambda *arrays, equation=equation: equation.primitive.bind(*arrays, **equation.params))
        seconds = median_call_seconds(lambda: alone(*operands).block_until_ready(), repeats)
        rows.append((seconds, [tuple(variable.aval.shape) for variable in equation.invars]))
    return rows


def jax_worker(steps, repeats):
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras
    import numpy as np

    from keras_gradattn import benchmarks
    from keras_gradattn import create_model

    images, labels = benchmarks.synthetic_batch(BATCH, INPUT_SHAPE, NUM_CLASSES)
    model = create_model("resnet18", num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)
    model.compile()  # the paper's AdamL2; jit_compile="auto" is XLA on JAX
    train = benchmarks.training_function(model, images, labels, steps)
    step_seconds = benchmarks.median_call_seconds(train, repeats) / steps

    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]

    def loss(trainable, non_trainable, images, labels):
        logits, _ = model.stateless_call(trainable, non_trainable, images, training=True)
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))

    arguments = (trainable, non_trainable, images, labels.astype(np.int32))
    forward = _time_alone(_convolutions(jax.make_jaxpr(loss)(*arguments).jaxpr), repeats)
    everything = _time_alone(_convolutions(jax.make_jaxpr(jax.grad(loss))(*arguments).jaxpr), repeats)
    optimized = jax.jit(jax.grad(loss)).lower(*arguments).compile().as_text()
    instructions = collections.Counter()
    for line in optimized.splitlines():
        if " convolution(" in line:
            instructions["convolution"] += 1
        elif "custom-call(" in line and "custom_call_target=" in line:
            target = line.split('custom_call_target="')[1].split('"')[0]
            instructions[f"custom-call {target}"] += 1
    return {
        "step_ms": 1000 * step_seconds,
        "forward_convolutions": len(forward),
        "forward_ms": 1000 * sum(seconds for seconds, _ in forward),
        "all_convolutions": len(everything),
        "all_ms": 1000 * sum(seconds for seconds, _ in everything),
        "slowest": [[1000 * seconds, shapes] for seconds, shapes in sorted(everything, reverse=True)[:6]],
        "hlo_instructions": dict(instructions),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def torch_op_kind(name):
    """The category of a torch.profiler op: "convolution", "matrix product" or "other"."""
    if "convolution" in name:
        return "convolution"
    if name in TORCH_MATRIX_PRODUCTS:
        return "matrix product"
    return "other"


# Self time of these is the matrix arithmetic of Linear layers and attention.
TORCH_MATRIX_PRODUCTS = (
    "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
)  # fmt: skip


def plain_torch_worker(steps, repeats, model_name="resnet18"):
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    from keras_gradattn import benchmarks
    from plain_torch import create_plain_model

    images, labels = benchmarks.synthetic_batch(BATCH, INPUT_SHAPE, NUM_CLASSES)
    images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    labels = torch.from_numpy(labels.astype("int64"))
    torch.manual_seed(0)
    model = create_plain_model(model_name, num_classes=NUM_CLASSES, in_channels=INPUT_SHAPE[-1]).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

    def train():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()

    step_seconds = benchmarks.median_call_seconds(train, repeats) / steps
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        train()
    self_ms = collections.defaultdict(float)
    calls = collections.Counter()
    for event in profiler.key_averages():
        self_ms[event.key] += event.self_cpu_time_total / 1000 / steps
        calls[event.key] += event.count // steps
    convolutions = {key: ms for key, ms in self_ms.items() if torch_op_kind(key) == "convolution"}
    kinds = collections.defaultdict(float)
    for key, ms in self_ms.items():
        kinds[torch_op_kind(key)] += ms
    return {
        "model": model_name,
        "step_ms": 1000 * step_seconds,
        "forward_ms": sum(ms for key, ms in convolutions.items() if "backward" not in key),
        "all_ms": sum(convolutions.values()),
        "kernels": {key: [round(ms, 2), calls[key]] for key, ms in convolutions.items() if ms > 0.01},
        "kinds_ms": dict(kinds),
        "ops": {key: [round(ms, 2), calls[key]] for key, ms in sorted(self_ms.items(), key=lambda item: -item[1])
                if ms > 0.01},
    }


def main(argv=None):
    from keras_gradattn.cli.arguments import OneLineErrorParser
    from keras_gradattn.cli.arguments import parse_command_line
    from keras_gradattn.cli.arguments import positive_int
    from keras_gradattn.utils.dependencies import with_package_on_path

    parser = OneLineErrorParser(prog="profile_jax_step.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=positive_int, default=3, help="training steps per timed call")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed calls (and timings of each convolution)")  # fmt: skip
    parser.add_argument("--worker", choices=("jax", "plain_torch"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-model", default="resnet18", help=argparse.SUPPRESS)
    args, status = parse_command_line(parser, sys.argv[1:] if argv is None else argv)
    if args is None:
        return status
    if args.worker:
        if args.worker == "jax":
            print(json.dumps(jax_worker(args.steps, args.repeats)))
        else:
            print(json.dumps(plain_torch_worker(args.steps, args.repeats, args.worker_model)))
        return 0

    # One process each: the two runtimes' thread pools would share the cores.
    reports = {}
    for side in ("plain_torch", "jax"):
        print(f"profile_jax_step.py: measuring {side}", file=sys.stderr, flush=True)
        environment = with_package_on_path(dict(os.environ, KERAS_BACKEND="torch" if side == "plain_torch" else "jax"))
        output = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", side, "--steps", str(args.steps),
             "--repeats", str(args.repeats)],
            env=environment, stdout=subprocess.PIPE, text=True, check=True,
        ).stdout  # fmt: skip
        reports[side] = json.loads(output.strip().splitlines()[-1])
    jax_report, torch_report = reports["jax"], reports["plain_torch"]

    print(f"ResNet-18, {'x'.join(map(str, INPUT_SHAPE))}, batch {BATCH}, float32, training step = forward, "
          f"backward, Adam; load average (1 min) {os.getloadavg()[0]:.2f} at the end")  # fmt: skip
    print(f"XLA_FLAGS: {jax_report['xla_flags'] or '(none)'}")
    print()
    print("| | step ms | convolutions ms (share of the step) | forward | backward |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, report in (("JAX (XLA)", jax_report), ("plain PyTorch (oneDNN)", torch_report)):
        share = report["all_ms"] / report["step_ms"]
        print(f"| {label} | {report['step_ms']:.1f} | {report['all_ms']:.1f} ({share:.0%}) | "
              f"{report['forward_ms']:.1f} | {report['all_ms'] - report['forward_ms']:.1f} |")  # fmt: skip
    print()
    print(f"JAX: {jax_report['forward_convolutions']} forward and "
          f"{jax_report['all_convolutions'] - jax_report['forward_convolutions']} backward convolutions, each "
          "timed alone (median); the slowest:")  # fmt: skip
    for ms, shapes in jax_report["slowest"]:
        print(f"  {ms:7.1f} ms  operands {' and '.join('x'.join(map(str, shape)) for shape in shapes)}")
    print(f"XLA's optimized step (forward and backward): {jax_report['hlo_instructions']}")
    print("Plain PyTorch, torch.profiler self time per step (ms, calls):")
    for key, (ms, calls) in sorted(torch_report["kernels"].items(), key=lambda item: -item[1][0]):
        print(f"  {ms:7.1f} ms  {calls:3d}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

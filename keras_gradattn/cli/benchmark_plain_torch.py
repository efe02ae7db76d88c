"""Training speed of our models on each Keras backend against the same models
written in plain PyTorch (plain_torch/, eager, as a user would write them).

For each model: images/s of full training steps (forward, backward, Adam with
coupled L2 1e-4 on both sides) at a fixed batch, warm-up excluded. Plain
PyTorch and each backend run in their own subprocess (Keras fixes its backend
at import), kept alive for the whole run; round r asks every contender in turn
for one timed call of `--steps` steps, so a slow spell of a shared machine
hits them alike. Reported: the median images/s, and each backend's ratio to
plain PyTorch per round (median and min-max), with PASS or MISS beside the
targets:

- the fastest backend >= 1.0x plain PyTorch (stretch: 1.2x);
- the PyTorch backend >= 0.9x;
- the JAX backend >= 0.5x.

On a GPU both sides train on the GPU: plain PyTorch on CUDA tensors made
once, ours from host arrays (`--data-placement host`) or from images held on
the device and fed by row indices (`--data-placement device`, the package's
GPU path, `data.DeviceDataModel`). `--precision bfloat16` runs plain PyTorch
under `torch.autocast` and ours under Keras' mixed_bfloat16 policy.

`--jax-variants` adds JAX contenders with XLA's CPU flags or Keras'
mixed_bfloat16 policy (the levers on JAX's CPU speed), each in its own
subprocess and judged against the JAX target too.

    python scripts/benchmark_plain_torch.py                       # 28x28x1, batch 128
    python scripts/benchmark_plain_torch.py --backends torch --models resnet18 --rounds 3
    python scripts/benchmark_plain_torch.py --backends jax --jax-variants xla_onednn,bfloat16 --models resnet18

Needs a checkout (plain_torch/ is not installed) and torch.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from keras_gradattn.backend import BACKENDS
from keras_gradattn.cli.arguments import BadInput
from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import image_shape
from keras_gradattn.cli.arguments import names_from
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import program_arguments
from keras_gradattn.cli.arguments import positive_int
from keras_gradattn.utils.dependencies import with_package_on_path

MODELS = ("resnet18", "gradattn_learned_pe", "gradattn_nope", "gradattn_rope")
PLAIN = "plain_torch"
# (label, backend or None for the fastest backend, minimum ratio to plain PyTorch).
TARGETS = (
    ("fastest backend >= 1.0x", None, 1.0),
    ("fastest backend >= 1.2x (stretch)", None, 1.2),
    ("torch backend >= 0.9x", "torch", 0.9),
    ("jax backend >= 0.5x", "jax", 0.5),
)
# JAX contenders beside the plain `jax` one: `jax+NAME` runs with these
# XLA_FLAGS (read when XLA starts, so one process per setting) or this
# Keras dtype policy.
JAX_VARIANTS = {
    "xla_onednn": {"xla_flags": "--xla_cpu_use_onednn=true"},
    "xla_onednn_custom_call": {"xla_flags": "--xla_cpu_experimental_onednn_custom_call=true"},
    "xla_xnnpack": {"xla_flags": "--xla_cpu_use_xnnpack=true"},
    "xla_fast_math": {"xla_flags": "--xla_cpu_enable_fast_math=true"},
    "bfloat16": {"dtype_policy": "mixed_bfloat16"},
}
PRECISIONS = ("float32", "bfloat16")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    parser = OneLineErrorParser(
        prog="benchmark_plain_torch.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add = parser.add_argument
    add("--backends", type=names_from(BACKENDS, "backends"), default=list(BACKENDS),
        help="Keras backends to compare with plain PyTorch, each in its own subprocess")
    add("--models", type=names_from(MODELS, "models"), default=list(MODELS),
        help="models, each in both implementations")
    add("--input-shape", type=image_shape, default=(28, 28, 1), help="HxWxC of the synthetic images")
    add("--batch-size", type=positive_int, default=128)
    add("--num-classes", type=positive_int, default=10)
    add("--steps", type=positive_int, default=10,
        help="training steps per timed call (one `fit` epoch on our side)")
    add("--rounds", type=positive_int, default=5,
        help="interleaved rounds, after one untimed warm-up call per contender and model")
    add("--jax-variants", type=names_from(tuple(JAX_VARIANTS), "JAX variants"), default=[],
        help="extra JAX contenders: " + "; ".join(
            f"{name}: {', '.join(f'{key} {value}' for key, value in setting.items())}"
            for name, setting in JAX_VARIANTS.items()))
    add("--precision", choices=PRECISIONS, default="float32",
        help="float32, or bfloat16 compute (torch.autocast; Keras' mixed_bfloat16 policy)")
    add("--data-placement", choices=("host", "device"), default="host",
        help="where our side's batch lives: 'host' (NumPy arrays through fit) or 'device' (uint8 images held "
        "by a DeviceDataModel on the device, fed by row indices)")
    add("--jit-compile", choices=("auto", "on", "off"), default="auto",
        help="Keras' jit_compile for our models (auto: XLA on JAX, on TensorFlow only with a GPU, eager on torch)")
    add("--output", default="results/benchmarks/plain_torch_cpu",
        help="path prefix of the .json and .md results")
    add("--worker", choices=(PLAIN, *BACKENDS, *(f"jax+{name}" for name in JAX_VARIANTS)), help=argparse.SUPPRESS)
    return parser


# Workers ----------------------------------------------------------------------


def _plain_torch_steps(args, images, labels):
    """{model: zero-argument callable running `args.steps` plain PyTorch
    training steps}."""
    import torch
    import torch.nn.functional as F

    from plain_torch import create_plain_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # NCHW tensors made once on the device, as a DataLoader would hand them over.
    images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(device)
    labels = torch.from_numpy(labels.astype("int64")).to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.precision == "bfloat16")
    steps = {}
    for name in args.models:
        torch.manual_seed(0)
        model = create_plain_model(name, num_classes=args.num_classes, in_channels=args.input_shape[-1])
        model.to(device).train()
        # torch's weight_decay is the coupled L2 of the paper's AdamL2.
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

        def train(model=model, optimizer=optimizer):
            for _ in range(args.steps):
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss = F.cross_entropy(model(images), labels)
                loss.backward()
                optimizer.step()
            return loss.item()

        steps[name] = train
    return steps


def _keras_steps(args, images, labels):
    import keras
    import numpy as np

    from keras_gradattn import benchmarks
    from keras_gradattn import create_model

    jit_compile = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    dtype_policy = _variant(args.worker).get("dtype_policy")
    if args.precision == "bfloat16":
        dtype_policy = "mixed_bfloat16"
    if dtype_policy:
        keras.config.set_dtype_policy(dtype_policy)
    steps = {}
    for name in args.models:
        keras.utils.set_random_seed(0)
        model = create_model(name, num_classes=args.num_classes, input_shape=args.input_shape)
        if args.data_placement == "device":
            model = benchmarks.device_resident_model(model, args.batch_size)
            # Row indices of the bank: the batch's images stay on the device.
            images = np.arange(args.batch_size, dtype="int32")
        model.compile(jit_compile=jit_compile)  # the paper's AdamL2 and cross-entropy
        steps[name] = benchmarks.training_function(model, images, labels, args.steps)
    return steps


def run_worker(args):
    """Builds and warms up every model, prints `{"ready": ...}`, then answers
    each model name read from stdin with one timed call as a JSON line."""
    # Only the answers go to stdout: anything a library prints goes to stderr.
    global _protocol
    _protocol, sys.stdout = sys.stdout, sys.stderr
    if args.worker == PLAIN:
        sys.path.insert(0, REPOSITORY)
    else:
        from keras_gradattn.cli.keras_backend import choose_keras_backend

        choose_keras_backend()
    from keras_gradattn import benchmarks

    images, labels = benchmarks.synthetic_batch(args.batch_size, args.input_shape, args.num_classes)
    build = _plain_torch_steps if args.worker == PLAIN else _keras_steps
    steps = build(args, images, labels)
    warmup = {}
    for name, function in steps.items():
        start = time.perf_counter()
        function()  # compilation, allocation
        warmup[name] = time.perf_counter() - start
    # What the worker actually ran with, for the record of a variant.
    settings = {"xla_flags": os.environ.get("XLA_FLAGS", "")}
    if args.worker != PLAIN:
        import keras

        settings["dtype_policy"] = keras.config.dtype_policy().name
    _answer({"ready": True, "warmup_seconds": warmup, "machine": benchmarks.describe_environment(),
             "settings": settings})  # fmt: skip
    for line in sys.stdin:
        name = line.strip()
        if not name:
            break
        _answer({"seconds": benchmarks.call_seconds(steps[name])})
    return 0


_protocol = sys.stdout


def _answer(message):
    print(json.dumps(message), file=_protocol, flush=True)


# Parent -----------------------------------------------------------------------


class Worker:
    """One contender's subprocess, spoken to line by line."""

    def __init__(self, contender, argv):
        self.contender = contender
        command = [sys.executable, "-m", "keras_gradattn.cli.benchmark_plain_torch", *argv,
                   "--worker", contender]
        # The plain worker imports Keras only to describe the machine: on
        # torch, which it loads anyway.
        env = {**os.environ, "KERAS_BACKEND": "torch" if contender == PLAIN else contender.split("+")[0],
               # The contenders share one GPU: JAX and TensorFlow would each
               # reserve most of its memory at start.
               "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
        xla_flags = _variant(contender).get("xla_flags")
        if xla_flags:
            env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), xla_flags]))
        # The package and plain_torch/ from this checkout (its folder), wherever the command runs.
        self.process = subprocess.Popen(command, env=with_package_on_path(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)
        self.ready = self._read()

    def _read(self):
        while True:
            line = self.process.stdout.readline()
            if not line:
                code = self.process.wait()
                raise RuntimeError(f"the {self.contender} worker stopped (exit code {code}); its output is above")
            # Native code may still write to the worker's stdout: answers are
            # the lines that are JSON objects.
            if line.startswith("{"):
                return json.loads(line)

    def time_call(self, model):
        self.process.stdin.write(model + "\n")
        self.process.stdin.flush()
        return self._read()["seconds"]

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()


def _variant(contender):
    """The JAX_VARIANTS setting of a `jax+NAME` contender; {} for any other."""
    backend, _, name = (contender or "").partition("+")
    return JAX_VARIANTS[name] if backend == "jax" and name else {}


def measure(argv, contenders, models, rounds, progress=print):
    """{contender: {model: [seconds per round]}} and each contender's ready
    message, with rounds interleaved across contenders and models."""
    workers = {}
    try:
        for contender in contenders:
            progress(f"starting {contender} (build and warm-up)")
            workers[contender] = Worker(contender, argv)
        times = {contender: {model: [] for model in models} for contender in contenders}
        for round_index in range(rounds):
            progress(f"round {round_index + 1}/{rounds}")
            for model in models:
                for contender, worker in workers.items():
                    times[contender][model].append(worker.time_call(model))
        return times, {contender: worker.ready for contender, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.close()


def summarize(times, images_per_call):
    """Per model and backend: median images/s and the ratios of its speed to
    plain PyTorch's, round by round (median, min, max)."""
    summary = {}
    plain = times[PLAIN]
    for contender, per_model in times.items():
        for model, seconds in per_model.items():
            ratios = [reference / own for reference, own in zip(plain[model], seconds)]
            summary.setdefault(model, {})[contender] = {
                "images_per_second": images_per_call / statistics.median(seconds),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
    return summary


def evaluate_targets(summary):
    """[(model, target label, contender, ratio, "PASS" | "MISS")] for every
    target whose backend was measured."""
    verdicts = []
    for model, contenders in summary.items():
        # The variants are levers on JAX, judged by JAX's target only.
        backends = {name: figures for name, figures in contenders.items() if name in BACKENDS}
        variants = [name for name in contenders if name.startswith("jax+")]
        if not backends and not variants:
            continue
        fastest = max(backends, key=lambda name: backends[name]["images_per_second"]) if backends else None
        for label, backend, minimum in TARGETS:
            judged = [fastest if backend is None else backend] + (variants if backend == "jax" else [])
            for contender in judged:
                if contender not in contenders:
                    continue
                ratio = contenders[contender]["ratio"]
                verdicts.append((model, label, contender, ratio, "PASS" if ratio >= minimum else "MISS"))
    return verdicts


def format_report(summary, verdicts, *, command, settings, machine, load_before, load_after, warmup_seconds):
    lines = [
        f"Command: `{command}`",
        "",
        f"{settings}. Machine: {machine}. Load average (1 min) {load_before:.2f} before, "
        f"{load_after:.2f} after the run.",
        "",
        "| model | contender | img/s (median) | ratio to plain PyTorch (median) | ratio min-max | warm-up call s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for model, contenders in summary.items():
        for contender, figures in contenders.items():
            lines.append(
                f"| {model} | {contender} | {figures['images_per_second']:.1f} | {figures['ratio']:.2f}x | "
                f"{figures['ratio_min']:.2f}-{figures['ratio_max']:.2f}x | {warmup_seconds[contender][model]:.1f} |"
            )
    lines += ["", "The warm-up call (not timed in the ratios) includes compilation."]
    variants = sorted({contender for contenders in summary.values() for contender in contenders if "+" in contender})
    for contender in variants:
        setting = ", ".join(f"{key} `{value}`" for key, value in _variant(contender).items())
        lines.append(f"`{contender}`: the JAX backend with {setting}.")
    lines += ["",
              "| model | target | backend | ratio (median) | result |", "| --- | --- | --- | ---: | --- |"]
    for model, label, contender, ratio, verdict in verdicts:
        lines.append(f"| {model} | {label} | {contender} | {ratio:.2f}x | {verdict} |")
    return "\n".join(lines) + "\n"


def _validate(args):
    if not os.path.isfile(os.path.join(REPOSITORY, "plain_torch", "models.py")):
        raise BadInput(f"plain_torch/ not found next to the package in {REPOSITORY!r}: run from a checkout")


def main(argv=None):
    parser = build_parser()
    argv = program_arguments(parser, argv)
    args, status = parse_command_line(parser, argv, validate=_validate)
    if args is None:
        return status
    if args.worker:
        return run_worker(args)

    from keras_gradattn.utils import atomic_write_json
    from keras_gradattn.utils import atomic_write_text

    def progress(message):
        print(f"benchmark_plain_torch.py: {message}", file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    contenders = [PLAIN, *args.backends, *(f"jax+{name}" for name in args.jax_variants)]
    try:
        times, ready = measure(argv, contenders, args.models, args.rounds, progress)
    except RuntimeError as error:
        print(f"benchmark_plain_torch.py: {error}", file=sys.stderr)
        return 1
    load_after = os.getloadavg()[0]
    summary = summarize(times, args.batch_size * args.steps)
    verdicts = evaluate_targets(summary)
    command = " ".join(["python scripts/benchmark_plain_torch.py", *argv]).strip()
    machine = ready[PLAIN]["machine"]
    settings = (
        f"Training steps (forward, backward, Adam), batch {args.batch_size}, "
        f"{'x'.join(map(str, args.input_shape))}, {args.precision}, jit_compile={args.jit_compile}, our batches "
        f"from the {args.data_placement}; "
        f"{args.rounds} interleaved rounds of {args.steps} steps after one warm-up call"
    )
    report = format_report(
        summary, verdicts, command=command, settings=settings, machine=_describe(machine),
        load_before=load_before, load_after=load_after,
        warmup_seconds={contender: message["warmup_seconds"] for contender, message in ready.items()},
    )
    atomic_write_json(f"{args.output}.json", {
        "command": command, "times_seconds": times, "summary": summary,
        "verdicts": [dict(zip(("model", "target", "backend", "ratio", "result"), v)) for v in verdicts],
        "warmup_seconds": {contender: message["warmup_seconds"] for contender, message in ready.items()},
        "worker_settings": {contender: message["settings"] for contender, message in ready.items()},
        "machine": machine, "load_average_before": load_before, "load_average_after": load_after,
    })  # fmt: skip
    atomic_write_text(f"{args.output}.md", report)
    print(report)
    return 0


def _describe(machine):
    return ", ".join(f"{key} {value}" for key, value in machine.items() if key != "backend" and value not in ([], None))


if __name__ == "__main__":
    sys.exit(main())

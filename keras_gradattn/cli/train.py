"""`gradattn-train`: train one model with the paper's protocol, into a run directory.

    gradattn-train                                   # GradAttn (learned PE) on digits, offline
    gradattn-train --dataset fashion_mnist --model resnet18 --epochs 10 --backend jax
    gradattn-train --output-dir runs/a --resume      # continue an interrupted run

Exit status: 0 done (or the run had already finished), 2 bad input (one line on
stderr, nothing written), 3 training diverged (NaN/inf loss; recorded in the
run's status.json), 130 interrupted. Flags are documented in docs/training.md
and by `--help`.

The flags are parsed before Keras is imported, so `--backend` chooses the
backend (keras_gradattn/cli/keras_backend.py).
"""

import argparse
import ast
import shlex
import sys

from keras_gradattn.backend import BACKENDS
from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import fail
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.keras_backend import choose_keras_backend
from keras_gradattn.cli.keras_backend import requested_backend

EXIT_OK, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130
PROG = "train.py"


def _key_value(text):
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a bare word, e.g. stem=cifar
    return key.strip(), parsed


def _gradient_log_freq(text):
    if text in ("off", "0"):
        return 0
    if text == "epoch":
        return "epoch"
    try:
        steps = int(text)
    except ValueError:
        steps = 0
    if steps < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of steps, 'epoch' or 'off'"
        )
    return steps


def build_parser():
    from keras_gradattn.data.registry import list_datasets
    from keras_gradattn.models import list_models
    from keras_gradattn.training import protocol

    parser = OneLineErrorParser(
        prog=PROG,
        description=(
            "Train a GradAttn or baseline model with the paper's protocol (Adam 1e-3 with "
            "coupled L2 1e-4, ReduceLROnPlateau and early stopping on validation accuracy, "
            "best weights restored) and write a run directory: config.json, history.csv, "
            "best.keras, metrics.json, confusion_matrix.png, logs/."
        ),
        formatter_class=HelpFormatter,
    )
    add = parser.add_argument
    add("--dataset", default="digits",
        help=f"dataset name: {', '.join(list_datasets())}. 'digits' needs no download.")
    add("--model", default="gradattn_learned_pe", help=f"model name: {', '.join(list_models())}")
    add("--backend", choices=BACKENDS, default=None,
        help="Keras backend; default: $KERAS_BACKEND, else Keras' own default")
    add("--epochs", type=int, default=protocol.MAX_EPOCHS, help="maximum number of epochs")
    add("--batch-size", type=int, default=None,
        help="global batch size; default: the paper's for the dataset (128; 64 for pad_ufes_20)")
    add("--lr", type=float, default=protocol.LEARNING_RATE, help="initial learning rate (Adam)")
    add("--weight-decay", type=float, default=protocol.WEIGHT_DECAY,
        help="weight decay, as coupled L2 added to the gradient (the paper's)")
    add("--decoupled-weight-decay", action="store_true",
        help="use AdamW (decoupled weight decay) instead of coupled L2")
    add("--seed", type=int, default=protocol.SEED,
        help="seeds Keras (weights, dropout), the data split, shuffling and augmentation")
    add("--data-dir", default=None,
        help="folder holding the dataset's files; default: $KERAS_GRADATTN_DATA and the usual folders")
    add("--output-dir", default=None, help="run directory; default: runs/<dataset>-<model>-seed<seed>")
    add("--split", choices=("paper", "official"), default="paper",
        help="'paper': the paper's splits (70/15/15 re-split where it pooled); "
        "'official': official train/test")
    add("--precision", choices=("float32", "mixed_bfloat16", "mixed_float16"), default="float32",
        help="dtype policy; mixed_float16 adds loss scaling; logits stay float32")
    add("--jit-compile", choices=("auto", "on", "off"), default="auto",
        help="XLA/jit compilation of the train step ('auto': Keras decides)")
    add("--max-train-samples", type=int, default=None,
        help="train on a random subset of at most N examples (validation and test stay whole)")
    add("--resume", action="store_true",
        help="continue the run in --output-dir where it stopped (it must have the same flags); "
        "starts it when it does not exist yet")
    add("--distribute", action="store_true",
        help="data-parallel training over all local devices (JAX DataParallel, TensorFlow "
        "MirroredStrategy; not available on torch)")
    add("--pipeline", choices=("auto", "tf.data", "pydataset"), default="auto",
        help="input pipeline; 'auto': tf.data when TensorFlow is installed")
    add("--model-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
        help="model override passed to create_model, VALUE a Python literal (repeatable), "
        "e.g. --model-arg stem=cifar --model-arg num_layers=2")
    add("--dataset-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
        help="dataset option (synthetic only: num_examples, image_size, channels, num_classes)")
    add("--log-gradients", type=_gradient_log_freq, default=None, metavar="N|epoch|off",
        help="log per-layer norms of the gradients the optimizer applies (no extra pass) to "
        f"TensorBoard in RUN_DIR/logs/gradients every N steps or each epoch; default: every "
        f"{protocol.GRADIENT_LOG_FREQ} steps, off with --distribute")
    add("--probe-batches", type=int, default=protocol.PROBE_BATCHES,
        help="after training, the paper's gradient-flow statistics (gradient of the loss with "
        "respect to every Conv/Dense/encoder layer's output) on this many validation batches, "
        "without changing the model: RUN_DIR/gradient_probe.json; 0 skips it")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                        help="Keras fit verbosity; default: 1 (progress bar) on a terminal, else 2")
    output.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def config_from_args(args):
    from keras_gradattn.training import TrainConfig

    if args.quiet:
        verbose = 0
    elif args.verbose is not None:
        verbose = args.verbose
    else:
        verbose = 1 if sys.stdout.isatty() else 2
    return TrainConfig(
        dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, weight_decay=args.weight_decay,
        decoupled_weight_decay=args.decoupled_weight_decay, seed=args.seed,
        data_dir=args.data_dir, output_dir=args.output_dir, split=args.split,
        precision=args.precision, jit_compile=args.jit_compile,
        max_train_samples=args.max_train_samples, resume=args.resume,
        distribute=args.distribute, pipeline=args.pipeline,
        model_args=dict(args.model_arg), dataset_args=dict(args.dataset_arg), verbose=verbose,
        log_gradients=args.log_gradients, probe_batches=args.probe_batches,
    )  # fmt: skip


def rerun_command(config, backend):
    """The command line that repeats the run described by a resolved `config`."""
    parts = ["gradattn-train", "--dataset", config.dataset, "--model", config.model,
             "--backend", backend, "--epochs", config.epochs, "--batch-size", config.batch_size,
             "--lr", config.learning_rate, "--weight-decay", config.weight_decay,
             "--seed", config.seed, "--output-dir", config.output_dir, "--split", config.split,
             "--precision", config.precision, "--jit-compile", config.jit_compile,
             "--pipeline", config.pipeline,
             "--log-gradients", config.log_gradients or "off",
             "--probe-batches", config.probe_batches]  # fmt: skip
    if config.decoupled_weight_decay:
        parts.append("--decoupled-weight-decay")
    if config.data_dir:
        parts += ["--data-dir", config.data_dir]
    if config.max_train_samples:
        parts += ["--max-train-samples", config.max_train_samples]
    if config.distribute:
        parts.append("--distribute")
    for flag, values in (("--model-arg", config.model_args), ("--dataset-arg", config.dataset_args)):
        for key, value in values.items():
            parts += [flag, f"{key}={value!r}"]
    return shlex.join(str(part) for part in parts)


def _fail(message, code=EXIT_BAD_INPUT):
    return fail(PROG, message, code)


def main(argv=None):
    """Runs `gradattn-train` with `argv` (default: the command line); returns
    the exit status."""
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    problem = choose_keras_backend(requested_backend(argv))
    if problem:
        return _fail(problem)
    args, status = parse_command_line(build_parser(), argv)
    if args is None:
        return status
    problem = choose_keras_backend(args.backend)  # e.g. an abbreviated --back jax
    if problem:
        return _fail(problem)

    import logging

    import keras

    from keras_gradattn.data import DatasetError

    # tensorflow-datasets logs through absl while it looks for data; the
    # data layer's own error says what is missing, in one line.
    logging.getLogger("absl").setLevel(logging.ERROR)
    from keras_gradattn.training import TrainingDiverged
    from keras_gradattn.training import TrainingSetupError
    from keras_gradattn.training import run_training

    config = config_from_args(args)
    try:
        result = run_training(
            config,
            command_line=shlex.join([PROG, *argv]),
            rerun_command=rerun_command(config.resolved(), keras.backend.backend()),
        )
    except (TrainingSetupError, DatasetError) as error:
        return _fail(str(error))
    except TrainingDiverged as error:
        return _fail(f"training diverged: {error}", EXIT_DIVERGED)
    except KeyboardInterrupt:
        return _fail("interrupted; continue with --resume", EXIT_INTERRUPTED)
    if result.already_finished and config.verbose:
        print(f"{result.run_dir} already holds a finished run; nothing to do.")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
